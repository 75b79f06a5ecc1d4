"""What an instrument emulator needs from the emulated bench: the chip behind the matrix.

Each emulator acts on the chip only through a :class:`Bench`.  The bench (written with
the HardwareArray) routes every call through the emulated matrix state to one
SimulatedArray, so a routing mistake shows up as wrong physics: an SMU whose input is
not routed to a cell measures ~0 A, a pulse that reaches no cell changes nothing.
Instruments are named by their station ``instrument_id``; SMU channels are ``"a"``/
``"b"`` (2600B) or ``"1"``/``"2"``, generator channels ``1``/``2``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Bench(Protocol):
    """The emulated chip as the instruments see it."""

    def smu_source(self, instrument_id: str, channel: str, voltage_V: float,
                   compliance_A: float) -> float:
        """The SMU drives ``voltage_V`` (compliance ``compliance_A``) and measures: current in A.

        The returned magnitude never exceeds ``compliance_A`` (the SMU clamps).
        """
        ...

    def smu_sweep(self, instrument_id: str, channel: str, voltages_V: np.ndarray,
                  compliance_A: float) -> np.ndarray:
        """A staircase run by the instrument: one current per step."""
        ...

    def smu_pulse(self, instrument_id: str, channel: str, voltages_V: np.ndarray, width_s: float,
                  compliance_A: float) -> np.ndarray:
        """An SMU pulsed list (B2900 ``FUNC:SHAP PULS``): a pulse per value, current at its top."""
        ...

    def smu_level(self, instrument_id: str, channel: str, voltage_V: float | None) -> None:
        """The DC level an SMU output holds changed; ``None`` = output off (e.g. a gate bias)."""
        ...

    def pulse(self, instrument_id: str, channel: int, amplitude_V: float, width_s: float,
              count: int) -> None:
        """A generator emitted ``count`` pulses of ``amplitude_V`` (at the chip) and ``width_s``."""
        ...

    def generator_level(self, instrument_id: str, channel: int, idle_V: float | None) -> None:
        """The DC level a generator channel holds between pulses (at the chip) changed;
        ``None`` = output off."""
        ...

    def matrix_set(self, instrument_id: str, closed_routes: frozenset[tuple[int, int]]) -> None:
        """The closed relays of a matrix are now ``closed_routes`` ((input, output) pairs)."""
        ...

    def trigger_line(self, instrument_id: str, line: int) -> None:
        """An SMU asserted digital trigger line ``line`` (wired to a generator's Trig In)."""
        ...

    def wait(self, seconds: float) -> None:
        """Instrument-side time passed (script ``delay``): advance the chip's clock."""
        ...


class BenchBase:
    """Convenience base: sweeps and SMU pulses as repeated ``smu_source``; no-op notifications."""

    def smu_source(self, instrument_id: str, channel: str, voltage_V: float,
                   compliance_A: float) -> float:
        raise NotImplementedError

    def smu_sweep(self, instrument_id: str, channel: str, voltages_V: np.ndarray,
                  compliance_A: float) -> np.ndarray:
        return np.array([self.smu_source(instrument_id, channel, float(x), compliance_A)
                         for x in np.asarray(voltages_V, dtype=float)])

    def smu_pulse(self, instrument_id: str, channel: str, voltages_V: np.ndarray, width_s: float,
                  compliance_A: float) -> np.ndarray:
        """Approximation: each pulse as a one-point sweep at its level (override for pulses)."""
        return self.smu_sweep(instrument_id, channel, np.asarray(voltages_V, dtype=float),
                              compliance_A)

    def smu_level(self, instrument_id: str, channel: str, voltage_V: float | None) -> None:
        return None

    def pulse(self, instrument_id: str, channel: int, amplitude_V: float, width_s: float,
              count: int) -> None:
        return None

    def generator_level(self, instrument_id: str, channel: int, idle_V: float | None) -> None:
        return None

    def matrix_set(self, instrument_id: str, closed_routes: frozenset[tuple[int, int]]) -> None:
        return None

    def trigger_line(self, instrument_id: str, line: int) -> None:
        return None

    def wait(self, seconds: float) -> None:
        return None


class NullBench(BenchBase):
    """A bench with nothing connected: every SMU reads 0 A (for identity/limit checks)."""

    def smu_source(self, instrument_id: str, channel: str, voltage_V: float,
                   compliance_A: float) -> float:
        return 0.0


def routes_of(pairs: Iterable[tuple[int, int]]) -> frozenset[tuple[int, int]]:
    """A canonical closed-route set."""
    return frozenset((int(a), int(b)) for a, b in pairs)
