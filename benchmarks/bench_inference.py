"""Benchmark: weight transfer and analog inference on the simulator (run by hand).

    .venv/bin/python benchmarks/bench_inference.py [--quick]

Prints (1) the wall time to program a 256x256 weight matrix as differential pairs
(256 x 512 = 131,072 cells) at 2 % on a simulated cmo-hfox-1t1r chip, pulses per cell and
convergence; (2) inference throughput, in MVM samples (input vectors) per second through
DAC, chip MVM with IR drop (0.35 ohm/segment), ADC and calibration, for 64x64 and 256x256
matrices.  ``--quick`` uses 64x64 / 128 cells for a smoke run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from labctl.commands.backend import open_sim
from labctl.commands.program import build_transfer
from labctl.data.runfile import RunWriter
from labctl.pipelines.inference import ChipPlan, Inference, InferenceConfig, dac
from labctl.pipelines.tiling import Placement
from labctl.pipelines.weight_mapping import Mapping
from labctl.protocols.base import run
from labctl.protocols.transfer import load_results


def transfer(n: int, kind: str, tolerance: float, tmp: Path, wire_ohm: float = 0.35,
             array=None, seed: int = 0):
    """Program an n x n clipped-normal matrix (on a fresh chip unless ``array`` is given);
    returns (array, seconds, summary, plan)."""
    w = np.clip(np.random.default_rng(seed).normal(size=(n, n)), -1, 1)
    cols = n * (2 if kind == "differential" else 1)
    if array is None:
        array = open_sim("cmo-hfox-1t1r", n, cols, seed=0, wire_resistance_ohm=wire_ohm)
    args = argparse.Namespace(weights="bench", mapping=kind, window_S=[9.0e-6, 88.19e-6],
                              w_max=None, no_tiling=True, tolerance=tolerance, max_pulses=1000,
                              width_s=2.5e-6, reset="sweep")
    proto = build_transfer(args, w, array.info)
    t0 = time.perf_counter()
    with RunWriter(tmp / f"t{n}{kind}{seed}.h5", command="program", config=proto.config_dict(),
                   backend=array.describe()) as wr:
        summary = run(proto, array, wr)
        res = load_results(wr, 1)
        end_s = float(wr.data("transfer/load_end_s")[-1])
    dt = time.perf_counter() - t0
    mapping = Mapping.from_dict(proto.config.mapping)
    placement = Placement.from_dict(proto.config.placement)
    g = np.full(placement.matrix_shape, np.nan)
    g[res["row"].astype(int), res["col"].astype(int)] = res["g_S"]
    plan = ChipPlan(weights=w, mapping=mapping, placement=placement, g_programmed_S=g,
                    pulses=res["pulses"], programmed_at_s=end_s)
    return array, dt, summary, plan


def mvm_rate(array, plan: ChipPlan, inputs: int) -> float:
    """Input vectors per second through DAC -> chip MVM (IR drop) -> ADC, one tile."""
    pipe = Inference(InferenceConfig(transfer_file="bench", inputs=inputs), plan)
    tile = pipe.tiles[0]
    x = dac(np.random.default_rng(1).uniform(-1, 1, (inputs, tile.shape[0])), 6)
    pipe._analog(array, tile, x)                     # warm-up
    t0 = time.perf_counter()
    pipe._analog(array, tile, x)
    return inputs / (time.perf_counter() - t0)


def main() -> int:
    quick = "--quick" in sys.argv
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        n = 64 if quick else 256
        array = None
        for seed, what in ((0, "fresh chip: forming + program-verify"),
                           (1, "formed chip: program-verify only")):
            array, dt, s, _ = transfer(n, "differential", 0.02, tmp, wire_ohm=0.0, array=array,
                                       seed=seed)
            print(f"transfer {n}x{n} differential ({s['cells']} cells) at 2 %, {what}: "
                  f"{dt:.1f} s, {s['cells'] / dt:.0f} cells/s, pulses mean "
                  f"{s['pulses_mean']:.1f} max {s['pulses_max']}, converged "
                  f"{s['converged']}/{s['cells']}")
        for m in ((32,) if quick else (64, 256)):
            array, dt, s, plan = transfer(m, "reference", 0.02, tmp)
            for inputs in (100, 1000):
                rate = mvm_rate(array, plan, inputs)
                print(f"inference {m}x{m} reference, IR drop 0.35 ohm, batch {inputs}: "
                      f"{rate:.0f} samples/s")
            t0 = time.perf_counter()
            cfg = InferenceConfig(transfer_file="bench", inputs=100)
            pipe = Inference(cfg, plan)
            with RunWriter(tmp / f"i{m}.h5", command="pipeline inference",
                           config=pipe.config_dict(), backend={}) as wr:
                out = run(pipe, array, wr)
            print(f"  whole pipeline (calibration, 5 times x 100 inputs, 4 reads each): "
                  f"{time.perf_counter() - t0:.1f} s; RMSE 2 % transfer: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in out["rmse"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
