"""Keysight B2901A/B2902A precision SMU (SCPI): reads, list sweeps, pulsed list sweeps.

Our own driver -- qcodes' B2900 support (``KeysightB2962A``) has no sweeps or pulses.
Command forms: B2900 User's Guide and SCPI reference (reference/instruments.md
section 3).  A read, a list sweep and a pulsed list sweep are one round trip each.
Pulse widths below 50 us raise LimitError: the B2900 cannot make them (section 0.1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labctl.drivers import validators as v
from labctl.drivers.roles import SourceMeter
from labctl.drivers.scpi import ScpiInstrument, sweep_step_s, to_float, to_floats
from labctl.drivers.transport import Transport
from labctl.errors import ConfigError, InstrumentError, LimitError


class KeysightB2902A(ScpiInstrument, SourceMeter):
    """One channel (1 or 2) of a B2901A/B2902A as a voltage source measuring current."""

    #: what ``*IDN?`` answers (checked when a bench opens)
    IDENTITY = r"(keysight|agilent) technologies[^,]*,\s*b29[01][12][ab]\b"
    IDENTITY_EXPECTED = "a Keysight/Agilent B2900-series SMU such as the B2902A"

    #: |V| the B2900 sources (210 V range) [mem: B2900 datasheet]
    VOLTAGE_MAX_V = 210.0
    #: current compliance range [mem: 10 nA lowest useful limit to the 1.5 A DC maximum]
    COMPLIANCE_RANGE_A = (1e-9, 1.5)
    #: NPLC range [mem: B2900 SCPI reference, :SENS:CURR:NPLC]
    NPLC_RANGE = (4e-4, 100.0)
    #: pulse width range [src: B2900 User's Guide pulse section: 50 us to 100000 s]
    PULSE_WIDTH_RANGE_S = (50e-6, 1e5)
    #: list length [src: Agilent B2900 SCPI reference Ed. 2: 2500 points]
    MAX_LIST_POINTS = 2500

    def __init__(self, transport: Transport, *, channel: int = 1,
                 label: str | None = None) -> None:
        channel = int(v.choice(int(channel), (1, 2), quantity="channel"))
        super().__init__(transport, label=label)
        self.channel = channel
        self.compliance_A: float | None = None
        self.nplc = 1.0
        self.output_on = False

    def configure(self, *, compliance_A: float, nplc: float = 0.01) -> None:
        c = v.number(compliance_A, *self.COMPLIANCE_RANGE_A, quantity="compliance_A", unit="A")
        n = v.number(nplc, *self.NPLC_RANGE, quantity="nplc")
        ch = self.channel
        self._run(f":SOUR{ch}:FUNC:MODE VOLT", f":SOUR{ch}:FUNC:SHAP DC",
                  f":SOUR{ch}:VOLT:MODE FIX", f":SOUR{ch}:VOLT 0", f':SENS{ch}:FUNC "CURR"',
                  f":SENS{ch}:CURR:PROT {v.fmt(c)}", f":SENS{ch}:CURR:RANG:AUTO ON",
                  f":SENS{ch}:CURR:NPLC {v.fmt(n)}")
        self.compliance_A, self.nplc = c, n

    def output(self, on: bool) -> None:
        if on and self.compliance_A is None:
            raise LimitError(f"{self.label}: output on before a compliance is set",
                             quantity="compliance_A")
        self._run(f":OUTP{self.channel} {'ON' if on else 'OFF'}")
        self.output_on = bool(on)

    def source_voltage(self, voltage_V: float) -> None:
        """Hold a DC level (e.g. a gate bias) without measuring."""
        self._run(f":SOUR{self.channel}:VOLT {v.fmt(self._volts(voltage_V))}")

    def measure_current(self, voltage_V: float) -> float:
        self._require_output()
        ch = self.channel
        (reading,) = self._run(f":SOUR{ch}:VOLT {v.fmt(self._volts(voltage_V))}",
                               f":MEAS:CURR? (@{ch})")
        return to_float(reading, self.label)

    def sweep(self, voltages_V: Sequence[float]) -> np.ndarray:
        """A DC list sweep per chunk (auto trigger), read back with ``:FETC:ARR:CURR?``."""
        volts = self._list(voltages_V)
        self._require_output()
        out: list[float] = []
        for k in range(0, len(volts), self.MAX_LIST_POINTS):
            out.extend(self._list_run(volts[k:k + self.MAX_LIST_POINTS], None, 0.0))
        return np.asarray(out, dtype=float)

    def pulse_list(self, voltages_V: Sequence[float], width_s: float, *,
                   base_V: float = 0.0) -> np.ndarray:
        """Pulse every list value from ``base_V`` for ``width_s`` (>= 50 us), current per pulse."""
        w = v.number(width_s, *self.PULSE_WIDTH_RANGE_S, quantity="width_s", unit="s")
        base = self._volts(base_V)
        volts = self._list(voltages_V)
        self._require_output()
        out: list[float] = []
        for k in range(0, len(volts), self.MAX_LIST_POINTS):
            out.extend(self._list_run(volts[k:k + self.MAX_LIST_POINTS], w, base))
        return np.asarray(out, dtype=float)

    def _list_run(self, volts: list[float], width_s: float | None, base_V: float) -> list[float]:
        ch, n = self.channel, len(volts)
        values = ",".join(v.fmt(x) for x in volts)
        if width_s is None:
            head = [f":SOUR{ch}:VOLT:MODE LIST", f":SOUR{ch}:LIST:VOLT {values}",
                    f":TRIG{ch}:SOUR AINT", f":TRIG{ch}:COUN {n}"]
            # back to a fixed level of 0 V, as the other SMUs end a sweep (the 2450's
            # :SOUR:VOLT 0, the 2636B's endsweep SOURCE_IDLE): never the last list point
            tail = [f":SOUR{ch}:VOLT:MODE FIX", f":SOUR{ch}:VOLT 0"]
        else:
            head = [f":SOUR{ch}:FUNC:SHAP PULS", f":SOUR{ch}:VOLT {v.fmt(base_V)}",
                    f":SOUR{ch}:VOLT:MODE LIST", f":SOUR{ch}:LIST:VOLT {values}",
                    f":SOUR{ch}:PULS:DEL 0", f":SOUR{ch}:PULS:WIDT {v.fmt(width_s)}",
                    f":TRIG{ch}:ACQ:DEL {v.fmt(0.8 * width_s)}", f":TRIG{ch}:SOUR TIM",
                    f":TRIG{ch}:TIM {v.fmt(2.0 * width_s)}", f":TRIG{ch}:COUN {n}"]
            tail = [f":SOUR{ch}:FUNC:SHAP DC", f":SOUR{ch}:VOLT:MODE FIX", f":SOUR{ch}:VOLT 0"]
        step_s = sweep_step_s(self.nplc) + 2.0 * (width_s or 0.0)
        with self.transport.patience(self.transport.timeout_s + n * step_s):
            (data,) = self._run(*head, f":INIT (@{ch})", "*WAI", f":FETC:ARR:CURR? (@{ch})",
                                *tail)
        currents = to_floats(data, self.label)
        if len(currents) != n:
            raise InstrumentError(f"{self.label}: list returned {len(currents)} of {n} points",
                                  instrument=self.label, text=data[:80])
        return currents

    def safe(self) -> None:
        ch = self.channel
        self._quiet(f":SOUR{ch}:VOLT 0;:OUTP{ch} OFF")
        self.output_on = False

    def _list(self, voltages_V: Sequence[float]) -> list[float]:
        return [self._volts(x) for x in np.asarray(voltages_V, dtype=float).ravel()]

    def _volts(self, voltage_V: float) -> float:
        return v.magnitude(voltage_V, self.VOLTAGE_MAX_V, quantity="voltage_V", unit="V")

    def _require_output(self) -> None:
        if not self.output_on:
            raise ConfigError(f"{self.label}: output is off; configure() then output(True)",
                              key="output")
