"""SimulatedArray: the Array interface over a vectorised device model and a virtual clock."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from labctl.array import ArrayInfo, CellCounts, Cells, FloatArray, SweepResult
from labctl.errors import ConfigError
from labctl.normals import standard_normal_f32
from labctl.operation_time import check_pace
from labctl.sim_backend.device_model import DeviceModel, State

log = logging.getLogger(__name__)

MAX_SIDE = 1024


@dataclass
class _Moments:
    """Cached read mean and variance of every cell, valid at one clock time and state."""

    t_s: float
    state: State
    mean_S: FloatArray
    var_S2: np.ndarray   # float32
    noisy: bool          # any variance > 0
    mean32_S: np.ndarray | None = None   # float32 copy of mean_S for MVMs, made on first use

    def mean32(self) -> np.ndarray:
        """``mean_S`` as float32 (the MVM's operand), made once and then kept in step."""
        if self.mean32_S is None:
            self.mean32_S = self.mean_S.astype(np.float32)
        return self.mean32_S

    def valid_for(self, t_s: float, state: State) -> bool:
        return self.t_s == t_s and self.state is state


class SimulatedArray:
    """A simulated die: per-cell state arrays, an explicit seeded RNG and a virtual clock.

    Every call validates its voltages against the preset's limits exactly as the
    hardware backend does, so a protocol that would be refused on a bench is
    refused here too.
    """

    def __init__(self, model: DeviceModel, rows: int, cols: int, seed: int = 0,
                 preset_name: str | None = None, preset_source: str | None = None,
                 wire_resistance_ohm: float = 0.0, preset_sha256: str | None = None,
                 pace_s: Mapping[str, float] | None = None) -> None:
        if not (0 < rows <= MAX_SIDE and 0 < cols <= MAX_SIDE):
            raise ConfigError(f"array size {rows}x{cols} is outside 1..{MAX_SIDE} per side",
                              key="rows/cols")
        self.model = model
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.state: State = model.initial_state((rows, cols), self.rng)
        self._t_s = 0.0
        self._preset_name = preset_name or model.name
        self._preset_source = preset_source
        self._preset_sha256 = preset_sha256   # of a preset file: its contents, not just path
        self.wire_resistance_ohm = float(wire_resistance_ohm)
        self.operations = 0  # cell-operations performed (one pulse or read on one cell)
        #: seconds per cell operation by kind (labctl.operation_time): a station's pace,
        #: added to the clock after each operation; empty, the clock moves only with waits
        self.pace_s = check_pace(pace_s or {})
        self._moments_cache: _Moments | None = None  # read mean and variance for MVMs
        self._info = ArrayInfo(rows=rows, cols=cols, technology=model.technology,
                               limits=model.limits, g_min_S=model.g_min_S,
                               g_max_S=model.g_max_S, read_voltage_V=model.read_voltage_V,
                               gate_voltage_V=model.gate_voltage_V,
                               set_polarity=model.set_polarity,
                               selector_resistance_ohm=model.selector_resistance_ohm,
                               description=f"simulated {model.name} {rows}x{cols}")

    # --- Array interface ----------------------------------------------------------------------
    @property
    def info(self) -> ArrayInfo:
        return self._info

    def _pulse_terminal(self) -> str:
        """Where a pulse's amplitude lands, for limit messages: the bit line of a 1T1R cell,
        the write gate of a FeFET (both checked against ``max_voltage_V``)."""
        return "write gate" if self._info.technology == "fefet-2t" else "bit line"

    def _gate(self, gate_V: float | None) -> float:
        g = self._info.gate_voltage_V if gate_V is None else float(gate_V)
        self._info.limits.check_voltage(g, terminal="gate")
        return g

    def sweep(self, cells: Cells, voltages_V: npt.ArrayLike, *, gate_V: float,
              compliance_A: float) -> SweepResult:
        v = np.asarray(voltages_V, dtype=float).ravel()
        self._info.limits.check_voltage(v)
        self._info.limits.check_current(compliance_A)
        g = self._gate(gate_V)
        r, c = cells.indices(self._info.shape)
        i = self.model.sweep(self.state, r, c, v, g, float(compliance_A), self.rng, self._t_s)
        self._moments_cache = None
        self.operations += r.size * v.size
        self._paced("sweep", r.size * v.size)
        return SweepResult(voltage_V=v, current_A=i)

    def pulse(self, cells: Cells, amplitude_V: float | npt.ArrayLike, width_s: float, *,
              gate_V: float | None = None, count: int | npt.ArrayLike = 1) -> None:
        r, c = cells.indices(self._info.shape)
        amp = np.broadcast_to(np.asarray(amplitude_V, dtype=float), r.shape)
        n = np.broadcast_to(np.asarray(count, dtype=np.int64), r.shape)
        if np.any(n < 0):
            raise ValueError("pulse count must be >= 0")
        self._info.limits.check_voltage(amp, terminal=self._pulse_terminal())
        self._info.limits.check_width(float(width_s))
        g = self._gate(gate_V)
        active = (n > 0) & (amp != 0)
        if not np.any(active):
            return
        if not np.all(active):
            r, c, amp, n = r[active], c[active], amp[active], n[active]
        self.model.pulse(self.state, r, c, np.ascontiguousarray(amp), float(width_s), g,
                         np.ascontiguousarray(n), self.rng, self._t_s)
        self._moments_changed(r, c)
        self.operations += int(n.sum())
        self._paced("pulse", r.size)

    def read(self, cells: Cells, *, voltage_V: float | None = None,
             gate_V: float | None = None) -> FloatArray:
        v = self._info.read_voltage_V if voltage_V is None else float(voltage_V)
        self._info.limits.check_voltage(v)
        g = self._gate(gate_V)
        r, c = cells.indices(self._info.shape)
        self.operations += r.size
        g_S = self.model.conductance(self.state, r, c, self.rng, self._t_s, v, g)
        self._paced("read", r.size)
        return g_S

    def mask(self, cells: Cells, enabled: bool | npt.ArrayLike) -> None:
        r, c = cells.indices(self._info.shape)
        en = np.broadcast_to(np.asarray(enabled, dtype=bool), r.shape)
        self.model.mask(self.state, r, c, np.ascontiguousarray(en), self.rng, self._t_s)
        self._moments_cache = None
        self.operations += r.size
        self._paced("pulse", r.size)   # a station masks a 1T1R cell with a pulse train

    def conductance_matrix(self) -> FloatArray:
        """Whole-array conductance as one MVM would see it (read noise included)."""
        return self.model.conductance_matrix(self.state, self.rng, self._t_s)

    def mvm(self, inputs_V: npt.ArrayLike, *, transpose: bool = False) -> FloatArray:
        x = np.asarray(inputs_V, dtype=float)
        squeeze = x.ndim == 1
        x2 = np.atleast_2d(x)
        self._info.limits.check_voltage(x2)
        out = self._mvm(x2, transpose)   # measured at the present time; the clock moves after
        if self.pace_s:
            n_out = self._info.rows if transpose else self._info.cols
            self._paced("mvm", int(np.count_nonzero(x2)) * n_out)
        return out[0] if squeeze else out

    def _mvm(self, x2: FloatArray, transpose: bool) -> FloatArray:
        if self.wire_resistance_ohm == 0:
            lines = np.flatnonzero(np.any(x2 != 0, axis=0))
            if lines.size * 4 <= x2.shape[1]:
                out = self._mvm_lines(x2[:, lines], lines, transpose)
            elif hasattr(self.model, "read_moments"):
                out = self._mvm_moments(x2, transpose)
            else:
                out = None
            if out is not None:
                return out
        if self.wire_resistance_ohm > 0:
            return self._mvm_ir_drop(x2, transpose)
        g = self.conductance_matrix()
        self.operations += g.size * x2.shape[0]
        return x2 @ g.T if transpose else x2 @ g

    def _mvm_ir_drop(self, x: FloatArray, transpose: bool) -> FloatArray:
        """MVM through the wires' resistance (the nodal solve of :mod:`.ir_drop`).

        The solve uses the mean conductances, and each sample gets its own read noise in
        output space, ``sqrt(x**2 @ var) * z``, as in :meth:`_mvm_moments`: one noisy
        conductance matrix for the whole batch would give every input vector the same noise
        (a bench applies each vector as a read of its own).  The noise is taken at the
        input voltages, not the slightly lower cell voltages the wires leave: a
        second-order difference (the drop is a few per cent of V).
        """
        from labctl.sim_backend.ir_drop import mvm_with_ir_drop

        if not hasattr(self.model, "read_moments"):   # no moments: one noisy matrix
            g = self.conductance_matrix()
            self.operations += g.size * x.shape[0]
            return mvm_with_ir_drop(g, x, self.wire_resistance_ohm, transpose=transpose)
        g, var = self._moments()
        out = mvm_with_ir_drop(g, x, self.wire_resistance_ohm, transpose=transpose)
        self.operations += g.size * x.shape[0]
        if var is None:
            return out
        sd = np.sqrt(np.square(x, dtype=np.float32) @ (var.T if transpose else var))
        return out + sd * standard_normal_f32(self.rng, out.size).reshape(out.shape)

    def _mvm_moments(self, x: FloatArray, transpose: bool) -> FloatArray:
        """MVM with the read noise summed in output space: ``x @ G + sqrt(x**2 @ var) * z``.

        Every cell read during the MVM adds independent Gaussian read noise of variance
        ``var`` to its conductance, so output current k of sample b is Gaussian with mean
        ``(x @ G)[b, k]`` and variance ``(x**2 @ var)[b, k]``: drawing that sum directly is
        the same distribution as drawing a noisy conductance per cell, at the cost of one
        normal per output instead of one per cell.  Each sample of the batch is its own read
        (as on a bench, where every input vector is applied separately), so the noise is
        independent across samples.  Both products are float32 (half the time of float64):
        on a 784x256 training tile and MNIST inputs the signal's rounding was 8e-8 of the
        summed current (rms; 4e-7 at most), ~2,000x below the read noise of that sum and
        ~5,000x below the tile's output noise; the result is float64.
        """
        m = self._moments_entry()
        g32 = m.mean32()
        x32 = x.astype(np.float32)
        mean = (x32 @ g32.T if transpose else x32 @ g32).astype(np.float64)
        self.operations += g32.size * x.shape[0]
        if not m.noisy:
            return mean
        var = m.var_S2
        x2 = np.square(x32)
        sd = np.sqrt(x2 @ (var.T if transpose else var))
        return mean + sd * standard_normal_f32(self.rng, mean.size).reshape(mean.shape)

    def _moments(self) -> tuple[FloatArray, np.ndarray | None]:
        """Read mean and float32 variance of every cell (None: no read noise), cached.

        Valid while the state and the clock are unchanged: pulses update the entries of the
        cells they touched (:meth:`_moments_changed`), other writes drop the cache.
        """
        m = self._moments_entry()
        return m.mean_S, (m.var_S2 if m.noisy else None)

    def _moments_entry(self) -> _Moments:
        """The cache of :meth:`_moments`, rebuilt when stale."""
        m = self._moments_cache
        if m is None or not m.valid_for(self._t_s, self.state):
            r, c = Cells.all().indices(self._info.shape)
            g, var = self.model.read_moments(self.state, r, c,  # type: ignore[attr-defined]
                                             self._t_s)
            var32 = var.astype(np.float32).reshape(self._info.shape)
            m = _Moments(self._t_s, self.state, g.reshape(self._info.shape), var32,
                         bool(var32.any()))
            self._moments_cache = m
        return m

    def state_changed(self) -> None:
        """Call after changing ``state`` other than through this class (an emulated bench
        drives the model directly): drops what is derived from it."""
        self._moments_cache = None

    def _moments_changed(self, r: np.ndarray, c: np.ndarray | None = None) -> None:
        """Cells ``(r, c)``, or the flat (row-major) cells ``r`` when ``c`` is None, were
        pulsed: refresh their cached read moments (or drop them)."""
        m = self._moments_cache
        if m is None:
            return
        if not m.valid_for(self._t_s, self.state) or r.size * 4 > m.mean_S.size:
            self._moments_cache = None
            return
        if c is None:
            r, c = np.divmod(r, self._info.cols)
        g, var = self.model.read_moments(self.state, r, c, self._t_s)  # type: ignore[attr-defined]
        m.mean_S[r, c] = g
        if m.mean32_S is not None:
            m.mean32_S[r, c] = g
        m.var_S2[r, c] = var
        m.noisy = m.noisy or bool(np.any(var))

    def _mvm_lines(self, x: FloatArray, lines: np.ndarray, transpose: bool) -> FloatArray:
        """MVM with few driven lines (e.g. one-hot column reads): only their cells are read.

        Same statistics as the full MVM (every model's nominal ``conductance`` equals its
        ``conductance_matrix``), at the cost of the driven cells instead of the whole array.
        """
        rows, cols = self._info.shape
        if transpose:
            r = np.tile(np.arange(rows), lines.size)
            c = np.repeat(lines, rows)
        else:
            r = np.repeat(lines, cols)
            c = np.tile(np.arange(cols), lines.size)
        g = self.model.conductance(self.state, r, c, self.rng, self._t_s,
                                   self._info.read_voltage_V, self._info.gate_voltage_V)
        g = g.reshape(lines.size, rows if transpose else cols)
        self.operations += g.size * x.shape[0]
        return x @ g

    def wait(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("cannot wait a negative time")
        self._t_s += float(seconds)

    def now(self) -> float:
        return self._t_s

    def _paced(self, kind: str, cell_ops: int) -> None:
        """Advance the clock by the time ``cell_ops`` operations of ``kind`` take at the pace
        set (a station's, :mod:`labctl.operation_time`); nothing without one."""
        if self.pace_s and cell_ops:
            self._t_s += self.pace_s.get(kind, 0.0) * cell_ops

    def close(self) -> None:
        """Nothing to switch off on a simulated die."""

    def __enter__(self) -> SimulatedArray:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": "sim", "preset": self._preset_name,
               "preset_source": self._preset_source, "seed": self.seed,
               "rows": self._info.rows, "cols": self._info.cols,
               "technology": self._info.technology}
        if self._preset_sha256:
            out["preset_sha256"] = self._preset_sha256
        if self.pace_s:
            out["pace_s"] = dict(self.pace_s)
        return out

    def pulse_outer(self, counts: Any, width_s: float, *, set_V: float,
                    reset_V: float) -> None:
        """Signed pulse counts per cell in one parallel step (OuterProductCapable).

        ``counts[row, col] > 0`` sends that many set pulses of ``|set_V|``, ``< 0`` that many
        reset pulses of ``|reset_V|``; a :class:`~labctl.array.CellCounts` or a
        ``scipy.sparse`` array lists its cells (duplicates of the latter add up).  On a
        crossbar these are the coincidences of row and column pulse trains (half-select
        scheme); here every cell is updated at once.
        """
        listed = isinstance(counts, CellCounts)
        sparse = not listed and hasattr(counts, "tocoo")   # scipy.sparse, not imported here
        m: Any = counts if listed else counts.tocoo() if sparse else np.asarray(counts)
        if tuple(m.shape) != self._info.shape:
            raise ValueError(f"counts of shape {m.shape} for a {self._info.shape} array")
        for v in (set_V, reset_V):
            self._info.limits.check_voltage(float(v), terminal=self._pulse_terminal())
        self._info.limits.check_width(float(width_s))
        g = self._gate(None)
        cols = self._info.cols
        if listed:
            flat, vals = m.flat, m.values
            if not vals.all():
                keep = vals != 0            # explicit zeros send nothing
                flat, vals = flat[keep], vals[keep]
        elif sparse:
            if not m.has_canonical_format:
                m.sum_duplicates()
            r, c, vals = m.row, m.col, np.asarray(m.data)
            keep = vals != 0                # explicit zeros send nothing
            if not keep.all():
                r, c, vals = r[keep], c[keep], vals[keep]
            flat = r.astype(np.int64) * cols + c
        else:
            dense = m.ravel()
            flat = np.flatnonzero(dense != 0)  # one scan (of a mask: ~6x faster); sparse counts
            vals = dense[flat]
        if vals.size == 0:
            return
        vals = vals.astype(np.int64, copy=False)
        flat = flat.astype(np.int64, copy=False)
        # set and reset cells are disjoint: both directions go to the model in one call
        if hasattr(self.model, "pulse_counts"):   # the model takes flat cells and signs as-is
            self.model.pulse_counts(self.state, flat, vals, set_V, reset_V, float(width_s), g,
                                    self.rng, self._t_s)
        else:
            r, c = np.divmod(flat, cols)
            amp = np.where(vals > 0, abs(set_V), -abs(reset_V))
            self.model.pulse(self.state, r, c, amp, float(width_s), g, np.abs(vals), self.rng,
                             self._t_s)
        self._moments_changed(flat)
        self.operations += int(np.abs(vals).sum())
        self._paced("pulse", vals.size)

    # --- optional capabilities ----------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {"state": {k: v.copy() for k, v in self.state.items()},
                "rng": self.rng.bit_generator.state, "t_s": self._t_s,
                "operations": self.operations}

    def restore(self, snap: dict[str, Any]) -> None:
        self.state = {k: np.array(v) for k, v in snap["state"].items()}
        self._moments_cache = None
        self.rng.bit_generator.state = snap["rng"]
        self._t_s = float(snap["t_s"])
        self.operations = int(snap.get("operations", 0))

