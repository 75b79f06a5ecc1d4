"""Emulated Keithley 707B/708B switching matrix (TSP; reference/instruments.md 6.1, 6.3).

``channel.close/open/exclusiveclose/exclusiveslotclose/getclose/reset`` with channel
lists (``"1A01,1B02"``), ranges (``"1A01:1C03"`` is the rectangle), ``"slotN"`` and
``"allslots"``; ``getclose`` answers ``;``-joined or ``nil``.  A malformed or absent
channel queues 1115 [mem: 707B parameter error] and switches nothing.  Every change is
reported to the bench as (row, column) routes: row A = input 1; columns continue across
slots (``2A01`` is output ``columns + 1`` when ``first_slot`` is 1).
"""

from __future__ import annotations

import re
from typing import Any

from labctl.sim_backend.emulator.base import EmulatorError
from labctl.sim_backend.emulator.bench_api import routes_of
from labctl.sim_backend.emulator.tsp import TspEmulator, TspNode

BAD_CHANNEL = (1115, "Parameter error: invalid channel list")
ROWS = "ABCDEFGH"
_CHANNEL_RE = re.compile(r"^([1-6])([A-Ha-h])(\d\d)$")

Channel = tuple[int, int, int]  # slot, row index (0-based), column (1-based)


class ChannelNode(TspNode):
    """``channel``: the switching functions and attributes."""

    OFF, ON = 0, 1
    BREAK_BEFORE_MAKE, MAKE_BEFORE_BREAK = 1, 2

    def __init__(self, emulator: Keithley707BEmulator) -> None:
        self._emulator = emulator
        self.connectrule = 1
        self.connectsequential = 0
        self._seal()

    def close(self, spec: str) -> None:
        self._emulator.switch(set(self._emulator.parse(spec)), exclusive=False)

    def open(self, spec: str) -> None:
        chans = self._emulator.parse(spec)
        self._emulator.apply(self._emulator.closed - set(chans))

    def exclusiveclose(self, spec: str) -> None:
        self._emulator.switch(set(self._emulator.parse(spec, allow_empty=True)), exclusive=True)

    def exclusiveslotclose(self, spec: str) -> None:
        chans = set(self._emulator.parse(spec, allow_empty=True))
        slots = {c[0] for c in chans}
        keep = {c for c in self._emulator.closed if c[0] not in slots}
        self._emulator.apply(keep | chans)

    def getclose(self, spec: str) -> str | None:
        wanted = set(self._emulator.parse(spec))
        names = [self._emulator.name(c) for c in sorted(self._emulator.closed & wanted)]
        return ";".join(names) if names else None

    def getstate(self, spec: str) -> str:
        chans = self._emulator.parse(spec)
        return ",".join("1" if c in self._emulator.closed else "0" for c in chans)

    def reset(self, spec: str) -> None:
        self.open(spec)


class Keithley707BEmulator(TspEmulator):
    """A 707B with ``slots`` identical ``rows`` x ``columns`` cards from ``first_slot`` on."""

    model = "707B"

    def __init__(self, instrument_id: str, bench: Any, *, serial: str = "EMU0001",
                 rows: int = 8, columns: int = 12, slots: int = 1, first_slot: int = 1) -> None:
        self.rows, self.columns = int(rows), int(columns)
        self.installed = range(int(first_slot), int(first_slot) + int(slots))
        self.closed: set[Channel] = set()
        super().__init__(instrument_id, bench, serial=serial)

    def define(self, g: Any) -> None:
        g.channel = self.channel = ChannelNode(self)
        card = f"7174A,{self.rows}x{self.columns} low-current matrix (emulated)"
        g.slot = {n: _Slot(card if n in self.installed else "Empty Slot") for n in range(1, 7)}

    def reset(self) -> None:
        self.apply(set())

    def is_safe(self) -> bool:
        return not self.closed

    # -- channel lists -----------------------------------------------------------------
    def parse(self, spec: Any, *, allow_empty: bool = False) -> list[Channel]:
        text = str(spec).strip()
        if not text:
            if allow_empty:
                return []
            raise EmulatorError(*BAD_CHANNEL)
        out: list[Channel] = []
        for item in (s.strip() for s in text.split(",")):
            out.extend(self._item(item))
        return out

    def _item(self, item: str) -> list[Channel]:
        word = item.lower()
        if word == "allslots":
            return self._slot_channels(self.installed)
        if word.startswith("slot") and word[4:].isdigit():
            n = int(word[4:])
            if n not in self.installed:
                raise EmulatorError(*BAD_CHANNEL)
            return self._slot_channels([n])
        if ":" in item:
            a, b = (self._one(x) for x in item.split(":", 1))
            if a[0] != b[0]:
                raise EmulatorError(*BAD_CHANNEL)
            return [(a[0], r, c) for r in range(min(a[1], b[1]), max(a[1], b[1]) + 1)
                    for c in range(min(a[2], b[2]), max(a[2], b[2]) + 1)]
        return [self._one(item)]

    def _one(self, text: str) -> Channel:
        m = _CHANNEL_RE.match(text.strip())
        if m is None:
            raise EmulatorError(*BAD_CHANNEL)
        slot, row, col = int(m.group(1)), ROWS.index(m.group(2).upper()), int(m.group(3))
        if slot not in self.installed or row >= self.rows or not 1 <= col <= self.columns:
            raise EmulatorError(*BAD_CHANNEL)
        return slot, row, col

    def _slot_channels(self, slots: Any) -> list[Channel]:
        return [(s, r, c) for s in slots for r in range(self.rows)
                for c in range(1, self.columns + 1)]

    def name(self, channel: Channel) -> str:
        return f"{channel[0]}{ROWS[channel[1]]}{channel[2]:02d}"

    # -- switching ---------------------------------------------------------------------
    def switch(self, chans: set[Channel], *, exclusive: bool) -> None:
        self.apply(chans if exclusive else self.closed | chans)

    def apply(self, closed: set[Channel]) -> None:
        if closed != self.closed or not hasattr(self, "_reported"):
            self.closed = set(closed)
            self._reported = True
            self.note("closed " + (";".join(self.name(c) for c in sorted(closed)) or "none"))
            self.bench.matrix_set(self.instrument_id, self.routes())

    def routes(self) -> frozenset[tuple[int, int]]:
        first = self.installed.start
        return routes_of((r + 1, (s - first) * self.columns + c) for s, r, c in self.closed)

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "closed": sorted(self.routes())}


class _Slot(TspNode):
    def __init__(self, idn: str) -> None:
        self.idn = idn
        self._seal()
