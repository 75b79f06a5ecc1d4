"""Identical-pulse program-verify: the reusable closed loop every weight transfer uses.

Algorithm (seed 004, Falcone et al., arXiv 2502.04524, Methods "Identical-pulse
closed-loop scheme"; numbers in reference/devices.md section 1): reset the cell to HRS
with a quasi-static sweep, then repeat (1) read G; (2) one set pulse if
``G < G_target - AR``, one reset pulse if ``G > G_target + AR``; stop when
``|G - G_target| <= AR`` with ``AR = p * G_target``.  The pulse amplitudes are fixed per
target range (:data:`AMPLITUDE_TABLE`), the width is 2.5 us.  A cell that has converged
gets no further pulse; a cell that reaches ``max_pulses`` stops and is reported as not
converged, never hidden.

All selected cells advance in lock-step: one round is one vectorised pulse (a set or a
reset amplitude per cell) and one read over the still-active cells.  A backend that runs
the whole loop natively (:class:`~labctl.array.ProgramVerifyCapable`) is used instead of
the rounds when ``VerifyConfig.use_native`` allows it.

``verify_steps`` keeps its loop state in the caller's ``state`` dict (``g_S``, ``pulses``,
``converged``, ``finished`` arrays, ``phase``, ``round``), updated before every yield, so a
checkpointed run resumes exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from labctl.array import Array, ArrayInfo, Cells, Limits, ProgramVerifyCapable
from labctl.errors import ConfigError
from labctl.protocols.base import Step

#: (upper bound of the G_target range in S, V_set, V_reset): seed 004 Methods, devices.md [B].
#: Targets below 10 uS use the first row and above 90 uS the last one (its bound, 1 S, is
#: above every window; finite so the run file's config stays plain JSON).
AMPLITUDE_TABLE: tuple[tuple[float, float, float], ...] = (
    (30e-6, 1.35, -1.5),
    (60e-6, 1.35, -1.3),
    (1.0, 1.5, -1.3),
)

RESET_METHODS = ("sweep", "pulses")


@dataclass(frozen=True)
class VerifyConfig:
    """Settings of the closed loop; defaults follow devices.md section 1 (C = placeholder)."""

    tolerance: float = 0.02                 # acceptance range p: AR = p * G_target [A]
    max_pulses: int = 1000                  # pulse cap per cell [C]
    width_s: float = 2.5e-6                 # set/reset pulse width (setup limit) [A]
    gate_V: float | None = None             # gate during set/reset; None = array default [C]
    read_voltage_V: float | None = None     # None = the array's read voltage [C]
    amplitudes: tuple[tuple[float, float, float], ...] = AMPLITUDE_TABLE
    reset: str = "sweep"                    # "sweep" (seed 004) or "pulses"
    reset_sweep_V: float = 1.5              # |V| of the reset sweep (switching < 1.5 V) [C]
    reset_step_V: float = 0.05              # reset staircase step [C]
    reset_compliance_A: float = 1e-3        # SMU compliance; the transistor limits [C]
    reset_pulses: int = 20                  # with reset="pulses": that many at the table's
    reset_pulse_V: float = -1.5             #   strongest reset amplitude [C]
    trace_cells: int = 8                    # G after every round of the first N cells
    rounds_per_step: int = 25               # lock-step rounds per recorded Step (checkpoint)
    use_native: bool = True                 # use ProgramVerifyCapable when the backend has it
    sweep_chunk_cells: int = 16384          # cells per reset sweep call (bounds memory)

    def validate(self) -> None:
        if not (np.isfinite(self.tolerance) and self.tolerance > 0):
            raise ConfigError(f"tolerance must be > 0, got {self.tolerance}", key="tolerance")
        if self.tolerance >= 0.5:
            raise ConfigError(f"tolerance {self.tolerance} is a fraction of G_target "
                              "(0.02 = 2 %); it must be < 0.5", key="tolerance")
        if self.rounds_per_step < 1:
            raise ConfigError("rounds_per_step must be >= 1", key="rounds_per_step")
        if self.max_pulses < 1:
            raise ConfigError(f"--max-pulses must be >= 1, got {self.max_pulses}",
                              key="max_pulses")
        if not self.width_s > 0:
            raise ConfigError(f"pulse width must be > 0 s, got {self.width_s}", key="width_s")
        if self.gate_V is not None and not self.gate_V > 0:
            raise ConfigError(f"--gate-V must be > 0 V (the 1T1R selector conducts only with a "
                              f"positive gate), got {self.gate_V:g} V", key="gate_V")
        if self.reset not in RESET_METHODS:
            raise ConfigError(f"reset must be one of {', '.join(RESET_METHODS)}, got "
                              f"{self.reset!r}", key="reset")
        if not self.amplitudes:
            raise ConfigError("the amplitude table is empty", key="amplitudes")
        for hi, v_set, v_reset in self.amplitudes:
            if not (v_set > 0 > v_reset):
                raise ConfigError(f"amplitude row up to {hi:g} S needs V_set > 0 > V_reset",
                                  key="amplitudes")
        if self.reset_sweep_V <= 0 or self.reset_step_V <= 0:
            raise ConfigError("reset sweep voltage and step must be > 0", key="reset_sweep_V")
        if self.reset_pulses < 0 or self.reset_pulse_V >= 0:
            raise ConfigError("reset pulses: count >= 0 and a negative amplitude",
                              key="reset_pulse_V")

    def check_array(self, info: ArrayInfo) -> None:
        """Preflight on the opened chip: the limits, and a reset its cells respond to."""
        self.check_limits(info.limits)
        if info.technology == "fefet-2t" and self.reset == "sweep":
            # a drain sweep at the read gate leaves a FeFET's polarisation as it was (the
            # simulator's FeFET sweep is read-only): the "reset" cells would not be reset
            raise ConfigError("--reset sweep is a 1T1R reset; a two-FeFET cell is reset by "
                              "gate pulses: give --reset pulses (at --reset-V)", key="reset")

    def check_limits(self, limits: Limits) -> None:
        """Every pulse width and voltage of the loop against the chip's limits (preflight)."""
        limits.check_width(self.width_s)
        for _, v_set, v_reset in self.amplitudes:
            limits.check_voltage(v_set)
            limits.check_voltage(v_reset)
        limits.check_voltage(self.reset_sweep_V)
        limits.check_current(self.reset_compliance_A)
        if self.reset_pulses:
            limits.check_voltage(self.reset_pulse_V)
        if self.gate_V is not None:
            limits.check_voltage(self.gate_V, terminal="gate")


