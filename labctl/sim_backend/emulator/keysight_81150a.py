"""Emulated Keysight 81150A/81160A: the suffix-style command map over the 33500B state model.

Channel numbers sit on the command (``:PULS:WIDT1``, ``:VOLT2:HIGH``, ``:ARM:SOUR1``,
``:TRIG1:COUN``), per instruments.md section 5.3.  ``:ARM:SOUR MAN`` arms for ``*TRG``,
``EXT`` for the rear input; ``:TRIG:COUN n`` is the burst length.  With the output
voltage limits on (``:VOLT:LIM:STAT ON``) a level beyond them queues -222.
"""

from __future__ import annotations

import math
from typing import Any

from labctl.sim_backend.emulator.base import EmulatorError
from labctl.sim_backend.emulator.keysight_33500b import Keysight33500BEmulator, _f
from labctl.sim_backend.emulator.scpi import DATA_OUT_OF_RANGE, arg, boolean, keyword, number

#: model -> (|level| into 50 ohm, min width, min period); see the driver for sources
MODELS = {"81150A": (5.0, 4.1e-9, 8.33e-9), "81160A": (5.0, 1.5e-9, 3.03e-9)}


class Keysight81150AEmulator(Keysight33500BEmulator):
    """An 81150A (or, with ``model="81160A"``, an 81160A)."""

    model = "81150A"
    manufacturer = "Agilent Technologies"
    LOAD_MAX_OHM = 1e6  # expected-load setting up to 1 Mohm [mem]

    def __init__(self, instrument_id: str, bench: Any, *, serial: str = "EMU0001",
                 model: str = "81150A") -> None:
        self.model = model
        self.LEVEL_MAX_V, self.width_min_s, self.period_min_s = MODELS[model]
        super().__init__(instrument_id, bench, serial=serial)

    def reset(self) -> None:
        super().reset()
        for ch in self.ch.values():
            ch.func = "PULS"
            ch.trig_source = "IMM"
        self.limits = {1: [False, 10.0, -10.0], 2: [False, 10.0, -10.0]}

    def define(self) -> None:
        c = self.command
        c(":FUNCtion#[:SHAPe]", set=self._set_func, query=lambda a, s: self._c(s).func)
        c("[:SOURce]:PULSe:WIDTh#", set=lambda a, s: self._timing(s, width=arg(a, 0)),
          query=lambda a, s: _f(self._c(s).width_s))
        c("[:SOURce]:PULSe:PERiod#", set=lambda a, s: self._timing(s, period=arg(a, 0)),
          query=lambda a, s: _f(self._c(s).period_s))
        c("[:SOURce]:PULSe:FREQuency#", set=lambda a, s: self._timing(s, frequency=arg(a, 0)))
        for node in ("TRANsition#[:LEADing]", "TRANsition#:TRAiling"):
            c(f"[:SOURce]:PULSe:{node}", set=lambda a, s: self._timing(s, edge=arg(a, 0)),
              query=lambda a, s: _f(self._c(s).edge_s))
        v = "[:SOURce]:VOLTage#[:LEVel][:IMMediate]"
        c(f"{v}:HIGH", set=lambda a, s: self._levels(s, high=arg(a, 0)),
          query=lambda a, s: _f(self._c(s).high_V))
        c(f"{v}:LOW", set=lambda a, s: self._levels(s, low=arg(a, 0)),
          query=lambda a, s: _f(self._c(s).low_V))
        c(f"{v}[:AMPLitude]", set=self._set_amplitude)
        c(f"{v}:OFFSet", set=self._set_offset)
        c("[:SOURce]:VOLTage#:LIMit:STATe", set=lambda a, s: self._limit(s, 0, boolean(arg(a, 0))))
        c("[:SOURce]:VOLTage#:LIMit[:HIGH]", set=lambda a, s: self._limit(
            s, 1, number(arg(a, 0), -10, 10)))
        c("[:SOURce]:VOLTage#:LIMit:LOW", set=lambda a, s: self._limit(
            s, 2, number(arg(a, 0), -10, 10)))
        c(":OUTPut#[:STATe]", set=self._set_output, query=lambda a, s: str(int(self._c(s).output)))
        for node in (":OUTPut#:IMPedance:EXTernal", ":OUTPut#:LOAD"):
            c(node, set=self._set_load, query=lambda a, s: _f(
                9.9e37 if math.isinf(self._c(s).load_ohm) else self._c(s).load_ohm))
        c(":OUTPut#:POLarity", set=lambda a, s: setattr(
            self._c(s), "polarity", keyword(arg(a, 0), ("NORMal", "INVerted"))),
          query=lambda a, s: self._c(s).polarity)
        c(":ARM:SOURce#", set=self._set_arm, query=lambda a, s: self._c(s).trig_source)
        c(":TRIGger#:COUNt", set=lambda a, s: setattr(
            self._c(s), "ncycles", int(number(arg(a, 0), 1, 16_777_215))),
          query=lambda a, s: str(self._c(s).ncycles))

    def _timing(self, s: list[int], *, width: str | None = None, period: str | None = None,
                frequency: str | None = None, edge: str | None = None) -> None:
        ch = self._c(s)
        w = number(width, self.width_min_s, 999.0) if width is not None else ch.width_s
        per = number(period, self.period_min_s, 999.0) if period is not None else ch.period_s
        if frequency is not None:
            per = 1.0 / number(frequency, 1e-3, 1.0 / self.period_min_s)
        e = number(edge, 1e-9, 1e-3) if edge is not None else ch.edge_s
        if w + e > per:
            raise EmulatorError(*DATA_OUT_OF_RANGE)
        ch.width_s, ch.period_s, ch.edge_s = w, per, e

    def _levels(self, s: list[int], *, high: str | None = None, low: str | None = None) -> None:
        on, top, bottom = self.limits[s[0]]
        ch = self._c(s)
        before = ch.high_V, ch.low_V
        super()._levels(s, high=high, low=low)
        if on and not (bottom <= ch.low_V and ch.high_V <= top):
            ch.high_V, ch.low_V = before
            raise EmulatorError(*DATA_OUT_OF_RANGE)

    def _limit(self, s: list[int], index: int, value: float | bool) -> None:
        self._c(s)
        self.limits[s[0]][index] = value

    def _set_arm(self, a: list[str], s: list[int]) -> None:
        ch = self._c(s)
        ch.trig_source = keyword(arg(a, 0), ("IMMediate", "MANual", "EXTernal", "INTernal2"))
        ch.burst = ch.trig_source != "IMM"

    def bus_trigger(self) -> None:
        for n, ch in self.ch.items():
            if ch.trig_source == "MAN":
                self._fire(n)
