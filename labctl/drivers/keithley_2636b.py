"""Keithley 2636B (2600B series, TSP/Lua): reads, trigger-model sweeps, on-box program-verify.

Commands and limits follow qcodes' ``Keithley2600`` family driver (the 2636B ranges
below are its tables) and the 2600B reference manual (reference/instruments.md
section 2).  A read is one round trip, a sweep of up to 1000 points is one round trip
(``listv`` + trigger model + ``printbuffer``).  The program-verify loop of devices.md
runs inside the instrument (section 2.7): the script reads the cell, fires the external
pulse generator through a digio trigger line (set or reset line), and repeats until the
conductance is in the band -- one round trip per cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labctl.drivers import validators as v
from labctl.drivers.roles import SourceMeter
from labctl.drivers.scpi import sweep_step_s, to_float, to_floats
from labctl.drivers.transport import Transport
from labctl.drivers.tsp import TspInstrument
from labctl.errors import ConfigError, InstrumentError, LimitError

#: name of the function the verify script defines in the instrument's Lua runtime
VERIFY_FUNCTION = "labctl_pv"

#: the on-instrument program-verify loop (devices.md "closed-loop identical-pulse programming");
#: prints the pulses fired, the last read, the error count and how many pulses were sets
VERIFY_SCRIPT = f"""\
function {VERIFY_FUNCTION}(smu, vread, glo, ghi, nmax, setline, resetline, settle)
  local k = 0
  local ks = 0
  smu.source.levelv = vread
  local g = smu.measure.i() / vread
  while k < nmax and (g < glo or g > ghi) do
    smu.source.levelv = 0
    if g < glo then
      digio.trigger[setline].assert()
      ks = ks + 1
    else
      digio.trigger[resetline].assert()
    end
    delay(settle)
    k = k + 1
    smu.source.levelv = vread
    g = smu.measure.i() / vread
  end
  smu.source.levelv = 0
  print(k, g, errorqueue.count, ks)
