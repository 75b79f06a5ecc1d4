"""Simulated cell-operations per second (one pulse or one read on one cell).

Run by hand: ``python benchmarks/bench_sim_ops.py [--sizes 256 1024] [--repeats 3]``.
Uses :class:`SimulatedArray` with the default ``cmo-hfox-1t1r`` preset directly and
prints, per array size, the throughput of whole-array reads, single pulses, mixed
set/reset pulses and per-cell pulse counts of 1..64 (target: >= 1e7 cell-ops/s).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from labctl.array import Cells
from labctl.sim_backend.presets import load_model
from labctl.sim_backend.simulated_array import SimulatedArray


def formed_array(side: int, seed: int = 0) -> SimulatedArray:
    """A formed, conditioned die (short forming ramp, then a set sweep)."""
    a = SimulatedArray(load_model("cmo-hfox-1t1r"), side, side, seed=seed)
    a.sweep(Cells.all(), np.arange(3.0, 4.0 + 1e-9, 0.05), gate_V=1.2, compliance_A=1e-3)
    a.sweep(Cells.all(), -np.linspace(0.0, 1.5, 16), gate_V=1.2, compliance_A=1e-3)
    return a


def rate(a: SimulatedArray, op: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best cell-operations per second over ``repeats`` calls of ``op``: (wall, CPU time).

    The CPU-time figure is what one otherwise idle core delivers; on a shared machine the
    wall-clock figure is lower by the load.
    """
    best_wall = best_cpu = 0.0
    for _ in range(repeats):
        before, t0, c0 = a.operations, time.perf_counter(), time.process_time()
        op()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        ops = a.operations - before
        best_wall, best_cpu = max(best_wall, ops / dt), max(best_cpu, ops / max(dc, 1e-9))
    return best_wall, best_cpu


def bench(side: int, repeats: int) -> dict[str, tuple[float, float]]:
    a = formed_array(side)
    rng = np.random.default_rng(1)
    n = side * side
    mixed = np.where(rng.random(n) < 0.5, 1.35, -1.3)
    counts = rng.integers(1, 65, n)
    half = Cells.from_mask(rng.random((side, side)) < 0.5)
    def read_after_wait() -> None:
        a.wait(3600.0)
        a.read(Cells.all())

    ops: dict[str, Callable[[], object]] = {
        "read (all cells)": lambda: a.read(Cells.all()),
        "read (random half)": lambda: a.read(half),
        "pulse x1 (all, set)": lambda: a.pulse(Cells.all(), 1.35, 2.5e-6),
        "pulse x1 (all, mixed set/reset)": lambda: a.pulse(Cells.all(), mixed, 2.5e-6),
        "pulse x1..64 (all, mixed)": lambda: a.pulse(Cells.all(), mixed, 2.5e-6, count=counts),
        "read after 1 h (relaxation)": read_after_wait,
        "mvm (32 vectors)": lambda: a.mvm(rng.uniform(-0.2, 0.2, (32, side))),
    }
    return {name: rate(a, op, repeats) for name, op in ops.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          "M cell-ops/s, wall clock (CPU time)")
    for side in args.sizes:
        print(f"{side}x{side} ({side * side} cells)")
        for name, (wall, cpu) in bench(side, args.repeats).items():
            flag = "ok " if wall >= 1e7 else "LOW"
            print(f"  {flag} {name:34s} {wall / 1e6:8.1f}  ({cpu / 1e6:.1f})")


if __name__ == "__main__":
    main()
