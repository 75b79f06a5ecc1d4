"""Emulated serial relay matrix speaking the labctl line protocol (docs/serial-relay-protocol.md).

Served over TCP like the other emulators; the driver reaches it with the pyserial URL
``socket://127.0.0.1:PORT``, exactly as it would a USB-serial adapter.
"""

from __future__ import annotations

import re
from typing import Any

from labctl.sim_backend.emulator.base import QUEUE_DEPTH, InstrumentEmulator
from labctl.sim_backend.emulator.bench_api import routes_of

UNKNOWN, MALFORMED, OUTSIDE, OVERFLOW = 1, 2, 3, 4
TEXTS = {UNKNOWN: "Unknown command", MALFORMED: "Malformed argument",
         OUTSIDE: "Route outside the matrix", OVERFLOW: "Error queue overflow"}
_PAIR_RE = re.compile(r"^(\d+),(\d+)$")


class _RelayError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(TEXTS[code])
        self.code = code


class SerialRelayEmulator(InstrumentEmulator):
    """A ``rows`` x ``columns`` relay box."""

    model = "RELAY-MATRIX"

    def __init__(self, instrument_id: str, bench: Any, *, serial: str = "EMU0001",
                 rows: int = 8, columns: int = 8) -> None:
        super().__init__(instrument_id, bench, serial=serial)
        self.rows, self.columns = int(rows), int(columns)
        self.closed: set[tuple[int, int]] = set()
        self.bench.matrix_set(self.instrument_id, routes_of(()))

    def is_safe(self) -> bool:
        return not self.closed

    def push_error(self, code: int, text: str) -> None:
        if len(self.error_queue) >= QUEUE_DEPTH:
            self.error_queue[-1] = (OVERFLOW, TEXTS[OVERFLOW])
            return
        self.error_queue.append((int(code), str(text)))

    def handle(self, message: str) -> list[str]:
        verb, _, rest = message.strip().partition(" ")
        try:
            return [self._do(verb.upper(), rest.split())]
        except _RelayError as exc:
            self.push_error(exc.code, TEXTS[exc.code])
            return [f"ERR {exc.code}"]

    def _do(self, verb: str, args: list[str]) -> str:
        if verb == "*IDN?":
            return f"LABCTL,{self.model},{self.rows}x{self.columns},{self.serial}"
        if verb == "*RST":
            self.error_queue.clear()
            return self._apply(set())
        if verb == "ERR?":
            entry = self.pop_error()
            return "0,No error" if entry is None else f"{entry[0]},{entry[1]}"
        if verb == "CLOSED?":
            return " ".join(f"{i},{o}" for i, o in sorted(self.closed)) or "NONE"
        if verb == "OPEN" and [a.upper() for a in args] == ["ALL"]:
            return self._apply(set())
        if verb in ("CLOSE", "EXCL", "OPEN"):
            pairs = self._pairs(args)
            if verb == "CLOSE":
                return self._apply(self.closed | pairs)
            if verb == "EXCL":
                return self._apply(pairs)
            return self._apply(self.closed - pairs)
        raise _RelayError(UNKNOWN)

    def _pairs(self, args: list[str]) -> set[tuple[int, int]]:
        if not args:
            raise _RelayError(MALFORMED)
        pairs = set()
        for token in args:
            m = _PAIR_RE.match(token)
            if m is None:
                raise _RelayError(MALFORMED)
            inp, out = int(m.group(1)), int(m.group(2))
            if not (1 <= inp <= self.rows and 1 <= out <= self.columns):
                raise _RelayError(OUTSIDE)
            pairs.add((inp, out))
        return pairs

    def _apply(self, closed: set[tuple[int, int]]) -> str:
        self.closed = set(closed)
        self.note("closed " + (" ".join(f"{i},{o}" for i, o in sorted(closed)) or "none"))
        self.bench.matrix_set(self.instrument_id, routes_of(self.closed))
        return "OK"

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "closed": sorted(self.closed)}
