"""Training samples per second of index-free sparse training, and the full benchmark run.

Quick mode (default): one epoch of each update rule (VAU, exact cell by cell per sample,
exact on the accumulated batch gradient) on the simulated ``mos2-fefet-2t`` arrays, 75 %
sparsity, printing training samples/s (wall time of the training steps: forward and
transposed MVMs through the arrays, pulses, topology updates).

Full mode runs the whole pipeline (``labctl pipeline sparse-train``: sparse VAU, sparse cell
by cell, dense; VAU error curve; cost model) and prints its figures:

    .venv/bin/python benchmarks/bench_sparse_train.py                  # quick, digits
    .venv/bin/python benchmarks/bench_sparse_train.py --dataset letters
    .venv/bin/python benchmarks/bench_sparse_train.py --full --dataset letters \\
        --epochs 8 --out letters.h5
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import time

# the machine is shared: one BLAS thread (threaded BLAS on busy cores spins and slows the
# 784x128 MVMs ~10x)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def quick(dataset: str, hidden: int, limit: int | None, seed: int) -> None:
    from labctl.commands.backend import open_sim
    from labctl.datasets import load_dataset
    from labctl.pipelines.sparse.layer import PulseConfig, SparseLayer
    from labctl.pipelines.sparse.network import SparseNetwork
    from labctl.pipelines.sparse.topology import initial_mask
    from labctl.pipelines.sparse.train import SparseData

    data = SparseData.from_dataset(load_dataset(dataset, seed=seed, limit=limit))
    sizes = [data.x_train.shape[1], hidden, data.n_classes]
    batch = 16
    print(f"{dataset}: network {'-'.join(map(str, sizes))}, {len(data.x_train)} training "
          f"samples, batch {batch}, 75 % sparsity, preset mos2-fefet-2t")
    for mode in ("vau", "cell", "cell-batch"):
        rng = np.random.default_rng(seed)
        layers = []
        for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layer = SparseLayer(open_sim("mos2-fefet-2t", a, b, 2 * k),
                                open_sim("mos2-fefet-2t", a, b, 2 * k + 1),
                                PulseConfig(amplitude_V=2.0), f"L{k}")
            layer.calibrate()
            layer.set_mask(initial_mask(layer.shape, 0.75, rng))
            layers.append(layer)
        net = SparseNetwork(layers, logit_gain=3.0)
        order = rng.permutation(len(data.x_train))
        t0 = time.perf_counter()
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            net.train_batch(data.x_train[idx], data.y_train[idx], mode=mode, lr=0.2, rng=rng)
        wall = time.perf_counter() - t0
        acc, _, _ = net.evaluate(data.x_test, data.y_test)
        print(f"  update {mode:<10} {len(order) / wall:8.0f} training samples/s   "
              f"(1 epoch {wall:6.1f} s, test accuracy after it {100 * acc:5.1f} %)")


def full(args: argparse.Namespace) -> None:
    from labctl.cli import main
    from labctl.data.runfile import RunReader
    from labctl.pipelines.sparse.analysis import samples_per_s

    argv = ["pipeline", "sparse-train", "--dataset", args.dataset, "--epochs",
            str(args.epochs), "--sparsity", "0.75", "--seed", str(args.seed), "--json",
            "--quiet", "--batches-per-yield", str(args.batches_per_yield)]
    if args.out:
        argv += ["--out", args.out]
    if args.limit:
        argv += ["--limit", str(args.limit)]
    buf = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    wall = time.perf_counter() - t0
    lines = buf.getvalue().strip().splitlines()
    print("\n".join(lines[:-1]))
    if rc != 0:
        raise SystemExit(rc)
    s = json.loads(lines[-1])
    with RunReader(s["run_file"]) as r:
        for net in ("sparse", "sparse_cell", "dense"):
            sps = samples_per_s(r, net)
            if sps is not None:
                print(f"  training samples/s ({net:<11}) {sps:8.0f}")
        if "vau_error/sparsity" in r:
            print("  VAU error vs sparsity (dw_min^2; exact cell-by-cell rounding; VAU bias):")
            for sp, m, sd, c, b in zip(r.data("vau_error/sparsity"), r.data("vau_error/mse"),
                                       r.data("vau_error/mse_std"),
                                       r.data("vau_error/cell_mse"),
                                       r.data("vau_error/bias_mse"), strict=True):
                print(f"    {100 * sp:4.0f} %   VAU {m:8.4f} +/- {sd:7.4f}   cell {c:8.4f}   "
                      f"bias {b:8.4f}")
    print(f"  whole run {wall:.0f} s;  JSON: {json.dumps(s)}")


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--hidden", type=int, default=None)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--full", action="store_true", help="run the whole pipeline")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--out", default=None)
    p.add_argument("--batches-per-yield", type=int, default=1000,
                   help="checkpoint spacing of the full run (large arrays: big snapshots)")
    return p.parse_args()


if __name__ == "__main__":
    a = parse()
    if a.full:
        full(a)
    else:
        quick(a.dataset, a.hidden or (64 if a.dataset == "digits" else 128), a.limit, a.seed)
