"""``run program``: program-verify of conductance levels (or per-cell targets), then statistics.

Reproduces seed 004 (Falcone et al., arXiv 2502.04524) Fig. 3: 35 levels from 10 to 90 uS,
each programmed on K cells with the identical-pulse closed loop of
:mod:`labctl.protocols.program_verify`; the pulses each cell needed, the spread of each
level with its straight-line fit (the programming noise) and the overlap of neighbouring
levels.  When the chip has fewer cells than ``levels x repeats`` the jobs run in batches
that reset and reuse the cells, as the seed did on its 32-cell array.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from labctl.array import Array, Cells
from labctl.errors import ConfigError
from labctl.protocols.analysis.levels import (
    adjacent_overlap,
    fit_line,
    level_stats,
    levels_separated,
)
from labctl.protocols.base import BaseProtocol, RunData, Step
from labctl.protocols.forming import FormingConfig
from labctl.protocols.program_verify import VerifyConfig, verify_steps
from labctl.protocols.unformed import forming_chunks

GROUP = "program"


#: most cells (levels x repeats) one run programs: ten times a 1024x1024 chip, in batches
MAX_PROGRAM_CELLS = 10_000_000


@dataclass(frozen=True)
class ProgramConfig:
    """Levels (or a targets file) and the closed-loop settings."""

    levels: int = 35                        # evenly spaced between g_min_S and g_max_S [A]
    g_min_S: float = 10e-6                  # [A]
    g_max_S: float = 90e-6                  # [A]
    repeats: int = 1                        # cells per level
    targets_file: str | None = None         # per-cell targets instead of levels (siemens)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    form: bool = True                       # form cells that read as unformed first

    def validate(self) -> None:
        self.verify.validate()
        if self.targets_file is None:
            if self.levels < 1:
                raise ConfigError(f"--levels must be >= 1, got {self.levels}", key="levels")
            if not (0 < self.g_min_S < self.g_max_S) and not (
                    self.levels == 1 and 0 < self.g_min_S <= self.g_max_S):
                raise ConfigError(f"need 0 < --g-min-S < --g-max-S, got {self.g_min_S:g} and "
                                  f"{self.g_max_S:g}", key="g_min_S")
        check_cell_count(self.levels if self.targets_file is None else 1, self.repeats)


def check_cell_count(levels: int, repeats: int) -> None:
    """--repeats >= 1 and at most MAX_PROGRAM_CELLS cells in all (a mistyped count would
    otherwise allocate its targets, or program for days)."""
    if repeats < 1:
        raise ConfigError(f"--repeats must be >= 1, got {repeats}", key="repeats")
    if levels * repeats > MAX_PROGRAM_CELLS:
        raise ConfigError(f"{levels:,} levels x {repeats:,} repeats is {levels * repeats:,} "
                          f"cells; at most {MAX_PROGRAM_CELLS:,} in one run", key="repeats")


def level_targets(cfg: ProgramConfig) -> np.ndarray:
    """The evenly spaced levels in S."""
    return np.linspace(cfg.g_min_S, cfg.g_max_S, cfg.levels)


def job_targets(levels_S: np.ndarray, repeats: int) -> np.ndarray:
    """One target per job, levels interleaved (job j gets level j mod L) so every batch mixes
    levels and every level meets many different cells."""
    return np.tile(np.asarray(levels_S, dtype=float), repeats)


def check_targets(targets_S: np.ndarray, g_lo_S: float, g_hi_S: float) -> None:
    """ConfigError unless every target is finite and inside the chip's window."""
    t = np.asarray(targets_S, dtype=float)
    if t.size == 0:
        raise ConfigError("no targets to program", key="targets")
    if not np.all(np.isfinite(t)):
        raise ConfigError("targets contain NaN or infinite values", key="targets")
    lo, hi = float(t.min()), float(t.max())
    eps = 1e-12
    if not np.isfinite(g_hi_S) and lo < g_lo_S - eps:   # no chip yet: only the sign is known
        raise ConfigError(f"targets are conductances >= {g_lo_S * 1e6:.4g} uS; the smallest "
                          f"is {lo * 1e6:.4g} uS", key="targets")
    if lo < g_lo_S - eps or hi > g_hi_S + eps:
        # values of order 1..1000 are conductances written in uS, not the siemens asked for
        hint = ("; targets are in siemens (50 uS is 50e-6)" if hi >= 1e-3 and lo >= 1e-2
                else "")
        raise ConfigError(f"targets {lo * 1e6:.4g}..{hi * 1e6:.4g} uS are outside the chip's "
                          f"window {g_lo_S * 1e6:.4g}..{g_hi_S * 1e6:.4g} uS{hint}",
                          key="targets")