def amplitudes_for(targets_S: npt.ArrayLike, table: tuple[tuple[float, float, float], ...]
                   = AMPLITUDE_TABLE) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell (V_set, V_reset) chosen by the target's range in ``table``."""
    t = np.asarray(targets_S, dtype=float)
    bounds = np.array([row[0] for row in table])
    k = np.minimum(np.searchsorted(bounds, t, side="right"), len(table) - 1)
    v_set = np.array([row[1] for row in table])[k]
    v_reset = np.array([row[2] for row in table])[k]
    return v_set, v_reset


def new_state(n_cells: int) -> dict[str, Any]:
    """Loop state for ``n_cells`` before the reset (what ``verify_steps`` fills in)."""
    return {
        "phase": "reset",
        "round": 0,
        "g_reset_S": np.full(n_cells, np.nan),
        "g_S": np.full(n_cells, np.nan),
        "pulses": np.zeros(n_cells, dtype=np.int64),
        "converged": np.zeros(n_cells, dtype=bool),
        "finished": np.zeros(n_cells, dtype=bool),
    }


def _ensure_state(state: dict[str, Any], n: int) -> None:
    if "phase" not in state:
        state.update(new_state(n))
    elif np.asarray(state["g_S"]).shape != (n,):
        raise ConfigError(f"program-verify state is for {np.asarray(state['g_S']).size} cells, "
                          f"not {n}", key="state")


def reset_to_hrs(array: Array, cells: Cells, cfg: VerifyConfig) -> None:
    """Reset the cells to HRS: a quasi-static sweep in the reset direction, or reset pulses."""
    if cfg.reset == "pulses":
        if cfg.reset_pulses:
            array.pulse(cells, cfg.reset_pulse_V, cfg.width_s, gate_V=cfg.gate_V,
                        count=cfg.reset_pulses)
        return
    info = array.info
    n_up = max(2, int(round(cfg.reset_sweep_V / cfg.reset_step_V)) + 1)
    up = np.linspace(0.0, cfg.reset_sweep_V, n_up)
    ramp = -info.set_polarity * np.concatenate([up, up[::-1][1:]])
    gate = info.gate_voltage_V if cfg.gate_V is None else cfg.gate_V
    r, c = cells.indices(info.shape)
    for k in range(0, r.size, cfg.sweep_chunk_cells):
        sel = Cells.at(r[k:k + cfg.sweep_chunk_cells], c[k:k + cfg.sweep_chunk_cells])
        array.sweep(sel, ramp, gate_V=gate, compliance_A=cfg.reset_compliance_A)


