"""Keysight 33500B/33600A waveform generator as the set/reset pulse source (SCPI).

Command forms follow qcodes' ``KeysightAgilent_33XXX`` driver and the 33500 operating
guide (reference/instruments.md section 5.1): pulse function, burst of N cycles per
trigger, bus (``*TRG``) or external trigger.  Levels are the levels at the chip, a high
impedance: with the default ``OUTP:LOAD INF`` they are programmed as they are; a station that
keeps the generator at a 50 ohm load setting (``load = "50"``) gets half of them programmed,
since into an open circuit the generator then delivers twice what it displays.  A
negative (reset) pulse idles at 0 V and dips to the amplitude:
``VOLT:HIGH 0``, ``VOLT:LOW -V`` with ``OUTP:POL INV``.  Configuring is one round trip,
firing is one (``*TRG;*OPC?;:SYST:ERR?``).  Width, period and edge are
set shortest-width first so that no intermediate combination conflicts.
"""

from __future__ import annotations

from typing import Any

from labctl.drivers import validators as v
from labctl.drivers.roles import PulseGenerator
from labctl.drivers.scpi import ScpiInstrument
from labctl.drivers.transport import Transport
from labctl.errors import ConfigError, InstrumentError, LimitError


class Keysight33500B(ScpiInstrument, PulseGenerator):
    """One channel of a 33500B/33600A-series generator."""

    #: what ``*IDN?`` answers (checked when a bench opens)
    IDENTITY = r"(keysight|agilent) technologies[^,]*,\s*33[56]\d\d[ab]\b"
    IDENTITY_EXPECTED = "a Keysight/Agilent 33500B/33600A-series waveform generator"

    #: |level| the generator accepts for its load setting [mem: 33500B datasheet, 20 Vpp open /
    #: 10 Vpp 50 ohm]
    LEVEL_MAX_V = {"INF": 10.0, "50": 5.0}
    #: level at a high-impedance chip per programmed volt, for the load setting (a 50 ohm
    #: setting programs the level across 50 ohm, half the open-circuit level)
    CHIP_GAIN = {"INF": 1.0, "50": 2.0}
    #: smallest |programmed amplitude| [mem: 1 mVpp into 50 ohm]
    AMPLITUDE_MIN_V = 1e-3
    #: pulse width [mem: 33500B 16 ns minimum; qcodes 33XXX has no upper bound]
    WIDTH_RANGE_S = (16e-9, 1e6)
    #: edge time [mem: 33500B 8.4 ns to 1 us]
    EDGE_RANGE_S = (8.4e-9, 1e-6)
    #: period [mem: 33500B pulse up to 30 MHz]
    PERIOD_RANGE_S = (33e-9, 1e6)
    #: burst cycles per trigger [src: BURS:NCYC 1 to 100 000 000]
    COUNT_RANGE = (1, 100_000_000)

    def __init__(self, transport: Transport, *, channel: int = 1, load: str = "INF",
                 label: str | None = None) -> None:
        channel = int(v.choice(int(channel), (1, 2), quantity="channel"))
        load = str(v.choice(str(load).upper(), ("INF", "50"), quantity="load"))
        super().__init__(transport, label=label)
        self.channel = channel
        self.load = load
        self.configured: dict[str, float] | None = None
        self.output_on = False

    def configure_pulse(self, *, amplitude_V: float, width_s: float, count: int = 1,
                        period_s: float | None = None, edge_s: float = 1e-8,
                        trigger: str = "BUS") -> None:
        """Pulse levels, width, edges, burst count and trigger source in one round trip;
        ``amplitude_V`` is the level at the (high-impedance) chip."""
        gain = self.CHIP_GAIN[self.load]
        amp = v.magnitude(amplitude_V, self.LEVEL_MAX_V[self.load] * gain,
                          quantity="amplitude_V", unit="V")
        prog = amp / gain
        if abs(prog) < self.AMPLITUDE_MIN_V:
            raise LimitError(f"|amplitude_V| {abs(amp):g} V is below "
                             f"{self.AMPLITUDE_MIN_V * gain:g} V",
                             quantity="amplitude_V", value=amp,
                             limit=self.AMPLITUDE_MIN_V * gain)
        w = v.number(width_s, *self.WIDTH_RANGE_S, quantity="width_s", unit="s")
        e = v.number(edge_s, *self.EDGE_RANGE_S, quantity="edge_s", unit="s")
        p = v.number(period_s if period_s is not None else max(2.0 * w, w + 4.0 * e),
                     *self.PERIOD_RANGE_S, quantity="period_s", unit="s")
        if w + 1.6 * e > p:
            raise LimitError(f"width {w:g} s + 1.6 x edge {e:g} s exceeds period {p:g} s",
                             quantity="width_s", value=w, limit=p - 1.6 * e)
        n = v.integer(count, *self.COUNT_RANGE, quantity="count")
        source = str(v.choice(str(trigger).upper(), ("BUS", "EXT"), quantity="trigger"))
        ch = self.channel
        levels = ([f":SOUR{ch}:VOLT:HIGH {v.fmt(prog)}", f":SOUR{ch}:VOLT:LOW 0",
                   f":OUTP{ch}:POL NORM"] if amp > 0 else
                  [f":SOUR{ch}:VOLT:LOW {v.fmt(prog)}", f":SOUR{ch}:VOLT:HIGH 0",
                   f":OUTP{ch}:POL INV"])
        # the shortest width first, so no intermediate width/edge/period combination conflicts
        cmds = [f":SOUR{ch}:FUNC PULS", f":OUTP{ch}:LOAD {self.load}",
                f":SOUR{ch}:FUNC:PULS:WIDT {v.fmt(self.WIDTH_RANGE_S[0])}",
                f":SOUR{ch}:FUNC:PULS:PER {v.fmt(p)}", f":SOUR{ch}:FUNC:PULS:TRAN {v.fmt(e)}",
                f":SOUR{ch}:FUNC:PULS:WIDT {v.fmt(w)}", *levels,
                f":SOUR{ch}:BURS:MODE TRIG", f":SOUR{ch}:BURS:NCYC {n}",
                f":TRIG{ch}:SOUR {source}", f":SOUR{ch}:BURS:STAT ON"]
        # between the new levels and the new polarity an inverted pulse idles at its high
        # level: a DC voltage on a routed cell.  Reconfigured with the output off.
        if self.output_on:
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

    def qcodes_instrument(self, name: str = "keysight_33500b", model: str = "33522B") -> Any:
        """qcodes' own ``Keysight<model>`` driver on this driver's link (for interactive use)."""
        from labctl.drivers.qcodes_bridge import qcodes_instrument

        return qcodes_instrument("Keysight", f"Keysight{model}", name, self.transport)

    def safe(self) -> None:
        self._quiet(f":OUTP{self.channel} OFF")
        self.output_on = False
