"""Float32 standard normals: numpy's ziggurat vs ``labctl.normals`` (Box–Muller).

The two are timed in alternation (random order within each repetition), and the speed-up is
the median of the per-repetition ratios, so load on a shared machine cancels out.  Sizes are
those of the training hot path (pulse-noise and MVM read-noise calls: a few hundred to ~60k
values per call) and beyond.

    python benchmarks/bench_normals.py [N ...] [--reps R]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from labctl.normals import standard_normal_f32

Draw = Callable[[np.random.Generator, int], np.ndarray]


def numpy_f32(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal(n, dtype=np.float32)


def seconds_per_call(draw: Draw, rng: np.random.Generator, n: int, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        draw(rng, n)
    return (time.perf_counter() - t0) / calls


def compare(n: int, reps: int) -> tuple[float, float, np.ndarray]:
    """Median ns/value of numpy and Box–Muller, and the per-repetition speed-ups."""
    rng, order = np.random.default_rng(0), np.random.default_rng(1)
    draws: dict[str, Draw] = {"numpy": numpy_f32, "box_muller": standard_normal_f32}
    calls = max(3, 2_000_000 // max(n, 1))
    t: dict[str, list[float]] = {k: [] for k in draws}
    for _ in range(reps):
        for k in order.permutation(list(draws)):
            t[k].append(seconds_per_call(draws[k], rng, n, calls))
    ratio = np.array(t["numpy"]) / np.array(t["box_muller"])
    return np.median(t["numpy"]) / n * 1e9, np.median(t["box_muller"]) / n * 1e9, ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", type=int,
                    default=[320, 1024, 2048, 4096, 8192, 57001, 300000])
    ap.add_argument("--reps", type=int, default=15)
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'n':>8} {'numpy ns':>9} {'B-M ns':>7} {'speed-up':>9} {'(10-90 %)':>12}")
    for n in a.sizes:
        t_np, t_bm, r = compare(n, a.reps)
        print(f"{n:8d} {t_np:9.2f} {t_bm:7.2f} {np.median(r):8.2f}x "
              f"({np.percentile(r, 10):.2f}-{np.percentile(r, 90):.2f})", flush=True)


if __name__ == "__main__":
    main()
