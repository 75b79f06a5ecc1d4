"""Electro-forming: ramp each cell under gate-limited compliance until it forms, then condition.

Algorithm (seed 004, Falcone et al., arXiv 2502.04524, section on forming; numbers in
reference/devices.md section 1): a quasi-static staircase on the bit line with the
source grounded and the gate at a constant voltage, so the series transistor limits the
current.  The forming voltage of a cell is where the current jumps most during the ramp;
the forming current is the current at that point.  The voltage across the ReRAM alone is
``V_1T1R - I_form * R_triode``.  After forming, a sweep in the set direction
redistributes defects and raises the conductance, then ``conditioning_cycles``
reset/set sweep pairs condition the cell to eight-wise switching.

Cells are formed a row at a time: each row is one step, appended and flushed before the
next, so a crash loses at most the row in flight.  Each row is read first, and only the
cells that read as unformed (below a tenth of the window's G_min, as in
:mod:`labctl.protocols.unformed`) are ramped: running forming again on a formed die, or
resuming inside a row, puts no forming voltage on a cell that already conducts.

The pre-read is checkpointed (a step of its own) before any ramp, so a resume knows which
cells of the row in flight read unformed when a killed or aborted session began it; the
ramp's traces are checkpointed too, before the conditioning, so an interrupt after a
row's ramp keeps its forming voltages and the resume conditions those cells without
ramping them again.  On a backend that cannot be restored to the checkpoint (a station),
a cell that read unformed at the pre-read and reads formed now was formed by the
interrupted session's ramp, whose traces were lost: it is counted apart
(``forming/formed_by_interrupted_session``), not as already formed, and gets the
post-forming sweep and conditioning (below the forming voltage) like every cell formed
here; its forming voltage was never recorded (NaN).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from labctl.array import Array, Cells, Limits, Snapshottable
from labctl.errors import ConfigError, LimitError
from labctl.protocols.base import BaseProtocol, RunData, Step

#: a cell reading below this fraction of the window's g_min is unformed [C]
UNFORMED_FRACTION = 0.1


#: longest forming ramp (steps): 40x finer than the default 0.01 V step up to 4 V; a finer
#: step resolves nothing the read noise does not blur, and only multiplies the time on the cell
MAX_RAMP_STEPS = 16_000
#: most conditioning cycles (a reset and a set sweep each) per formed cell: 500x the default;
#: more is an endurance test, not conditioning
MAX_CONDITIONING_CYCLES = 1_000


@dataclass(frozen=True)
class FormingConfig:
    """Ramp and conditioning settings; defaults follow devices.md section 1 (C = placeholder)."""

    v_stop_V: float = 4.0          # sweep maximum <= 4 V [C]
    v_step_V: float = 0.01         # staircase step [C]
    gate_V: float = 1.2            # forming gate voltage [C]
    compliance_A: float = 1e-3     # SMU compliance above the transistor limit [C]
    post_sweep_V: float = 1.5      # set-direction sweep after forming (|V| < 1.5 V switching) [A]
    conditioning_cycles: int = 2   # reset/set sweep pairs for 8W conditioning [C]
    condition_step_V: float = 0.02
    jump_ratio: float = 5.0        # a ramp counts as formed when the current jumps this much
    read_voltage_V: float | None = None

    def validate(self) -> None:
        if not (0 < self.v_step_V < self.v_stop_V):
            raise ConfigError("forming needs 0 < --v-step-V < --v-stop-V", key="v_step_V")
        if self.v_stop_V / self.v_step_V > MAX_RAMP_STEPS:
            raise ConfigError(f"--v-step-V {self.v_step_V:g} V makes a ramp of "
                              f"{self.v_stop_V / self.v_step_V:,.0f} steps to {self.v_stop_V:g} V;"
                              f" at most {MAX_RAMP_STEPS:,} (a step of at least "
                              f"{self.v_stop_V / MAX_RAMP_STEPS:.2g} V)", key="v_step_V")
        if self.compliance_A <= 0:
            raise ConfigError("compliance must be > 0 A", key="compliance_A")
        if not self.gate_V > 0:
            raise ConfigError(f"--gate-V must be > 0 V (the 1T1R selector conducts only with a "
                              f"positive gate), got {self.gate_V:g} V", key="gate_V")
        if not 0 <= self.conditioning_cycles <= MAX_CONDITIONING_CYCLES:
            raise ConfigError(f"--conditioning-cycles must be 0 to {MAX_CONDITIONING_CYCLES:,}, "
                              f"got {self.conditioning_cycles:,}", key="conditioning_cycles")

    def check_limits(self, limits: Limits, *, before: str = "") -> None:
        """The ramp, the conditioning sweeps, the gate and the compliance against the chip's
        limits (preflight: before any output is on).  ``before``: a protocol that forms its
        unformed cells first names itself, and the refusal says how to skip forming."""
        try:
            limits.check_voltage(self.v_stop_V)
            limits.check_voltage(self.post_sweep_V)
            limits.check_voltage(self.gate_V, terminal="gate")
            limits.check_current(self.compliance_A)
        except LimitError as e:
            if not before:
                raise
            raise LimitError(f"the forming ramp {before} gives cells that read unformed: {e} "
                             f"(on a die already formed, pass --no-form)",
                             quantity=e.quantity, value=e.value, limit=e.limit) from None


def _staircase(v_from: float, v_to: float, step: float) -> np.ndarray:
    n = max(2, int(round(abs(v_to - v_from) / step)) + 1)
    return np.linspace(v_from, v_to, n)


def forming_point(voltage_V: np.ndarray, current_A: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                          np.ndarray]:
    """Per trace: index, voltage and current of the largest current jump (the forming point)."""
    jumps = np.diff(current_A, axis=1)
    k = np.argmax(jumps, axis=1) + 1
    rows = np.arange(current_A.shape[0])
    return k, voltage_V[k], current_A[rows, k]


def formed(current_A: np.ndarray, k: np.ndarray, ratio: float) -> np.ndarray:
    """A cell formed when the current after the jump exceeds ``ratio`` times the one before."""
    rows = np.arange(current_A.shape[0])
    before = np.abs(current_A[rows, k - 1])
    after = np.abs(current_A[rows, k])
    return after > ratio * np.maximum(before, 1e-15)


class Forming(BaseProtocol):
    name: ClassVar[str] = "forming"

    def __init__(self, config: FormingConfig) -> None:
        config.validate()
        super().__init__(config)

    def preflight(self, array: Array) -> None:
        info, cfg = array.info, self.config
        if info.technology != "1t1r-reram":   # before any voltage reaches the chip
            raise ConfigError(f"forming is for 1T1R ReRAM cells; this chip is "
                              f"{info.technology}, whose cells are not formed",
                              key="preset")
        cfg.check_limits(info.limits)

    def initial_state(self, array: Array) -> dict[str, Any]:
        self.preflight(array)   # again for callers of protocols.base.run without the CLI
        return {"row": 0}

    def steps(self, array: Array, state: dict[str, Any]) -> Iterator[Step]:
        cfg: FormingConfig = self.config
        info = array.info
        while state["row"] < info.rows:
            row = int(state["row"])
            cells = Cells.rect(row, row + 1, 0, info.cols)
            g_now: np.ndarray | None = None
            if state.get("pre_read_row") != row:    # else an earlier session began this row
                g_now = array.read(cells, voltage_V=cfg.read_voltage_V)
                state.update(pre_read_row=row, pre_read_g_S=g_now)
                yield Step(done=row * info.cols, total=info.rows * info.cols,
                           label=f"row {row} read")
            if state.get("ramp_row") != row:        # else its ramp is checkpointed
                if g_now is None:
                    g_now = self._read_again(array, cells, state)
                yield from self._ramp(array, row, g_now, state)
            yield self._condition_and_record(array, row, state)

    def _ramp(self, array: Array, row: int, g_now: np.ndarray,
              state: dict[str, Any]) -> Iterator[Step]:
        """Ramp the cells of ``row`` that read unformed now; the traces are checkpointed (a
        step of its own) before the conditioning, so an interrupt after the ramp keeps the
        row's forming voltages and a resume does not ramp those cells again."""
        cfg: FormingConfig = self.config
        info = array.info
        ramp = _staircase(0.0, cfg.v_stop_V, cfg.v_step_V)
        unformed = UNFORMED_FRACTION * info.g_min_S
        ramped = g_now < unformed
        cols = np.flatnonzero(ramped)
        iv = np.full((info.cols, ramp.size), np.nan)
        if cols.size:
            sel = Cells.at(np.full(cols.size, row), cols)
            iv[cols] = array.sweep(sel, ramp, gate_V=cfg.gate_V,
                                   compliance_A=cfg.compliance_A).current_A
        g_before = np.asarray(state["pre_read_g_S"], dtype=float)
        state.update(ramp_row=row, ramped=ramped, ramp_current_A=iv,
                     by_interrupted=(g_before < unformed) & ~ramped)
        if cols.size:
            yield Step(done=row * info.cols, total=info.rows * info.cols,
                       label=f"row {row} ramped")

    def _condition_and_record(self, array: Array, row: int, state: dict[str, Any]) -> Step:
        """The post-forming sweep and the conditioning cycles on the cells this run formed:
        those ramped, and those an interrupted session ramped (the same sweeps, below the
        forming voltage); then the row's read and record."""
        cfg: FormingConfig = self.config
        info = array.info
        ramp = _staircase(0.0, cfg.v_stop_V, cfg.v_step_V)
        post = info.set_polarity * _staircase(0.0, cfg.post_sweep_V, cfg.condition_step_V)
        post = np.concatenate([post, post[::-1][1:]])
        cycle = np.concatenate([-post, post])  # reset then set
        n = info.cols
        ramped = np.asarray(state.pop("ramped"), dtype=bool)
        by_interrupted = np.asarray(state.pop("by_interrupted"), dtype=bool)
        iv = np.asarray(state.pop("ramp_current_A"), dtype=float)
        v_form, i_form = np.full(n, np.nan), np.full(n, np.nan)
        ok = np.zeros(n, dtype=bool)
        cols = np.flatnonzero(ramped)
        if cols.size:
            k, v_form[cols], i_form[cols] = forming_point(ramp, iv[cols])
            ok[cols] = formed(iv[cols], k, cfg.jump_ratio)
        post_i = np.full((n, post.size), np.nan)
        cond_i = np.full((n, cfg.conditioning_cycles, cycle.size), np.nan)
        cols = np.flatnonzero(ramped | by_interrupted)
        if cols.size:
            sel = Cells.at(np.full(cols.size, row), cols)
            post_i[cols] = array.sweep(sel, post, gate_V=cfg.gate_V,
                                       compliance_A=cfg.compliance_A).current_A
            for j in range(cfg.conditioning_cycles):
                cond_i[cols, j] = array.sweep(sel, cycle, gate_V=cfg.gate_V,
                                              compliance_A=cfg.compliance_A).current_A
        g_after = array.read(Cells.rect(row, row + 1, 0, n), voltage_V=cfg.read_voltage_V)
        state["row"] = row + 1
        r_sel = info.selector_resistance_ohm
        rec: dict[str, tuple[Any, str]] = {
            "forming/row": (np.full(n, row), ""),
            "forming/col": (np.arange(n), ""),
            "forming/g_before_S": (np.asarray(state["pre_read_g_S"], dtype=float), "S"),
            "forming/ramped": (ramped, ""),
            "forming/formed_by_interrupted_session": (by_interrupted, ""),
            "forming/iv_current_A": (iv, "A"),
            "forming/v_form_V": (np.where(ok, v_form, np.nan), "V"),
            "forming/i_form_A": (np.where(ok, i_form, np.nan), "A"),
            "forming/v_form_reram_V": (np.where(ok, v_form - i_form * r_sel, np.nan), "V"),
            "forming/formed": (ok | by_interrupted, ""),
            "forming/post_current_A": (post_i, "A"),
            "forming/g_after_S": (g_after, "S"),
        }
        if cfg.conditioning_cycles:
            rec["forming/conditioning_current_A"] = (cond_i, "A")
        write = {}
        if row == 0:
            write = {"forming/ramp_V": (ramp, "V"), "forming/post_V": (post, "V"),
                     "forming/conditioning_V": (cycle, "V")}
        return Step(done=(row + 1) * n, total=info.rows * n, label=f"row {row}",
                    append=rec, write=write)

    def _read_again(self, array: Array, cells: Cells, state: dict[str, Any]) -> np.ndarray:
        """The row now, for a row an interrupted session began but did not ramp to the
        checkpoint.  A backend restored to the checkpoint (the simulator) is as the pre-read
        left it; on any other, that session's ramp may have formed cells since, so the row
        is read again."""
        if isinstance(array, Snapshottable):
            return np.asarray(state["pre_read_g_S"], dtype=float)
        return array.read(cells, voltage_V=self.config.read_voltage_V)

    def analyse(self, data: RunData) -> dict[str, Any]:
        return analyse_forming(data)