def _final_records(group: str, targets: np.ndarray, r: np.ndarray, c: np.ndarray,
                   state: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    return {
        f"{group}/row": (r, ""),
        f"{group}/col": (c, ""),
        f"{group}/target_S": (targets, "S"),
        f"{group}/g_reset_S": (np.array(state["g_reset_S"]), "S"),
        f"{group}/g_S": (np.array(state["g_S"]), "S"),
        f"{group}/pulses": (np.array(state["pulses"]), ""),
        f"{group}/converged": (np.array(state["converged"]), ""),
    }


#: ``rounds/set_pulses`` and ``rounds/reset_pulses`` of a native loop whose backend does not
#: say how many of its pulses were sets
NOT_KNOWN = -1


class _Rounds:
    """Per-round records buffered between Steps (one row per round): ``index`` (the round),
    ``active`` cells, ``set_pulses`` and ``reset_pulses`` fired in it, ``trace_S``.  A native
    loop (inside the backend) leaves one row at its last round with the totals of all its
    rounds, or :data:`NOT_KNOWN` (-1) where the backend does not report them."""

    def __init__(self, n_trace: int) -> None:
        self.n_trace = n_trace
        self.rows: list[tuple[int, int, int, int, np.ndarray]] = []

    def add(self, state: dict[str, Any], n_set: int, n_reset: int) -> None:
        active = int(np.count_nonzero(~np.asarray(state["finished"])))
        g = np.asarray(state["g_S"], dtype=float)[:self.n_trace]
        trace = np.full(self.n_trace, np.nan)    # a batch of fewer cells: NaN columns, so
        trace[:g.size] = g                       # every batch appends rows of one width
        self.rows.append((int(state["round"]), active, n_set, n_reset, trace))

    def records(self, group: str) -> dict[str, tuple[Any, str]]:
        """The buffered rounds as appendable stacks; empties the buffer."""
        if not self.rows:
            return {}
        cols = list(zip(*self.rows, strict=True))
        self.rows = []
        rec: dict[str, tuple[Any, str]] = {
            f"{group}/rounds/{name}": (np.array(v, dtype=np.int64), "")
            for name, v in zip(("index", "active", "set_pulses", "reset_pulses"), cols[:4],
                               strict=True)}
        if self.n_trace:
            rec[f"{group}/rounds/trace_S"] = (np.stack(cols[4]), "S")
        return rec


def verify_steps(array: Array, cells: Cells, targets_S: npt.ArrayLike, cfg: VerifyConfig,
                 state: dict[str, Any], *, group: str = "program") -> Iterator[Step]:
    """Program ``cells`` to ``targets_S`` (one per cell, in ``cells.indices`` order).

    Yields one Step after the reset, then one per ``cfg.rounds_per_step`` lock-step
    rounds (or one for a native loop); a resumed run repeats at most those rounds.  The
    last Step also appends the per-cell results under ``group``: ``row``,
    ``col``, ``target_S``, ``g_reset_S``, ``g_S`` (the accepted verify read), ``pulses`` and
    ``converged``.  ``state`` must be a dict (empty, or from :func:`new_state`, or a
    checkpoint of an earlier call for the same cells); a finished state yields nothing.
    """
    cfg.validate()
    r, c = cells.indices(array.info.shape)
    targets = np.asarray(targets_S, dtype=float).ravel()
    if targets.shape != r.shape:
        raise ConfigError(f"{targets.size} targets for {r.size} cells", key="targets")
    if np.any(~np.isfinite(targets)) or np.any(targets <= 0):
        raise ConfigError("targets must be finite and > 0 S", key="targets")
    n = r.size
    _ensure_state(state, n)
    if state["phase"] == "done":
        return
    band = cfg.tolerance * targets
    v_set, v_reset = amplitudes_for(targets, cfg.amplitudes)
    if state["phase"] == "reset":
        reset_to_hrs(array, cells, cfg)
        g = array.read(cells, voltage_V=cfg.read_voltage_V)
        state["g_reset_S"] = np.array(g, dtype=float)
        state["g_S"] = np.array(g, dtype=float)
        conv = np.abs(g - targets) <= band
        state["converged"] = conv
        state["finished"] = conv.copy()
        state["phase"] = "loop"
        state["round"] = 0
        rounds = _Rounds(cfg.trace_cells)
        rounds.add(state, 0, 0)
        yield _loop_step(state, n, group, targets, r, c, rounds)
        if state["phase"] == "done":
            return
    rounds = _Rounds(cfg.trace_cells)
    if cfg.use_native and isinstance(array, ProgramVerifyCapable):
        yield _native(array, cells, targets, cfg, state, v_set, v_reset, group, r, c, rounds)
        return
    yield from _lock_step(array, targets, band, cfg, state, v_set, v_reset, group, r, c,
                          rounds)


def _loop_step(state: dict[str, Any], n: int, group: str, targets: np.ndarray, r: np.ndarray,
               c: np.ndarray, rounds: _Rounds) -> Step:
    """Record the buffered rounds; marks the state done (and appends the per-cell results)
    when every cell has finished."""
    finished = np.asarray(state["finished"])
    rec = rounds.records(group)
    if finished.all():
        state["phase"] = "done"
        rec.update(_final_records(group, targets, r, c, state))
    done = int(np.count_nonzero(finished))
    return Step(done=done, total=n, label=f"{group} round {state['round']}: {n - done} active",
                append=rec)


def _lock_step(array: Array, targets: np.ndarray, band: np.ndarray, cfg: VerifyConfig,
               state: dict[str, Any], v_set: np.ndarray, v_reset: np.ndarray, group: str,
               r: np.ndarray, c: np.ndarray, rounds: _Rounds) -> Iterator[Step]:
    # the loop arrays are the state's own arrays, mutated in place before each yield
    g = state["g_S"] = np.array(state["g_S"], dtype=float)
    pulses = state["pulses"] = np.array(state["pulses"], dtype=np.int64)
    conv = state["converged"] = np.array(state["converged"], dtype=bool)
    finished = state["finished"] = np.array(state["finished"], dtype=bool)
    finished |= pulses >= cfg.max_pulses
    n = r.size
    while not finished.all():
        idx = np.flatnonzero(~finished)
        up = g[idx] < targets[idx]
        amp = np.where(up, v_set[idx], v_reset[idx])
        sel = Cells.at(r[idx], c[idx])
        array.pulse(sel, amp, cfg.width_s, gate_V=cfg.gate_V)
        g[idx] = array.read(sel, voltage_V=cfg.read_voltage_V)
        pulses[idx] += 1
        conv[idx] = np.abs(g[idx] - targets[idx]) <= band[idx]
        finished[idx] = conv[idx] | (pulses[idx] >= cfg.max_pulses)
        state["round"] = int(state["round"]) + 1
        n_up = int(np.count_nonzero(up))
        rounds.add(state, n_up, idx.size - n_up)
        if len(rounds.rows) >= cfg.rounds_per_step or finished.all():
            yield _loop_step(state, n, group, targets, r, c, rounds)


def _native(array: Any, cells: Cells, targets: np.ndarray, cfg: VerifyConfig,
            state: dict[str, Any], v_set: np.ndarray, v_reset: np.ndarray, group: str,
            r: np.ndarray, c: np.ndarray, rounds: _Rounds) -> Step:
    """The whole loop inside the backend (numpy or an instrument script), then one record."""
    todo = np.flatnonzero(~np.asarray(state["finished"], dtype=bool))
    g = np.array(state["g_S"], dtype=float)
    pulses = np.array(state["pulses"], dtype=np.int64)
    conv = np.array(state["converged"], dtype=bool)
    n_set, n_reset = 0, 0
    if todo.size:
        out = array.program_verify(
            Cells.at(r[todo], c[todo]), targets[todo], cfg.tolerance, max_pulses=cfg.max_pulses,
            set_V=v_set[todo], reset_V=v_reset[todo], width_s=cfg.width_s, gate_V=cfg.gate_V)
        p_new = np.asarray(out[1], dtype=np.int64)
        g[todo] = np.asarray(out[0], dtype=float)
        conv[todo] = p_new >= 0
        fired = np.where(p_new >= 0, p_new, cfg.max_pulses)
        pulses[todo] = fired
        if len(out) > 2:    # the backend said how many were sets
            n_set = int(np.sum(np.asarray(out[2], dtype=np.int64)))
            n_reset = int(np.sum(fired)) - n_set
        else:               # not known: -1, never a made-up 0
            n_set, n_reset = NOT_KNOWN, NOT_KNOWN
    state["g_S"], state["pulses"], state["converged"] = g, pulses, conv
    state["finished"] = np.ones(r.size, dtype=bool)
    state["round"] = int(pulses.max()) if pulses.size else 0
    rounds.add(state, n_set, n_reset)   # one row for all the loop's rounds: their totals
    return _loop_step(state, r.size, group, targets, r, c, rounds)
