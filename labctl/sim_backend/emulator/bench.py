"""The emulated bench: one simulated die behind an emulated switching matrix.

The instrument emulators (one loopback server per instrument) tell the bench what their
outputs do -- an SMU channel's level, compliance and output state, a generator's pulse,
a matrix's closed routes -- and ask it for the physics: the current an SMU measures.
The bench works out which device lines each matrix input reaches (station ``[wiring]``)
and drives only the cells whose bit line, word line and source line are all connected,
so a routing mistake shows up as wrong physics: an SMU routed to nothing reads ~0 A, a
pulse routed to the wrong bit line changes the wrong cell, a floating gate keeps the
selector off.  It also records the largest voltage that ever reached a chip line, so
tests can prove no voltage beyond the station limit got through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from labctl.drivers.station import Station
from labctl.sim_backend.models.fefet_2t import Fefet2tModel
from labctl.sim_backend.simulated_array import SimulatedArray

log = logging.getLogger(__name__)

#: spot measurements at or below this |V| are non-disturbing reads (G from the read model)
READ_MAX_V = 0.5
#: NMOS selector threshold: below this gate voltage the cell does not conduct [placeholder]
GATE_THRESHOLD_V = 0.3
#: SMU current noise floor with nothing connected (2636B 100 nA range, ~1 pA rms) [placeholder]
OPEN_NOISE_A = 1e-12

Route = tuple[int, int]


@dataclass
class SourceState:
    """One source output as the instrument emulator reports it."""

    on: bool = False
    level_V: float = 0.0
    compliance_A: float = 1e-3


@dataclass
class Exposure:
    """What reached the chip: largest |V| on bit/source lines and on word lines, the largest
    DC a pulse generator held on a line between pulses (its idle level), and events."""

    max_line_V: float = 0.0
    max_idle_V: float = 0.0
    max_gate_V: float = 0.0
    pulses: int = 0
    overstress: list[str] = field(default_factory=list)


class EmulatedBench:
    """Physics of the bench: sources -> matrix routes -> device lines -> simulated cells."""

    def __init__(self, station: Station, array: SimulatedArray, *, clock: str = "wall") -> None:
        self.station = station
        self.array = array
        self.clock = clock
        self.lock = threading.RLock()
        self.closed: set[Route] = set()
        self.sources: dict[str, SourceState] = {}
        self.exposure = Exposure()
        self._t0 = time.monotonic()
        self._trigger_listeners: dict[int, list[Callable[[], None]]] = {}
        self._generators: set[str] = set()      # roles whose level is a generator's idle
        w = station.wiring
        self._input_role = {port: role for role, port in w.inputs.items()}
        self._line = w.line_of_output()
        self._noise = np.random.default_rng(array.seed + 7919)
        self._extra_s = 0.0
        # (instrument id, channel) -> station role; the instrument id is the resource string
        self._roles: dict[tuple[str, str], str] = {}
        for role, spec in station.instruments.items():
            ch = spec.options.get("channel")
            self._roles[(spec.resource, "" if ch is None else str(ch).lower())] = role

    @classmethod
    def from_station(cls, station: Station) -> EmulatedBench:
        """Build the simulated die of the station's ``[emulation]`` section."""
        from labctl.errors import ConfigError
        from labctl.sim_backend.presets import load_model

        em = station.emulation
        if em is None:
            raise ConfigError(f"station file {station.path} has no [emulation] section",
                              key="emulation")
        model = load_model(em.preset)
        if model.technology != station.chip.technology:
            raise ConfigError(f"station file {station.path}: emulation.preset {em.preset} is a "
                              f"{model.technology} die but chip.technology is "
                              f"{station.chip.technology}", key="emulation.preset")
        array = SimulatedArray(model, station.chip.rows, station.chip.cols, seed=em.seed,
                               preset_name=model.name)
        return cls(station, array, clock=em.clock)

    # --- the Bench protocol of labctl.sim_backend.emulator.bench_api ------------------------
    def role_of(self, instrument_id: str, channel: object) -> str:
        """The station role of an instrument channel (``"unwired"`` when the station has none)."""
        key = (instrument_id, str(channel).lower())
        if key in self._roles:
            return self._roles[key]
        default = {"a": "", "1": ""}.get(str(channel).lower())
        return self._roles.get((instrument_id, default), "unwired") if default is not None \
            else "unwired"

    def smu_source(self, instrument_id: str, channel: str, voltage_V: float,
                   compliance_A: float) -> float:
        role = self.role_of(instrument_id, channel)
        self.set_source(role, on=True, level_V=voltage_V, compliance_A=compliance_A)
        return self.measure_current(role)

    def smu_sweep(self, instrument_id: str, channel: str, voltages_V: np.ndarray,
                  compliance_A: float) -> np.ndarray:
        role = self.role_of(instrument_id, channel)
        with self.lock:
            st = self.sources.setdefault(role, SourceState())
            st.on, st.compliance_A = True, float(compliance_A)
            return self.sweep(role, voltages_V, compliance_A)

    def smu_pulse(self, instrument_id: str, channel: str, voltages_V: np.ndarray, width_s: float,
                  compliance_A: float) -> np.ndarray:
        """An SMU pulsed list, approximated as a list sweep (as ``BenchBase.smu_pulse``)."""
        return self.smu_sweep(instrument_id, channel, np.asarray(voltages_V, dtype=float),
                              compliance_A)

    def smu_level(self, instrument_id: str, channel: str, voltage_V: float | None) -> None:
        role = self.role_of(instrument_id, channel)
        with self.lock:
            old = self.sources.get(role, SourceState())
            self.set_source(role, on=voltage_V is not None, level_V=voltage_V or 0.0,
                            compliance_A=old.compliance_A)

    def pulse(self, instrument_id: str, channel: int, amplitude_V: float, width_s: float,
              count: int) -> None:
        self.apply_pulse(self.role_of(instrument_id, channel), amplitude_V, width_s, count)

    def trigger_line(self, instrument_id: str, line: int) -> None:
        self.trigger(line)

    def generator_level(self, instrument_id: str, channel: int, idle_V: float | None) -> None:
        role = self.role_of(instrument_id, channel)
        if role == "unwired":
            return
        with self.lock:
            self.sources[role] = SourceState(idle_V is not None, float(idle_V or 0.0), 0.0)
            self._generators.add(role)
            if idle_V is not None:
                self._expose(role, abs(idle_V), held=True)

    def wait(self, seconds: float) -> None:
        """Instrument-side time (a script's ``delay``) advances the die's clock."""
        with self.lock:
            self._extra_s += max(0.0, float(seconds))
            if self.clock != "wall":
                self.array.wait(max(0.0, float(seconds)))

    # --- what the instrument emulators report ------------------------------------------------
    def set_source(self, role: str, *, on: bool, level_V: float, compliance_A: float) -> None:
        """An SMU channel / supply changed its output state or level."""
        with self.lock:
            self.sources[role] = SourceState(bool(on), float(level_V), float(compliance_A))
            if on:
                self._expose(role, abs(level_V))

    def matrix_close(self, routes: Iterable[Route]) -> None:
        with self.lock:
            new = {(int(i), int(o)) for i, o in routes}
            self.closed |= new
            for i, _ in new:
                role = self._input_role.get(i)
                st = self.sources.get(role or "")
                if role == "gate_bias":
                    self._expose(role, abs(self.station.wiring.gate_fixed_V or 0.0))
                elif st is not None and st.on:
                    self._expose(role or "", abs(st.level_V), held=role in self._generators)

    def matrix_open(self, routes: Iterable[Route]) -> None:
        with self.lock:
            self.closed -= {(int(i), int(o)) for i, o in routes}

    def matrix_open_all(self) -> None:
        with self.lock:
            self.closed.clear()

    def matrix_set(self, *args: Any) -> None:
        """The matrix's closed routes are now exactly these: ``matrix_set(routes)`` or, as the
        instrument emulators call it, ``matrix_set(instrument_id, routes)``."""
        routes = args[-1]
        with self.lock:
            self.closed = set()
            self.matrix_close(routes)

    def on_trigger(self, line: int, callback: Callable[[], None]) -> None:
        """Wire a trigger input (e.g. the generator's Trig In) to an SMU digio ``line``."""
        self._trigger_listeners.setdefault(int(line), []).append(callback)

    def trigger(self, line: int) -> None:
        """An SMU asserted digio trigger ``line``: fire whatever listens on it."""
        for cb in self._trigger_listeners.get(int(line), []):
            cb()

    # --- physics the instrument emulators ask for --------------------------------------------
    def measure_current(self, role: str, voltage_V: float | None = None) -> float:
        """Current into the source ``role`` at its level (or at ``voltage_V``), in A."""
        with self.lock:
            st = self.sources.setdefault(role, SourceState())
            v = st.level_V if voltage_V is None else float(voltage_V)
            if not st.on:
                return 0.0
            self._expose(role, abs(v))
            cells = self._cells_on(role)
            if cells is None:  # shorted to ground through the matrix
                return float(np.sign(v) * st.compliance_A)
            if not cells[0].size:
                return float(self._noise.normal(0.0, OPEN_NOISE_A))
            self._sync_clock()
            r, c, gate = cells
            if abs(v) <= READ_MAX_V:
                g = self.array.model.conductance(self.array.state, r, c, self.array.rng,
                                                 self.array.now(), abs(v) or 1e-3, gate)
                i = float(np.sum(g) * v)
            else:
                i = float(self._sweep_cells(r, c, gate, np.array([v]), st.compliance_A).sum())
            return float(np.clip(i, -st.compliance_A, st.compliance_A))

    def sweep(self, role: str, voltages_V: Sequence[float] | np.ndarray,
              compliance_A: float) -> np.ndarray:
        """A staircase run by the SMU ``role`` (output on): current per step."""
        with self.lock:
            v = np.asarray(voltages_V, dtype=float)
            if v.size:
                self._expose(role, float(np.max(np.abs(v))))
            cells = self._cells_on(role)
            if cells is None:
                return np.sign(v) * compliance_A
            if not cells[0].size:
                return self._noise.normal(0.0, OPEN_NOISE_A, v.size)
            self._sync_clock()
            r, c, gate = cells
            if np.all(np.abs(v) <= READ_MAX_V):
                g = self.array.model.conductance(self.array.state, r, c, self.array.rng,
                                                 self.array.now(), float(np.max(np.abs(v))) or
                                                 1e-3, gate)
                i = np.sum(g) * v
            else:
                i = self._sweep_cells(r, c, gate, v, compliance_A).sum(axis=0)
            return np.clip(i, -compliance_A, compliance_A)

    def apply_pulse(self, role: str, amplitude_V: float, width_s: float, count: int = 1) -> None:
        """The generator ``role`` emitted ``count`` pulses of ``amplitude_V`` (from 0 V)."""
        with self.lock:
            if count <= 0 or amplitude_V == 0:
                return
            self.exposure.pulses += int(count)
            self._expose(role, abs(amplitude_V))
            if self.station.chip.technology == "fefet-2t":
                self._gate_pulse(role, float(amplitude_V), float(width_s), int(count))
                return
            cells = self._cells_on(role)
            if cells is None or not cells[0].size:
                return
            self._sync_clock()
            r, c, gate = cells
            model = self.array.model
            semantic = float(amplitude_V) * model.set_polarity
            self._check_overstress(abs(amplitude_V), gate, f"pulse {amplitude_V:+.3g} V")
            model.pulse(self.array.state, r, c, np.full(r.size, semantic), float(width_s), gate,
                        np.full(r.size, int(count), dtype=np.int64), self.array.rng,
                        self.array.now())
            self.array.state_changed()

    def _gate_pulse(self, role: str, amplitude_V: float, width_s: float, count: int) -> None:
        """Two-FeFET die: a pulse on word lines writes the weight FeFETs of those rows, one on
        sparsity lines the sparsity FeFETs of those columns.  Each FeFET's ferroelectric sees
        the pulse minus the potential of the channel line on its side of the series stack
        (its bit line for the weight FeFET, its source line for the sparsity FeFET); a cell
        whose channel line floats is not written (its channel follows the gate)."""
        lines = [self._line.get(o, ("", -1)) for o in self._lines_driven_by(role)]
        rows = sorted(i for kind, i in lines if kind == "word")
        cols = sorted(i for kind, i in lines if kind == "sparsity")
        w, model = self.station.wiring, self.array.model
        if not rows and not cols:
            return
        self._sync_clock()
        self._check_overstress(abs(amplitude_V), 0.0, f"gate pulse {amplitude_V:+.3g} V")
        chip = self.station.chip
        weight = self._gate_fields(amplitude_V, [(r, c, w.bit(c)) for r in rows
                                                 for c in range(chip.cols)])
        if weight is not None:
            r, c, v = weight
            model.pulse(self.array.state, r, c, v * model.set_polarity, width_s, 0.0,
                        np.full(r.size, count, dtype=np.int64), self.array.rng, self.array.now())
        sparsity = self._gate_fields(amplitude_V, [(r, c, w.source(r)) for c in cols
                                                   for r in range(chip.rows)])
        if sparsity is not None:
            r, c, v = sparsity
            cast(Fefet2tModel, model).mask_pulse(self.array.state, r, c, v * model.set_polarity,
                                                 width_s, self.array.rng, self.array.now())
        self.array.state_changed()

    def _gate_fields(self, amplitude_V: float, cells: list[tuple[int, int, int]]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(rows, cols, pulse minus channel potential) of the cells (row, col, channel line)
        whose channel line is driven; None when none is."""
        kept = [(r, c, amplitude_V - ch) for r, c, port in cells
                if (ch := self._line_potential(port)) is not None]
        if not kept:
            return None
        r, c, v = (np.asarray(x) for x in zip(*kept, strict=True))
        return r.astype(np.int64), c.astype(np.int64), v.astype(float)

    # --- routing -----------------------------------------------------------------------------
    def _lines_driven_by(self, role: str) -> set[int]:
        port = self.station.wiring.inputs.get(role)
        return {o for i, o in self.closed if i == port}

    def _line_potential(self, out_port: int) -> float | None:
        """Potential of a device line: None when floating (no driving source connected)."""
        levels = []
        for i, o in self.closed:
            if o != out_port:
                continue
            role = self._input_role.get(i)
            if role == "ground":
                levels.append(0.0)
            elif role == "gate_bias":
                levels.append(float(self.station.wiring.gate_fixed_V or 0.0))
            elif role is not None:
                st = self.sources.get(role)
                if st is not None and st.on:   # a generator's: its idle level
                    levels.append(st.level_V)
        return levels[0] if levels else None

    def _cells_on(self, role: str) -> tuple[np.ndarray, np.ndarray, float] | None:
        """Cells whose bit line ``role`` drives, with gate on and source grounded.

        Returns None for a short (a line ``role`` drives is also tied to ground).
        """
        outs = self._lines_driven_by(role)
        ground = self.station.wiring.inputs["ground"]
        if any((ground, o) in self.closed for o in outs):
            return None
        cols = [idx for o in outs for kind, idx in [self._line.get(o, ("", -1))] if kind == "bit"]
        w = self.station.wiring
        if w.sparsity:   # a two-FeFET cell conducts only with its sparsity gate driven
            cols = [c for c in cols if self._line_potential(w.sparsity_gate(c)) is not None]
        rows, gates = [], []
        if cols:
            for row in range(self.station.chip.rows):
                g = self._line_potential(self.station.wiring.word(row))
                src_port = self.station.wiring.source(row)
                grounded = (ground, src_port) in self.closed
                if g is not None and g > GATE_THRESHOLD_V and grounded:
                    rows.append(row)
                    gates.append(g)
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0
        rr, cc = np.meshgrid(np.asarray(rows), np.asarray(sorted(cols)), indexing="ij")
        return rr.ravel().astype(np.int64), cc.ravel().astype(np.int64), float(max(gates))

    def _sweep_cells(self, r: np.ndarray, c: np.ndarray, gate_V: float, v: np.ndarray,
                     compliance_A: float) -> np.ndarray:
        self._check_overstress(float(np.max(np.abs(v))), gate_V, "sweep")
        i = self.array.model.sweep(self.array.state, r, c, v, gate_V, float(compliance_A),
                                   self.array.rng, self.array.now())
        self.array.state_changed()
        return i

    # --- bookkeeping -------------------------------------------------------------------------
    def _expose(self, role: str, volts: float, *, held: bool = False) -> None:
        """Record ``volts`` on every chip line ``role`` reaches now (``held``: a generator's
        idle level, not a pulse)."""
        for o in self._lines_driven_by(role):
            kind = self._line.get(o, ("", -1))[0]
            if kind in ("word", "sparsity"):
                self.exposure.max_gate_V = max(self.exposure.max_gate_V, volts)
            elif kind:
                self.exposure.max_line_V = max(self.exposure.max_line_V, volts)
            if kind and held:
                self.exposure.max_idle_V = max(self.exposure.max_idle_V, volts)

    def _check_overstress(self, volts: float, gate_V: float, what: str) -> None:
        lim = self.array.info.limits
        if volts > lim.max_voltage_V or gate_V > lim.max_gate_voltage_V:
            self.exposure.overstress.append(f"{what}: {volts:.3g} V, gate {gate_V:.3g} V beyond "
                                            f"the die's rating")

    def _sync_clock(self) -> None:
        if self.clock != "wall":
            return
        lag = (time.monotonic() - self._t0 + self._extra_s) - self.array.now()
        if lag > 0:
            self.array.wait(lag)

    def snapshot(self) -> dict[str, Any]:
        """The bench as tests see it: closed routes, sources, exposure."""
        with self.lock:
            return {"closed": sorted(self.closed),
                    "sources": {k: vars(v).copy() for k, v in self.sources.items()},
                    "exposure": vars(self.exposure).copy()}
