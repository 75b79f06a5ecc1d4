"""Keysight 81150A/81160A pulse function arbitrary generator (SCPI, channel-suffix style).

The channel number is a suffix on the command (``:PULS:WIDT1``, ``:VOLT2:HIGH``,
``:ARM:SOUR1``, ``:TRIG1:COUN``), per PyMeasure's 81160A driver and the user guide
(reference/instruments.md section 5.2).  Besides the strict software validators the
driver can program the instrument's own output voltage limits (``:VOLT1:LIM``) so the
box itself refuses anything beyond ``limit_V``.  Levels and ``limit_V`` are the levels at
the chip, a high impedance: with the default expected load of 1 Mohm (``high_z = true``)
they are programmed as they are; with ``high_z = false`` (expected load 50 ohm) half of
them are programmed, since into an open circuit the generator then delivers twice what it
displays.
"""

from __future__ import annotations

import re

from labctl.drivers import validators as v
from labctl.drivers.roles import PulseGenerator
from labctl.drivers.scpi import ScpiInstrument
from labctl.drivers.transport import Transport
from labctl.errors import ConfigError, InstrumentError, LimitError

#: per model: (|level| into 50 ohm, min width s, min period s)
#: 81160A: high -4.95..5 V, low -5..4.95 V into 50 ohm, width >= 1.5 ns, period >= 3.03 ns [src];
#: 81150A: +-5 V into 50 ohm [mem], width >= 4.1 ns [mem], period >= 8.33 ns [src]
MODELS = {"81150A": (5.0, 4.1e-9, 8.33e-9), "81160A": (5.0, 1.5e-9, 3.03e-9)}


