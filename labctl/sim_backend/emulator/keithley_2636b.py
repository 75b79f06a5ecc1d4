"""Emulated Keithley 2636B (2600B TSP) with two SMU channels and 14 digio trigger lines.

The objects and fields of reference/instruments.md section 2.8: ``smua``/``smub`` with
``source``, ``measure``, ``nvbuffer1/2`` and the trigger model (``listv``/``linearv``
sweeps into a buffer), ``printbuffer``, ``errorqueue``, ``localnode``, the
``status...condition`` register qcodes reads, and ``digio.trigger[N].assert()``, which
the bench wires to a pulse generator's Trig In for on-instrument program-verify.
Limits are the 2636B's (qcodes ``_Keithley_2600`` tables): |V| <= 200 V, limiti in
[100 pA, 1.5 A]; an out-of-range assignment queues -222 and aborts the message.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labctl.sim_backend.emulator.base import EmulatorError
from labctl.sim_backend.emulator.tsp import TspEmulator, TspNode

VOLTAGE_MAX_V = 200.0
LIMITI_RANGE_A = (100e-12, 1.5)
NPLC_RANGE = (0.001, 25.0)
OUT_OF_RANGE = (-222, "Parameter data out of range")  # [mem: 2600B parameter error]


def _checked(value: Any, low: float, high: float) -> float:
    v = float(value)
    if not low <= v <= high:
        raise EmulatorError(*OUT_OF_RANGE)
    return v


class Buffer(TspNode):
    """``smuX.nvbufferN``: readings, source values, timestamps."""

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime
        self._readings: list[float] = []
        self._sources: list[float] = []
        self.appendmode = 0
        self.collectsourcevalues = 0
        self.collecttimestamps = 0
        self.fillmode = 0
        self._seal()

    def clear(self) -> None:
        self._readings.clear()
        self._sources.clear()

    def add(self, reading: float, source: float) -> None:
        self._readings.append(float(reading))
        self._sources.append(float(source))

    @property
    def n(self) -> int:
        return len(self._readings)

    @property
    def readings(self) -> Any:
        return self._runtime.table_from(self._readings)

    @property
    def sourcevalues(self) -> Any:
        return self._runtime.table_from(self._sources)

    @property
    def timestamps(self) -> Any:
        return self._runtime.table_from([k * 1e-3 for k in range(len(self._readings))])


class Source(TspNode):
    def __init__(self, smu: SmuChannel) -> None:
        self._smu = smu
        self.func = 1
        self._levelv = 0.0
        self.leveli = 0.0
        self._limiti = 100e-3
        self.limitv = 20.0
        self._output = 0
        self.rangev = 200.0
        self.autorangev = 1
        self.rangei = 100e-3
        self.autorangei = 1
        self.offmode = 0
        self.delay = 0
        self.settling = 0
        self.compliance = False
        self._seal()

    @property
    def levelv(self) -> float:
        return self._levelv

    @levelv.setter
    def levelv(self, value: float) -> None:
        self._levelv = _checked(value, -VOLTAGE_MAX_V, VOLTAGE_MAX_V)
        if self._output:
            self._smu.notify_level(self._levelv)

    @property
    def limiti(self) -> float:
        return self._limiti

    @limiti.setter
    def limiti(self, value: float) -> None:
        self._limiti = _checked(value, *LIMITI_RANGE_A)

    @property
    def output(self) -> int:
        return self._output

    @output.setter
    def output(self, value: float) -> None:
        state = int(value)
        if state not in (0, 1, 2):
            raise EmulatorError(*OUT_OF_RANGE)
        self._output = 1 if state else 0
        self._smu.emulator.note(f"{self._smu.name} output {'on' if self._output else 'off'}")
        self._smu.notify_level(self._levelv if self._output else None)


class Measure(TspNode):
    def __init__(self, smu: SmuChannel) -> None:
        self._smu = smu
        self._nplc = 1.0
        self.rangei = 100e-3
        self.autorangei = 1
        self.rangev = 200.0
        self.autorangev = 1
        self.autozero = 2
        self.count = 1
        self.interval = 0.0
        self.delay = 0
        self._seal()

    @property
    def nplc(self) -> float:
        return self._nplc

    @nplc.setter
    def nplc(self, value: float) -> None:
        self._nplc = _checked(value, *NPLC_RANGE)

    def i(self, buffer: Buffer | None = None) -> float:
        current = self._smu.measure_current(self._smu.source.levelv)
        if buffer is not None:
            buffer.add(current, self._smu.source.levelv)
        return current

    def v(self, buffer: Buffer | None = None) -> float:
        volts = self._smu.source.levelv if self._smu.source.output else 0.0
        if buffer is not None:
            buffer.add(volts, volts)
        return volts

    def iv(self, ibuffer: Buffer | None = None, vbuffer: Buffer | None = None) -> tuple:
        current = self.i(ibuffer)
        return current, self.v(vbuffer)

    def r(self) -> float:
        current = self.i()
        return self.v() / current if current else float("inf")


class TriggerSource(TspNode):
    def __init__(self) -> None:
        self.action = 0
        self.limiti = 0
        self.limitv = 0
        self.stimulus = 0
        self._values: list[float] = []
        self._seal()

    def listv(self, table: Any) -> None:
        values = [float(x) for x in (table.values() if hasattr(table, "values") else table)]
        self._values = [_checked(x, -VOLTAGE_MAX_V, VOLTAGE_MAX_V) for x in values]

    def linearv(self, start: float, stop: float, points: float) -> None:
        n = int(points)
        if n < 1:
            raise EmulatorError(*OUT_OF_RANGE)
        self._values = [_checked(x, -VOLTAGE_MAX_V, VOLTAGE_MAX_V)
                        for x in np.linspace(float(start), float(stop), n)]


class TriggerMeasure(TspNode):
    def __init__(self) -> None:
        self.action = 0
        self.stimulus = 0
        self._buffer: Buffer | None = None
        self._seal()

    def i(self, buffer: Buffer) -> None:
        self._buffer = buffer

    def iv(self, ibuffer: Buffer, vbuffer: Buffer | None = None) -> None:
        self._buffer = ibuffer


class Stage(TspNode):
    """``endsweep``, ``endpulse``, ``arm`` and similar trigger-model stages."""

    def __init__(self) -> None:
        self.action = 1
        self.stimulus = 0
        self.count = 1
        self._seal()


class Trigger(TspNode):
    def __init__(self, smu: SmuChannel) -> None:
        self._smu = smu
        self.source = TriggerSource()
        self.measure = TriggerMeasure()
        self.endsweep = Stage()
        self.endpulse = Stage()
        self.arm = Stage()
        self.count = 1
        self.ARMED_EVENT_ID = 1
        self.SOURCE_COMPLETE_EVENT_ID = 2
        self.MEASURE_COMPLETE_EVENT_ID = 3
        self.PULSE_COMPLETE_EVENT_ID = 4
        self.SWEEP_COMPLETE_EVENT_ID = 5
        self.IDLE_EVENT_ID = 6
        self._seal()

    def initiate(self) -> None:
        self._smu.run_sweep()

    def abort(self) -> None:
        return None


class SmuChannel(TspNode):
    """``smua`` / ``smub``."""

    OUTPUT_DCAMPS, OUTPUT_DCVOLTS = 0, 1
    OUTPUT_OFF, OUTPUT_ON, OUTPUT_HIGH_Z = 0, 1, 2
    OUTPUT_NORMAL, OUTPUT_ZERO = 0, 2
    AUTORANGE_OFF, AUTORANGE_ON, AUTORANGE_FOLLOW_LIMIT = 0, 1, 2
    AUTOZERO_OFF, AUTOZERO_ONCE, AUTOZERO_AUTO = 0, 1, 2
    DISABLE, ENABLE = 0, 1
    SOURCE_IDLE, SOURCE_HOLD = 0, 1
    SENSE_LOCAL, SENSE_REMOTE, SENSE_CALA = 0, 1, 3
    LIMIT_AUTO = 0

    # set by _fresh (object.__setattr__, past the seal); declared here for the type checker
    source: Source
    measure: Measure
    nvbuffer1: Buffer
    nvbuffer2: Buffer
    trigger: Trigger
    sense: int

    def __init__(self, emulator: Keithley2636BEmulator, name: str) -> None:
        self.emulator = emulator
        self.name = name
        self._fresh()
        self._seal()

    def _fresh(self) -> None:
        runtime = self.emulator.runtime
        object.__setattr__(self, "source", Source(self))
        object.__setattr__(self, "measure", Measure(self))
        object.__setattr__(self, "nvbuffer1", Buffer(runtime))
        object.__setattr__(self, "nvbuffer2", Buffer(runtime))
        object.__setattr__(self, "trigger", Trigger(self))
        object.__setattr__(self, "sense", 0)

    def reset(self) -> None:
        if self.source.output:
            self.notify_level(None)
        self._fresh()

    @property
    def channel(self) -> str:
        return self.name[-1]

    def notify_level(self, voltage_V: float | None) -> None:
        self.emulator.bench.smu_level(self.emulator.instrument_id, self.channel, voltage_V)

    def measure_current(self, voltage_V: float) -> float:
        src = self.source
        if not src.output or src.func != self.OUTPUT_DCVOLTS:
            src.compliance = False
            return 0.0
        current = float(self.emulator.bench.smu_source(self.emulator.instrument_id, self.channel,
                                                       voltage_V, src.limiti))
        current = float(np.clip(current, -src.limiti, src.limiti))
        src.compliance = abs(current) >= src.limiti * (1 - 1e-9)
        return current

    def run_sweep(self) -> None:
        trig, src = self.trigger, self.source
        values = trig.source._values if trig.source.action else [src.levelv]
        count = int(trig.count) * max(1, int(trig.arm.count))
        if count < 1 or not values:
            raise EmulatorError(*OUT_OF_RANGE)
        volts = np.asarray([values[k % len(values)] for k in range(count)], dtype=float)
        buffer = trig.measure._buffer if trig.measure.action else None
        if buffer is not None and not buffer.appendmode:
            buffer.clear()
        if src.output and src.func == self.OUTPUT_DCVOLTS:
            currents = np.clip(np.asarray(self.emulator.bench.smu_sweep(
                self.emulator.instrument_id, self.channel, volts, src.limiti), dtype=float),
                -src.limiti, src.limiti)
        else:
            currents = np.zeros_like(volts)
        if buffer is not None:
            for v, i in zip(volts, currents, strict=True):
                buffer.add(i, v)
        self.emulator.note(f"{self.name} sweep {count} points")
        if src.output:
            self.notify_level(src.levelv)


class DigioTrigger(TspNode):
    """``digio.trigger[N]``: ``assert()`` fires the line (wired by the bench)."""

    def __init__(self, emulator: Keithley2636BEmulator, line: int) -> None:
        self._emulator = emulator
        self._line = line
        self.mode = 0
        self.pulsewidth = 10e-6
        self.stimulus = 0
        self.EVENT_ID = 100 + line
        self._seal()

    def _assert(self) -> None:
        if self.mode == 0:  # TRIG_BYPASS: a plain digital line, no trigger pulse
            return
        self._emulator.note(f"digio {self._line} asserted")
        self._emulator.bench.trigger_line(self._emulator.instrument_id, self._line)

    def clear(self) -> None:
        return None

    def release(self) -> None:
        return None

    def wait(self, timeout: float) -> bool:
        return False


setattr(DigioTrigger, "assert", DigioTrigger._assert)  # noqa: B010 -- 'assert' is a keyword


class Digio(TspNode):
    TRIG_BYPASS, TRIG_FALLING, TRIG_RISING, TRIG_EITHER = 0, 1, 2, 3
    TRIG_SYNCHRONOUSA, TRIG_SYNCHRONOUS, TRIG_SYNCHRONOUSM = 4, 5, 6
    TRIG_RISINGA, TRIG_RISINGM = 7, 8

    def __init__(self, emulator: Keithley2636BEmulator) -> None:
        self.trigger = {n: DigioTrigger(emulator, n) for n in range(1, 15)}
        self._seal()


class _Plain(TspNode):
    def __init__(self, **fields: Any) -> None:
        for key, value in fields.items():
            object.__setattr__(self, key, value)
        self._seal()


class Keithley2636BEmulator(TspEmulator):
    """A 2636B: ``smua``, ``smub``, ``digio``, ``errorqueue``, scripts."""

    model = "2636B"

    def define(self, g: Any) -> None:
        self.smua = SmuChannel(self, "smua")
        self.smub = SmuChannel(self, "smub")
        g.smua, g.smub = self.smua, self.smub
        g.digio = self.digio = Digio(self)
        g.localnode = _Plain(model=self.model, serialno=self.serial, revision=self.firmware,
                             linefreq=50.0, description="emulated 2636B")
        condition = _Plain(smua=_Plain(condition=0), smub=_Plain(condition=0))
        g.status = _Plain(measurement=_Plain(instrument=condition))
        g.format = _Plain(asciiprecision=6, data=1, byteorder=0, ASCII=1, REAL32=4, REAL64=5,
                          NORMAL=0, SWAPPED=0, LITTLEENDIAN=0, BIGENDIAN=1)
        g.trigger = _Plain(timer={n: Stage() for n in range(1, 9)})

    def reset(self) -> None:
        if hasattr(self, "smua"):
            self.smua.reset()
            self.smub.reset()

    def is_safe(self) -> bool:
        return not (self.smua.source.output or self.smub.source.output)

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(),
                **{f"{s.name}_output": bool(s.source.output) for s in (self.smua, self.smub)},
                **{f"{s.name}_levelv": s.source.levelv for s in (self.smua, self.smub)}}