def analyse_forming(data: RunData) -> dict[str, Any]:
    """Yield, forming voltage/current statistics and post-forming conductance from a file.

    ``cells``: cells of the die.  ``ramped``: cells this run ramped, in any session.
    ``already_formed``: the others, which read formed before this run touched them (left
    alone).  ``formed``: ramped cells this run left formed.  ``yield`` = formed / ramped
    (None if no cell was ramped).  ``formed_by_interrupted_session``: the ramped cells that
    a killed or aborted session ramped after its pre-read and formed, but whose ramp was
    never recorded (a station resume finds them formed and gives them the post-forming
    sweep and conditioning); their forming voltage is unknown.  The V_form and I_form
    statistics are over the recorded ramps that formed, ``g_after_*`` over the formed
    cells that had the post-forming sweep and conditioning.
    """
    done = data.data("forming/formed").astype(bool)   # formed and conditioned by this run
    # run files written before the pre-read ramped every cell
    traced = (data.data("forming/ramped").astype(bool) if "forming/ramped" in data
              else np.ones_like(done))
    # formed by a session killed in their row, after its pre-read (older files: none; the
    # first files that had them left them unconditioned and not 'formed')
    earlier = (data.data("forming/formed_by_interrupted_session").astype(bool)
               if "forming/formed_by_interrupted_session" in data else np.zeros_like(done))
    measured = done & traced
    v = data.data("forming/v_form_V")[measured]
    i = data.data("forming/i_form_A")[measured]
    v_r = data.data("forming/v_form_reram_V")[measured]
    g = data.data("forming/g_after_S")[done]
    n, n_ramped = int(done.size), int((traced | earlier).sum())
    n_formed = int((measured | earlier).sum())

    def stat(x: np.ndarray, f: Any) -> float | None:
        # a spread of one value is no measured spread: none rather than 0
        return float(f(x)) if x.size >= (2 if f is np.std else 1) else None

    return {
        "cells": n,
        "already_formed": n - n_ramped,
        "formed_by_interrupted_session": int(earlier.sum()),
        "ramped": n_ramped,
        "formed": n_formed,
        "yield": float(n_formed / n_ramped) if n_ramped else None,
        "v_form_mean_V": stat(v, np.mean),
        "v_form_std_V": stat(v, np.std),
        "i_form_mean_A": stat(i, np.mean),
        "i_form_std_A": stat(i, np.std),
        "v_form_reram_mean_V": stat(v_r, np.mean),
        "g_after_mean_S": stat(g, np.mean),
        "g_after_std_S": stat(g, np.std),
    }
