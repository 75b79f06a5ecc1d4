"""Several Arrays of one pipeline presented as one backend to the protocol runner.

Training needs one array per tile (two per layer for Tiki-Taka and residual learning), sparse
training two per layer and network.  :func:`labctl.protocols.base.run` drives one backend
object: the bank closes every member (or the die behind them, ``owners``), describes every
member for the run file and, when every member can be snapshotted, snapshots them all in a
checkpoint so that a simulated run resumes exactly.
"""

from __future__ import annotations

from typing import Any

from labctl.array import Array, ArrayInfo, Snapshottable


class ArrayBank:
    """Named arrays; ``info`` is the largest member's (the runner sizes checkpoints by it).

    ``owners`` are the objects actually closed (the die behind windows, or the members)."""

    def __init__(self, arrays: dict[str, Array], owners: list[Any] | None = None) -> None:
        if not arrays:
            raise ValueError("an array bank needs at least one array")
        self.arrays = dict(arrays)
        self.owners = list(owners) if owners is not None else list(self.arrays.values())

    def __getitem__(self, name: str) -> Array:
        return self.arrays[name]

    def __contains__(self, name: str) -> bool:
        return name in self.arrays

    @property
    def names(self) -> list[str]:
        return list(self.arrays)

    @property
    def info(self) -> ArrayInfo:
        return max((a.info for a in self.arrays.values()), key=lambda i: i.rows * i.cols)

    @property
    def cells(self) -> int:
        return sum(a.info.rows * a.info.cols for a in self.arrays.values())

    def describe(self) -> dict[str, Any]:
        return {"backend": "bank", "arrays": {n: a.describe() for n, a in self.arrays.items()}}

    def close(self) -> None:
        errors = []
        for a in self.owners:
            try:
                a.close()
            except Exception as e:  # noqa: BLE001 - close every member even if one fails
                errors.append(e)
        if errors:
            raise errors[0]

    def __enter__(self) -> ArrayBank:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SnapshottableBank(ArrayBank):
    """A bank whose members can all be snapshotted (simulated arrays)."""

    def snapshot(self) -> dict[str, Any]:
        return {n: a.snapshot() for n, a in self.arrays.items()}  # type: ignore[attr-defined]

    def restore(self, state: dict[str, Any]) -> None:
        for n, a in self.arrays.items():
            a.restore(state[n])  # type: ignore[attr-defined]


def make_bank(arrays: dict[str, Array], owners: list[Any] | None = None) -> ArrayBank:
    if owners is None and all(isinstance(a, Snapshottable) for a in arrays.values()):
        return SnapshottableBank(arrays)
    return ArrayBank(arrays, owners)
