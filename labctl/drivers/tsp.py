"""Shared plumbing of the TSP (Lua) drivers: statements plus one ``print`` per round trip.

TSP has no query syntax: a query is ``print(expr)`` and the instrument answers one line
(TAB between values).  Each batch ends by printing ``errorqueue.count`` so settings and
their error check share a round trip.  A Lua error aborts the rest of a message, so a
query that never answers is diagnosed from the error queue.
"""

from __future__ import annotations

import logging

from labctl.drivers.roles import Instrument
from labctl.drivers.scpi import to_float
from labctl.drivers.transport import Transport
from labctl.errors import InstrumentError, InstrumentTimeout

log = logging.getLogger(__name__)


class TspInstrument(Instrument):
    """Base of the TSP drivers (2600B SMUs, 707B/708B matrices)."""

    def __init__(self, transport: Transport, *, label: str | None = None) -> None:
        self.transport = transport
        self.label = label or transport.label

    @property
    def round_trips(self) -> int:  # type: ignore[override]  # read-only: the transport counts
        return self.transport.round_trips

    def identify(self) -> str:
        # *IDN? is never refused: a timeout is a dead link, not worth an error-queue query
        return self.transport.query("*IDN?")

    def errors(self) -> list[tuple[int, str]]:
        count = int(to_float(self._ask("print(errorqueue.count)"), self.label))
        return [self._next_error() for _ in range(min(count, 64))]

    def clear_errors(self) -> list[tuple[int, str]]:
        """Read the queue; when it held errors, ``errorqueue.clear()`` empties any rest."""
        found = self.errors()
        if found:
            self._run("errorqueue.clear()")
        return found

    def _next_error(self) -> tuple[int, str]:
        fields = self._ask("print(errorqueue.next())").split("\t")
        try:
            return int(float(fields[0])), fields[1] if len(fields) > 1 else ""
        except ValueError:
            raise InstrumentError(f"{self.label}: unparseable error-queue reply {fields!r}",
                                  instrument=self.label, text="\t".join(fields)) from None

    def _ask(self, command: str) -> str:
        try:
            return self.transport.query(command)
        except InstrumentTimeout as exc:
            self._diagnose(exc, command)
            raise

    def _diagnose(self, exc: InstrumentTimeout, command: str) -> None:
        try:
            count = int(to_float(self.transport.query("print(errorqueue.count)"), self.label))
            if count <= 0:
                return
            code, text = self._next_error()
        except InstrumentError:
            return
        raise InstrumentError(f"{self.label}: error {code} {text!r} after {command[:120]!r}",
                              instrument=self.label, code=code, text=text) from exc

    def _run(self, *statements: str, values: str = "") -> list[str]:
        """Run ``statements`` then ``print(values, errorqueue.count)`` in one message.

        Returns the printed values (TAB-separated fields before the count); raises
        InstrumentError with the instrument's code and text if the error queue is not empty.
        """
        printed = f"print({values}, errorqueue.count)" if values else "print(errorqueue.count)"
        message = " ".join((*statements, printed))
        fields = self._ask(message).split("\t")
        count = int(to_float(fields[-1], self.label))
        if count > 0:
            code, text = self._next_error()
            more = [self._next_error() for _ in range(min(count - 1, 64))]
            if more:
                log.warning("%s: further queued errors %s", self.label, more)
            raise InstrumentError(f"{self.label}: error {code} {text!r} after {message[:120]!r}",
                                  instrument=self.label, code=code, text=text)
        return fields[:-1]

    def _quiet(self, command: str) -> None:
        """Safety path: send ``command`` and wait until it ran; never raises.

        On a failure (dropped link, stall) the link is reopened once and the command
        sent again, so outputs go off even after a link fault.
        """
        self._confirm(repr(command),
                      lambda: self.transport.query(command + " waitcomplete() print(1)"))
