"""Role objects wired straight to an EmulatedBench (no wire protocol): tests of the
HardwareArray's sequencing and of the bench's routing physics that run in milliseconds.

They implement the roles of ``labctl.drivers.roles`` with strict validators, as the real
drivers do; every call counts one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labctl.drivers.roles import PulseGenerator, SourceMeter, SwitchMatrix
from labctl.errors import LimitError
from labctl.sim_backend.emulator.bench import EmulatedBench


class DirectSMU(SourceMeter):
    def __init__(self, bench: EmulatedBench, role: str, max_V: float = 200.0) -> None:
        self.bench, self.role, self.max_V = bench, role, max_V
        self.compliance_A = 1e-4
        self.level_V = 0.0
        self.on = False
        self.round_trips = 0
        self.log: list[str] = []

    def _push(self) -> None:
        self.bench.set_source(self.role, on=self.on, level_V=self.level_V,
                              compliance_A=self.compliance_A)

    def identify(self) -> str:
        self.round_trips += 1
        return f"direct SMU {self.role}"

    def errors(self) -> list[tuple[int, str]]:
        self.round_trips += 1
        return []

    def safe(self) -> None:
        self.on, self.level_V = False, 0.0
        self.log.append("safe")
        self._push()

    def configure(self, *, compliance_A: float, nplc: float = 0.01) -> None:
        if not 0 < compliance_A <= 1.5:
            raise LimitError("compliance out of range", quantity="compliance", value=compliance_A)
        self.round_trips += 1
        self.compliance_A = compliance_A
        self.log.append(f"configure {compliance_A:g}")
        self._push()

    def output(self, on: bool) -> None:
        self.round_trips += 1
        self.on = on
        self.log.append(f"output {on}")
        self._push()

    def measure_current(self, voltage_V: float) -> float:
        if abs(voltage_V) > self.max_V:
            raise LimitError("level out of range", quantity="voltage", value=voltage_V)
        self.round_trips += 1
        self.level_V = voltage_V
        self._push()
        return self.bench.measure_current(self.role)

    def sweep(self, voltages_V: Sequence[float]) -> np.ndarray:
        self.round_trips += 1
        i = self.bench.sweep(self.role, voltages_V, self.compliance_A)
        self.level_V = float(voltages_V[-1])
        self._push()
        return i


class DirectPulser(PulseGenerator):
    def __init__(self, bench: EmulatedBench) -> None:
        self.bench = bench
        self.cfg = (0.0, 1e-6, 1)
        self.on = False
        self.round_trips = 0

    def identify(self) -> str:
        self.round_trips += 1
        return "direct pulser"

    def errors(self) -> list[tuple[int, str]]:
        self.round_trips += 1
        return []

    def safe(self) -> None:
        self.on = False
        self.bench.set_source("pulse", on=False, level_V=0.0, compliance_A=0.0)

    def configure_pulse(self, *, amplitude_V: float, width_s: float, count: int = 1) -> None:
        if abs(amplitude_V) > 10 or not 16e-9 <= width_s <= 1000:
            raise LimitError("pulse out of range", quantity="pulse", value=amplitude_V)
        self.round_trips += 1
        self.cfg = (amplitude_V, width_s, count)

    def output(self, on: bool) -> None:
        self.round_trips += 1
        self.on = on
        self.bench.set_source("pulse", on=on, level_V=0.0, compliance_A=0.0)

    def fire(self) -> None:
        self.round_trips += 1
        if self.on:
            self.bench.apply_pulse("pulse", *self.cfg)


class DirectMatrix(SwitchMatrix):
    def __init__(self, bench: EmulatedBench) -> None:
        self.bench = bench
        self.round_trips = 0

    def identify(self) -> str:
        self.round_trips += 1
        return "direct matrix"

    def errors(self) -> list[tuple[int, str]]:
        self.round_trips += 1
        return []

    def safe(self) -> None:
        self.bench.matrix_open_all()

    def connect(self, routes: Sequence[tuple[int, int]], *, exclusive: bool = True) -> None:
        self.round_trips += 1
        (self.bench.matrix_set if exclusive else self.bench.matrix_close)(routes)

    def open_all(self) -> None:
        self.round_trips += 1
        self.bench.matrix_open_all()

    def closed(self) -> list[tuple[int, int]]:
        self.round_trips += 1
        return sorted(self.bench.closed)


def direct_instruments(bench: EmulatedBench) -> dict[str, object]:
    out: dict[str, object] = {"smu": DirectSMU(bench, "smu"), "pulse": DirectPulser(bench),
                              "matrix": DirectMatrix(bench)}
    if "gate" in bench.station.instruments:
        out["gate"] = DirectSMU(bench, "gate")
    return out