class Keysight81150A(ScpiInstrument, PulseGenerator):
    """One channel of an 81150A/81160A."""

    #: what ``*IDN?`` answers (checked when a bench opens); the model must be ``model``'s
    IDENTITY = r"(keysight|agilent) technologies[^,]*,\s*811[56]0a\b"
    IDENTITY_EXPECTED = "a Keysight/Agilent 81150A/81160A pulse generator"

    #: into a high-impedance load the level doubles [mem: 10 V open-circuit window]; so does
    #: the level at a high-impedance chip per programmed volt with a 50 ohm expected load
    HIGH_Z_FACTOR = 2.0
    #: widest pulse / longest period [mem: 999 s period]
    PERIOD_MAX_S = 999.0
    EDGE_RANGE_S = (1e-9, 1e-3)  # [mem]
    COUNT_RANGE = (1, 16_777_215)  # [mem: 2^24 - 1 burst count]

    def __init__(self, transport: Transport, *, channel: int = 1, model: str = "81150A",
                 high_z: bool = True, limit_V: float | None = None,
                 label: str | None = None) -> None:
        channel = int(v.choice(int(channel), (1, 2), quantity="channel"))
        model = str(v.choice(str(model).upper(), tuple(MODELS), quantity="model"))
        super().__init__(transport, label=label)
        self.channel = channel
        self.model = model
        self.high_z = bool(high_z)
        window, self.width_min_s, self.period_min_s = MODELS[model]
        #: largest |level| at the chip: the open-circuit window, whatever the load setting
        self.level_max_V = window * self.HIGH_Z_FACTOR
        #: level at the (high-impedance) chip per programmed volt
        self.chip_gain = 1.0 if self.high_z else self.HIGH_Z_FACTOR
        self.limit_V = (None if limit_V is None else
                        v.number(limit_V, 0.0, self.level_max_V, quantity="limit_V", unit="V"))
        self.configured: dict[str, float] | None = None
        self.output_on = False

    def identity_problem(self, identity: str) -> str | None:
        """The model answered must be the one the limits were taken for (``model``)."""
        problem = super().identity_problem(identity)
        if problem is None and not re.match(rf"[^,]*,\s*{self.model}\b", identity.strip(),
                                            re.IGNORECASE):
            return f"a Keysight/Agilent {self.model} (options.model = {self.model!r})"
        return problem

    def configure_pulse(self, *, amplitude_V: float, width_s: float, count: int = 1,
                        period_s: float | None = None, edge_s: float = 1e-8,
                        trigger: str = "MAN") -> None:
        """Levels, width, edges, burst count and arm source in one round trip;
        ``amplitude_V`` is the level at the (high-impedance) chip."""
        top = self.limit_V if self.limit_V is not None else self.level_max_V
        amp = v.magnitude(amplitude_V, top, quantity="amplitude_V", unit="V")
        prog = amp / self.chip_gain
        if amp == 0.0:
            raise LimitError("amplitude_V must be non-zero", quantity="amplitude_V", value=0.0)
        w = v.number(width_s, self.width_min_s, self.PERIOD_MAX_S, quantity="width_s", unit="s")
        e = v.number(edge_s, *self.EDGE_RANGE_S, quantity="edge_s", unit="s")
        p = v.number(period_s if period_s is not None else max(2.0 * w, w + 4.0 * e),
                     self.period_min_s, self.PERIOD_MAX_S, quantity="period_s", unit="s")
        if w + e > p:
            raise LimitError(f"width {w:g} s + edge {e:g} s exceeds period {p:g} s",
                             quantity="width_s", value=w, limit=p - e)
        n = v.integer(count, *self.COUNT_RANGE, quantity="count")
        arm = str(v.choice(str(trigger).upper(), ("MAN", "EXT"), quantity="trigger"))
        ch = self.channel
        cmds = [f":FUNC{ch} PULS", f":OUTP{ch}:IMP:EXT {'1E6' if self.high_z else '50'}"]
        if self.limit_V is not None:
            box = self.limit_V / self.chip_gain   # the box's limits are programmed levels
            cmds += [f":VOLT{ch}:LIM:HIGH {v.fmt(box)}", f":VOLT{ch}:LIM:LOW {v.fmt(-box)}",
                     f":VOLT{ch}:LIM:STAT ON"]
        # the shortest width first, so no intermediate width/edge/period combination conflicts
        cmds += [f":PULS:WIDT{ch} {v.fmt(self.width_min_s)}", f":PULS:PER{ch} {v.fmt(p)}",
                 f":PULS:TRAN{ch} {v.fmt(e)}", f":PULS:WIDT{ch} {v.fmt(w)}"]
        cmds += ([f":VOLT{ch}:HIGH {v.fmt(prog)}", f":VOLT{ch}:LOW 0", f":OUTP{ch}:POL NORM"]
                 if amp > 0 else
                 [f":VOLT{ch}:LOW {v.fmt(prog)}", f":VOLT{ch}:HIGH 0", f":OUTP{ch}:POL INV"])
        cmds += [f":ARM:SOUR{ch} {arm}", f":TRIG{ch}:COUN {n}"]
        if self.output_on:   # new levels and polarity pass through a DC level: output off
            cmds = [f":OUTP{ch} OFF", *cmds, f":OUTP{ch} ON"]
        self._run(*cmds)
        self.configured = {"amplitude_V": amp, "width_s": w, "count": n, "period_s": p}

    def output(self, on: bool) -> None:
        if on and self.configured is None:
            raise ConfigError(f"{self.label}: configure_pulse() before output on", key="output")
        self._run(f":OUTP{self.channel} {'ON' if on else 'OFF'}")
        self.output_on = bool(on)

    def fire(self) -> None:
        if not self.output_on:
            raise ConfigError(f"{self.label}: output is off; nothing would reach the chip",
                              key="output")
        (opc,) = self._run("*TRG", "*OPC?")
        if opc.strip() not in ("1", "+1"):
            raise InstrumentError(f"{self.label}: *OPC? answered {opc!r}",
                                  instrument=self.label, text=opc)

    def safe(self) -> None:
        self._quiet(f":OUTP{self.channel} OFF")
        self.output_on = False