class Program(BaseProtocol):
    """Program every job's target with program-verify, in batches over the chip's cells."""

    name: ClassVar[str] = "program"

    def __init__(self, config: ProgramConfig, targets_S: np.ndarray | None = None) -> None:
        config.validate()
        if config.targets_file is not None and targets_S is None:
            raise ConfigError("a targets file needs its targets", key="targets")
        super().__init__(config)
        self.targets_S = None if targets_S is None else np.asarray(targets_S, dtype=float)

    def jobs(self) -> np.ndarray:
        cfg: ProgramConfig = self.config
        if self.targets_S is not None:
            return self.targets_S.ravel()
        return job_targets(level_targets(cfg), cfg.repeats)

    def preflight(self, array: Array) -> None:
        self.config.verify.check_array(array.info)
        if self.config.form and array.info.technology == "1t1r-reram":
            # cells that read as unformed get the forming ramp
            FormingConfig().check_limits(array.info.limits, before="run program")

    def initial_state(self, array: Array) -> dict[str, Any]:
        return {"batch": 0, "verify": {}, "started": False, "formed": False}

    def steps(self, array: Array, state: dict[str, Any]) -> Iterator[Step]:
        cfg: ProgramConfig = self.config
        jobs = self.jobs()
        info = array.info
        if self.targets_S is not None and jobs.size != info.rows * info.cols:
            raise ConfigError(f"{jobs.size} targets for a {info.rows}x{info.cols} chip: one "
                              "target per cell", key="targets")
        check_targets(jobs, info.g_min_S, info.g_max_S)
        if not state["started"]:
            state["started"] = True
            yield Step(done=0, total=jobs.size, label="targets",
                       write={f"{GROUP}/levels_S": (np.unique(jobs), "S"),
                              f"{GROUP}/jobs_S": (jobs, "S")})
        if cfg.form and not state["formed"]:
            yield from form_steps(array, jobs.size, GROUP, jobs.size)
            state["formed"] = True   # (an interrupted forming is redone: formed cells skipped)
        yield from program_batches(array, jobs, cfg.verify, state, group=GROUP)

    def analyse(self, data: RunData) -> dict[str, Any]:
        return analyse_program(data)


def batch_cells(array: Array, n_jobs: int, batch: int) -> tuple[Cells, slice]:
    """The chip cells (row-major, first k of the array) and the job slice of one batch."""
    n_cells = array.info.rows * array.info.cols
    lo = batch * n_cells
    hi = min(n_jobs, lo + n_cells)
    k = np.arange(hi - lo)
    r, c = np.divmod(k, array.info.cols)
    return Cells.at(r, c), slice(lo, hi)


def form_steps(array: Array, n_jobs: int, group: str, total: int) -> Iterator[Step]:
    """Form the cells the batches will use that read as unformed (a fresh die), a step per
    chunk of cells (``total``: the protocol's progress total)."""
    cells, _ = batch_cells(array, n_jobs, 0)
    for label, rec in forming_chunks(array, cells, FormingConfig(), group=f"{group}/forming"):
        yield Step(done=0, total=total, label=label, append=rec)


def n_batches(array: Array, n_jobs: int) -> int:
    n_cells = array.info.rows * array.info.cols
    return -(-n_jobs // n_cells)


def program_batches(array: Array, jobs_S: np.ndarray, vcfg: VerifyConfig, state: dict[str, Any],
                    *, group: str) -> Iterator[Step]:
    """Program ``jobs_S`` batch by batch (cells reset and reused); results under ``group``.

    ``state`` holds ``batch`` and the current batch's ``verify`` state.  Progress counts
    jobs over all batches.
    """
    n_jobs = jobs_S.size
    nb = n_batches(array, n_jobs)
    while int(state["batch"]) < nb:
        b = int(state["batch"])
        cells, sl = batch_cells(array, n_jobs, b)
        for step in verify_steps(array, cells, jobs_S[sl], vcfg, state["verify"], group=group):
            step.done += sl.start
            step.total = n_jobs
            step.label = f"batch {b + 1}/{nb}: {step.label}"
            if f"{group}/g_S" in step.append:
                step.append[f"{group}/batch"] = (np.full(sl.stop - sl.start, b), "")
            yield step
        state["batch"] = b + 1
        state["verify"] = {}


def analyse_program(data: RunData, group: str = GROUP) -> dict[str, Any]:
    """Pulses, convergence, per-level sigma with its line fit and neighbour overlaps."""
    targets = data.data(f"{group}/target_S")
    g = data.data(f"{group}/g_S")
    pulses = data.data(f"{group}/pulses").astype(float)
    conv = data.data(f"{group}/converged").astype(bool)
    stats = level_stats(targets, g, conv)
    slope, intercept = fit_line(stats.levels_S, stats.sigma_S)
    ok_p = pulses[conv]
    return {
        "cells_programmed": int(conv.size),
        "converged_fraction": float(conv.mean()) if conv.size else 0.0,
        "not_converged": int(np.count_nonzero(~conv)),
        "pulses_mean": float(ok_p.mean()) if ok_p.size else None,
        "pulses_median": float(np.median(ok_p)) if ok_p.size else None,
        "pulses_max": int(ok_p.max()) if ok_p.size else None,
        "pulses_mean_all": float(pulses.mean()) if pulses.size else None,
        "levels": stats.levels_S.tolist(),
        "cells_per_level": stats.count.tolist(),
        "mean_S": stats.mean_S.tolist(),
        "sigma_S": stats.sigma_S.tolist(),
        "sigma_fit_S": {"slope": slope, "intercept_S": intercept},
        "adjacent_overlap": adjacent_overlap(stats.mean_S, stats.sigma_S).tolist(),
        "levels_separated": levels_separated(stats),
        "tolerance": float(data.config.get("verify", {}).get("tolerance", float("nan"))),
    }
