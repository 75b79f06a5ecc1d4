"""Emulated Keithley 2450 in SCPI mode (reference/instruments.md section 1.10).

Voltage source with a current limit, ``:READ?``/``:MEAS?`` spot reads, linear and list
sweeps run by ``:INIT`` into named reading buffers, ``:TRAC:DATA?`` read-out, and the
error queue (``0,"No error"``).  The chip is reached through the bench as channel "1".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labctl.sim_backend.emulator.base import EmulatorError
from labctl.sim_backend.emulator.scpi import (
    DATA_OUT_OF_RANGE,
    ILLEGAL_VALUE,
    ScpiEmulator,
    arg,
    boolean,
    keyword,
    number,
    unquote,
)

VOLTAGE_MAX_V = 210.0
ILIM_RANGE_A = (1e-9, 1.05)
BUFFER_POINTS = 100_000  # default defbuffer1 capacity [mem: 2450 manual]
ELEMENTS = ("READing", "SOURce", "RELative", "SEConds", "UNIT", "SOURUNIT")


def _e(value: float) -> str:
    return f"{value:.6E}"


class Keithley2450Emulator(ScpiEmulator):
    """The 2450's SCPI subset that labctl and qcodes' ``Keithley2450`` driver use."""

    model = "MODEL 2450"
    manufacturer = "KEITHLEY INSTRUMENTS"
    firmware = "1.7.12b"
    no_error = '0,"No error"'
    CHANNEL = "1"

    def reset(self) -> None:
        self.source_func = "VOLT"
        self.level_V = 0.0
        self.level_A = 0.0
        self.ilimit_A = 105e-6
        self.vlimit_V = 21.0
        self.output = False
        self.sense_func = "CURR:DC"
        self.nplc = 1.0
        self.autorange = True
        self.source_list: list[float] = []
        self.sweep_plan: tuple[list[float], bool, str] | None = None
        self.buffers: dict[str, list[tuple[float, float]]] = {"defbuffer1": [], "defbuffer2": []}
        self.tripped = False
        self.terminals = "FRON"

    def is_safe(self) -> bool:
        return not self.output

    def define(self) -> None:
        c = self.command
        self.common["*LANG?"] = lambda a, s: "SCPI"
        c(":ABORt", set=lambda a, s: None)
        c(":SOURce#:FUNCtion[:MODE]", set=self._set_func, query=lambda a, s: self.source_func)
        c(":SOURce#:VOLTage[:LEVel][:IMMediate][:AMPLitude]", set=self._set_level,
          query=lambda a, s: _e(self.level_V))
        c(":SOURce#:CURRent[:LEVel][:IMMediate][:AMPLitude]",
          set=lambda a, s: setattr(self, "level_A", number(arg(a, 0), -1.05, 1.05)),
          query=lambda a, s: _e(self.level_A))
        c(":SOURce#:VOLTage:ILIMit[:LEVel]", set=self._set_ilim,
          query=lambda a, s: _e(self.ilimit_A))
        c(":SOURce#:VOLTage:ILIMit[:LEVel]:TRIPped", query=lambda a, s: str(int(self.tripped)))
        c(":SOURce#:CURRent:VLIMit[:LEVel]",
          set=lambda a, s: setattr(self, "vlimit_V", number(arg(a, 0), 0.02, 210.0)),
          query=lambda a, s: _e(self.vlimit_V))
        for sub in ("RANGe", "RANGe:AUTO", "DELay", "DELay:AUTO", "READ:BACK"):
            c(f":SOURce#:VOLTage:{sub}", set=lambda a, s: None, query=lambda a, s: "0")
        c(":SENSe#:FUNCtion[:ON]", set=self._set_sense, query=lambda a, s: f'"{self.sense_func}"')
        c(":SENSe#[:CURRent][:DC]:NPLCycles",
          set=lambda a, s: setattr(self, "nplc", number(arg(a, 0), 0.01, 10.0, default=1.0)),
          query=lambda a, s: _e(self.nplc))
        c(":SENSe#[:CURRent][:DC]:RANGe:AUTO",
          set=lambda a, s: setattr(self, "autorange", boolean(arg(a, 0))),
          query=lambda a, s: str(int(self.autorange)))
        for sub in ("RANGe[:UPPer]", "AZERo[:STATe]", "RSENse"):
            c(f":SENSe#[:CURRent][:DC]:{sub}", set=lambda a, s: None, query=lambda a, s: "0")
        c(":SENSe#:COUNt", set=lambda a, s: None, query=lambda a, s: "1")
        c(":SENSe#:AZERo:ONCE", set=lambda a, s: None)
        c(":OUTPut#[:STATe]", set=self._set_output, query=lambda a, s: str(int(self.output)))
        c(":ROUTe:TERMinals", set=lambda a, s: setattr(
            self, "terminals", keyword(arg(a, 0), ("FRONt", "REAR"))),
          query=lambda a, s: self.terminals)
        c(":READ", query=self._read)
        c(":MEASure[:CURRent][:DC]", query=self._read)
        c(":FETCh", query=self._fetch)
        c(":SOURce#:LIST:VOLTage", set=self._set_list, query=self._get_list)
        c(":SOURce#:LIST:VOLTage:APPend", set=self._append_list)
        c(":SOURce#:LIST:VOLTage:POINts", query=lambda a, s: str(len(self.source_list)))
        c(":SOURce#:SWEep:VOLTage:LINear", set=self._sweep_linear)
        c(":SOURce#:SWEep:VOLTage:LIST", set=self._sweep_list)
        c(":INITiate[:IMMediate]", set=lambda a, s: self._initiate())
        c(":TRACe:ACTual", query=lambda a, s: str(len(self._buffer(a, 0))))
        c(":TRACe:POINts", set=lambda a, s: None, query=lambda a, s: "100000")
        c(":TRACe:CLEar", set=lambda a, s: self._buffer(a, 0).clear())
        c(":TRACe:DATA", query=self._trace_data)
        c(":TRACe:MAKE", set=lambda a, s: self.buffers.setdefault(unquote(arg(a, 0)), []))
        c(":TRACe:DELete", set=lambda a, s: self.buffers.pop(unquote(arg(a, 0)), None))
        c(":SYSTem:LFRequency", query=lambda a, s: "50")
        c(":SYSTem:CLEar", set=lambda a, s: self.error_queue.clear())
        c(":STATus:CLEar", set=lambda a, s: None)

    # -- source and output ------------------------------------------------------------
    def _set_func(self, a: list[str], s: list[int]) -> None:
        self.source_func = keyword(arg(a, 0), ("VOLTage", "CURRent"))

    def _set_level(self, a: list[str], s: list[int]) -> None:
        self.level_V = number(arg(a, 0), -VOLTAGE_MAX_V, VOLTAGE_MAX_V, default=0.0)
        if self.output:
            self.bench.smu_level(self.instrument_id, self.CHANNEL, self.level_V)

    def _set_ilim(self, a: list[str], s: list[int]) -> None:
        self.ilimit_A = number(arg(a, 0), *ILIM_RANGE_A, default=105e-6)

    def _set_sense(self, a: list[str], s: list[int]) -> None:
        func = keyword(unquote(arg(a, 0)).split(":")[0], ("CURRent", "VOLTage", "RESistance"))
        self.sense_func = {"CURR": "CURR:DC", "VOLT": "VOLT:DC", "RES": "RES"}[func]

    def _set_output(self, a: list[str], s: list[int]) -> None:
        self.output = boolean(arg(a, 0))
        self.note(f"output {'on' if self.output else 'off'}")
        self.bench.smu_level(self.instrument_id, self.CHANNEL,
                             self.level_V if self.output else None)

    # -- measuring --------------------------------------------------------------------
    def _measure(self, voltage_V: float) -> float:
        if not self.output or self.source_func != "VOLT":
            return 0.0
        current = float(self.bench.smu_source(self.instrument_id, self.CHANNEL, voltage_V,
                                              self.ilimit_A))
        current = float(np.clip(current, -self.ilimit_A, self.ilimit_A))
        self.tripped = abs(current) >= self.ilimit_A * (1 - 1e-9)
        return current

    def _buffer(self, a: list[str], index: int) -> list[tuple[float, float]]:
        name = unquote(a[index]) if len(a) > index else "defbuffer1"
        if name not in self.buffers:
            raise EmulatorError(*ILLEGAL_VALUE)
        return self.buffers[name]

    def _elements(self, point: tuple[float, float], index: int, names: list[str]) -> list[str]:
        out = []
        for name in names:
            word = keyword(name, ELEMENTS)
            out.append({"READ": _e(point[1]), "SOUR": _e(point[0]), "REL": _e(index * 0.001),
                        "SEC": _e(index * 0.001), "UNIT": "Amp DC",
                        "SOURUNIT": "Volt DC"}[word])
        return out

    def _read(self, a: list[str], s: list[int]) -> str:
        buf = self._buffer(a, 0)
        if len(buf) >= BUFFER_POINTS:  # fill mode continuous: the oldest reading goes
            del buf[0]
        buf.append((self.level_V, self._measure(self.level_V)))
        return ",".join(self._elements(buf[-1], len(buf) - 1, a[1:] or ["READ"]))

    def _fetch(self, a: list[str], s: list[int]) -> str:
        buf = self._buffer(a, 0)
        if not buf:
            raise EmulatorError(-230, "Data corrupt or stale")
        return ",".join(self._elements(buf[-1], len(buf) - 1, a[1:] or ["READ"]))

    def _trace_data(self, a: list[str], s: list[int]) -> str:
        start, stop = int(number(arg(a, 0), 1, 1e7)), int(number(arg(a, 1), 1, 1e7))
        buf = self._buffer(a, 2)
        if stop > len(buf) or start > stop:
            raise EmulatorError(*DATA_OUT_OF_RANGE)
        names = a[3:] or ["READ"]
        return ",".join(x for k in range(start - 1, stop)
                        for x in self._elements(buf[k], k, names))

    # -- sweeps -----------------------------------------------------------------------
    def _set_list(self, a: list[str], s: list[int]) -> None:
        self.source_list = [number(x, -VOLTAGE_MAX_V, VOLTAGE_MAX_V) for x in a]

    def _append_list(self, a: list[str], s: list[int]) -> None:
        self.source_list += [number(x, -VOLTAGE_MAX_V, VOLTAGE_MAX_V) for x in a]

    def _get_list(self, a: list[str], s: list[int]) -> str:
        return ",".join(_e(x) for x in self.source_list)

    def _sweep_linear(self, a: list[str], s: list[int]) -> None:
        start = number(arg(a, 0), -VOLTAGE_MAX_V, VOLTAGE_MAX_V)
        stop = number(arg(a, 1), -VOLTAGE_MAX_V, VOLTAGE_MAX_V)
        points = int(number(arg(a, 2), 2, 1e6))
        fail_abort = boolean(a[6]) if len(a) > 6 else True
        dual = boolean(a[7]) if len(a) > 7 else False
        volts = list(np.linspace(start, stop, points))
        if dual:
            volts += volts[::-1]
        self.sweep_plan = (volts, fail_abort, unquote(a[8]) if len(a) > 8 else "defbuffer1")

    def _sweep_list(self, a: list[str], s: list[int]) -> None:
        first = int(number(arg(a, 0), 1, max(1, len(self.source_list))))
        if not self.source_list:
            raise EmulatorError(*DATA_OUT_OF_RANGE)
        fail_abort = boolean(a[3]) if len(a) > 3 else True
        buffer = unquote(a[4]) if len(a) > 4 else "defbuffer1"
        self.sweep_plan = (self.source_list[first - 1:], fail_abort, buffer)

    def _initiate(self) -> None:
        if self.sweep_plan is None:
            buf = self.buffers["defbuffer1"]
            buf.append((self.level_V, self._measure(self.level_V)))
            return
        volts, fail_abort, name = self.sweep_plan
        if name not in self.buffers:
            raise EmulatorError(*ILLEGAL_VALUE)
        currents = self._sweep_currents(np.asarray(volts, dtype=float))
        if fail_abort:
            hit = np.flatnonzero(np.abs(currents) >= self.ilimit_A * (1 - 1e-9))
            if hit.size:
                volts, currents = volts[:hit[0] + 1], currents[:hit[0] + 1]
        self.buffers[name].extend(zip(map(float, volts), map(float, currents), strict=True))
        self.note(f"sweep {len(volts)} points")
        if self.output:
            self.bench.smu_level(self.instrument_id, self.CHANNEL, self.level_V)

    def _sweep_currents(self, volts: np.ndarray) -> np.ndarray:
        if not self.output or self.source_func != "VOLT":
            return np.zeros_like(volts)
        currents = np.asarray(self.bench.smu_sweep(self.instrument_id, self.CHANNEL, volts,
                                                   self.ilimit_A), dtype=float)
        return np.clip(currents, -self.ilimit_A, self.ilimit_A)

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "output": self.output, "level_V": self.level_V,
                "ilimit_A": self.ilimit_A}
