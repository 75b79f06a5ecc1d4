"""Emulated Keysight B2902A (two SMU channels, SCPI; reference/instruments.md section 3.9).

DC and pulsed (``FUNC:SHAP PULS``) sources, FIX/SWE/LIST modes run by ``:INIT (@c)`` and
read with ``:FETC:ARR...?``; ``:MEAS...?`` spot reads with the fixed element order of
``:FORM:ELEM:SENS`` (voltage, current, resistance, time, status, source).  Pulse widths
below 50 us queue -222, as the instrument refuses them.  Channels reach the chip through
the bench as "1" and "2".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labctl.sim_backend.emulator.base import EmulatorError
from labctl.sim_backend.emulator.scpi import (
    DATA_OUT_OF_RANGE,
    ScpiEmulator,
    arg,
    boolean,
    channel_list,
    keyword,
    nr3,
    number,
)

VOLTAGE_MAX_V = 210.0
PROT_RANGE_A = (1e-12, 3.03)
WIDTH_RANGE_S = (50e-6, 1e5)
ELEMENT_ORDER = ("VOLT", "CURR", "RES", "TIME", "STAT", "SOUR")


class _Channel:
    def __init__(self) -> None:
        self.mode = "VOLT"
        self.shape = "DC"
        self.level_V = 0.0
        self.trig_level_V = 0.0
        self.volt_mode = "FIX"
        self.start_V = self.stop_V = 0.0
        self.points = 1
        self.values: list[float] = []
        self.width_s = 1e-4
        self.pulse_delay_s = 0.0
        self.prot_A = 100e-6
        self.nplc = 1.0
        self.output = False
        self.trig_count = 1
        self.trig_source = "AINT"
        self.volts = np.zeros(0)
        self.currents = np.zeros(0)
        self.tripped = False


class KeysightB2902AEmulator(ScpiEmulator):
    """The B2902A SCPI subset of labctl's driver."""

    model = "B2902A"

    def reset(self) -> None:
        for n, ch in getattr(self, "ch", {}).items():
            if ch.output:
                self.bench.smu_level(self.instrument_id, str(n), None)
        self.ch = {1: _Channel(), 2: _Channel()}
        self.elements = ["VOLT", "CURR"]

    def is_safe(self) -> bool:
        return not any(ch.output for ch in self.ch.values())

    def _c(self, suffixes: list[int]) -> _Channel:
        if suffixes[0] not in self.ch:
            raise EmulatorError(-114, "Header suffix out of range")
        return self.ch[suffixes[0]]

    def _at(self, a: list[str]) -> int:
        chans = channel_list(a[0]) if a else ["1"]
        if len(chans) != 1 or chans[0] not in ("1", "2"):
            raise EmulatorError(*DATA_OUT_OF_RANGE)
        return int(chans[0])

    def define(self) -> None:
        c = self.command
        field = self._field
        c(":SOURce#:FUNCtion:MODE", set=field("mode", lambda x: keyword(x, ("VOLTage", "CURRent"))),
          query=lambda a, s: self._c(s).mode)
        c(":SOURce#:FUNCtion:SHAPe", set=field("shape", lambda x: keyword(x, ("DC", "PULSe"))),
          query=lambda a, s: self._c(s).shape)
        c(":SOURce#:VOLTage[:LEVel][:IMMediate][:AMPLitude]", set=self._set_level,
          query=lambda a, s: nr3(self._c(s).level_V))
        c(":SOURce#:VOLTage[:LEVel]:TRIGgered[:AMPLitude]", set=field("trig_level_V", self._v),
          query=lambda a, s: nr3(self._c(s).trig_level_V))
        c(":SOURce#:VOLTage:MODE",
          set=field("volt_mode", lambda x: keyword(x, ("FIXed", "SWEep", "LIST"))),
          query=lambda a, s: self._c(s).volt_mode)
        c(":SOURce#:VOLTage:STARt", set=field("start_V", self._v))
        c(":SOURce#:VOLTage:STOP", set=field("stop_V", self._v))
        for node in (":SOURce#:VOLTage:POINts", ":SOURce#:SWEep:POINts"):
            c(node, set=field("points", lambda x: int(number(x, 1, 100000))),
              query=lambda a, s: str(self._c(s).points))
        c(":SOURce#:LIST:VOLTage", set=lambda a, s: setattr(
            self._c(s), "values", [self._v(x) for x in a]))
        c(":SOURce#:LIST:VOLTage:APPend", set=lambda a, s: self._c(s).values.extend(
            self._v(x) for x in a))
        c(":SOURce#:LIST:VOLTage:POINts", query=lambda a, s: str(len(self._c(s).values)))
        c(":SOURce#:PULSe:WIDTh", set=field("width_s", lambda x: number(x, *WIDTH_RANGE_S)),
          query=lambda a, s: nr3(self._c(s).width_s))
        c(":SOURce#:PULSe:DELay", set=field("pulse_delay_s", lambda x: number(x, 0, 99999.9)))
        for node in ("RANGe", "RANGe:AUTO"):
            c(f":SOURce#:VOLTage:{node}", set=lambda a, s: None)
        c(":SENSe#:FUNCtion[:ON]", set=lambda a, s: None, query=lambda a, s: '"CURR"')
        c(":SENSe#:FUNCtion:OFF:ALL", set=lambda a, s: None)
        c(":SENSe#:CURRent[:DC]:PROTection[:LEVel]",
          set=field("prot_A", lambda x: number(x, *PROT_RANGE_A, default=100e-6)),
          query=lambda a, s: nr3(self._c(s).prot_A))
        c(":SENSe#:CURRent[:DC]:PROTection:TRIPped", query=lambda a, s: str(int(
            self._c(s).tripped)))
        c(":SENSe#:CURRent[:DC]:NPLCycles", set=field("nplc", lambda x: number(x, 4e-4, 100)),
          query=lambda a, s: nr3(self._c(s).nplc))
        for node in ("APERture", "APERture:AUTO", "RANGe[:UPPer]", "RANGe:AUTO"):
            c(f":SENSe#:CURRent[:DC]:{node}", set=lambda a, s: None)
        c(":SENSe#:WAIT[:STATe]", set=lambda a, s: None)
        c(":SENSe#:REMote", set=lambda a, s: None)
        c(":TRIGger#[:ALL]:SOURce",
          set=field("trig_source", lambda x: keyword(x, ("AINT", "BUS", "TIMer", "INT1", "EXT1"))))
        c(":TRIGger#[:ALL]:COUNt", set=field("trig_count", lambda x: int(number(x, 1, 100000))),
          query=lambda a, s: str(self._c(s).trig_count))
        for node in ("[:ALL]:TIMer", "[:ALL]:DELay", ":ACQuire:DELay", ":TRANsient:DELay"):
            c(f":TRIGger#{node}", set=lambda a, s: number(arg(a, 0), 0, 1e5))
        c(":OUTPut#[:STATe]", set=self._set_output, query=lambda a, s: str(int(self._c(s).output)))
        c(":MEASure", query=lambda a, s: self._spot(a, self.elements))
        c(":MEASure:CURRent[:DC]", query=lambda a, s: self._spot(a, ["CURR"]))
        c(":MEASure:VOLTage[:DC]", query=lambda a, s: self._spot(a, ["VOLT"]))
        c(":FORMat:ELEMents:SENSe", set=self._set_elements,
          query=lambda a, s: ",".join(self.elements))
        c(":INITiate[:IMMediate][:ALL]", set=lambda a, s: self._initiate(self._at(a)))
        c(":FETCh:ARRay:CURRent[:DC]", query=lambda a, s: self._array(a, ["CURR"]))
        c(":FETCh:ARRay:VOLTage[:DC]", query=lambda a, s: self._array(a, ["VOLT"]))
        c(":FETCh:ARRay", query=lambda a, s: self._array(a, self.elements))

    def _field(self, name: str, parse: Any) -> Any:
        return lambda a, s: setattr(self._c(s), name, parse(arg(a, 0)))

    @staticmethod
    def _v(text: str) -> float:
        return number(text, -VOLTAGE_MAX_V, VOLTAGE_MAX_V, default=0.0)

    def _set_level(self, a: list[str], s: list[int]) -> None:
        ch = self._c(s)
        ch.level_V = self._v(arg(a, 0))
        if ch.output:
            self.bench.smu_level(self.instrument_id, str(s[0]), ch.level_V)

    def _set_output(self, a: list[str], s: list[int]) -> None:
        ch = self._c(s)
        ch.output = boolean(arg(a, 0))
        self.note(f"channel {s[0]} output {'on' if ch.output else 'off'}")
        self.bench.smu_level(self.instrument_id, str(s[0]), ch.level_V if ch.output else None)

    def _set_elements(self, a: list[str], s: list[int]) -> None:
        chosen = {keyword(x, ("VOLTage", "CURRent", "RESistance", "TIME", "STATus", "SOURce"))
                  for x in a}
        self.elements = [e for e in ELEMENT_ORDER if e in chosen]

    def _currents(self, number_: int, volts: np.ndarray, pulsed: bool) -> np.ndarray:
        ch = self.ch[number_]
        if not ch.output or ch.mode != "VOLT":
            ch.tripped = False
            return np.zeros_like(volts)
        if pulsed:
            raw = self.bench.smu_pulse(self.instrument_id, str(number_), volts, ch.width_s,
                                       ch.prot_A)
        else:
            raw = self.bench.smu_sweep(self.instrument_id, str(number_), volts, ch.prot_A)
        currents = np.clip(np.asarray(raw, dtype=float), -ch.prot_A, ch.prot_A)
        ch.tripped = bool(np.any(np.abs(currents) >= ch.prot_A * (1 - 1e-9)))
        return currents

    def _spot(self, a: list[str], elements: list[str]) -> str:
        n = self._at(a)
        ch = self.ch[n]
        volts = np.array([ch.level_V])
        ch.volts, ch.currents = volts, self._currents(n, volts, False)
        return self._format(ch, elements, 0)

    def _format(self, ch: _Channel, elements: list[str], k: int) -> str:
        v, i = float(ch.volts[k]), float(ch.currents[k])
        table = {"VOLT": v if ch.output else 0.0, "CURR": i, "RES": v / i if i else 9.91e37,
                 "TIME": k * 1e-3, "STAT": 0.0, "SOUR": v}
        return ",".join(nr3(table[e]) for e in elements)

    def _initiate(self, n: int) -> None:
        ch = self.ch[n]
        if ch.volt_mode == "LIST":
            if not ch.values:
                raise EmulatorError(*DATA_OUT_OF_RANGE)
            plan = ch.values
        elif ch.volt_mode == "SWE":
            plan = list(np.linspace(ch.start_V, ch.stop_V, ch.points))
        else:
            plan = [ch.trig_level_V if ch.shape == "PULS" else ch.level_V]
        volts = np.asarray([plan[k % len(plan)] for k in range(ch.trig_count)], dtype=float)
        ch.volts, ch.currents = volts, self._currents(n, volts, ch.shape == "PULS")
        self.note(f"channel {n} {'pulsed ' if ch.shape == 'PULS' else ''}list {volts.size} points")
        if ch.output:
            self.bench.smu_level(self.instrument_id, str(n), ch.level_V)

    def _array(self, a: list[str], elements: list[str]) -> str:
        ch = self.ch[self._at(a)]
        if ch.volts.size == 0:
            raise EmulatorError(-230, "Data corrupt or stale")
        return ",".join(self._format(ch, elements, k) for k in range(ch.volts.size))

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), **{f"output{n}": ch.output for n, ch in self.ch.items()}}
