"""Wall time of program-verify on large simulated arrays (issue 3: 256x256 at 2 % < 5 s).

Run by hand: ``python benchmarks/bench_program_verify.py [--sizes 256 1024] [--tolerance 0.02]``.
The die is formed first (not timed); then one lock-step program-verify of every cell to
targets spread evenly over 10-90 uS: the reset sweep, the rounds, and the same drained
through the protocol runner into a run file (checkpoints included).  Prints the figures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from labctl.array import Cells
from labctl.protocols.forming import FormingConfig
from labctl.protocols.program_verify import VerifyConfig, verify_steps
from labctl.protocols.unformed import form_unformed
from labctl.sim_backend.presets import load_model
from labctl.sim_backend.simulated_array import SimulatedArray


def formed_array(n: int, seed: int) -> SimulatedArray:
    arr = SimulatedArray(load_model("cmo-hfox-1t1r"), n, n, seed=seed)
    form_unformed(arr, Cells.all(), FormingConfig(v_step_V=0.02), group="f", chunk_cells=65536)
    return arr


def targets(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(10e-6, 90e-6, n * n)


def bench_direct(n: int, tol: float, seed: int) -> dict[str, float]:
    arr = formed_array(n, seed)
    t = targets(n, seed)
    cfg = VerifyConfig(tolerance=tol)
    state: dict = {}
    t_reset = None
    t0 = time.perf_counter()
    for _ in verify_steps(arr, Cells.all(), t, cfg, state):
        if t_reset is None:  # the first step comes right after the reset sweep and read
            t_reset = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return {"reset_s": t_reset or 0.0, "total_s": total, "rounds": int(state["round"]),
            "pulses_mean": float(state["pulses"].mean()),
            "converged": float(state["converged"].mean())}


def bench_runner(n: int, tol: float, seed: int) -> float:
    from labctl.data.runfile import RunWriter
    from labctl.protocols.base import run
    from labctl.protocols.program import Program, ProgramConfig

    arr = formed_array(n, seed)
    proto = Program(ProgramConfig(targets_file="(benchmark targets)", form=False,
                                  verify=VerifyConfig(tolerance=tol)), targets_S=targets(n, seed))
    with tempfile.TemporaryDirectory() as d:
        w = RunWriter(Path(d) / "b.h5", command="run program", config=proto.config_dict(),
                      backend=arr.describe())
        t0 = time.perf_counter()
        run(proto, arr, w)
        dt = time.perf_counter() - t0
        w.finish("complete")
    return dt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--tolerance", type=float, default=0.02)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runner", action="store_true",
                   help="also time the whole `run program` protocol into a run file")
    a = p.parse_args()
    for n in a.sizes:
        r = bench_direct(n, a.tolerance, a.seed)
        print(f"program-verify {n}x{n} at {100 * a.tolerance:g} %: {r['total_s']:.2f} s "
              f"(reset sweep + read {r['reset_s']:.2f} s, loop {r['total_s'] - r['reset_s']:.2f} s "
              f"in {r['rounds']} lock-step rounds, "
              f"mean {r['pulses_mean']:.1f} pulses/cell, {100 * r['converged']:.3f} % converged)",
              flush=True)
        if a.runner:
            dt = bench_runner(n, a.tolerance, a.seed)
            print(f"  through the runner into a run file: {dt:.2f} s", flush=True)


if __name__ == "__main__":
    main()
