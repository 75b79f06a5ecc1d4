"""A station's pace: the time its Array operations took per cell, recorded and re-applied.

Why this exists: a station addresses one cell at a time through its switching matrix, so a
symmetry-point run of 2,100 pulse-and-read steps on 32 cells takes tens of seconds, and the
die relaxes meanwhile (a cell read ~20 ms after its pulse has moved by the relaxation's
sub-second onset).  The simulator's clock moves only with explicit waits, so the same
command replayed on it measures a die that never had that time.  A station run records
here how long each kind of operation took per cell; the simulator, given that pace,
advances its clock by it after each operation, and the die has the time it had on the
station.  A leaf module: the drivers record, the simulator applies, the commands carry it.

Kinds and what one *cell operation* is (the same count on both sides):
``pulse`` one cell pulsed (its pulse train, whatever its count), ``read`` one cell read,
``sweep`` one voltage point of one cell's sweep, ``mvm`` one input of one cell's product.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

KINDS = ("pulse", "read", "sweep", "mvm")

#: root attribute of a run file: ``{kind: [cell operations, seconds]}`` over all sessions
ATTRIBUTE = "operation_time"


class OperationTimes:
    """Cell operations and the wall-clock seconds they took, per kind (a station's record)."""

    def __init__(self, totals: Mapping[str, Any] | None = None) -> None:
        self.totals: dict[str, list[float]] = {}
        for kind, (ops, seconds) in (totals or {}).items():
            if kind in KINDS:
                self.add(kind, int(ops), float(seconds))

    def add(self, kind: str, ops: int, seconds: float) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown operation kind {kind!r}")
        if ops > 0:
            t = self.totals.setdefault(kind, [0, 0.0])
            t[0] += int(ops)
            t[1] += max(float(seconds), 0.0)

    def __add__(self, other: OperationTimes) -> OperationTimes:
        out = OperationTimes(self.totals)
        for kind, (ops, seconds) in other.totals.items():
            out.add(kind, int(ops), seconds)
        return out

    def per_operation_s(self) -> dict[str, float]:
        """Seconds per cell operation of each kind that was performed."""
        return {k: s / n for k, (n, s) in self.totals.items() if n > 0}

    def to_json(self) -> str:
        return json.dumps({k: [int(n), float(s)] for k, (n, s) in self.totals.items()})

    @classmethod
    def from_json(cls, text: str | bytes | None) -> OperationTimes:
        if not text:
            return cls()
        return cls(json.loads(text))


def check_pace(pace_s: Mapping[str, Any]) -> dict[str, float]:
    """``{kind: seconds per cell operation}``, validated (ValueError names what is wrong)."""
    out: dict[str, float] = {}
    for kind, v in pace_s.items():
        if kind not in KINDS:
            raise ValueError(f"unknown operation kind {kind!r} (known: {', '.join(KINDS)})")
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ValueError(f"the {kind} pace must be a finite time >= 0 s, got {v!r}")
        out[kind] = float(v)
    return out
