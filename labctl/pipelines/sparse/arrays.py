"""Several Arrays as one backend, and a rectangle of one die seen as an Array of its own.

The sparse-training run needs two arrays per layer and per trained network.  The runner
(:func:`labctl.protocols.base.run`) drives one backend object: :class:`ArrayBank` closes every
member, describes every member for the run file and, when every member can be snapshotted,
snapshots them all in a checkpoint so that a simulated run resumes exactly.  On a bench with
one die the CLI tiles the layers onto it with :class:`ArrayWindow`; a window drives only its
own rows and reads only its own columns (the other rows at 0 V).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from labctl.array import (Array, ArrayInfo, Cells, FloatArray, OuterProductCapable, Snapshottable,
                          SweepResult)


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
    def info(self) -> ArrayInfo:
        return max((a.info for a in self.arrays.values()), key=lambda i: i.rows * i.cols)

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


class ArrayWindow:
    """Rows ``row0:row0+rows`` and columns ``col0:col0+cols`` of ``parent`` as an Array."""

    def __init__(self, parent: Array, row0: int, col0: int, rows: int, cols: int) -> None:
        p = parent.info
        if not (0 <= row0 and row0 + rows <= p.rows and 0 <= col0 and col0 + cols <= p.cols):
            raise ValueError(f"window {rows}x{cols} at ({row0}, {col0}) is outside the "
                             f"{p.rows}x{p.cols} array")
        self.parent, self.row0, self.col0 = parent, row0, col0
        self._info = replace(p, rows=rows, cols=cols,
                             description=f"{rows}x{cols} window at ({row0}, {col0}) of "
                             f"{p.description}")

    @property
    def info(self) -> ArrayInfo:
        return self._info

    def _cells(self, cells: Cells) -> Cells:
        r, c = cells.indices(self._info.shape)
        return Cells.at(r + self.row0, c + self.col0)

    def sweep(self, cells: Cells, voltages_V: npt.ArrayLike, *, gate_V: float,
              compliance_A: float) -> SweepResult:
        return self.parent.sweep(self._cells(cells), voltages_V, gate_V=gate_V,
                                 compliance_A=compliance_A)

    def pulse(self, cells: Cells, amplitude_V: float | npt.ArrayLike, width_s: float, *,
              gate_V: float | None = None, count: int | npt.ArrayLike = 1) -> None:
        self.parent.pulse(self._cells(cells), amplitude_V, width_s, gate_V=gate_V, count=count)

    def read(self, cells: Cells, *, voltage_V: float | None = None,
             gate_V: float | None = None) -> FloatArray:
        return self.parent.read(self._cells(cells), voltage_V=voltage_V, gate_V=gate_V)

    def mask(self, cells: Cells, enabled: bool | npt.ArrayLike) -> None:
        self.parent.mask(self._cells(cells), enabled)

    def mvm(self, inputs_V: npt.ArrayLike, *, transpose: bool = False) -> FloatArray:
        x = np.atleast_2d(np.asarray(inputs_V, dtype=float))
        p = self.parent.info
        (n_in, o_in), (n_out, o_out) = ((p.cols, self.col0), (p.rows, self.row0)) if transpose \
            else ((p.rows, self.row0), (p.cols, self.col0))
        full = np.zeros((x.shape[0], n_in))
        full[:, o_in:o_in + x.shape[1]] = x
        width = self._info.rows if transpose else self._info.cols
        out = np.asarray(self.parent.mvm(full, transpose=transpose))[:, o_out:o_out + width]
        return out[0] if np.ndim(inputs_V) == 1 else out

    def pulse_outer(self, counts: npt.ArrayLike, width_s: float, *, set_V: float,
                    reset_V: float) -> None:
        """Parallel update on the parent when it can, else cell by cell in this window."""
        n = np.asarray(counts, dtype=np.int64)
        if isinstance(self.parent, OuterProductCapable):
            full = np.zeros(self.parent.info.shape, np.int64)
            full[self.row0:self.row0 + n.shape[0], self.col0:self.col0 + n.shape[1]] = n
            self.parent.pulse_outer(full, width_s, set_V=set_V, reset_V=reset_V)
            return
        sel = n != 0
        if sel.any():
            amp = np.where(n[sel] > 0, abs(set_V), -abs(reset_V))
            self.pulse(Cells.from_mask(sel), amp, width_s, count=np.abs(n[sel]))

    def wait(self, seconds: float) -> None:
        self.parent.wait(seconds)

    def now(self) -> float:
        return self.parent.now()

    def close(self) -> None:
        """The die is closed by its owner (the bank)."""

    def describe(self) -> dict[str, Any]:
        return {**self.parent.describe(), "window": [self.row0, self.col0, self._info.rows,
                                                     self._info.cols]}


def tile(shapes: list[tuple[str, int, int]], die: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """Place rectangles on a die, shelf by shelf (row bands); ``name -> (row0, col0)``.

    Raises ValueError when they do not fit.
    """
    placed: dict[str, tuple[int, int]] = {}
    row0 = col = band = 0
    for name, rows, cols in sorted(shapes, key=lambda s: -s[1]):
        if col + cols > die[1]:
            row0, col, band = row0 + band, 0, 0
        if row0 + rows > die[0] or cols > die[1]:
            raise ValueError(f"the arrays need more than the {die[0]}x{die[1]} die "
                             f"({name}: {rows}x{cols} does not fit)")
        placed[name] = (row0, col)
        col += cols
        band = max(band, rows)
    return placed
