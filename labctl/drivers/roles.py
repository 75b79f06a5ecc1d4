"""The three instrument roles of a probe station, as small interfaces.

HardwareArray talks only to these; each driver implements one role in the
instrument's own command set.  Every role object is a context manager whose exit
leaves it safe (outputs off, sources at zero / matrix open).  Setters validate
strictly and raise ``LimitError``; nothing is clipped.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

log = logging.getLogger(__name__)


class Instrument(ABC):
    """What every role shares: identity, error queue, safe shutdown, round-trip count."""

    #: VISA (or serial) round trips made so far: writes and queries each count one
    round_trips: int = 0
    #: why the last safe() could not confirm its commands (after a reconnect and a retry);
    #: None when it could.  The caller says it once, for every instrument together.
    shutdown_error: str | None = None

    @abstractmethod
    def identify(self) -> str:
        """The instrument's identity string (``*IDN?`` or equivalent)."""

    @abstractmethod
    def errors(self) -> list[tuple[int, str]]:
        """Drain the instrument's error queue: (code, message) pairs, empty when clean."""

    @abstractmethod
    def safe(self) -> None:
        """Outputs off, sources to zero / all routes open.  Must not raise on a dead link."""

    #: the instruments this driver speaks to: a regular expression matched (ignoring case)
    #: at the start of the ``*IDN?`` answer; None: not checked (test doubles)
    IDENTITY: ClassVar[str | None] = None
    #: the same in words, for the error when another instrument answers
    IDENTITY_EXPECTED: ClassVar[str] = ""

    def identity_problem(self, identity: str) -> str | None:
        """None if ``identity`` is an instrument this driver speaks to, else what it expects."""
        if self.IDENTITY is None or re.match(self.IDENTITY, identity.strip(), re.IGNORECASE):
            return None
        return self.IDENTITY_EXPECTED or self.IDENTITY

    def clear_errors(self) -> list[tuple[int, str]]:
        """Read and clear what an earlier session left in the error queue (at open)."""
        return self.errors()

    def close(self) -> None:
        self.safe()

    def _confirm(self, what: str, send: Callable[[], object]) -> None:
        """Safety path: ``send()`` and wait until it ran; never raises.  On a failure
        (dropped link, stall) the link is reopened once and ``what`` sent again, so outputs
        go off even after a link fault; what still failed is kept in
        :attr:`shutdown_error`."""
        for attempt in (1, 2):
            try:
                send()
                self.shutdown_error = None
                return
            except Exception as e:  # noqa: BLE001 -- safety code must not raise on a dead link
                log.debug("%s: %s failed during shutdown (attempt %d)",
                          getattr(self, "label", self), what, attempt, exc_info=True)
                self.shutdown_error = f"{what} not confirmed: {e}"
            link: Any = getattr(self, "transport", None)   # every driver's; not a test double's
            if attempt == 1 and link is not None:
                try:
                    link.reconnect()
                except Exception as e:  # noqa: BLE001
                    log.debug("reconnect failed", exc_info=True)
                    self.shutdown_error = f"{what} not sent: reconnect failed: {e}"
                    return

    def __enter__(self) -> Instrument:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SourceMeter(Instrument):
    """DC source-measure unit: compliance first, then output on, sweeps run by the instrument."""

    @abstractmethod
    def configure(self, *, compliance_A: float, nplc: float = 0.01) -> None:
        """Set current compliance (and integration) before any output goes on."""

    @abstractmethod
    def output(self, on: bool) -> None: ...

    @abstractmethod
    def measure_current(self, voltage_V: float) -> float:
        """Source ``voltage_V`` (output must be on), measure one current in A."""

    @abstractmethod
    def sweep(self, voltages_V: Sequence[float]) -> np.ndarray:
        """Run a staircase inside the instrument and read the buffer back: current per step."""


class PulseGenerator(Instrument):
    """Fires identical voltage pulses of a set width (2.5 us is below every SMU's minimum)."""

    @abstractmethod
    def configure_pulse(self, *, amplitude_V: float, width_s: float, count: int = 1) -> None:
        """Levels, width, burst count; negative amplitudes pulse below zero."""

    @abstractmethod
    def output(self, on: bool) -> None: ...

    @abstractmethod
    def fire(self) -> None:
        """One trigger: emit the configured burst and wait for it to finish."""


class SwitchMatrix(Instrument):
    """Routes instrument inputs to device lines.  A route is (input_port, output_port)."""

    @abstractmethod
    def connect(self, routes: Sequence[tuple[int, int]], *, exclusive: bool = True) -> None:
        """Close ``routes`` (opening everything else first when ``exclusive``)."""

    @abstractmethod
    def open_all(self) -> None: ...

    @abstractmethod
    def closed(self) -> list[tuple[int, int]]:
        """Routes closed now, as the instrument reports them."""
