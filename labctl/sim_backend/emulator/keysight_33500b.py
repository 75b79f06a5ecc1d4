"""Emulated Keysight 33500B/33600A pulse generator, two channels (instruments.md 5.3).

Pulse function, burst of N cycles on a bus (``*TRG``) or external trigger, levels,
load and polarity.  The level reaching the chip follows the load setting: levels are
programmed for the load the generator is told about, and the chip is a high impedance,
so with the power-on 50 ohm setting every pulse arrives at twice its programmed level
(a wiring/configuration mistake that shows up as wrong physics).  A negative pulse with
``OUTP:POL INV`` idles at HIGH and dips to LOW.  Each burst is logged in ``pulses``.
With its output on, a channel holds its idle level on the line between bursts, and
changes it after every command, so the bench sees the DC a reconfiguration leaves on a
routed cell meanwhile (``generator_level``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from labctl.sim_backend.emulator.base import EmulatorError
from labctl.sim_backend.emulator.scpi import (
    DATA_OUT_OF_RANGE,
    ScpiEmulator,
    arg,
    boolean,
    keyword,
    number,
)

SOURCE_IMPEDANCE_OHM = 50.0


def _f(value: float) -> str:
    return f"{value:+.15E}"


@dataclass
class PulseRecord:
    """One emitted burst, as the chip saw it."""

    time_s: float
    channel: int
    amplitude_V: float
    width_s: float
    count: int
    idle_V: float


class _Channel:
    def __init__(self) -> None:
        self.func = "SIN"
        self.width_s = 100e-6
        self.period_s = 1e-3
        self.edge_s = 4e-9
        self.high_V = 0.05
        self.low_V = -0.05
        self.load_ohm = 50.0
        self.polarity = "NORM"
        self.output = False
        self.burst = False
        self.burst_mode = "TRIG"
        self.ncycles = 1
        self.trig_source = "IMM"


class Keysight33500BEmulator(ScpiEmulator):
    """A 33522B (two channels)."""

    model = "33522B"
    LEVEL_MAX_V = 5.0  # into the 50 ohm the instrument is told about; scales with the load
    LOAD_MAX_OHM = 10e3  # finite load settings [mem: 33500B 1 ohm to 10 kohm, or INF]

    def reset(self) -> None:
        self.ch = {1: _Channel(), 2: _Channel()}
        self.pulses: list[PulseRecord] = []
        self.continuous = False
        self._held: dict[int, float | None] = {}

    def settled(self) -> None:
        """Tell the bench each channel's DC level between bursts when it changed."""
        for n, ch in self.ch.items():
            level = self._idle_V(ch) * self._gain(ch) if ch.output else None
            if n not in self._held or self._held[n] != level:
                self._held[n] = level
                self.bench.generator_level(self.instrument_id, n, level)

    @staticmethod
    def _gain(ch: _Channel) -> float:
        """Level at the (high-impedance) chip per programmed volt, for the load setting."""
        return (1.0 if math.isinf(ch.load_ohm)
                else (ch.load_ohm + SOURCE_IMPEDANCE_OHM) / ch.load_ohm)

    @staticmethod
    def _idle_V(ch: _Channel) -> float:
        return ch.low_V if ch.polarity == "NORM" else ch.high_V

    def is_safe(self) -> bool:
        return not any(ch.output for ch in self.ch.values())

    def _c(self, s: list[int]) -> _Channel:
        if s[0] not in self.ch:
            raise EmulatorError(-114, "Header suffix out of range")
        return self.ch[s[0]]

    def define(self) -> None:
        c = self.command
        p = "[:SOURce#]"
        c(f"{p}:FUNCtion[:SHAPe]", set=self._set_func, query=lambda a, s: self._c(s).func)
        c(f"{p}:FUNCtion:PULSe:WIDTh", set=lambda a, s: self._timing(s, width=arg(a, 0)),
          query=lambda a, s: _f(self._c(s).width_s))
        c(f"{p}:FUNCtion:PULSe:PERiod", set=lambda a, s: self._timing(s, period=arg(a, 0)),
          query=lambda a, s: _f(self._c(s).period_s))
        c(f"{p}:FREQuency", set=lambda a, s: self._timing(s, frequency=arg(a, 0)),
          query=lambda a, s: _f(1.0 / self._c(s).period_s))
        for node in ("TRANsition[:BOTH]", "TRANsition:LEADing", "TRANsition:TRAiling"):
            c(f"{p}:FUNCtion:PULSe:{node}", set=lambda a, s: self._timing(s, edge=arg(a, 0)),
              query=lambda a, s: _f(self._c(s).edge_s))
        c(f"{p}:FUNCtion:PULSe:HOLD", set=lambda a, s: keyword(arg(a, 0), ("WIDTh", "DCYCle")))
        c(f"{p}:VOLTage[:LEVel][:IMMediate]:HIGH",
          set=lambda a, s: self._levels(s, high=arg(a, 0)),
          query=lambda a, s: _f(self._c(s).high_V))
        c(f"{p}:VOLTage[:LEVel][:IMMediate]:LOW", set=lambda a, s: self._levels(s, low=arg(a, 0)),
          query=lambda a, s: _f(self._c(s).low_V))
        c(f"{p}:VOLTage[:LEVel][:IMMediate][:AMPLitude]", set=self._set_amplitude,
          query=lambda a, s: _f(self._c(s).high_V - self._c(s).low_V))
        c(f"{p}:VOLTage[:LEVel][:IMMediate]:OFFSet", set=self._set_offset,
          query=lambda a, s: _f((self._c(s).high_V + self._c(s).low_V) / 2))
        c(":OUTPut#[:STATe]", set=self._set_output, query=lambda a, s: str(int(self._c(s).output)))
        c(":OUTPut#:LOAD", set=self._set_load, query=lambda a, s: _f(
            9.9e37 if math.isinf(self._c(s).load_ohm) else self._c(s).load_ohm))
        c(":OUTPut#:POLarity", set=lambda a, s: setattr(
            self._c(s), "polarity", keyword(arg(a, 0), ("NORMal", "INVerted"))),
          query=lambda a, s: self._c(s).polarity)
        c(":OUTPut:TRIGger[:STATe]", set=lambda a, s: boolean(arg(a, 0)))
        c(":OUTPut#:SYNC[:STATe]", set=lambda a, s: boolean(arg(a, 0)))
        c(f"{p}:BURSt:STATe", set=lambda a, s: setattr(self._c(s), "burst", boolean(arg(a, 0))),
          query=lambda a, s: str(int(self._c(s).burst)))
        c(f"{p}:BURSt:MODE", set=lambda a, s: setattr(
            self._c(s), "burst_mode", keyword(arg(a, 0), ("TRIGgered", "GATed"))),
          query=lambda a, s: self._c(s).burst_mode)
        c(f"{p}:BURSt:NCYCles", set=lambda a, s: setattr(
            self._c(s), "ncycles", int(number(arg(a, 0), 1, 1e8))),
          query=lambda a, s: _f(self._c(s).ncycles))
        c(f"{p}:BURSt:INTernal:PERiod", set=lambda a, s: number(arg(a, 0), 1e-6, 8000))
        c(f"{p}:BURSt:PHASe", set=lambda a, s: number(arg(a, 0), -360, 360))
        c(":TRIGger#:SOURce", set=lambda a, s: setattr(
            self._c(s), "trig_source",
            keyword(arg(a, 0), ("IMMediate", "EXTernal", "TIMer", "BUS"))),
          query=lambda a, s: self._c(s).trig_source)
        c(":TRIGger#:DELay", set=lambda a, s: number(arg(a, 0), 0, 1000))
        c(":TRIGger#:SLOPe", set=lambda a, s: keyword(arg(a, 0), ("POSitive", "NEGative")))

    # -- settings with instrument checks ----------------------------------------------
    def _set_func(self, a: list[str], s: list[int]) -> None:
        self._c(s).func = keyword(arg(a, 0), ("SINusoid", "SQUare", "TRIangle", "RAMP", "PULSe",
                                              "PRBS", "NOISe", "ARB", "DC"))

    def _timing(self, s: list[int], *, width: str | None = None, period: str | None = None,
                frequency: str | None = None, edge: str | None = None) -> None:
        ch = self._c(s)
        w = number(width, 16e-9, 1e6) if width is not None else ch.width_s
        per = number(period, 33e-9, 1e6) if period is not None else ch.period_s
        if frequency is not None:
            per = 1.0 / number(frequency, 1e-6, 30e6)
        e = number(edge, 8.4e-9, 1e-6) if edge is not None else ch.edge_s
        if w + 1.6 * e > per:
            raise EmulatorError(*DATA_OUT_OF_RANGE)
        ch.width_s, ch.period_s, ch.edge_s = w, per, e

    def _window(self, ch: _Channel) -> float:
        """|level| the generator accepts for the load it is told about."""
        if math.isinf(ch.load_ohm):
            return 2 * self.LEVEL_MAX_V
        return 2 * self.LEVEL_MAX_V * ch.load_ohm / (ch.load_ohm + SOURCE_IMPEDANCE_OHM)

    def _levels(self, s: list[int], *, high: str | None = None, low: str | None = None) -> None:
        ch = self._c(s)
        top = self._window(ch)
        h = number(high, -top, top) if high is not None else ch.high_V
        lo = number(low, -top, top) if low is not None else ch.low_V
        if h - lo < 1e-3:
            raise EmulatorError(-221, "Settings conflict")
        ch.high_V, ch.low_V = h, lo

    def _set_amplitude(self, a: list[str], s: list[int]) -> None:
        ch = self._c(s)
        offset, amp = (ch.high_V + ch.low_V) / 2, number(arg(a, 0), 1e-3, 2 * self._window(ch))
        self._levels(s, high=str(offset + amp / 2), low=str(offset - amp / 2))

    def _set_offset(self, a: list[str], s: list[int]) -> None:
        ch = self._c(s)
        half, offset = (ch.high_V - ch.low_V) / 2, number(arg(a, 0), -10, 10)
        self._levels(s, high=str(offset + half), low=str(offset - half))

    def _set_load(self, a: list[str], s: list[int]) -> None:
        word = arg(a, 0).upper()
        load = math.inf if word in ("INF", "INFINITY", "MAX") else number(
            word, 1, self.LOAD_MAX_OHM)
        # the largest finite setting is the instrument's "high impedance" (open circuit)
        self._c(s).load_ohm = math.inf if load >= 1e6 else load

    def _set_output(self, a: list[str], s: list[int]) -> None:
        ch = self._c(s)
        ch.output = boolean(arg(a, 0))
        self.note(f"channel {s[0]} output {'on' if ch.output else 'off'}")
        if ch.output and ch.func == "PULS" and not ch.burst:
            self.continuous = True
            self.note(f"channel {s[0]} free-running pulse train (burst off)")

    # -- firing -----------------------------------------------------------------------
    def bus_trigger(self) -> None:
        for n, ch in self.ch.items():
            if ch.trig_source == "BUS":
                self._fire(n)

    def external_trigger(self, channel: int | None = None) -> None:
        with self.lock:
            for n, ch in self.ch.items():
                if ch.trig_source == "EXT" and channel in (None, n):
                    self._fire(n)

    def _fire(self, n: int) -> None:
        ch = self.ch[n]
        if not (ch.output and ch.burst and ch.func == "PULS"):
            return
        gain = self._gain(ch)
        peak = ch.high_V if ch.polarity == "NORM" else ch.low_V
        record = PulseRecord(time.monotonic(), n, peak * gain, ch.width_s, ch.ncycles,
                             self._idle_V(ch) * gain)
        self.pulses.append(record)
        self.note(f"channel {n} burst {ch.ncycles} x {record.amplitude_V:+.4g} V, "
                  f"{ch.width_s:g} s (idle {record.idle_V:+.4g} V)")
        self.bench.pulse(self.instrument_id, n, record.amplitude_V, ch.width_s, ch.ncycles)

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "pulses": len(self.pulses),
                **{f"output{n}": ch.output for n, ch in self.ch.items()}}
