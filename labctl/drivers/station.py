"""The station file: which instruments, how they are wired to the die, and the safe limits.

A station file is TOML (stdlib ``tomllib``) validated into frozen dataclasses before
anything is opened or switched on; every error is a ``ConfigError`` naming the key.
The wiring section follows ArC's probe-card mapping files (``[mapping] words=[…]
bits=[…]``): ``[wiring.inputs]`` says which matrix input port each source feeds and
``[wiring.mapping]`` which matrix output port reaches each device line.  See
``examples/emulated-bench.toml`` for a commented example.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labctl.array import TECHNOLOGIES, Limits
from labctl.drivers.capabilities import CAPABILITIES, Capability, matrix_size
from labctl.drivers.station_fields import (
    check_unique,
    check_unknown,
    get_int,
    get_number,
    get_ports,
    get_str,
    get_table,
)
from labctl.errors import ConfigError, missing

__all__ = ["CAPABILITIES", "Capability", "ChipSpec", "EmulationSpec", "InstrumentSpec",
           "Station", "Timing", "Wiring", "load_station", "matrix_size", "parse_station"]

ROLES_REQUIRED = ("smu", "pulse", "matrix")
#: gate: a source-meter on the word lines; pulse_reset: a second generator (channel) for the
#: reset pulses of the on-instrument program-verify loop
ROLES_OPTIONAL = ("gate", "pulse_reset")


_VISA = re.compile(r"^(TCPIP|GPIB|USB|ASRL|VXI|PXI)\d*::.+", re.IGNORECASE)
_SERIAL = re.compile(r"^(/dev/\S+|COM\d+|socket://\S+|loop://.*)$", re.IGNORECASE)
_SOCKET = re.compile(r"^TCPIP\d*::([^:]+)::(\d+)::SOCKET$", re.IGNORECASE)


@dataclass(frozen=True)
class InstrumentSpec:
    """``[instruments.<role>]``: driver name, VISA resource or serial port, driver options."""

    role: str
    driver: str
    resource: str
    options: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def socket(self) -> tuple[str, int] | None:
        """(host, port) of a raw-socket resource ``TCPIP0::host::port::SOCKET``, else None."""
        m = _SOCKET.match(self.resource)
        return (m.group(1), int(m.group(2))) if m else None


@dataclass(frozen=True)
class Wiring:
    """Matrix input port per source and output port per device line (1-based ports).

    ``sources`` has one port per row, or a single port for a common source line.
    ``gate_fixed_V`` is set when the word lines are biased from a fixed supply on the
    ``gate_bias`` input instead of a ``gate`` source-meter.  A two-FeFET die also has
    ``sparsity`` lines, one per column: the gates of its sparsity FeFETs (seed 001).
    """

    inputs: dict[str, int]
    bits: tuple[int, ...]
    words: tuple[int, ...]
    sources: tuple[int, ...]
    gate_fixed_V: float | None = None
    sparsity: tuple[int, ...] = ()
    #: SMU digio trigger lines wired to the Trig In of the set (``pulse``) and reset
    #: (``pulse_reset``) generators: what the on-instrument verify loop fires
    set_line: int | None = None
    reset_line: int | None = None

    def bit(self, col: int) -> int:
        return self.bits[col]

    def word(self, row: int) -> int:
        return self.words[row]

    def source(self, row: int) -> int:
        return self.sources[row if len(self.sources) > 1 else 0]

    def sparsity_gate(self, col: int) -> int:
        return self.sparsity[col]

    @property
    def gate_input(self) -> int:
        return self.inputs["gate"] if "gate" in self.inputs else self.inputs["gate_bias"]

    def line_of_output(self) -> dict[int, tuple[str, int]]:
        """Output port -> (line kind, index): ``("bit", col)``, ``("word", row)``,
        ``("source", k)``, ``("sparsity", col)``."""
        out: dict[int, tuple[str, int]] = {}
        for kind, ports in (("bit", self.bits), ("word", self.words), ("source", self.sources),
                            ("sparsity", self.sparsity)):
            for i, p in enumerate(ports):
                out[p] = (kind, i)
        return out


@dataclass(frozen=True)
class Timing:
    """``[timing]``: settling after routing, SMU read aperture, VISA timeout, pulse period."""

    settling_s: float = 0.0
    read_aperture_s: float = 300e-6   # 300 us read pulse (devices.md, seed 004) [A]
    timeout_s: float = 2.0
    pulse_period_s: float = 1e-3
    #: drain every error queue after this many Array operations (counted, not timed, so a
    #: replayed transcript sends the same queries at the same points)
    error_check_every: int = 8


@dataclass(frozen=True)
class ChipSpec:
    """``[chip]``: what is on the probe card (what ``Array.info`` reports)."""

    rows: int
    cols: int
    technology: str = "1t1r-reram"
    g_min_S: float = 8e-6
    g_max_S: float = 90e-6
    set_polarity: int = 1
    read_voltage_V: float = 0.2
    gate_voltage_V: float = 1.2
    selector_resistance_ohm: float = 0.0
    #: mask: a 1T1R cell is switched out by reset pulses and back in by set pulses; a
    #: two-FeFET cell's sparsity FeFET is programmed off / on by gate pulses of these
    mask_reset_V: float = 1.5
    mask_set_V: float = 1.5
    mask_width_s: float = 2.5e-6
    mask_pulses: int = 20
    #: two-FeFET die: a gate pulse's unselected cells see this fraction of it on their
    #: channel lines (the V/2 inhibit scheme), so only the addressed cell switches
    inhibit_fraction: float = 0.5
    #: two-FeFET die: the most any unselected cell may see during a gate pulse (and a read
    #: gate may be), below the die's coercive voltage; required for fefet-2t
    max_disturb_V: float | None = None

    def disturb_V(self, pulse_V: float | np.ndarray) -> np.ndarray:
        """What the unselected cells of a gate pulse see at most: the other cells on its
        gate line ``(1 - f) |V|``, the cells on the held channel lines ``f |V|``."""
        f = self.inhibit_fraction
        return np.asarray(np.abs(pulse_V), dtype=float) * max(f, 1.0 - f)


@dataclass(frozen=True)
class EmulationSpec:
    """``[emulation]``: the simulated die behind an emulated bench."""

    preset: str = "cmo-hfox-1t1r"
    seed: int = 0
    clock: str = "wall"  # "wall": the die's clock is real time; "frozen": only pulses/reads


@dataclass(frozen=True)
class Station:
    path: Path
    name: str
    instruments: dict[str, InstrumentSpec]
    wiring: Wiring
    limits: Limits
    timing: Timing
    chip: ChipSpec
    emulation: EmulationSpec | None = None
    #: the file's text, stored in run files so a recorded run can be replayed without it
    text: str = field(default="", compare=False, repr=False)

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.instruments)


# --- sections ------------------------------------------------------------------------------


def _instruments(doc: dict[str, Any]) -> dict[str, InstrumentSpec]:
    table = get_table(doc, "instruments", "")
    out: dict[str, InstrumentSpec] = {}
    for role in ROLES_REQUIRED:
        if role not in table:
            raise ConfigError(f"station file: missing [instruments.{role}] (a station needs an "
                              f"SMU, a pulse generator and a switching matrix)",
                              key=f"instruments.{role}")
    for role, spec in table.items():
        where = f"instruments.{role}"
        if role not in ROLES_REQUIRED + ROLES_OPTIONAL:
            raise ConfigError(f"station file: unknown role [{where}] (roles: "
                              f"{', '.join(ROLES_REQUIRED + ROLES_OPTIONAL)})", key=where)
        if not isinstance(spec, dict):
            raise ConfigError(f"station file: {where} must be a table", key=where)
        driver = get_str(spec, "driver", where)
        cap = CAPABILITIES.get(driver)
        if cap is None:
            raise ConfigError(f"station file: {where}.driver {driver!r} is not a known driver "
                              f"({', '.join(sorted(CAPABILITIES))})", key=f"{where}.driver")
        want = {"gate": "smu", "pulse_reset": "pulse"}.get(role, role)
        if cap.role != want:
            raise ConfigError(f"station file: {where}.driver {driver!r} is a {cap.role} driver, "
                              f"not a {want}", key=f"{where}.driver")
        resource = get_str(spec, "resource", where)
        if not (_VISA.match(resource) or _SERIAL.match(resource)):
            raise ConfigError(f"station file: {where}.resource {resource!r} is neither a VISA "
                              f"resource nor a serial port", key=f"{where}.resource")
        port = _SOCKET.match(resource) or re.match(r"^socket://[^:/]+:(\d+)", resource)
        if port and not 1 <= int(port.groups()[-1]) <= 65535:
            raise ConfigError(f"station file: {where}.resource {resource!r}: port "
                              f"{port.groups()[-1]} is not 1 to 65535", key=f"{where}.resource")
        options = spec.get("options", {})
        if not isinstance(options, dict):
            raise ConfigError(f"station file: {where}.options must be a table",
                              key=f"{where}.options")
        unknown = set(spec) - {"driver", "resource", "options"}
        if unknown:
            raise ConfigError(f"station file: unknown key {where}.{sorted(unknown)[0]}",
                              key=f"{where}.{sorted(unknown)[0]}")
        out[role] = InstrumentSpec(role, driver, resource, dict(options))
    shared: dict[tuple[str, str], str] = {}
    for role, spec in out.items():
        # the channel the driver resolves ("A" and an omitted channel are both smua on a
        # 2636B): two roles on one channel would send one role's voltages down the other's lines
        channel = _check_driver_options(spec)
        other = shared.setdefault((spec.resource, channel), role)
        if other != role:
            raise ConfigError(f"station file: instruments.{role} and instruments.{other} use the "
                              f"same resource and channel {spec.resource}",
                              key=f"instruments.{role}.resource")
    return out


def _check_driver_options(spec: InstrumentSpec) -> str:
    """The driver's own checks of its options (channel, load, sizes ...), run on a link that
    was never opened, so a bad option is refused before any instrument is touched; returns
    the channel the driver resolved ('' for a single-channel instrument)."""
    from labctl.drivers.registry import build_driver
    from labctl.drivers.transcript import TranscriptTransport
    from labctl.errors import LimitError

    try:
        driver = build_driver(spec.driver, TranscriptTransport([]), spec.options)
    except (ConfigError, LimitError, TypeError) as e:
        raise ConfigError(f"station file: instruments.{spec.role}.options ({spec.driver}): {e}",
                          key=f"instruments.{spec.role}.options") from None
    return str(getattr(driver, "channel", "")).lower()


def _wiring(doc: dict[str, Any], chip: ChipSpec, instruments: dict[str, InstrumentSpec]) -> Wiring:
    w = get_table(doc, "wiring", "")
    inp = get_table(w, "inputs", "wiring")
    mapping = get_table(w, "mapping", "wiring")
    allowed = {"smu", "pulse", "gate", "ground", "gate_bias", "pulse_reset"}
    for k in inp:
        if k not in allowed:
            raise ConfigError(f"station file: unknown matrix input wiring.inputs.{k} "
                              f"({', '.join(sorted(allowed))})", key=f"wiring.inputs.{k}")
    inputs = {k: get_int(inp, k, "wiring.inputs", minimum=1) for k in inp}
    for k in ("smu", "pulse", "ground"):
        if k not in inputs:
            raise ConfigError(f"station file: missing wiring.inputs.{k} (matrix input port fed by "
                              f"the {k})", key=f"wiring.inputs.{k}")
    gate_fixed = get_number(w, "gate_fixed_V", "wiring") if "gate_fixed_V" in w else None
    if "gate" in instruments:
        if "gate" not in inputs:
            raise ConfigError("station file: missing wiring.inputs.gate (the gate source-meter "
                              "is not wired to the matrix)", key="wiring.inputs.gate")
        if gate_fixed is not None or "gate_bias" in inputs:
            raise ConfigError("station file: wiring.gate_fixed_V / inputs.gate_bias and "
                              "[instruments.gate] both drive the word lines; keep one",
                              key="wiring.gate_fixed_V")
    else:
        if "gate" in inputs:
            raise ConfigError("station file: wiring.inputs.gate is wired but there is no "
                              "[instruments.gate]", key="wiring.inputs.gate")
        if gate_fixed is None or "gate_bias" not in inputs:
            raise ConfigError("station file: the word lines need a source: add [instruments.gate] "
                              "or wiring.gate_fixed_V with wiring.inputs.gate_bias",
                              key="instruments.gate")
    check_unique(inputs, "wiring.inputs")
    if ("pulse_reset" in instruments) != ("pulse_reset" in inputs):
        raise ConfigError("station file: [instruments.pulse_reset] and wiring.inputs.pulse_reset "
                          "go together", key="wiring.inputs.pulse_reset")
    trig = get_table(w, "triggers", "wiring", required=False)
    check_unknown(trig, {"set_line", "reset_line"}, "wiring.triggers")
    lines = {k: get_int(trig, k, "wiring.triggers", minimum=1) for k in trig}
    if trig and (set(lines) != {"set_line", "reset_line"} or "pulse_reset" not in instruments):
        raise ConfigError("station file: wiring.triggers needs set_line and reset_line and an "
                          "[instruments.pulse_reset] generator", key="wiring.triggers")
    if trig and lines["set_line"] == lines["reset_line"]:
        raise ConfigError("station file: wiring.triggers.set_line and reset_line are the same",
                          key="wiring.triggers.reset_line")
    bits = get_ports(mapping, "bits", "wiring.mapping")
    words = get_ports(mapping, "words", "wiring.mapping")
    sources = get_ports(mapping, "sources", "wiring.mapping")
    if len(bits) != chip.cols:
        raise ConfigError(f"station file: wiring.mapping.bits has {len(bits)} ports for "
                          f"{chip.cols} columns (bit lines)", key="wiring.mapping.bits")
    if len(words) != chip.rows:
        raise ConfigError(f"station file: wiring.mapping.words has {len(words)} ports for "
                          f"{chip.rows} rows (word lines)", key="wiring.mapping.words")
    if len(sources) not in (1, chip.rows):
        raise ConfigError(f"station file: wiring.mapping.sources needs 1 (common) or {chip.rows} "
                          f"ports, got {len(sources)}", key="wiring.mapping.sources")
    sparsity = _sparsity_lines(mapping, chip, instruments, sources, trig)
    outs = {f"bits[{i}]": p for i, p in enumerate(bits)}
    outs |= {f"words[{i}]": p for i, p in enumerate(words)}
    outs |= {f"sources[{i}]": p for i, p in enumerate(sources)}
    outs |= {f"sparsity[{i}]": p for i, p in enumerate(sparsity)}
    check_unique(outs, "wiring.mapping")
    return Wiring(inputs=inputs, bits=bits, words=words, sources=sources,
                  gate_fixed_V=gate_fixed, sparsity=sparsity, set_line=lines.get("set_line"),
                  reset_line=lines.get("reset_line"))


def _sparsity_lines(mapping: dict[str, Any], chip: ChipSpec,
                    instruments: dict[str, InstrumentSpec], sources: tuple[int, ...],
                    triggers: dict[str, Any]) -> tuple[int, ...]:
    """A two-FeFET die's sparsity-gate lines (one per column), and what its pulses need: a
    source line per row and a gate source-meter (it holds the inhibit level)."""
    where = "wiring.mapping.sparsity"
    if chip.technology != "fefet-2t":
        if "sparsity" in mapping:
            raise ConfigError(f"station file: {where} is for fefet-2t dies (the sparsity "
                              f"FeFETs' gates); this chip is {chip.technology}", key=where)
        return ()
    sparsity = get_ports(mapping, "sparsity", "wiring.mapping")
    if len(sparsity) != chip.cols:
        raise ConfigError(f"station file: {where} has {len(sparsity)} ports for {chip.cols} "
                          "columns (sparsity-gate lines)", key=where)
    if len(sources) != chip.rows:
        raise ConfigError(f"station file: a fefet-2t die needs one source line per row in "
                          f"wiring.mapping.sources ({chip.rows}): a sparsity pulse selects its "
                          "row by them", key="wiring.mapping.sources")
    if "gate" not in instruments:
        raise ConfigError("station file: a fefet-2t die needs [instruments.gate], a "
                          "source-meter: it holds the read gates, and the inhibit level on "
                          "the unselected lines during gate pulses", key="instruments.gate")
    if triggers:
        raise ConfigError("station file: wiring.triggers: the on-instrument program-verify "
                          "loop pulses 1t1r-reram bit lines; a fefet-2t die is pulsed from "
                          "the host", key="wiring.triggers")
    return sparsity


def _limits(doc: dict[str, Any]) -> Limits:
    d = get_table(doc, "limits", "")
    w = "limits"
    lim = Limits(max_voltage_V=get_number(d, "max_voltage_V", w, positive=True),
                 max_gate_voltage_V=get_number(d, "max_gate_voltage_V", w, positive=True),
                 max_current_A=get_number(d, "max_current_A", w, positive=True),
                 min_pulse_width_s=get_number(d, "min_pulse_width_s", w, positive=True),
                 max_pulse_width_s=get_number(d, "max_pulse_width_s", w, positive=True))
    if lim.min_pulse_width_s > lim.max_pulse_width_s:
        raise ConfigError("station file: limits.min_pulse_width_s > limits.max_pulse_width_s",
                          key="limits.min_pulse_width_s")
    check_unknown(d, {"max_voltage_V", "max_gate_voltage_V", "max_current_A", "min_pulse_width_s",
                 "max_pulse_width_s"}, w)
    return lim


def _timing(doc: dict[str, Any]) -> Timing:
    d = get_table(doc, "timing", "", required=False)
    w, t = "timing", Timing()
    check_unknown(d, {"settling_s", "read_aperture_s", "timeout_s", "pulse_period_s",
                 "error_check_every"}, w)
    return Timing(settling_s=get_number(d, "settling_s", w, t.settling_s, nonneg=True),
                  read_aperture_s=get_number(d, "read_aperture_s", w, t.read_aperture_s,
                                             positive=True),
                  timeout_s=get_number(d, "timeout_s", w, t.timeout_s, positive=True),
                  pulse_period_s=get_number(d, "pulse_period_s", w, t.pulse_period_s,
                                            positive=True),
                  error_check_every=get_int(d, "error_check_every", w, t.error_check_every,
                                         minimum=1))


def _chip(doc: dict[str, Any]) -> ChipSpec:
    d = get_table(doc, "chip", "")
    w, dflt = "chip", ChipSpec(1, 1)
    check_unknown(d, {"rows", "cols", "technology", "window_S", "set_polarity", "read_voltage_V",
                 "gate_voltage_V", "selector_resistance_ohm", "mask_reset_V", "mask_set_V",
                 "mask_width_s", "mask_pulses", "inhibit_fraction", "max_disturb_V"}, w)
    tech = get_str(d, "technology", w, dflt.technology)
    if tech not in TECHNOLOGIES:
        raise ConfigError(f"station file: chip.technology {tech!r} is not one of "
                          f"{', '.join(TECHNOLOGIES)}", key="chip.technology")
    window = d.get("window_S", [dflt.g_min_S, dflt.g_max_S])
    if (not isinstance(window, list) or len(window) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in window)
            or not 0 < window[0] < window[1]):
        raise ConfigError("station file: chip.window_S must be [g_min_S, g_max_S] with "
                          "0 < g_min_S < g_max_S", key="chip.window_S")
    pol = get_int(d, "set_polarity", w, dflt.set_polarity)
    if pol not in (1, -1):
        raise ConfigError("station file: chip.set_polarity must be +1 or -1",
                          key="chip.set_polarity")
    return ChipSpec(rows=get_int(d, "rows", w, minimum=1), cols=get_int(d, "cols", w, minimum=1),
                    technology=tech, g_min_S=float(window[0]), g_max_S=float(window[1]),
                    set_polarity=pol,
                    read_voltage_V=get_number(d, "read_voltage_V", w, dflt.read_voltage_V,
                                              positive=True),
                    gate_voltage_V=get_number(d, "gate_voltage_V", w, dflt.gate_voltage_V,
                                              nonneg=True),
                    selector_resistance_ohm=get_number(d, "selector_resistance_ohm", w,
                                                 dflt.selector_resistance_ohm, nonneg=True),
                    mask_reset_V=get_number(d, "mask_reset_V", w, dflt.mask_reset_V, positive=True),
                    mask_set_V=get_number(d, "mask_set_V", w, dflt.mask_set_V, positive=True),
                    mask_width_s=get_number(d, "mask_width_s", w, dflt.mask_width_s, positive=True),
                    mask_pulses=get_int(d, "mask_pulses", w, dflt.mask_pulses, minimum=1),
                    inhibit_fraction=_inhibit_fraction(d, tech),
                    max_disturb_V=_max_disturb(d, tech))


def _max_disturb(d: dict[str, Any], technology: str) -> float | None:
    if technology != "fefet-2t":
        if "max_disturb_V" in d:
            raise ConfigError("station file: chip.max_disturb_V is for fefet-2t dies (gate "
                              "pulses on shared lines); a 1t1r-reram cell is selected by its "
                              "transistor", key="chip.max_disturb_V")
        return None
    if "max_disturb_V" not in d:
        raise ConfigError("station file: missing chip.max_disturb_V (fefet-2t: the most an "
                          "unselected cell may see during a gate pulse, below the die's "
                          "coercive voltage)", key="chip.max_disturb_V")
    return get_number(d, "max_disturb_V", "chip", positive=True)


def _inhibit_fraction(d: dict[str, Any], technology: str) -> float:
    if "inhibit_fraction" not in d:
        return ChipSpec(1, 1).inhibit_fraction
    if technology != "fefet-2t":
        raise ConfigError("station file: chip.inhibit_fraction is for fefet-2t dies (gate "
                          "pulses on shared lines); a 1t1r-reram cell is selected by its "
                          "transistor", key="chip.inhibit_fraction")
    f = get_number(d, "inhibit_fraction", "chip", positive=True)
    if not f < 1:
        raise ConfigError("station file: chip.inhibit_fraction must be between 0 and 1 "
                          "(0.5: the V/2 scheme)", key="chip.inhibit_fraction")
    return f


def _emulation(doc: dict[str, Any]) -> EmulationSpec | None:
    if "emulation" not in doc:
        return None
    d = get_table(doc, "emulation", "")
    w = "emulation"
    check_unknown(d, {"preset", "seed", "clock"}, w)
    clock = get_str(d, "clock", w, "wall")
    if clock not in ("wall", "frozen"):
        raise ConfigError("station file: emulation.clock must be 'wall' or 'frozen'",
                          key="emulation.clock")
    return EmulationSpec(preset=get_str(d, "preset", w, "cmo-hfox-1t1r"),
                         seed=get_int(d, "seed", w, 0, minimum=0), clock=clock)


# --- cross-checks -----------------------------------------------------------------------------


def _check_consistency(st: Station) -> None:
    """Limits within what every instrument can do; chip voltages within the limits; ports exist."""
    lim, chip = st.limits, st.chip
    smu = CAPABILITIES[st.instruments["smu"].driver]
    pg = CAPABILITIES[st.instruments["pulse"].driver]
    mx = CAPABILITIES[st.instruments["matrix"].driver]
    if lim.max_voltage_V > smu.max_voltage_V:
        _beyond("limits.max_voltage_V", lim.max_voltage_V, "V", "smu", smu.max_voltage_V)
    if lim.max_voltage_V > pg.max_voltage_V:
        _beyond("limits.max_voltage_V", lim.max_voltage_V, "V", "pulse", pg.max_voltage_V)
    if lim.max_current_A > smu.max_current_A:
        _beyond("limits.max_current_A", lim.max_current_A, "A", "smu", smu.max_current_A)
    if lim.min_pulse_width_s < pg.min_width_s:
        raise ConfigError(f"station file: limits.min_pulse_width_s {lim.min_pulse_width_s:g} s is "
                          f"below what the pulse generator ({st.instruments['pulse'].driver}) can "
                          f"make ({pg.min_width_s:g} s)", key="limits.min_pulse_width_s")
    if lim.max_pulse_width_s > pg.max_width_s:
        _beyond("limits.max_pulse_width_s", lim.max_pulse_width_s, "s", "pulse", pg.max_width_s)
    if lim.max_voltage_V > mx.max_voltage_V:
        _beyond("limits.max_voltage_V", lim.max_voltage_V, "V", "matrix", mx.max_voltage_V)
    if "pulse_reset" in st.instruments:
        pr = CAPABILITIES[st.instruments["pulse_reset"].driver]
        if lim.max_voltage_V > pr.max_voltage_V:
            _beyond("limits.max_voltage_V", lim.max_voltage_V, "V", "pulse_reset", pr.max_voltage_V)
    if "gate" in st.instruments:
        g = CAPABILITIES[st.instruments["gate"].driver]
        if lim.max_gate_voltage_V > g.max_voltage_V:
            _beyond("limits.max_gate_voltage_V", lim.max_gate_voltage_V, "V", "gate",
                    g.max_voltage_V)
        if lim.max_gate_voltage_V > mx.max_voltage_V:     # the gate goes through the matrix too
            _beyond("limits.max_gate_voltage_V", lim.max_gate_voltage_V, "V", "matrix",
                    mx.max_voltage_V)
    first, last = smu.trigger_lines
    for k in ("set_line", "reset_line"):
        line = getattr(st.wiring, k)
        if line is not None and first and not first <= line <= last:
            raise ConfigError(f"station file: wiring.triggers.{k} = {line} but the smu "
                              f"({st.instruments['smu'].driver}) has trigger lines {first} to "
                              f"{last}", key=f"wiring.triggers.{k}")
    n_in, n_out = matrix_size(st.instruments["matrix"])
    for k, p in st.wiring.inputs.items():
        if p > n_in:
            raise ConfigError(f"station file: wiring.inputs.{k} = {p} but the matrix has "
                              f"{n_in} input ports", key=f"wiring.inputs.{k}")
    for kind, ports in (("bits", st.wiring.bits), ("words", st.wiring.words),
                        ("sources", st.wiring.sources), ("sparsity", st.wiring.sparsity)):
        for i, p in enumerate(ports):
            if p > n_out:
                raise ConfigError(f"station file: wiring.mapping.{kind}[{i}] = {p} but the "
                                  f"matrix has {n_out} output ports",
                                  key=f"wiring.mapping.{kind}")
    if chip.read_voltage_V > lim.max_voltage_V:
        raise ConfigError("station file: chip.read_voltage_V exceeds limits.max_voltage_V",
                          key="chip.read_voltage_V")
    if chip.gate_voltage_V > lim.max_gate_voltage_V:
        raise ConfigError("station file: chip.gate_voltage_V exceeds limits.max_gate_voltage_V",
                          key="chip.gate_voltage_V")
    if st.wiring.gate_fixed_V is not None and abs(st.wiring.gate_fixed_V) > lim.max_gate_voltage_V:
        raise ConfigError("station file: wiring.gate_fixed_V exceeds limits.max_gate_voltage_V",
                          key="wiring.gate_fixed_V")
    for k in ("mask_reset_V", "mask_set_V"):
        if getattr(chip, k) > lim.max_voltage_V:
            raise ConfigError(f"station file: chip.{k} exceeds limits.max_voltage_V",
                              key=f"chip.{k}")
    if chip.max_disturb_V is not None:     # fefet-2t: what the unselected cells see
        for k in ("mask_set_V", "mask_reset_V"):
            seen = float(chip.disturb_V(getattr(chip, k)))
            if seen > chip.max_disturb_V:
                raise ConfigError(f"station file: chip.{k} = {getattr(chip, k):g} V puts "
                                  f"{seen:g} V on unselected cells (inhibit_fraction "
                                  f"{chip.inhibit_fraction:g}), more than chip.max_disturb_V "
                                  f"= {chip.max_disturb_V:g} V", key=f"chip.{k}")
        if chip.gate_voltage_V > chip.max_disturb_V:
            raise ConfigError(f"station file: chip.gate_voltage_V = {chip.gate_voltage_V:g} V, "
                              f"a read gate above chip.max_disturb_V = {chip.max_disturb_V:g} V, "
                              "would write the cells it reads", key="chip.gate_voltage_V")
    if not lim.min_pulse_width_s <= chip.mask_width_s <= lim.max_pulse_width_s:
        raise ConfigError("station file: chip.mask_width_s is outside the pulse-width limits",
                          key="chip.mask_width_s")


def _beyond(key: str, value: float, unit: str, role: str, cap: float) -> None:
    raise ConfigError(f"station file: {key} = {value:g} {unit} is beyond what the {role} "
                      f"instrument can do ({cap:g} {unit})", key=key)


def parse_station(doc: dict[str, Any], path: Path, *, text: str = "") -> Station:
    """Validate a parsed TOML document into a :class:`Station` (ConfigError naming the key)."""
    check_unknown(doc, {"station", "instruments", "wiring", "limits", "timing", "chip",
                        "emulation"}, "")
    meta = get_table(doc, "station", "", required=False)
    chip = _chip(doc)
    instruments = _instruments(doc)
    st = Station(path=path, name=get_str(meta, "name", "station", path.stem),
                 instruments=instruments, wiring=_wiring(doc, chip, instruments),
                 limits=_limits(doc), timing=_timing(doc), chip=chip,
                 emulation=_emulation(doc), text=text)
    _check_consistency(st)
    return st


def load_station(path: str | Path) -> Station:
    """Read and validate a station file; nothing is opened or switched on."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"station file {missing(p)}", key="backend")
    try:
        text = p.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"station file {p}: not valid TOML ({e})", key="station") from None
    try:
        return parse_station(doc, p.resolve(), text=text)
    except ConfigError as e:   # the field checks say "station file: ..."; name which one
        msg = str(e)
        if msg.startswith("station file: "):
            raise ConfigError(f"station file {p}: {msg.removeprefix('station file: ')}",
                              key=e.key) from None
        raise
