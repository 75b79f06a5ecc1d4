"""The Array interface (DESIGN.md): what every backend implements and all protocols use.

Conventions, shared by every backend:

* Units are SI and names carry them (``voltage_V``, ``width_s``, ``conductance_S``).
* A call addresses many cells at once through a :class:`Cells` selection; per-cell
  inputs and outputs are ordered as :meth:`Cells.indices` returns the cells
  (row-major for rectangles, masks and ``Cells.all``).
* Polarity: a positive pulse amplitude sets / potentiates (conductance up), a
  negative one resets / depresses.  A backend whose stack switches the other way
  round (e.g. eight-wise CMO/HfOx) maps the sign in its wiring, not in protocols.
* ``mvm`` applies voltages to the rows (word/bit lines driven by the DAC) and
  returns the column currents; ``transpose=True`` drives the columns and reads
  the rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

TECHNOLOGIES = ("1t1r-reram", "fefet-2t")


@dataclass(frozen=True)
class Cells:
    """A selection of cells: everything, a rectangle, a boolean mask or index arrays."""

    kind: str
    rows: tuple[int, int] | None = None
    cols: tuple[int, int] | None = None
    mask_: BoolArray | None = field(default=None, compare=False)
    row_index: IntArray | None = field(default=None, compare=False)
    col_index: IntArray | None = field(default=None, compare=False)

    @classmethod
    def all(cls) -> Cells:
        return cls("all")

    @classmethod
    def rect(cls, row_start: int, row_stop: int, col_start: int, col_stop: int) -> Cells:
        """Rows ``row_start:row_stop`` and columns ``col_start:col_stop`` (stop exclusive)."""
        return cls("rect", rows=(row_start, row_stop), cols=(col_start, col_stop))

    @classmethod
    def from_mask(cls, mask: npt.ArrayLike) -> Cells:
        return cls("mask", mask_=np.asarray(mask, dtype=bool))

    @classmethod
    def at(cls, rows: npt.ArrayLike, cols: npt.ArrayLike) -> Cells:
        """Explicit cells, in the order given."""
        r = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        c = np.atleast_1d(np.asarray(cols, dtype=np.int64))
        if r.shape != c.shape:
            raise ValueError(f"row and column index arrays differ in shape: {r.shape} vs {c.shape}")
        return cls("index", row_index=r, col_index=c)

    def indices(self, shape: tuple[int, int]) -> tuple[IntArray, IntArray]:
        """(rows, cols) index arrays of equal length, validated against ``shape``."""
        n_rows, n_cols = shape
        if self.kind == "all":
            r, c = np.divmod(np.arange(n_rows * n_cols, dtype=np.int64), n_cols)
            return r, c
        if self.kind == "rect":
            assert self.rows is not None and self.cols is not None
            (r0, r1), (c0, c1) = self.rows, self.cols
            if not (0 <= r0 < r1 <= n_rows and 0 <= c0 < c1 <= n_cols):
                raise IndexError(f"rectangle rows {r0}:{r1}, cols {c0}:{c1} is outside a "
                                 f"{n_rows}x{n_cols} array")
            rr, cc = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
            return rr.ravel().astype(np.int64), cc.ravel().astype(np.int64)
        if self.kind == "mask":
            assert self.mask_ is not None
            if self.mask_.shape != (n_rows, n_cols):
                raise IndexError(f"mask of shape {self.mask_.shape} for a {n_rows}x{n_cols} array")
            r, c = np.nonzero(self.mask_)
            return r.astype(np.int64), c.astype(np.int64)
        assert self.row_index is not None and self.col_index is not None
        r, c = self.row_index, self.col_index
        if r.size and (r.min() < 0 or r.max() >= n_rows or c.min() < 0 or c.max() >= n_cols):
            raise IndexError(f"cell index outside a {n_rows}x{n_cols} array")
        return r, c

    def count(self, shape: tuple[int, int]) -> int:
        return int(self.indices(shape)[0].size)


@dataclass(frozen=True)
class Limits:
    """Safe operating limits of a chip on a station: checked before any voltage leaves."""

    max_voltage_V: float
    max_gate_voltage_V: float
    max_current_A: float
    min_pulse_width_s: float = 1e-9
    max_pulse_width_s: float = 1.0

    def __post_init__(self) -> None:
        """Every limit a finite positive number, the width range in order (a preset's
        negative voltage limit used to pass, and every voltage then 'exceeded' it)."""
        from labctl.errors import ConfigError

        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not (
                    math.isfinite(v) and v > 0):
                raise ConfigError(f"limits.{f.name} must be a finite number > 0, got {v!r}",
                                  key=f"limits.{f.name}")
        if self.min_pulse_width_s > self.max_pulse_width_s:
            raise ConfigError("limits.min_pulse_width_s exceeds limits.max_pulse_width_s",
                              key="limits.min_pulse_width_s")

    def check_voltage(self, voltage_V: npt.ArrayLike, terminal: str = "bit line") -> None:
        if isinstance(voltage_V, int | float):  # one value (gates, pulse amplitudes): no array
            v = abs(float(voltage_V))
        else:
            a = np.asarray(voltage_V, dtype=float)
            v = max(float(a.max()), -float(a.min())) if a.size else 0.0  # NaN stays NaN
        limit = self.max_gate_voltage_V if terminal == "gate" else self.max_voltage_V
        if math.isfinite(v) and v <= limit:
            return
        from labctl.errors import LimitError

        raise LimitError(f"{terminal} voltage {v:.4g} V exceeds the limit of {limit:.4g} V",
                         quantity=f"{terminal} voltage", value=v, limit=limit)

    def check_current(self, current_A: float) -> None:
        from labctl.errors import LimitError

        if not (0 < current_A <= self.max_current_A):
            raise LimitError(f"compliance {current_A:.4g} A is outside "
                             f"(0, {self.max_current_A:.4g}] A",
                             quantity="compliance", value=current_A, limit=self.max_current_A)

    def check_width(self, width_s: float) -> None:
        from labctl.errors import LimitError

        if not (self.min_pulse_width_s <= width_s <= self.max_pulse_width_s):
            raise LimitError(f"pulse width {width_s:.4g} s is outside "
                             f"[{self.min_pulse_width_s:.4g}, {self.max_pulse_width_s:.4g}] s",
                             quantity="pulse width", value=width_s)


@dataclass(frozen=True)
class ArrayInfo:
    """What a protocol needs to know about the chip it drives."""

    rows: int
    cols: int
    technology: str
    limits: Limits
    g_min_S: float
    g_max_S: float
    read_voltage_V: float = 0.2
    gate_voltage_V: float = 1.2
    description: str = ""
    #: physical bit-line polarity that sets the cell: +1, or -1 for eight-wise (8W) stacks such
    #: as CMO/HfOx where a negative sweep sets.  Sweeps are physical; pulse signs are semantic.
    set_polarity: int = 1
    #: series resistance of the selector in its on state (1T1R triode), 0 when unknown/none
    selector_resistance_ohm: float = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)


@dataclass(frozen=True)
class SweepResult:
    """A quasi-static staircase: ``current_A[cell, step]`` at ``voltage_V[step]``."""

    voltage_V: FloatArray
    current_A: FloatArray


@runtime_checkable
class Array(Protocol):
    """The interface every backend implements (simulated, hardware, replayed)."""

    @property
    def info(self) -> ArrayInfo: ...

    def sweep(self, cells: Cells, voltages_V: npt.ArrayLike, *, gate_V: float,
              compliance_A: float) -> SweepResult:
        """Quasi-static I-V staircase on every selected cell (one cell at a time on a bench).

        Sweep voltages are physical bit-line voltages (source line grounded); use
        ``info.set_polarity`` to sweep in the set or reset direction.
        """
        ...

    def pulse(self, cells: Cells, amplitude_V: float | npt.ArrayLike, width_s: float, *,
              gate_V: float | None = None, count: int | npt.ArrayLike = 1) -> None:
        """Identical voltage pulses; ``amplitude_V`` and ``count`` may be per cell.

        A cell with count 0 or amplitude 0 gets no pulse.
        """
        ...

    def read(self, cells: Cells, *, voltage_V: float | None = None,
             gate_V: float | None = None) -> FloatArray:
        """Conductance in siemens of every selected cell (read noise included)."""
        ...

    def mask(self, cells: Cells, enabled: bool | npt.ArrayLike) -> None:
        """Switch cells in or out of the network (sparsity FeFET; reset/set on 1T1R)."""
        ...

    def mvm(self, inputs_V: npt.ArrayLike, *, transpose: bool = False) -> FloatArray:
        """Analog matrix-vector product: ``inputs_V`` (batch, rows) -> currents (batch, cols).

        With ``transpose`` the inputs are (batch, cols) and the result (batch, rows).
        """
        ...

    def wait(self, seconds: float) -> None:
        """Let time pass: real time on hardware, the virtual clock in the simulator."""
        ...

    def now(self) -> float:
        """The array's clock in seconds; only differences mean anything.  The simulator's is
        virtual (0 when the die is created, restored with it on resume); a station's is
        wall-clock time, so differences hold across processes."""
        ...

    def close(self) -> None:
        """Leave the bench safe: outputs off, sources at zero, matrix open."""
        ...

    def describe(self) -> dict[str, Any]:
        """Backend identity for the run file (preset and seed, or station and instruments)."""
        ...


# --- optional capabilities -------------------------------------------------------------------
# A protocol checks for these with ``isinstance(array, ProgramVerifyCapable)`` etc. and falls
# back to plain Array calls when they are missing.


@runtime_checkable
class ProgramVerifyCapable(Protocol):
    """A backend that runs a whole program-verify loop natively (numpy or an instrument script)."""

    def program_verify(self, cells: Cells, targets_S: npt.ArrayLike, tolerance: float, *,
                       max_pulses: int, set_V: npt.ArrayLike, reset_V: npt.ArrayLike,
                       width_s: float, gate_V: float | None = None
                       ) -> tuple[FloatArray, IntArray] | tuple[FloatArray, IntArray, IntArray]:
        """Returns (final conductance_S, pulses used) per cell; -1 pulses = did not converge.
        A backend that knows them adds a third array: the set pulses among each cell's
        pulses (the rest were resets; a cell that did not converge used ``max_pulses``)."""
        ...


@dataclass(frozen=True)
class CellCounts:
    """A sparse signed pulse-count matrix: ``values[k]`` pulses on flat cell ``flat[k]``.

    The listed cells are distinct and in row-major order.  Training updates name a few
    thousand of 200,000 cells per step; this lists them at no cost, where building a
    ``scipy.sparse`` array costs more than the update of a small array does.
    """

    shape: tuple[int, int]
    flat: IntArray
    values: IntArray

    def toarray(self) -> IntArray:
        out = np.zeros(self.shape, dtype=np.int64)
        out.ravel()[self.flat] = self.values
        return out


@runtime_checkable
class OuterProductCapable(Protocol):
    """A backend that applies a signed pulse-count matrix in one parallel step."""

    def pulse_outer(self, counts: Any, width_s: float, *,
                    set_V: float, reset_V: float) -> None:
        """``counts[row, col]``: positive = that many set pulses, negative = reset pulses.

        ``counts`` is a dense integer matrix, a :class:`CellCounts` or a ``scipy.sparse``
        array (both give the dense one by ``.toarray()``): a sparse update names its cells,
        so a simulator need not scan the whole matrix for them.
        """
        ...


@runtime_checkable
class Snapshottable(Protocol):
    """A backend whose whole state can be saved and restored (resume on the simulator)."""

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...
