"""Shared plumbing of the SCPI drivers: batched commands with the error check in-line.

Settings are sent as one ``;``-chained message that ends in the error query, so a batch
of settings plus its error check costs a single round trip:
``:SOUR:FUNC VOLT;:SOUR:VOLT:ILIM 0.0001;:SYST:ERR?`` -> ``0,"No error"``.
Queries in a batch answer in order, ``;``-separated (IEEE 488.2 response message).
"""

from __future__ import annotations

import logging
import re

from labctl.drivers.roles import Instrument
from labctl.drivers.transport import Transport
from labctl.errors import InstrumentError, InstrumentTimeout

log = logging.getLogger(__name__)

_ERROR_RE = re.compile(r'^\s*([+-]?\d+)\s*,\s*"?(.*?)"?\s*$')


def sweep_step_s(nplc: float, line_hz: float = 50.0) -> float:
    """Generous time per instrument-run sweep step (integration plus settling), for timeouts."""
    return 2.0 * nplc / line_hz + 2e-3


def split_response(reply: str) -> list[str]:
    """Split a response message on ``;`` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in reply:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts]


def parse_error(reply: str, instrument: str = "") -> tuple[int, str]:
    """``-113,"Undefined header"`` -> (-113, "Undefined header")."""
    m = _ERROR_RE.match(reply)
    if m is None:
        raise InstrumentError(f"{instrument}: unparseable error-queue reply {reply!r}",
                              instrument=instrument, text=reply)
    return int(m.group(1)), m.group(2)


def to_float(text: str, instrument: str = "") -> float:
    """A numeric reply as float; a garbled one raises InstrumentError (never a bare ValueError)."""
    try:
        return float(text)
    except ValueError:
        raise InstrumentError(f"{instrument}: unparseable numeric reply {text!r}",
                              instrument=instrument, text=text) from None


def to_floats(text: str, instrument: str = "") -> list[float]:
    """A comma-separated numeric reply as floats."""
    return [to_float(x, instrument) for x in text.split(",") if x.strip()]


class ScpiInstrument(Instrument):
    """Base of the SCPI drivers: identity, error queue, batched checked commands."""

    error_query = ":SYST:ERR?"

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
        found: list[tuple[int, str]] = []
        for _ in range(64):
            code, text = parse_error(self._ask(self.error_query), self.label)
            if code == 0:
                break
            found.append((code, text))
        return found

    def clear_errors(self) -> list[tuple[int, str]]:
        """Drain the queue (``:SYST:ERR?``); when it held errors, ``*CLS`` clears any rest."""
        found = self.errors()
        if found:
            self.transport.query("*CLS;*OPC?")
        return found

    def _ask(self, command: str) -> str:
        """One query; a timeout is diagnosed from the error queue when the link is alive."""
        try:
            return self.transport.query(command)
        except InstrumentTimeout as exc:
            self._diagnose(exc, command)
            raise

    def _diagnose(self, exc: InstrumentTimeout, command: str) -> None:
        """A query that times out is often a rejected command: raise the queued error."""
        try:
            code, text = parse_error(self.transport.query(self.error_query), self.label)
        except InstrumentError:
            return
        if code != 0:
            raise InstrumentError(f"{self.label}: error {code} {text!r} after {command!r}",
                                  instrument=self.label, code=code, text=text) from exc

    def _run(self, *commands: str) -> list[str]:
        """Send ``commands`` plus the error query as one message; return the query answers.

        Raises InstrumentError (with the instrument's code and text) if the error queue
        is not empty afterwards; further queued errors are drained and logged.
        """
        message = ";".join((*commands, self.error_query))
        parts = split_response(self._ask(message))
        code, text = parse_error(parts[-1], self.label)
        if code != 0:
            more = self.errors()
            if more:
                log.warning("%s: further queued errors %s", self.label, more)
            raise InstrumentError(f"{self.label}: error {code} {text!r} after {message[:120]!r}",
                                  instrument=self.label, code=code, text=text)
        return parts[:-1]

    def _quiet(self, command: str) -> None:
        """Safety path: send ``command`` and wait until it ran; never raises.

        On a failure (dropped link, stall) the link is reopened once and the command
        sent again, so outputs go off even after a link fault.
        """
        self._confirm(repr(command), lambda: self.transport.query(command + ";*OPC?"))
