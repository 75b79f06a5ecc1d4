"""A home-built relay matrix (probe-card switch box) on a serial line: the labctl protocol.

Line protocol (also in docs/serial-relay-protocol.md).  ASCII, one command per line,
``\\n``-terminated (``\\r\\n`` accepted); every command gets exactly one reply line, so a
lost command is always noticed.  Keywords are case-insensitive.  Routes are
``input,output`` pairs, 1-based: input = matrix row (instrument side), output = column
(device line).

=====================  ==============================  =================================
Command                Reply                            Meaning
=====================  ==============================  =================================
``*IDN?``              ``LABCTL,RELAY-MATRIX,<R>x<C>,<fw>``  identity and size
``*RST``               ``OK``                           open every relay, clear errors
``CLOSE i,o [i,o …]``  ``OK``                           close relays (others unchanged)
``EXCL i,o [i,o …]``   ``OK``                           open all, then close these
``OPEN i,o [i,o …]``   ``OK``                           open these relays
``OPEN ALL``           ``OK``                           open every relay
``CLOSED?``            ``i,o i,o …`` or ``NONE``        closed relays, sorted
``ERR?``               ``<code>,<text>``                oldest queued error; ``0,No error``
=====================  ==============================  =================================

A command that fails replies ``ERR <code>`` and queues ``<code>,<text>``; it changes no
relay (a list is checked whole before anything switches).  Codes: 1 unknown command,
2 malformed argument, 3 route outside the matrix, 4 error queue overflow.  The box
replies only after its relays have settled.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from labctl.drivers import validators as v
from labctl.drivers.roles import SwitchMatrix
from labctl.drivers.transport import Transport
from labctl.errors import InstrumentError

log = logging.getLogger(__name__)
_ROUTE_RE = re.compile(r"^(\d+),(\d+)$")


class SerialRelayMatrix(SwitchMatrix):
    """Driver for the labctl serial relay-matrix protocol above."""

    #: what ``*IDN?`` answers (checked when a bench opens)
    IDENTITY = r"labctl,\s*relay-matrix\b"
    IDENTITY_EXPECTED = "a labctl serial relay matrix (LABCTL,RELAY-MATRIX,...)"

    def __init__(self, transport: Transport, *, rows: int = 8, columns: int = 8,
                 label: str | None = None) -> None:
        self.transport = transport
        self.label = label or transport.label
        self.rows = v.integer(rows, 1, 99, quantity="rows")
        self.columns = v.integer(columns, 1, 99, quantity="columns")

    @property
    def round_trips(self) -> int:  # type: ignore[override]  # read-only: the transport counts
        return self.transport.round_trips

    def identify(self) -> str:
        return self.transport.query("*IDN?")

    def errors(self) -> list[tuple[int, str]]:
        found = []
        for _ in range(64):
            code, _, text = self.transport.query("ERR?").partition(",")
            try:
                number = int(code)
            except ValueError:
                raise InstrumentError(f"{self.label}: unparseable ERR? reply {code!r}",
                                      instrument=self.label, text=code) from None
            if number == 0:
                break
            found.append((number, text))
        return found

    def _command(self, command: str) -> None:
        reply = self.transport.query(command).strip()
        if reply == "OK":
            return
        if reply.startswith("ERR"):
            queued = self.errors()
            code, text = queued[0] if queued else (int(reply[3:] or 0), "")
            raise InstrumentError(f"{self.label}: error {code} {text!r} after {command!r}",
                                  instrument=self.label, code=code, text=text)
        raise InstrumentError(f"{self.label}: unexpected reply {reply!r} to {command!r}",
                              instrument=self.label, text=reply)

    def _pair(self, route: tuple[int, int]) -> str:
        inp = v.integer(route[0], 1, self.rows, quantity="matrix input (row)")
        out = v.integer(route[1], 1, self.columns, quantity="matrix output (column)")
        return f"{inp},{out}"

    def connect(self, routes: Sequence[tuple[int, int]], *, exclusive: bool = True) -> None:
        pairs = " ".join(self._pair(r) for r in routes)
        if not pairs:
            if exclusive:
                self.open_all()
            return
        self._command(f"{'EXCL' if exclusive else 'CLOSE'} {pairs}")

    def disconnect(self, routes: Sequence[tuple[int, int]]) -> None:
        """Open just these relays."""
        pairs = " ".join(self._pair(r) for r in routes)
        if pairs:
            self._command(f"OPEN {pairs}")

    def open_all(self) -> None:
        self._command("OPEN ALL")

    def closed(self) -> list[tuple[int, int]]:
        reply = self.transport.query("CLOSED?").strip()
        if reply.upper() == "NONE":
            return []
        routes = []
        for token in reply.split():
            m = _ROUTE_RE.match(token)
            if m is None:
                raise InstrumentError(f"{self.label}: unparseable CLOSED? reply {reply!r}",
                                      instrument=self.label, text=reply)
            routes.append((int(m.group(1)), int(m.group(2))))
        return sorted(routes)

    def safe(self) -> None:
        """Open every relay; on a link fault reopen the port once and retry.  Never raises."""
        self._confirm("OPEN ALL", lambda: self.transport.query("OPEN ALL"))
