"""Keithley 2450 SourceMeter in SCPI mode: DC reads and list sweeps run by the instrument.

Command forms follow qcodes' ``Keithley2450`` driver and the 2450 reference manual
(reference/instruments.md section 1).  Operations are batched: a read is one round trip
(``:SOUR:VOLT v;:READ?;:SYST:ERR?``), a sweep of up to 2500 points is one round trip (a
source list, a LIST sweep, ``:INIT;*WAI`` and a ``:TRAC:DATA?`` read-out).  qcodes'
own driver can be had on the same link with :meth:`qcodes_instrument`.  The 2450 has no
pulse subsystem: it is used for forming sweeps and reads only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from labctl.drivers import validators as v
from labctl.drivers.roles import SourceMeter
from labctl.drivers.scpi import ScpiInstrument, sweep_step_s, to_float, to_floats
from labctl.drivers.transport import Transport
from labctl.errors import ConfigError, InstrumentError, LimitError

log = logging.getLogger(__name__)


class Keithley2450(ScpiInstrument, SourceMeter):
    """Keithley 2450 as a voltage source measuring current (SCPI command set)."""

    #: what ``*IDN?`` answers (checked when a bench opens)
    IDENTITY = r"keithley instruments[^,]*,\s*model 2450\b"
    IDENTITY_EXPECTED = "a Keithley 2450 SourceMeter"

    #: |V| the 2450 can source: 200 V range, 210 V max [mem: 2450 datasheet]
    VOLTAGE_MAX_V = 210.0
    #: current-limit range while sourcing voltage [mem: 2450 manual, :SOUR:VOLT:ILIM]
    COMPLIANCE_RANGE_A = (1e-9, 1.05)
    #: integration time in power-line cycles [src: qcodes Keithley2450Sense.nplc vals]
    NPLC_RANGE = (0.01, 10.0)
    #: points per source list / sweep command [mem: 2450 configuration-list size]
    MAX_SWEEP_POINTS = 2500

    def __init__(self, transport: Transport, *, buffer: str = "defbuffer1",
                 label: str | None = None) -> None:
        super().__init__(transport, label=label)
        self.buffer = buffer
        self.compliance_A: float | None = None
        self.nplc = 1.0
        self.output_on = False

    def configure(self, *, compliance_A: float, nplc: float = 0.01) -> None:
        c = v.number(compliance_A, *self.COMPLIANCE_RANGE_A, quantity="compliance_A", unit="A")
        n = v.number(nplc, *self.NPLC_RANGE, quantity="nplc")
        self._run(":SOUR:FUNC VOLT", ":SOUR:VOLT 0", f":SOUR:VOLT:ILIM {v.fmt(c)}",
                  ':SENS:FUNC "CURR"', ":SENS:CURR:RANG:AUTO ON", f":SENS:CURR:NPLC {v.fmt(n)}")
        self.compliance_A, self.nplc = c, n

    def output(self, on: bool) -> None:
        if on and self.compliance_A is None:
            raise LimitError(f"{self.label}: output on before a compliance is set",
                             quantity="compliance_A")
        self._run(f":OUTP {'ON' if on else 'OFF'}")
        self.output_on = bool(on)

    def source_voltage(self, voltage_V: float) -> None:
        """Hold a DC level (e.g. a gate bias) without measuring."""
        self._run(f":SOUR:VOLT {v.fmt(self._volts(voltage_V))}")

    def measure_current(self, voltage_V: float) -> float:
        self._require_output()
        (reading,) = self._run(f":SOUR:VOLT {v.fmt(self._volts(voltage_V))}", ":READ?")
        return to_float(reading, self.label)

    def sweep(self, voltages_V: Sequence[float]) -> np.ndarray:
        """A list sweep (failAbort OFF: the compliance plateau is recorded), then back to 0 V."""
        volts = [self._volts(x) for x in np.asarray(voltages_V, dtype=float).ravel()]
        self._require_output()
        out: list[float] = []
        for k in range(0, len(volts), self.MAX_SWEEP_POINTS):
            out.extend(self._sweep_chunk(volts[k:k + self.MAX_SWEEP_POINTS]))
        return np.asarray(out, dtype=float)

    def _sweep_chunk(self, volts: list[float]) -> list[float]:
        n, buf = len(volts), self.buffer
        with self.transport.patience(self.transport.timeout_s + n * sweep_step_s(self.nplc)):
            (data,) = self._run(f':TRAC:CLE "{buf}"',
                                f":SOUR:LIST:VOLT {','.join(v.fmt(x) for x in volts)}",
                                f':SOUR:SWE:VOLT:LIST 1,0,1,OFF,"{buf}"', ":INIT", "*WAI",
                                f':TRAC:DATA? 1,{n},"{buf}",READ', ":SOUR:VOLT 0")
        currents = to_floats(data, self.label)
        if len(currents) != n:
            raise InstrumentError(f"{self.label}: sweep returned {len(currents)} of {n} points",
                                  instrument=self.label, text=data[:80])
        return currents

    def safe(self) -> None:
        self._quiet(":SOUR:VOLT 0;:OUTP OFF")
        self.output_on = False

    def qcodes_instrument(self, name: str = "keithley_2450") -> Any:
        """qcodes' own ``Keithley2450`` driver on this driver's link (for interactive use)."""
        from labctl.drivers.qcodes_bridge import qcodes_instrument

        return qcodes_instrument("Keithley", "Keithley2450", name, self.transport)

    def _volts(self, voltage_V: float) -> float:
        return v.magnitude(voltage_V, self.VOLTAGE_MAX_V, quantity="voltage_V", unit="V")

    def _require_output(self) -> None:
        if not self.output_on:
            raise ConfigError(f"{self.label}: output is off; configure() then output(True)",
                              key="output")
