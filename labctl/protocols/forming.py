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
cells of the row in flight read unformed when a killed or aborted session began it.  On a
backend that cannot be restored to the checkpoint (a station), such a cell that reads
formed now was formed by that session: it is counted apart
(``forming/formed_by_interrupted_session``), not as already formed; its forming voltage
was never recorded.
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
        if self.compliance_A <= 0:
            raise ConfigError("compliance must be > 0 A", key="compliance_A")
        if self.conditioning_cycles < 0:
            raise ConfigError("--conditioning-cycles must be >= 0", key="conditioning_cycles")

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
        ramp = _staircase(0.0, cfg.v_stop_V, cfg.v_step_V)
        pol = info.set_polarity
        post = pol * _staircase(0.0, cfg.post_sweep_V, cfg.condition_step_V)
        post = np.concatenate([post, post[::-1][1:]])
        cycle = np.concatenate([-post, post])  # reset then set
        r_sel = info.selector_resistance_ohm
        unformed = UNFORMED_FRACTION * info.g_min_S
        while state["row"] < info.rows:
            row = int(state["row"])
            cells = Cells.rect(row, row + 1, 0, info.cols)
            if state.get("pre_read_row") == row:    # an earlier session began this row
                g_before, g_now = self._read_again(array, cells, state)
            else:
                g_before = g_now = array.read(cells, voltage_V=cfg.read_voltage_V)
                state.update(pre_read_row=row, pre_read_g_S=g_before)
                yield Step(done=row * info.cols, total=info.rows * info.cols,
                           label=f"row {row} read")
            ramped = g_now < unformed
            by_interrupted = (g_before < unformed) & ~ramped
            cols = np.flatnonzero(ramped)
            n = info.cols
            iv = np.full((n, ramp.size), np.nan)
            post_i = np.full((n, post.size), np.nan)
            cond_i = np.full((n, cfg.conditioning_cycles, cycle.size), np.nan)
            v_form, i_form = np.full(n, np.nan), np.full(n, np.nan)
            ok = np.zeros(n, dtype=bool)
            if cols.size:
                sel = Cells.at(np.full(cols.size, row), cols)
                form = array.sweep(sel, ramp, gate_V=cfg.gate_V, compliance_A=cfg.compliance_A)
                k, v, i = forming_point(form.voltage_V, form.current_A)
                ok[cols] = formed(form.current_A, k, cfg.jump_ratio)
                iv[cols] = form.current_A
                v_form[cols], i_form[cols] = v, i
                post_i[cols] = array.sweep(sel, post, gate_V=cfg.gate_V,
                                           compliance_A=cfg.compliance_A).current_A
                for j in range(cfg.conditioning_cycles):
                    cond_i[cols, j] = array.sweep(sel, cycle, gate_V=cfg.gate_V,
                                                  compliance_A=cfg.compliance_A).current_A
            g_after = array.read(cells, voltage_V=cfg.read_voltage_V)
            state["row"] = row + 1
            rec: dict[str, tuple[Any, str]] = {
                "forming/row": (np.full(n, row), ""),
                "forming/col": (np.arange(n), ""),
                "forming/g_before_S": (g_before, "S"),
                "forming/ramped": (ramped, ""),
                "forming/formed_by_interrupted_session": (by_interrupted, ""),
                "forming/iv_current_A": (iv, "A"),
                "forming/v_form_V": (np.where(ok, v_form, np.nan), "V"),
                "forming/i_form_A": (np.where(ok, i_form, np.nan), "A"),
                "forming/v_form_reram_V": (np.where(ok, v_form - i_form * r_sel, np.nan), "V"),
                "forming/formed": (ok, ""),
                "forming/post_current_A": (post_i, "A"),
                "forming/g_after_S": (g_after, "S"),
            }
            if cfg.conditioning_cycles:
                rec["forming/conditioning_current_A"] = (cond_i, "A")
            write = {}
            if row == 0:
                write = {"forming/ramp_V": (ramp, "V"), "forming/post_V": (post, "V"),
                         "forming/conditioning_V": (cycle, "V")}
            yield Step(done=(row + 1) * info.cols, total=info.rows * info.cols,
                       label=f"row {row}", append=rec, write=write)

    def _read_again(self, array: Array, cells: Cells,
                    state: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(the stored pre-read, the row now) for a row an interrupted session began.  A
        backend restored to the checkpoint (the simulator) is as the pre-read left it; on any
        other, that session's ramp may have formed cells since, so the row is read again."""
        g_before = np.asarray(state["pre_read_g_S"], dtype=float)
        if isinstance(array, Snapshottable):
            return g_before, g_before
        return g_before, array.read(cells, voltage_V=self.config.read_voltage_V)

    def analyse(self, data: RunData) -> dict[str, Any]:
        return analyse_forming(data)


def analyse_forming(data: RunData) -> dict[str, Any]:
    """Yield, forming voltage/current statistics and post-forming conductance from a file."""
    ok = data.data("forming/formed").astype(bool)
    # run files written before the pre-read ramped every cell
    ramped = (data.data("forming/ramped").astype(bool) if "forming/ramped" in data
              else np.ones_like(ok))
    # formed by a session killed in their row, after its pre-read (older files: none)
    earlier = (data.data("forming/formed_by_interrupted_session").astype(bool)
               if "forming/formed_by_interrupted_session" in data else np.zeros_like(ok))
    v = data.data("forming/v_form_V")[ok]
    i = data.data("forming/i_form_A")[ok]
    v_r = data.data("forming/v_form_reram_V")[ok]
    g = data.data("forming/g_after_S")[ok]
    n, n_ramped = int(ok.size), int(ramped.sum())

    def stat(x: np.ndarray, f: Any) -> float | None:
        return float(f(x)) if x.size else None

    return {
        "cells": n,
        "already_formed": n - n_ramped - int(earlier.sum()),
        "formed_by_interrupted_session": int(earlier.sum()),
        "ramped": n_ramped,
        "formed": int(ok.sum()),
        "yield": float(ok.sum() / n_ramped) if n_ramped else None,
        "v_form_mean_V": stat(v, np.mean),
        "v_form_std_V": stat(v, np.std),
        "i_form_mean_A": stat(i, np.mean),
        "i_form_std_A": stat(i, np.std),
        "v_form_reram_mean_V": stat(v_r, np.mean),
        "g_after_mean_S": stat(g, np.mean),
        "g_after_std_S": stat(g, np.std),
    }
