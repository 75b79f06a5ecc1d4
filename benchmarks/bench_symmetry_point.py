"""Wall time of the symmetry-point analysis (figures of merit, soft-bounds fit, calibration).

Run by hand: ``python benchmarks/bench_symmetry_point.py [--sizes 8 32 64]``.  Each size
n measures an n x n simulated `cmo-hfox-1t1r` die with `labctl run symmetry-point`'s
default schedule (2,100 pulses a device; not timed), then times the three stages of the
analysis of that trace and prints them with the fitted array parameters.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from labctl.data.runfile import RunReader, RunWriter
from labctl.protocols.analysis.open_loop import Schedule, figures_of_merit
from labctl.protocols.analysis.soft_bounds import Anchor, ModelForm, fit_devices, fit_shapes
from labctl.protocols.base import run
from labctl.protocols.symmetry_point import GROUP, SymmetryPoint, SymmetryPointConfig
from labctl.sim_backend.presets import load_model, load_preset
from labctl.sim_backend.simulated_array import SimulatedArray


class _MeasureOnly(SymmetryPoint):
    """The protocol's measurement without its analysis (which the benchmark times itself)."""

    def analyse(self, data: Any) -> dict[str, Any]:
        return {}


def measured(n: int, seed: int, d: Path) -> tuple[np.ndarray, Schedule, np.ndarray, ModelForm]:
    pulse = load_preset("cmo-hfox-1t1r")["pulse"]
    form = ModelForm(g_exponent=pulse["g_exponent"], g_ref_S=pulse["g_ref_S"],
                     sigma_g_rel=pulse["sigma_g_rel"], floor_S=pulse["floor_S"],
                     ceiling_S=pulse["ceiling_S"])
    proto = _MeasureOnly(SymmetryPointConfig())
    w = RunWriter(d / f"sp{n}.h5", command="run symmetry-point", config=proto.config_dict(),
                  backend={})
    run(proto, SimulatedArray(load_model("cmo-hfox-1t1r"), n, n, seed=seed), w)
    w.finish("complete")
    with RunReader(d / f"sp{n}.h5") as r:
        trace = r.data(f"{GROUP}/trace_S")
        sch = Schedule(r.data(f"{GROUP}/sign").astype(np.int8),
                       r.data(f"{GROUP}/alternating").astype(bool))
        reads = r.data(f"{GROUP}/repeat_reads_S")
    return trace, sch, reads.std(axis=0, ddof=1), form


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[8, 32, 64])
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)
    with tempfile.TemporaryDirectory() as d:
        for n in a.sizes:
            trace, sch, read_sigma, form = measured(n, a.seed, Path(d))
            t0 = time.perf_counter()
            fom = figures_of_merit(trace, sch)
            t1 = time.perf_counter()
            fit_shapes(trace[:-1], np.diff(trace, axis=0), sch.sign > 0,
                       Anchor(fom.g_sp_S, fom.dg_sp_S), fom.g_min_S, fom.g_max_S, form)
            t2 = time.perf_counter()
            fits = fit_devices(trace, sch, fom, form=form, read_sigma_S=read_sigma)
            t3 = time.perf_counter()
            ok = np.isfinite(fits["dw_min"])
            print(f"symmetry point {n}x{n} ({n * n} devices): figures of merit {t1 - t0:.2f} s, "
                  f"least squares {t2 - t1:.2f} s, least squares + calibration "
                  f"{t3 - t2:.2f} s; {ok.sum()} fitted, gamma_up "
                  f"{np.median(fits['gamma_up'][ok]):.3f}, gamma_down "
                  f"{np.median(fits['gamma_down'][ok]):.3f}, asymmetry "
                  f"{np.mean(fits['asymmetry'][ok]):+.3f}", flush=True)


if __name__ == "__main__":
    main()
