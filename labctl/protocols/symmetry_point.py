"""``run symmetry-point``: open-loop identical pulses, figures of merit and a device-model fit.

Seed 004 (Falcone et al., arXiv 2502.04524, section 2.3.1, Fig. 5; devices.md section 1):
every device gets the same scheme, +1.35 V / -1.3 V, 2.5 us: batches of 400 up then 400
down pulses (repeated), then 500 alternating single pulses (1 up, 1 down) to settle at the
symmetry point; the conductance is read after every pulse.  Per device the analysis gives
G_max, G_min, G_sp, the step at the symmetry point, the number of states, the SP skew and
the noise-to-signal ratio, and fits the generalized soft-bounds model
(:mod:`labctl.protocols.analysis.soft_bounds`) with its device-to-device and
cycle-to-cycle spread; the command writes that fit as a simulator preset.

At the end the devices are read ``read_repeats`` times without pulses: the read noise,
which the fit removes from the cycle-to-cycle spread so it is not counted twice when the
simulator adds its own read noise.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from labctl.array import Array, Cells
from labctl.errors import ConfigError
from labctl.protocols.analysis.open_loop import (
    Schedule,
    figures_of_merit,
    open_loop_schedule,
)
from labctl.protocols.analysis.soft_bounds import ModelForm, fit_devices, population
from labctl.protocols.base import BaseProtocol, RunData, Step
from labctl.protocols.forming import FormingConfig
from labctl.protocols.unformed import forming_chunks

GROUP = "symmetry"


#: most pulses per device in one schedule: ~500x the default 2,100; the schedule and its
#: records are held per pulse, and a longer train is an endurance test
MAX_SCHEDULE_PULSES = 1_000_000
#: most trace values (devices x reads) one run analyses: the default schedule on a 256x256
#: die, whose per-device fit (simulation-based calibration, ~8 ms a device) takes ~9 min
#: and ~4 GB; a 512x512 die took 17 GB and half an hour, a 1024x1024 one ran out of memory
MAX_TRACE_VALUES = 256 * 256 * 2101


@dataclass(frozen=True)
class SymmetryPointConfig:
    """The open-loop scheme; defaults follow devices.md section 1."""

    up_V: float = 1.35                 # [A]
    down_V: float = -1.3               # [A]
    width_s: float = 2.5e-6            # [A]
    gate_V: float | None = None        # None = array default [C]
    batch_pulses: int = 400            # [B]
    cycles: int = 2                    # up/down batch pairs (~2100 pulses in all) [B]
    alternating_pulses: int = 500      # [B]
    read_repeats: int = 20             # reads without pulses at the end (read noise) [C]
    settle: float = 0.5                # fraction of the alternating phase skipped [C]
    chunk: int = 100                   # pulses per recorded step
    read_voltage_V: float | None = None
    preset_out: str | None = None      # where the command writes the fitted preset
    form: bool = True                  # form cells that read as unformed first
    # the fixed form of the fitted model (from the simulator preset the fit will feed):
    fit_g_exponent: float = 0.0        # step ~ (G / g_ref)**beta
    fit_g_ref_S: float = 1.0
    fit_sigma_g_rel: float = 0.0       # cycle-to-cycle noise proportional to G
    fit_floor_S: float = 0.0           # the model state never leaves [floor, ceiling]
    fit_ceiling_S: float = 1.0

    def validate(self) -> None:
        if not (self.up_V > 0 > self.down_V):
            raise ConfigError("need up_V > 0 > down_V (positive = set/potentiate)", key="up_V")
        if not self.width_s > 0:
            raise ConfigError("pulse width must be > 0 s", key="width_s")
        if self.gate_V is not None and not self.gate_V > 0:
            raise ConfigError(f"--gate-V must be > 0 V (the 1T1R selector conducts only with a "
                              f"positive gate), got {self.gate_V:g} V", key="gate_V")
        if self.batch_pulses < 0 or self.cycles < 0:
            raise ConfigError("batch pulses and cycles must be >= 0", key="batch_pulses")
        if self.cycles * self.batch_pulses == 0:
            raise ConfigError("the schedule needs at least one up and one down batch",
                              key="cycles")
        if self.alternating_pulses < 4:
            raise ConfigError("need >= 4 alternating pulses", key="alternating_pulses")
        total = 2 * self.cycles * self.batch_pulses + self.alternating_pulses
        if total > MAX_SCHEDULE_PULSES:
            raise ConfigError(f"the schedule has {total:,} pulses per device (2 x --cycles x "
                              f"--batch-pulses + --alternating-pulses); at most "
                              f"{MAX_SCHEDULE_PULSES:,}", key="batch_pulses")
        if not (0 <= self.settle < 1):
            raise ConfigError("settle must be in [0, 1)", key="settle")
        if self.read_repeats < 0 or self.chunk < 1:
            raise ConfigError("read_repeats >= 0 and chunk >= 1", key="chunk")

    def schedule(self) -> Schedule:
        return open_loop_schedule(self.batch_pulses, self.cycles, self.alternating_pulses)


class SymmetryPoint(BaseProtocol):
    name: ClassVar[str] = "symmetry-point"

    def __init__(self, config: SymmetryPointConfig) -> None:
        config.validate()
        super().__init__(config)

    def preflight(self, array: Array) -> None:
        cfg, limits = self.config, array.info.limits
        if array.info.technology != "1t1r-reram":   # before any voltage reaches the chip
            raise ConfigError("the symmetry-point fit models 1T1R ReRAM cells (seed 004's "
                              f"soft bounds); this chip is {array.info.technology}",
                              key="backend")
        devices, reads = array.info.rows * array.info.cols, cfg.schedule().n_pulses + 1
        if devices * reads > MAX_TRACE_VALUES:
            raise ConfigError(
                f"a symmetry point of {devices:,} devices x {reads:,} reads is more than one "
                f"run analyses ({MAX_TRACE_VALUES:,} values: the default schedule on 256x256, "
                "~9 min and ~4 GB of fitting); use a smaller die (--rows/--cols) or a shorter "
                "schedule (--batch-pulses, --cycles)", key="rows")
        limits.check_width(cfg.width_s)
        for v in (cfg.up_V, cfg.down_V):
            limits.check_voltage(v)
        if cfg.gate_V is not None:
            limits.check_voltage(cfg.gate_V, terminal="gate")
        if cfg.form and array.info.technology == "1t1r-reram":
            # cells that read as unformed get the forming ramp
            FormingConfig().check_limits(limits, before="run symmetry-point")

    def initial_state(self, array: Array) -> dict[str, Any]:
        return {"k": 0, "started": False, "noise_done": False, "formed": False}

    def steps(self, array: Array, state: dict[str, Any]) -> Iterator[Step]:
        cfg: SymmetryPointConfig = self.config
        sch = cfg.schedule()
        cells = Cells.all()
        info = array.info
        total = sch.n_pulses + cfg.read_repeats
        rv = cfg.read_voltage_V
        if cfg.form and not state["formed"]:
            for label, rec in forming_chunks(array, cells, FormingConfig(),
                                             group=f"{GROUP}/forming"):
                yield Step(done=0, total=total, label=label, append=rec)
            state["formed"] = True   # (an interrupted forming is redone: formed cells skipped)
        if not state["started"]:
            g0 = array.read(cells, voltage_V=rv)
            r, c = cells.indices(info.shape)
            state["started"] = True
            yield Step(done=0, total=total, label="initial read",
                       append={f"{GROUP}/trace_S": (g0[None, :], "S")},
                       write={f"{GROUP}/sign": (sch.sign, ""),
                              f"{GROUP}/alternating": (sch.alternating, ""),
                              f"{GROUP}/row": (r, ""), f"{GROUP}/col": (c, "")})
        while int(state["k"]) < sch.n_pulses:
            k0 = int(state["k"])
            k1 = min(sch.n_pulses, k0 + cfg.chunk)
            rows = []
            for k in range(k0, k1):
                amp = cfg.up_V if sch.sign[k] > 0 else cfg.down_V
                array.pulse(cells, amp, cfg.width_s, gate_V=cfg.gate_V)
                rows.append(array.read(cells, voltage_V=rv))
            state["k"] = k1
            phase = "alternating" if sch.alternating[k0] else "batches"
            yield Step(done=k1, total=total, label=f"pulse {k1}/{sch.n_pulses} ({phase})",
                       append={f"{GROUP}/trace_S": (np.stack(rows), "S")})
        if not state["noise_done"] and cfg.read_repeats:
            reads = np.stack([array.read(cells, voltage_V=rv) for _ in range(cfg.read_repeats)])
            state["noise_done"] = True
            yield Step(done=total, total=total, label="read noise",
                       append={f"{GROUP}/repeat_reads_S": (reads, "S")})

    def analyse(self, data: RunData) -> dict[str, Any]:
        return analyse_symmetry_point(data)


def analyse_symmetry_point(data: RunData) -> dict[str, Any]:
    """Figures of merit per device, their array statistics and the soft-bounds fit."""
    cfg = data.config
    trace = data.data(f"{GROUP}/trace_S")
    # devices that did not switch give empty slices and NaN figures, which the summary
    # skips and the text reports as unfitted: numpy's warnings about them say nothing more
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _analyse(data, cfg, trace)


def _analyse(data: RunData, cfg: dict[str, Any], trace: np.ndarray) -> dict[str, Any]:
    sch = Schedule(data.data(f"{GROUP}/sign").astype(np.int8),
                   data.data(f"{GROUP}/alternating").astype(bool))
    fom = figures_of_merit(trace, sch, settle=float(cfg.get("settle", 0.5)))
    read_sigma = None
    if f"{GROUP}/repeat_reads_S" in data:
        reads = data.data(f"{GROUP}/repeat_reads_S")
        if reads.shape[0] > 1:
            read_sigma = reads.std(axis=0, ddof=1)
    form = ModelForm(g_exponent=float(cfg.get("fit_g_exponent", 0.0)),
                     g_ref_S=float(cfg.get("fit_g_ref_S", 1.0)),
                     sigma_g_rel=float(cfg.get("fit_sigma_g_rel", 0.0)),
                     floor_S=float(cfg.get("fit_floor_S", 0.0)),
                     ceiling_S=float(cfg.get("fit_ceiling_S", 1.0)))
    fits = fit_devices(trace, sch, fom, form=form, read_sigma_S=read_sigma,
                       settle=float(cfg.get("settle", 0.5)))
    pop = population(fits)

    def stat(x: np.ndarray, f: Any) -> float | None:
        x = x[np.isfinite(x)]
        return float(f(x)) if x.size else None

    return {
        "devices": int(trace.shape[1]),
        "devices_fitted": int(pop["devices_fitted"]) if pop else 0,
        "n_states_mean": stat(fom.n_states, np.mean),
        "n_states_min": stat(fom.n_states, np.min),
        "n_states_max": stat(fom.n_states, np.max),
        "sp_skew_mean": stat(fom.sp_skew, np.mean),
        "nsr_mean": stat(fom.nsr, np.mean),
        "g_max_mean_S": stat(fom.g_max_S, np.mean),
        "g_min_mean_S": stat(fom.g_min_S, np.mean),
        "g_sp_mean_S": stat(fom.g_sp_S, np.mean),
        "dg_sp_mean_S": stat(fom.dg_sp_S, np.mean),
        "read_sigma_mean_S": None if read_sigma is None else stat(read_sigma, np.mean),
        "per_device": {
            "g_max_S": fom.g_max_S.tolist(), "g_min_S": fom.g_min_S.tolist(),
            "g_sp_S": fom.g_sp_S.tolist(), "dg_sp_S": fom.dg_sp_S.tolist(),
            "n_states": fom.n_states.tolist(), "sp_skew": fom.sp_skew.tolist(),
            "nsr": fom.nsr.tolist(),
        },
        "fit": {"per_device": {k: v.tolist() for k, v in fits.items()}, "population": pop,
                "form": {"g_exponent": form.g_exponent, "g_ref_S": form.g_ref_S,
                         "sigma_g_rel": form.sigma_g_rel, "floor_S": form.floor_S,
                         "ceiling_S": form.ceiling_S},
                "scheme": {"set_ref_V": float(cfg.get("up_V", 1.35)),
                           "reset_ref_V": abs(float(cfg.get("down_V", -1.3))),
                           "width_ref_s": float(cfg.get("width_s", 2.5e-6))}},
        "preset_file": cfg.get("preset_out"),
    }
