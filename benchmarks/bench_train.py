"""Training throughput: samples per second of each update rule on 784-256-128-10, batch 32.

Every layer's arrays are simulated ``cmo-hfox-1t1r`` dies (two per layer for the Tiki-Taka
family and residual learning), formed, settled at the symmetry point and programmed with
the initial weights through the Array interface exactly as ``labctl pipeline train`` does;
then MNIST mini-batches go through ``AnalogNetwork.train_batch`` (forward and transposed
MVMs, pulsed updates, column reads for transfers).  Prints wall-clock and process-CPU
samples/s: on a shared machine the CPU figure is the one that compares with an idle one.
Each measurement is repeated (``--repeat``) with the same seed, data and so the same work
(each algorithm's network is built once and every run trains a copy of it): the best run is
the code's speed, the median what a run met.  This VM's speed drifts by ~15-25 % over
minutes, so one run alone says little, and the repeats go round the algorithms in turn, so
that a slow phase falls on all of them rather than on one algorithm's runs.
Target (issue 7): >= 3,000 samples/s for ttv1/ttv2/cttv2/agad.  aihwkit's own figures on this
machine: ``benchmarks/aihwkit_reference.py speed`` (its presets ~300 for the Tiki-Taka
family; AGAD with the settings run here ~5,300, idle machine).

    python benchmarks/bench_train.py [ALGORITHM ...] [--batches N] [--warmup N] [--repeat N]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time

# the machine is shared: one BLAS thread unless told otherwise (threaded BLAS on busy cores
# spins, and slowed this benchmark up to ~10x; see bench_sparse_train.py)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from labctl.commands.backend import open_sim  # noqa: E402
from labctl.datasets import load_dataset  # noqa: E402
from labctl.pipelines.train import calibrate as cal  # noqa: E402
from labctl.pipelines.train.network import AnalogNetwork, init_weights  # noqa: E402
from labctl.pipelines.train.rules import ALGORITHMS, RULES, make_config  # noqa: E402
from labctl.pipelines.train.tile import AnalogTile, TileConfig  # noqa: E402

SIZES = (784, 256, 128, 10)
BATCH = 32


def build(alg: str, rng: np.random.Generator) -> AnalogNetwork:
    cls = RULES[alg]
    rcfg = make_config(cls.Config, {})
    refs = cls.references(rcfg)
    cc = cal.CalibrationConfig(settle_pairs=60, average_pairs=10, form_block_cells=1 << 18)
    ws, bs = init_weights(SIZES, rng)
    scales = [float(np.abs(w).max() / 0.15) for w in ws]   # TrainConfig default omega
    rules = []
    for k, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
        tiles = {}
        for i, role in enumerate(cls.roles):
            tile = AnalogTile(open_sim("cmo-hfox-1t1r", n_in, n_out, 100 + 10 * k + i),
                              TileConfig(), rng, f"L{k}.{role}")
            cal.form_unformed(tile, cc)
            sp = cal.settle_symmetry_point(tile, cc)
            tile.dw_min = cal.granularity(sp, tile.g_unit_S)
            if refs[role] == "symmetry-point":
                tile.set_reference(sp.g_sp_S)
            if role == cls.visible:
                cal.program_weights(tile, ws[k] / scales[k], cc)
            tiles[role] = tile
        rules.append(cls(rcfg, tiles, rng))
    return AnalogNetwork(rules, bs, scales, "relu", rules[0].lr)


def measure(net: AnalogNetwork, x: np.ndarray, y: np.ndarray, warmup: int,
            batches: int) -> tuple[float, float]:
    """Samples/s (wall, process CPU) of ``batches`` training batches after ``warmup``."""
    for b in range(warmup):
        net.train_batch(x[b * BATCH:(b + 1) * BATCH], y[b * BATCH:(b + 1) * BATCH])
    t0, c0 = time.perf_counter(), time.process_time()
    for b in range(warmup, warmup + batches):
        net.train_batch(x[b * BATCH:(b + 1) * BATCH], y[b * BATCH:(b + 1) * BATCH])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return batches * BATCH / wall, batches * BATCH / cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("algorithms", nargs="*", default=list(ALGORITHMS))
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3,
                    help="identical runs per algorithm: best and median are printed")
    a = ap.parse_args()
    if a.repeat < 1 or a.batches < 1 or a.warmup < 0:
        raise SystemExit("--repeat and --batches must be >= 1, --warmup >= 0")
    unknown = sorted(set(a.algorithms) - set(ALGORITHMS))
    if unknown:
        raise SystemExit(f"unknown algorithm(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(ALGORITHMS)}")
    ds = load_dataset("mnist", limit=(a.batches + a.warmup) * BATCH)
    x = ds.x_train.reshape(len(ds.x_train), -1).astype(np.float64)
    print(f"784-256-128-10, batch {BATCH}, cmo-hfox-1t1r; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}")
    print(f"{a.repeat} run(s) of {a.batches} batches each, after {a.warmup} to warm up",
          flush=True)
    built = {}
    for alg in a.algorithms:   # forming, settling and programming: once per algorithm
        print(f"building {alg} ...", file=sys.stderr, flush=True)
        built[alg] = build(alg, np.random.default_rng(0))
    runs: dict[str, list[tuple[float, float]]] = {alg: [] for alg in a.algorithms}
    for k in range(a.repeat):
        for alg in a.algorithms:
            runs[alg].append(measure(copy.deepcopy(built[alg]), x, ds.y_train, a.warmup,
                                     a.batches))
            print(f"run {k + 1}/{a.repeat} {alg}: {runs[alg][-1][0]:.0f} samples/s",
                  file=sys.stderr, flush=True)
    print(f"{'algorithm':>10} {'wall best':>10} {'median':>7} {'cpu best':>9} {'median':>7}")
    for alg in a.algorithms:
        r = np.array(runs[alg])
        best, med = r.max(axis=0), np.median(r, axis=0)
        print(f"{alg:>10} {best[0]:10.0f} {med[0]:7.0f} {best[1]:9.0f} {med[1]:7.0f}")


if __name__ == "__main__":
    main()
