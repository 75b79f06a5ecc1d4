"""Training throughput of the pruning pipeline's Fashion-MNIST CNN (seed 000's network).

Prints samples per second for edge-popup score training and for the software baseline's
weight training (one pass over N training images, batch 128), with 1 and 2 BLAS threads,
and the analog inference rate on the simulated rram-40nm-random chip.  Run by hand:

    python benchmarks/bench_prune.py [--samples 6000] [--data-dir DIR]

Uses Fashion-MNIST from ``--data-dir`` (IDX files, as ``labctl pipeline prune``) or the
Debian package when it is installed, else random 28x28 images of the
same shape (throughput does not depend on the pixel values; the output says which).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from labctl.datasets import load_dataset
from labctl.errors import DatasetNotInstalled, LabctlError
from labctl.pipelines import edge_popup as ep
from labctl.pipelines.chip_layers import ChipMatMul
from labctl.pipelines.nn.models import build_network
from labctl.pipelines.nn.network import software_matmul
from labctl.pipelines.prune import required_layout
from labctl.pipelines.train_loop import (
    Schedule,
    calibrate,
    evaluate,
    train_scores_epoch,
    train_weights_epoch,
)


def data(n: int, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    if data_dir:   # the user's own copy: no stand-in if it is unusable
        d = load_dataset("fashion-mnist", limit=n, data_dir=data_dir)
        return d.x_train, d.y_train, f"Fashion-MNIST from {data_dir}"
    try:
        d = load_dataset("fashion-mnist", limit=n)
        return d.x_train, d.y_train, "Fashion-MNIST"
    except DatasetNotInstalled:
        rng = np.random.default_rng(0)
        return (rng.random((n, 28, 28), dtype=np.float32), rng.integers(0, 10, n),
                "random 28x28 stand-in (dataset-fashion-mnist not installed)")


def scores_rate(x: np.ndarray, y: np.ndarray) -> float:
    rng = np.random.default_rng(0)
    net = build_network("cnn-fmnist", (28, 28), 10, 4)
    w = net.init_weights(rng)
    p = {"w": w, "residual": {n: np.zeros_like(v) for n, v in w.items()},
         "scores": {n: ep.init_scores(v.shape, rng) for n, v in w.items()}}
    p["buf"] = {n: np.zeros_like(s) for n, s in p["scores"].items()}
    p["mask"] = {n: ep.topk_mask(s, 0.5) for n, s in p["scores"].items()}
    p["ref"] = {n: s.copy() for n, s in p["scores"].items()}
    t = time.perf_counter()
    train_scores_epoch(net, x, y, p, net.init_state(), Schedule(0.1, 1, 128), 0, 0.5, 0.01, rng)
    return len(y) / (time.perf_counter() - t)


def weights_rate(x: np.ndarray, y: np.ndarray) -> float:
    rng = np.random.default_rng(0)
    net = build_network("cnn-fmnist", (28, 28), 10, 4)
    w = net.init_weights(rng)
    bufs = {n: np.zeros_like(v) for n, v in w.items()}
    t = time.perf_counter()
    train_weights_epoch(net, x, y, w, bufs, net.init_state(), Schedule(0.05, 1, 128), 0, rng)
    return len(y) / (time.perf_counter() - t)


def chip_rate(x: np.ndarray, y: np.ndarray) -> float:
    """Inference through Array.mvm on a formed-like simulated chip (forming skipped: the
    array's state is set to formed filaments so only the MVM cost is measured)."""
    from labctl.sim_backend.presets import load_model
    from labctl.sim_backend.simulated_array import SimulatedArray

    net = build_network("cnn-fmnist", (28, 28), 10, 4)
    layout = required_layout(net)
    arr = SimulatedArray(load_model("rram-40nm-random"), layout.rows, layout.cols, seed=0)
    rng = np.random.default_rng(0)
    arr.state["formed"][:] = True
    arr.state["g_S"][:] = 20e-6 * np.exp(0.6 * rng.standard_normal(arr.state["g_S"].shape))
    w = net.init_weights(rng)
    st = net.init_state()
    calibrate(net, x, software_matmul(w), st, rng, 128, n_batches=5)
    scales = {n: 1e-5 for n in net.weights}
    row_g = {n: np.ones(t.fan_in) * 1e-4 for n, t in layout.tiles.items()}
    mm = ChipMatMul(arr, layout, scales, row_g, {})
    n = min(len(y), 500)
    t = time.perf_counter()
    evaluate(net, x[:n], y[:n], mm, st, 100)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=6000)
    ap.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX files of your own")
    args = ap.parse_args()
    try:
        x, y, label = data(args.samples, args.data_dir)
    except LabctlError as e:
        raise SystemExit(f"bench_prune: {e}") from None
    print(f"data: {label}, {len(y)} training samples, batch 128, {os.cpu_count()} CPUs")
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            print(f"BLAS threads {threads}: edge-popup score training "
                  f"{scores_rate(x, y):8.0f} samples/s; software weight training "
                  f"{weights_rate(x, y):8.0f} samples/s")
    with threadpool_limits(limits=1):
        print(f"analog inference on the simulated 576x438 chip: {chip_rate(x, y):8.1f} "
              "samples/s (every test batch a fresh array read)")


if __name__ == "__main__":
    main()
