"""A one-cell stand-in for the emulated bench: enough physics to see routing and pulses.

The real bench (SimulatedArray behind the emulated matrix) belongs to the HardwareArray
tests; here one resistor-like cell of conductance ``g_S`` sits behind matrix route
``cell_route``: an SMU reads ``V * g_S`` (clamped by compliance) only while that route is
closed (or when no matrix is in play), set pulses raise ``g_S`` by ``step``, reset pulses
lower it.  Trigger lines are forwarded to registered generator emulators.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labctl.sim_backend.emulator.bench_api import BenchBase


class FakeBench(BenchBase):
    def __init__(self, g_S: float = 10e-6, *, cell_route: tuple[int, int] | None = None,
                 step: float = 1.25) -> None:
        self.g_S = g_S
        self.cell_route = cell_route
        self.step = step
        self.routes: dict[str, frozenset[tuple[int, int]]] = {}
        self.pulses: list[tuple[str, int, float, float, int]] = []
        self.levels: list[tuple[str, str, float | None]] = []
        self.lines: dict[int, Any] = {}
        self.max_abs_V = 0.0
        self.waited_s = 0.0

    def routed(self) -> bool:
        if self.cell_route is None:
            return True
        return any(self.cell_route in r for r in self.routes.values())

    def smu_source(self, instrument_id: str, channel: str, voltage_V: float,
                   compliance_A: float) -> float:
        self.max_abs_V = max(self.max_abs_V, abs(voltage_V))
        current = voltage_V * self.g_S if self.routed() else 0.0
        return float(np.clip(current, -compliance_A, compliance_A))

    def smu_level(self, instrument_id: str, channel: str, voltage_V: float | None) -> None:
        self.levels.append((instrument_id, channel, voltage_V))

    def pulse(self, instrument_id: str, channel: int, amplitude_V: float, width_s: float,
              count: int) -> None:
        self.max_abs_V = max(self.max_abs_V, abs(amplitude_V))
        self.pulses.append((instrument_id, channel, amplitude_V, width_s, count))
        if self.routed():
            self.g_S *= (self.step if amplitude_V > 0 else 1 / self.step) ** count

    def matrix_set(self, instrument_id: str, closed_routes: frozenset[tuple[int, int]]) -> None:
        self.routes[instrument_id] = closed_routes

    def trigger_line(self, instrument_id: str, line: int) -> None:
        if line in self.lines:
            self.lines[line].external_trigger()

    def wait(self, seconds: float) -> None:
        self.waited_s += seconds
