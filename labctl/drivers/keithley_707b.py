"""Keithley 707B/708B switching matrix (TSP), our own driver (qcodes has none).

Channels are ``<slot><row letter><2-digit column>`` -- ``1A01`` is slot 1, row A,
column 1 (reference/instruments.md section 6.1).  A route ``(input, output)`` is row
``input`` (A = 1: the instrument side) and column ``output`` (the device lines);
columns continue across slots, so with 12-column cards output 13 is ``2A01``.
``channel.exclusiveclose`` opens everything else first; ``channel.getclose`` answers
the closed list ``;``-separated or ``nil``.  Each switch is one round trip.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from labctl.drivers import validators as v
from labctl.drivers.roles import SwitchMatrix
from labctl.drivers.transport import Transport
from labctl.drivers.tsp import TspInstrument
from labctl.errors import InstrumentError

ROW_LETTERS = "ABCDEFGH"
_SPEC_RE = re.compile(r"^([1-6])([A-H])(\d\d)$")


class Keithley707B(TspInstrument, SwitchMatrix):
    """A 707B (6 slots) or 708B (1 slot) with identical row x column cards (e.g. 7174A 8x12)."""

    #: what ``*IDN?`` answers (checked when a bench opens)
    IDENTITY = r"keithley instruments[^,]*,\s*model 70[78]b\b"
    IDENTITY_EXPECTED = "a Keithley 707B/708B switching matrix"

    def __init__(self, transport: Transport, *, rows: int = 8, columns: int = 12,
                 slots: int = 1, first_slot: int = 1, label: str | None = None) -> None:
        self.rows = v.integer(rows, 1, 8, quantity="rows")
        self.columns = v.integer(columns, 1, 12, quantity="columns")
        self.first_slot = v.integer(first_slot, 1, 6, quantity="first_slot")
        self.slots = v.integer(slots, 1, 7 - self.first_slot, quantity="slots")
        super().__init__(transport, label=label)

    def spec(self, route: tuple[int, int]) -> str:
        """``(input, output)`` -> channel specifier such as ``1A01`` (LimitError if outside)."""
        inp = v.integer(route[0], 1, self.rows, quantity="matrix input (row)")
        out = v.integer(route[1], 1, self.columns * self.slots, quantity="matrix output (column)")
        slot, col = divmod(out - 1, self.columns)
        return f"{self.first_slot + slot}{ROW_LETTERS[inp - 1]}{col + 1:02d}"

    def route(self, spec: str) -> tuple[int, int]:
        """Channel specifier -> ``(input, output)``."""
        m = _SPEC_RE.match(spec.strip())
        if m is None:
            raise InstrumentError(f"{self.label}: unexpected channel {spec!r}",
                                  instrument=self.label, text=spec)
        slot, row, col = int(m.group(1)), m.group(2), int(m.group(3))
        return ROW_LETTERS.index(row) + 1, (slot - self.first_slot) * self.columns + col

    def connect(self, routes: Sequence[tuple[int, int]], *, exclusive: bool = True) -> None:
        specs = ",".join(self.spec(r) for r in routes)
        if not specs and not exclusive:
            return
        verb = "exclusiveclose" if exclusive else "close"
        self._run(f'channel.{verb}("{specs}")', "waitcomplete()")

    def open_all(self) -> None:
        self._run('channel.open("allslots")', "waitcomplete()")

    def closed(self) -> list[tuple[int, int]]:
        reply = self._ask('print(channel.getclose("allslots"))').strip()
        if reply in ("nil", ""):
            return []
        return sorted(self.route(s) for s in reply.split(";") if s.strip())

    def safe(self) -> None:
        self._quiet('channel.open("allslots")')
