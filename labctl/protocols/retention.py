"""``run retention``: program levels, then read them on a log-spaced time grid.

Seed 004 (Falcone et al., arXiv 2502.04524, Fig. 4): 35 levels programmed with the
identical-pulse closed loop at 0.2 % of G_target, then read over time; the mean shift
and the spread of each level are fitted against ln t and projected to ten years, and the
overlap of neighbouring levels tracks whether they stay distinguishable (9.6 % after
10 minutes).  Programming reuses :func:`labctl.protocols.program.program_batches`; time
passes through ``array.wait`` (the simulator's virtual clock makes ten years instant; a
bench really waits, and the run can be resumed).  When the chip is smaller than
``levels x repeats`` each batch is programmed and then followed through the whole grid
before its cells are reset and reused; every batch's clock starts when it finished
programming.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from labctl.array import Array
from labctl.errors import ConfigError
from labctl.protocols.analysis.relaxation import (
    TEN_YEARS_S,
    ages_too_close,
    fit_times,
    fit_vs_ln_t,
    log_grid,
    projection,
    relaxation_at_times,
    time_key,
)
from labctl.protocols.base import BaseProtocol, RunData, Step
from labctl.protocols.forming import FormingConfig
from labctl.protocols.program import (
    analyse_program,
    batch_cells,
    check_cell_count,
    check_targets,
    form_steps,
    job_targets,
    n_batches,
)
from labctl.protocols.program_verify import VerifyConfig, verify_steps

GROUP = "retention"
PROGRAM_GROUP = "retention/program"


@dataclass(frozen=True)
class RetentionConfig:
    """Levels, programming precision and the read-out time grid."""

    levels: int = 35                        # [A]
    g_min_S: float = 10e-6                  # [A]
    g_max_S: float = 90e-6                  # [A]
    repeats: int = 16                       # cells per level [C]
    verify: VerifyConfig = field(default_factory=lambda: VerifyConfig(tolerance=0.002))
    times_s: tuple[float, ...] | None = None  # explicit grid (s after programming)
    duration_s: float = 86400.0             # else a 1-2-5 grid from 1 s to this [C]
    form: bool = True                       # form cells that read as unformed first

    def validate(self) -> None:
        self.verify.validate()
        if self.levels < 2:
            raise ConfigError(f"retention needs >= 2 levels, got {self.levels}", key="levels")
        if not (0 < self.g_min_S < self.g_max_S):
            raise ConfigError(f"need 0 < --g-min-S < --g-max-S, got {self.g_min_S:g} and "
                              f"{self.g_max_S:g}", key="g_min_S")
        check_cell_count(self.levels, self.repeats)
        if self.times_s is not None:
            t = np.asarray(self.times_s, dtype=float)
            if t.size == 0 or not np.all(np.isfinite(t)) or np.any(t <= 0):
                raise ConfigError("--times must be positive seconds", key="times")
            if np.any(np.diff(t) <= 0):
                raise ConfigError("--times must be strictly increasing", key="times")
            if t[-1] > TEN_YEARS_S:
                # every digit: a value just over the limit must read as different from it
                raise ConfigError(f"--times reaches {t[-1]:.12g} s; reads are waited for, so at "
                                  f"most 10 years ({TEN_YEARS_S:.12g} s) (the summary projects "
                                  f"10 years from the fit)", key="times")
        elif not (np.isfinite(self.duration_s) and 1.0 <= self.duration_s <= TEN_YEARS_S):
            raise ConfigError(f"--duration-s must be 1 s to 10 years ({TEN_YEARS_S:.12g} s): "
                              f"reads are waited for, and the summary projects 10 years from "
                              f"the fit; got {self.duration_s:.12g}", key="duration_s")

    def grid(self) -> np.ndarray:
        if self.times_s is not None:
            return np.asarray(self.times_s, dtype=float)
        return log_grid(self.duration_s)


class Retention(BaseProtocol):
    name: ClassVar[str] = "retention"

    def __init__(self, config: RetentionConfig) -> None:
        config.validate()
        super().__init__(config)

    def jobs(self) -> np.ndarray:
        cfg: RetentionConfig = self.config
        return job_targets(np.linspace(cfg.g_min_S, cfg.g_max_S, cfg.levels), cfg.repeats)

    def preflight(self, array: Array) -> None:
        self.config.verify.check_array(array.info)
        if self.config.form and array.info.technology == "1t1r-reram":
            # cells that read as unformed get the forming ramp
            FormingConfig().check_limits(array.info.limits, before="run retention")

    def initial_state(self, array: Array) -> dict[str, Any]:
        return {"batch": 0, "phase": "program", "verify": {}, "t0_s": 0.0, "ti": 0,
                "started": False, "formed": False}

    def steps(self, array: Array, state: dict[str, Any]) -> Iterator[Step]:
        cfg: RetentionConfig = self.config
        jobs = self.jobs()
        check_targets(jobs, array.info.g_min_S, array.info.g_max_S)
        grid = cfg.grid()
        nb = n_batches(array, jobs.size)
        total = jobs.size * (1 + grid.size)
        if not state["started"]:
            state["started"] = True
            yield Step(done=0, total=total, label="time grid",
                       write={f"{GROUP}/grid_s": (grid, "s"), f"{GROUP}/jobs_S": (jobs, "S")})
        if cfg.form and not state["formed"]:
            yield from form_steps(array, jobs.size, GROUP, total)
            state["formed"] = True   # (an interrupted forming is redone: formed cells skipped)
        while int(state["batch"]) < nb:
            b = int(state["batch"])
            cells, sl = batch_cells(array, jobs.size, b)
            n_b = sl.stop - sl.start
            base = sl.start * (1 + grid.size)
            if state["phase"] == "program":
                for step in verify_steps(array, cells, jobs[sl], cfg.verify, state["verify"],
                                         group=PROGRAM_GROUP):
                    step.done += base
                    step.total = total
                    step.label = f"batch {b + 1}/{nb} programming: {step.label}"
                    yield step
                state["phase"], state["ti"], state["t0_s"] = "relax", 0, float(array.now())
            while int(state["ti"]) < grid.size:
                ti = int(state["ti"])
                wait = float(state["t0_s"]) + grid[ti] - array.now()
                if wait > 0:
                    array.wait(wait)
                g = array.read(cells, voltage_V=cfg.verify.read_voltage_V)
                t_actual = array.now() - float(state["t0_s"])
                state["ti"] = ti + 1
                yield Step(done=base + n_b * (2 + ti), total=total,
                           label=f"batch {b + 1}/{nb}: read at {time_key(grid[ti])} s",
                           append={f"{GROUP}/g_S": (g, "S"),
                                   f"{GROUP}/t_s": (np.full(n_b, grid[ti]), "s"),
                                   f"{GROUP}/t_actual_s": (np.full(n_b, t_actual), "s"),
                                   f"{GROUP}/job": (np.arange(sl.start, sl.stop), "")})
            state["batch"], state["phase"], state["verify"] = b + 1, "program", {}

    def analyse(self, data: RunData) -> dict[str, Any]:
        return analyse_retention(data)


def analyse_retention(data: RunData) -> dict[str, Any]:
    """Shift, spread and overlap per grid time, their ln t fits and the 10-year projection.

    The statistics are grouped by planned read time (the summary's keys); the summary gives
    the reads' real ages per key (``t_actual_s``), and the fits use them where they came
    noticeably late (a station run resumed after a pause; :func:`fit_times`).
    """
    targets = data.data(f"{PROGRAM_GROUP}/target_S")
    g_prog = data.data(f"{PROGRAM_GROUP}/g_S")
    conv = data.data(f"{PROGRAM_GROUP}/converged").astype(bool)
    actual = data.data(f"{GROUP}/t_actual_s") if f"{GROUP}/t_actual_s" in data else None
    rel = relaxation_at_times(targets, g_prog, conv, data.data(f"{GROUP}/job"),
                              data.data(f"{GROUP}/t_s"), data.data(f"{GROUP}/g_S"), actual)
    at = fit_times(rel.times_s, rel.ages_s)
    if ages_too_close(rel.times_s, rel.ages_s):   # no fit, and no projection from it
        shift_fit = sigma_fit = (float("nan"), float("nan"))
    else:
        shift_fit = fit_vs_ln_t(at, rel.mean_shift_S)
        sigma_fit = fit_vs_ln_t(at, rel.sigma_S)
    prog = analyse_program(data, group=PROGRAM_GROUP)
    keys = [time_key(t) for t in rel.times_s]
    return {
        "cells_programmed": prog["cells_programmed"],
        "converged_fraction": prog["converged_fraction"],
        "pulses_mean": prog["pulses_mean"],
        "levels": prog["levels"],
        "times_s": rel.times_s.tolist(),
        # how long after programming the reads of each planned time really came
        "t_actual_s": dict(zip(keys, rel.ages_s.tolist(), strict=True)),
        # ... and the latest of them (a few late batches among many on time)
        "latest_t_actual_s": dict(zip(keys, rel.latest_s.tolist(), strict=True)),
        "mean_shift_S": dict(zip(keys, rel.mean_shift_S.tolist(), strict=True)),
        "sigma_S": dict(zip(keys, rel.sigma_S.tolist(), strict=True)),
        "overlap": dict(zip(keys, rel.overlap.tolist(), strict=True)),
        "fit": {"mean_shift_S": {"slope_S": shift_fit[0], "intercept_S": shift_fit[1]},
                "sigma_S": {"slope_S": sigma_fit[0], "intercept_S": sigma_fit[1]},
                "variable": "ln(t / 1 s)"},
        "projection_10y": projection(np.asarray(prog["levels"]), shift_fit, sigma_fit),
    }
