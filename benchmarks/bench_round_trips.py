"""VISA round trips per programmed cell on the emulated bench, and the projected wall time to
program a 64x64 differential weight matrix (8192 cells) at 2 % on a real bench.

Measured here (pyvisa-py over loopback TCP to the emulated 2636B + 33500B + 707B of
examples/emulated-bench.toml): round trips, relay route changes, pulses and reads per cell
for the program-verify loop, once with the on-instrument loop (the 2636B TSP script firing
the generator over digio) and once with the host lock-step loop.  Projected with the
latency model below; the physical floor is pulses x (pulse width + read time).

    .venv/bin/python benchmarks/bench_round_trips.py [--levels 8] [--tolerance 0.02]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CELLS_64x64_DIFFERENTIAL = 2 * 64 * 64


@dataclass(frozen=True)
class LatencyModel:
    """Per-event costs on a real bench.  All are placeholders to be measured on the bench."""

    round_trip_s: float = 1.0e-3    # LAN raw socket + instrument parse/execute [placeholder]
    relay_switch_s: float = 1.0e-3  # reed-relay matrix card actuate + settle [placeholder]
    width_s: float = 2.5e-6         # set/reset pulse width (seed 004) [A]
    read_s: float = 300e-6          # read aperture (seed 004 read pulse) [A]
    trigger_s: float = 20e-6        # digio assert -> generator fires -> script resumes
                                    # (script delay 10 us + trigger latency) [placeholder]


def measure(station_path: Path, levels: int, tolerance: float, native: bool,
            seed: int) -> dict[str, float]:
    """Program every cell of the emulated die once; per-cell counts of the verify loop."""
    from labctl.array import Cells
    from labctl.drivers.hardware_array import HardwareArray
    from labctl.protocols.forming import FormingConfig
    from labctl.protocols.program_verify import VerifyConfig, verify_steps
    from labctl.protocols.unformed import form_unformed

    with HardwareArray.from_station(station_path, record=False) as hw:
        info = hw.info
        form_unformed(hw, Cells.all(), FormingConfig(), group="forming")  # a fresh die
        n = info.rows * info.cols
        targets = np.resize(np.linspace(10e-6, 80e-6, levels), n)
        np.random.default_rng(seed).shuffle(targets)
        cfg = VerifyConfig(tolerance=tolerance, use_native=native)
        state: dict = {}
        steps = verify_steps(hw, Cells.all(), targets, cfg, state)
        next(steps)  # the reset sweep and the first read
        rt0, sw0, t0 = hw.round_trips, hw.switches, time.perf_counter()
        for _ in steps:
            pass
        wall = time.perf_counter() - t0
        pulses = np.asarray(state["pulses"])
        return {"cells": n, "round_trips": (hw.round_trips - rt0) / n,
                "switches": (hw.switches - sw0) / n, "pulses": float(pulses.mean()),
                "converged": float(np.mean(state["converged"])), "emulated_s_per_cell": wall / n,
                "native": float(hasattr(hw, "program_verify") and native)}


def project(m: dict[str, float], lat: LatencyModel, native: bool) -> dict[str, float]:
    """Seconds for 8192 cells: bus + relays + pulses + reads, next to the physical floor."""
    p = m["pulses"]
    reads = p + 1                       # the loop reads once more than it pulses
    per_cell = (m["round_trips"] * lat.round_trip_s + m["switches"] * lat.relay_switch_s
                + p * lat.width_s + reads * lat.read_s)
    if native:
        per_cell += p * lat.trigger_s
    floor = p * (lat.width_s + lat.read_s)
    return {"total_s": per_cell * CELLS_64x64_DIFFERENTIAL,
            "floor_s": floor * CELLS_64x64_DIFFERENTIAL, "ratio": per_cell / floor}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", type=int, default=8)
    ap.add_argument("--tolerance", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--round-trip-s", type=float, default=LatencyModel.round_trip_s)
    ap.add_argument("--relay-switch-s", type=float, default=LatencyModel.relay_switch_s)
    args = ap.parse_args(argv)
    from labctl.drivers.station import load_station
    from labctl.sim_backend.emulator.serve import start_bench

    lat = LatencyModel(round_trip_s=args.round_trip_s, relay_switch_s=args.relay_switch_s)
    station = load_station(ROOT / "examples" / "emulated-bench.toml")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for native in (True, False):
            with start_bench(station, ephemeral=True) as running:
                path = Path(tmp) / "station.toml"
                path.write_text(running.station_text())
                results[native] = measure(path, args.levels, args.tolerance, native, args.seed)
    print(f"latency model: round trip {lat.round_trip_s * 1e3:g} ms, relay switch "
          f"{lat.relay_switch_s * 1e3:g} ms, pulse {lat.width_s * 1e6:g} us, read "
          f"{lat.read_s * 1e6:g} us, digio trigger {lat.trigger_s * 1e6:g} us (placeholders)")
    print(f"program-verify at {args.tolerance:.1%}, {args.levels} levels, emulated "
          f"{int(results[True]['cells'])}-cell die; projected for {CELLS_64x64_DIFFERENTIAL} cells")
    print(f"{'loop':<22}{'RT/cell':>9}{'relays/cell':>12}{'pulses/cell':>12}{'conv':>6}"
          f"{'projected':>11}{'floor':>9}{'x floor':>9}")
    for native, label in ((True, "on-instrument (TSP)"), (False, "host lock-step")):
        m = results[native]
        pr = project(m, lat, native and bool(m["native"]))
        print(f"{label:<22}{m['round_trips']:>9.2f}{m['switches']:>12.2f}{m['pulses']:>12.2f}"
              f"{m['converged']:>6.0%}{pr['total_s']:>10.1f}s{pr['floor_s']:>8.1f}s"
              f"{pr['ratio']:>8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