end"""


@dataclass(frozen=True)
class VerifyOutcome:
    """What the on-instrument loop reports for one cell."""

    pulses: int
    conductance_S: float
    converged: bool
    set_pulses: int          # of ``pulses``, those on the set line (the rest were resets)


class Keithley2636B(TspInstrument, SourceMeter):
    """One channel (``smua`` or ``smub``) of a 2636B as a voltage source measuring current."""

    #: what ``*IDN?`` answers (checked when a bench opens)
    IDENTITY = r"keithley instruments[^,]*,\s*model 26\d\d[ab]\b"
    IDENTITY_EXPECTED = "a Keithley 2600A/B-series SourceMeter such as the 2636B"

    #: |V| limit of the 200 V range [src: qcodes _Keithley_2600 _vlimit_minmax["2636B"]]
    VOLTAGE_MAX_V = 200.0
    #: current-limit range [src: qcodes _Keithley_2600 _ilimit_minmax["2636B"]]
    COMPLIANCE_RANGE_A = (100e-12, 1.5)
    #: measure.nplc range [src: 2600B manual; qcodes Keithley2600Channel.nplc vals]
    NPLC_RANGE = (0.001, 25.0)
    #: points per listv sweep command [mem: keeps one message well under the input buffer]
    MAX_SWEEP_POINTS = 1000
    #: digital I/O trigger lines [src: 2600B manual, digio.trigger[1..14]]
    DIGIO_LINES = (1, 14)

    def __init__(self, transport: Transport, *, channel: str = "a",
                 label: str | None = None) -> None:
        channel = str(v.choice(str(channel).lower(), ("a", "b"), quantity="channel"))
        super().__init__(transport, label=label)
        self.channel = channel
        self.smu = f"smu{channel}"
        self.compliance_A: float | None = None
        self.nplc = 1.0
        self.output_on = False
        self.script_loaded = False

    def channel_driver(self, channel: str) -> Keithley2636B:
        """A driver for the other channel on the same link (e.g. ``smub`` for a gate)."""
        return Keithley2636B(self.transport, channel=channel, label=f"{self.label}:{channel}")

    def configure(self, *, compliance_A: float, nplc: float = 0.01) -> None:
        c = v.number(compliance_A, *self.COMPLIANCE_RANGE_A, quantity="compliance_A", unit="A")
        n = v.number(nplc, *self.NPLC_RANGE, quantity="nplc")
        s = self.smu
        self._run(f"{s}.source.func = {s}.OUTPUT_DCVOLTS",
                  f"{s}.source.autorangev = {s}.AUTORANGE_ON",
                  f"{s}.source.levelv = 0", f"{s}.source.limiti = {v.fmt(c)}",
                  f"{s}.measure.autorangei = {s}.AUTORANGE_ON", f"{s}.measure.nplc = {v.fmt(n)}")
        self.compliance_A, self.nplc = c, n

    def output(self, on: bool) -> None:
        if on and self.compliance_A is None:
            raise LimitError(f"{self.label}: output on before a compliance is set",
                             quantity="compliance_A")
        s = self.smu
        self._run(f"{s}.source.output = {s}.OUTPUT_{'ON' if on else 'OFF'}")
        self.output_on = bool(on)

    def source_voltage(self, voltage_V: float) -> None:
        """Hold a DC level (e.g. a gate bias) without measuring."""
        self._run(f"{self.smu}.source.levelv = {v.fmt(self._volts(voltage_V))}")

    def measure_current(self, voltage_V: float) -> float:
        self._require_output()
        (reading,) = self._run(f"{self.smu}.source.levelv = {v.fmt(self._volts(voltage_V))}",
                               values=f"{self.smu}.measure.i()")
        return to_float(reading, self.label)

    def sweep(self, voltages_V: Sequence[float]) -> np.ndarray:
        """A trigger-model list sweep per chunk, read back with ``printbuffer``."""
        volts = [self._volts(x) for x in np.asarray(voltages_V, dtype=float).ravel()]
        self._require_output()
        out: list[float] = []
        for k in range(0, len(volts), self.MAX_SWEEP_POINTS):
            out.extend(self._sweep_chunk(volts[k:k + self.MAX_SWEEP_POINTS]))
        return np.asarray(out, dtype=float)

    def _sweep_chunk(self, volts: list[float]) -> list[float]:
        s, n = self.smu, len(volts)
        buf = f"{s}.nvbuffer1"
        message = " ".join((
            f"{buf}.clear()", f"{buf}.appendmode = 0",
            f"{s}.trigger.source.listv({{{', '.join(v.fmt(x) for x in volts)}}})",
            f"{s}.trigger.source.action = {s}.ENABLE",
            f"{s}.trigger.measure.i({buf})", f"{s}.trigger.measure.action = {s}.ENABLE",
            f"{s}.trigger.endsweep.action = {s}.SOURCE_IDLE",
            f"{s}.trigger.count = {n}", f"{s}.trigger.arm.count = 1",
            f"{s}.trigger.initiate()", "waitcomplete()",
            f"printbuffer(1, {buf}.n, {buf}.readings)", "print(errorqueue.count)"))
        with self.transport.patience(self.transport.timeout_s + n * sweep_step_s(self.nplc)):
            data = self._ask(message)
            count = int(to_float(self.transport.read(), self.label))
        if count > 0:
            code, text = self._next_error()
            raise InstrumentError(f"{self.label}: error {code} {text!r} in sweep",
                                  instrument=self.label, code=code, text=text)
        currents = to_floats(data, self.label)
        if len(currents) != n:
            raise InstrumentError(f"{self.label}: sweep returned {len(currents)} of {n} points",
                                  instrument=self.label, text=data[:80])
        return currents

    # -- the on-instrument program-verify loop -----------------------------------------
    def load_verify_script(self, *, set_line: int, reset_line: int,
                           trigger_pulse_s: float = 10e-6) -> None:
        """Store the verify loop (``loadscript``), run it to define the function, set the lines."""
        lines = [self._line(set_line, "set_line"), self._line(reset_line, "reset_line")]
        if lines[0] == lines[1]:
            raise LimitError("set_line and reset_line must differ", quantity="digio line")
        width = v.number(trigger_pulse_s, 1e-6, 1.0, quantity="trigger_pulse_s", unit="s")
        setup = " ".join(f"digio.trigger[{n}].mode = digio.TRIG_RISINGA "
                         f"digio.trigger[{n}].pulsewidth = {v.fmt(width)}" for n in lines)
        # one message: the script lines, endscript, then a line that runs it and reports
        self._run(f"loadscript {VERIFY_FUNCTION}_loader\n{VERIFY_SCRIPT}\nendscript\n"
                  f"{VERIFY_FUNCTION}_loader()", setup)
        self.script_loaded = True
        self._lines = tuple(lines)

    def program_verify(self, *, read_voltage_V: float, g_low_S: float, g_high_S: float,
                       max_pulses: int, settle_s: float = 10e-6) -> VerifyOutcome:
        """Run the loop on the routed cell: read, fire set/reset line, repeat until in band."""
        self._require_output()
        if not self.script_loaded:
            raise ConfigError(f"{self.label}: call load_verify_script() first", key="script")
        vr = self._volts(read_voltage_V)
        if vr == 0.0:
            raise LimitError("read_voltage_V must be non-zero", quantity="read_voltage_V", value=0)
        lo = v.number(g_low_S, 0.0, 1.0, quantity="g_low_S", unit="S")
        hi = v.number(g_high_S, lo, 1.0, quantity="g_high_S", unit="S")
        n = v.integer(max_pulses, 0, 100000, quantity="max_pulses")
        settle = v.number(settle_s, 0.0, 10.0, quantity="settle_s", unit="s")
        call = (f"{VERIFY_FUNCTION}({self.smu}, {v.fmt(vr)}, {v.fmt(lo)}, {v.fmt(hi)}, {n}, "
                f"{self._lines[0]}, {self._lines[1]}, {v.fmt(settle)})")
        budget = self.transport.timeout_s + (n + 1) * (settle + 2 * sweep_step_s(self.nplc))
        with self.transport.patience(budget):
            fields = self._ask(call).split("\t")
        if len(fields) != 4:
            raise InstrumentError(f"{self.label}: unexpected verify reply {fields!r}",
                                  instrument=self.label, text="\t".join(fields))
        if int(to_float(fields[2], self.label)) > 0:
            code, text = self._next_error()
            raise InstrumentError(f"{self.label}: error {code} {text!r} in verify loop",
                                  instrument=self.label, code=code, text=text)
        k, g = int(to_float(fields[0], self.label)), to_float(fields[1], self.label)
        return VerifyOutcome(pulses=k, conductance_S=g, converged=lo <= g <= hi,
                             set_pulses=int(to_float(fields[3], self.label)))

    def safe(self) -> None:
        s = self.smu
        self._quiet(f"{s}.source.levelv = 0 {s}.source.output = {s}.OUTPUT_OFF")
        self.output_on = False

    def qcodes_instrument(self, name: str = "keithley_2636b") -> Any:
        """qcodes' own ``Keithley2636B`` driver on this driver's link (for interactive use)."""
        from labctl.drivers.qcodes_bridge import qcodes_instrument

        return qcodes_instrument("Keithley", "Keithley2636B", name, self.transport)

    def _line(self, line: int, quantity: str) -> int:
        return v.integer(line, *self.DIGIO_LINES, quantity=quantity)

    def _volts(self, voltage_V: float) -> float:
        return v.magnitude(voltage_V, self.VOLTAGE_MAX_V, quantity="voltage_V", unit="V")

    def _require_output(self) -> None:
        if not self.output_on:
            raise ConfigError(f"{self.label}: output is off; configure() then output(True)",
                              key="output")
