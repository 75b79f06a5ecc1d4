"""A rectangle of one die seen as an Array of its own, and the tiling of layers onto a die.

The sparse-training run needs two arrays per layer and per trained network; on a bench with
one die the CLI tiles the layers onto it with :class:`ArrayWindow` and hands the windows to
:func:`labctl.pipelines.array_bank.make_bank` with the die as owner.  A window drives only its
own rows and reads only its own columns (the other rows at 0 V).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from labctl.array import Array, ArrayInfo, Cells, FloatArray, OuterProductCapable, SweepResult


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

    def pulse_outer(self, counts: Any, width_s: float, *, set_V: float,
                    reset_V: float) -> None:
        """Parallel update on the parent when it can, else cell by cell in this window."""
        if hasattr(counts, "toarray"):  # CellCounts or scipy.sparse
            counts = counts.toarray()
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
