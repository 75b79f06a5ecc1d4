"""An analog tile: one weight matrix on one Array, read and written only through the interface.

Weights live in the conductances of ``array`` (rows = layer inputs, columns = layer outputs).
The weight of a cell is measured against a *reference conductance*:

    w = (G - G_ref) / g_unit,   g_unit = (g_max_S - g_min_S) / 2,

so the nominal window maps to w in [-1, 1] when G_ref is mid-window.  ``G_ref`` is either one
value (``"mid"``: the middle of the window, as a fixed reference column would give) or one
value per cell (``"symmetry-point"``: each device's symmetry point, measured through the
Array by :mod:`labctl.pipelines.train.calibrate`; on a chip this is a second array programmed
to those conductances, read in the same cycle, the zero-shifted reference of Tiki-Taka v2 and
residual learning).  The reference current ``V @ G_ref`` is subtracted digitally.

Forward and backward passes follow aihwkit's ``IOParameters`` (Rasch et al., AICAS 2021):
noise management by the largest input of each sample (ABS_MAX), a ``dac_bits`` input DAC,
additive output noise ``out_noise`` (in weight x input units), an ``adc_bits`` ADC clipping at
``out_bound`` and iterative bound management (a saturated sample is re-read with halved
inputs).  Updates are stochastic pulse trains (:mod:`.pulses`) applied with one
``pulse_outer`` call per direction when the backend is OuterProductCapable, else per-cell
``pulse`` calls with per-cell counts.  Column reads for transfers are one-hot MVMs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labctl.array import Array, Cells, OuterProductCapable
from labctl.errors import ConfigError
from labctl.normals import standard_normal_f32
from labctl.pipelines.train.pulses import PulseCounts, coincidence_counts, line_counts

REFERENCES = ("mid", "symmetry-point")


@dataclass(frozen=True)
class TileConfig:
    """Peripheral and pulse settings; defaults are aihwkit's PresetIOParameters and seed 004."""

    dac_bits: int = 7            # aihwkit inp_res = 1/(2^7 - 2)
    adc_bits: int = 9            # aihwkit out_res = 1/(2^9 - 2)
    out_noise: float = 0.06      # aihwkit IOParameters.out_noise default
    out_bound: float = 12.0      # aihwkit IOParameters.out_bound default
    bound_iterations: int = 3    # iterative bound management: halve the input up to 3 times
    read_voltage_V: float | None = None  # None: the array's own read voltage
    set_V: float = 1.35          # open-loop set pulse of seed 004 (devices.md section 1) [B]
    reset_V: float = 1.3         # open-loop reset pulse of seed 004 [B]
    width_s: float = 2.5e-6      # seed 004 pulse width (setup limit) [A]

    def validate(self) -> None:
        for bits in (self.dac_bits, self.adc_bits):   # 24: as inference (finer is ideal: 0)
            if bits != 0 and not 2 <= bits <= 24:
                raise ConfigError(f"--dac-bits/--adc-bits must be 0 (ideal) or 2..24, got "
                                  f"{bits}", key="dac_bits")
        if self.out_noise < 0 or self.out_bound <= 0:
            raise ConfigError("--out-noise must be >= 0 and --out-bound > 0", key="out_noise")
        if self.set_V <= 0 or self.reset_V <= 0 or self.width_s <= 0:
            raise ConfigError("set_V, reset_V and width_s must be > 0", key="set_V")


class AnalogTile:
    """Forward/backward MVMs, pulsed updates and reads of one weight matrix on one Array."""

    def __init__(self, array: Array, cfg: TileConfig, rng: np.random.Generator,
                 name: str = "tile") -> None:
        info = array.info
        self.array = array
        self.cfg = cfg
        self.rng = rng
        self.name = name
        self.rows, self.cols = info.rows, info.cols
        self.v_read_V = float(cfg.read_voltage_V or info.read_voltage_V)
        self.g_unit_S = (info.g_max_S - info.g_min_S) / 2.0
        self.g_ref_S: float | np.ndarray = (info.g_max_S + info.g_min_S) / 2.0
        self.dw_min = 2.0 / 20.0  # replaced by the calibrated step (weight units)
        self.pulses = 0           # training pulses sent to this array
        self.calibration_pulses = 0
        self._outer = isinstance(array, OuterProductCapable)
        self._dac_levels = 2 ** (cfg.dac_bits - 1) - 1 if cfg.dac_bits else 0
        self._adc_step = 2 * cfg.out_bound / (2 ** cfg.adc_bits - 2) if cfg.adc_bits else 0.0

    # --- reference and state ------------------------------------------------------------------
    def set_reference(self, g_ref_S: float | np.ndarray) -> None:
        if isinstance(g_ref_S, np.ndarray) and g_ref_S.shape != (self.rows, self.cols):
            raise ValueError(f"reference of shape {g_ref_S.shape} for a "
                             f"{self.rows}x{self.cols} tile")
        self.g_ref_S = g_ref_S

    def state(self) -> dict[str, Any]:
        ref = self.g_ref_S
        return {"g_ref_S": ref if isinstance(ref, np.ndarray) else float(ref),
                "dw_min": float(self.dw_min), "pulses": int(self.pulses),
                "calibration_pulses": int(self.calibration_pulses)}

    def load_state(self, s: dict[str, Any]) -> None:
        ref = s["g_ref_S"]
        self.g_ref_S = np.asarray(ref, dtype=float) if np.ndim(ref) else float(ref)
        self.dw_min = float(s["dw_min"])
        self.pulses = int(s["pulses"])
        self.calibration_pulses = int(s.get("calibration_pulses", 0))

    # --- analog reads -------------------------------------------------------------------------
    def _dac(self, x: np.ndarray) -> np.ndarray:
        if not self._dac_levels:
            return x
        return np.rint(x * self._dac_levels) / self._dac_levels

    def _adc(self, y: np.ndarray) -> np.ndarray:
        b = self.cfg.out_bound
        if self._adc_step:
            y = np.rint(y / self._adc_step) * self._adc_step
        return np.clip(y, -b, b)

    def _analog(self, xq: np.ndarray, transpose: bool,
                rows: np.ndarray | None = None) -> np.ndarray:
        """Normalised inputs in [-1, 1] -> weight-unit outputs with output noise, before the ADC.

        ``rows``: ``xq`` is one-hot, 1 on line ``rows[i]`` of sample i (a column read), so
        the reference current is the read voltage times those lines' references (exactly
        what the product gives).
        """
        v = xq * self.v_read_V
        i_A = self.array.mvm(v, transpose=transpose)
        ref = self.g_ref_S
        if rows is not None and not transpose:
            i_ref = (ref[rows] if isinstance(ref, np.ndarray) else ref) * self.v_read_V
        elif isinstance(ref, np.ndarray):
            r = ref.T if transpose else ref
            lines = np.flatnonzero(np.any(v != 0, axis=0))
            # few driven lines (sparse inputs): only their reference rows contribute
            i_ref = v[:, lines] @ r[lines] if lines.size * 4 <= v.shape[1] else v @ r
        else:
            i_ref = ref * v.sum(axis=1, keepdims=True)
        y = (i_A - i_ref) / (self.v_read_V * self.g_unit_S)
        if self.cfg.out_noise:
            y += self.cfg.out_noise * standard_normal_f32(self.rng, y.size).reshape(y.shape)
        return y

    def mvm(self, x: np.ndarray, *, transpose: bool = False, manage: bool = True) -> np.ndarray:
        """``x @ W`` (or ``x @ W.T`` with ``transpose``) in weight units, through the array."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if manage:
            scale = np.abs(x).max(axis=1)
            scale[scale == 0] = 1.0
            xn = x / scale[:, None]
        else:
            scale, xn = np.ones(x.shape[0]), x
        y = self._analog(self._dac(xn), transpose)
        gain = np.ones(x.shape[0])
        for _ in range(self.cfg.bound_iterations if manage else 0):
            sat = np.flatnonzero(np.any(np.abs(y) >= self.cfg.out_bound, axis=1))
            if sat.size == 0:
                break
            gain[sat] *= 2.0
            y[sat] = self._analog(self._dac(xn[sat] / gain[sat, None]), transpose)
        return self._adc(y) * (gain * scale)[:, None]

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.mvm(x)

    def backward(self, d: np.ndarray) -> np.ndarray:
        return self.mvm(d, transpose=True)

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Weights of the given rows (one input line each), read with one-hot MVMs: (k, cols)."""
        rows = np.asarray(rows, dtype=np.int64)
        onehot = np.zeros((rows.size, self.rows))
        onehot[np.arange(rows.size), rows] = 1.0
        # = self.mvm(onehot, manage=False): the DAC passes 0 and 1 unchanged, no scaling
        return self._adc(self._analog(onehot, False, rows))

    def read_weights(self) -> np.ndarray:
        """All weights from a conductance read of every cell (for maps, not for training)."""
        g = self.array.read(Cells.all()).reshape(self.rows, self.cols)
        return (g - self.g_ref_S) / self.g_unit_S

    def read_conductance_S(self) -> np.ndarray:
        return self.array.read(Cells.all()).reshape(self.rows, self.cols)

    # --- pulsed writes ------------------------------------------------------------------------
    def update(self, x: np.ndarray, d: np.ndarray, lr: float | np.ndarray, bl_max: int) -> int:
        """Stochastic pulse-train update ``W <- W - lr x^T d``; returns the pulses sent."""
        counts = coincidence_counts(x, d, lr, self.dw_min, bl_max, self.rng)
        return self.apply(counts)

    def update_lines(self, rows: np.ndarray, d: np.ndarray, lr: float | np.ndarray,
                     bl_max: int) -> int:
        """The same update with one-hot inputs, ``W[rows] <- W[rows] - lr d``; returns the
        pulses sent (:func:`~labctl.pipelines.train.pulses.line_counts`)."""
        counts = line_counts((self.rows, self.cols), rows, d, lr, self.dw_min, bl_max,
                             self.rng)
        return self.apply(counts)

    def apply(self, counts: PulseCounts, *, calibration: bool = False) -> int:
        """Send exactly ``counts.up`` set and ``counts.down`` reset pulses to each cell."""
        n = counts.total
        if n == 0:
            return 0
        up, down = counts.up, counts.down
        both = (up > 0) & (down > 0)
        if not both.any():
            self._send(counts, up - down)
        else:  # cells pulsed both ways: the two directions as two steps, in random order
            first_up = self.rng.random() < 0.5
            self._send(counts, np.where(both, up if first_up else -down, up - down))
            pick = np.flatnonzero(both)
            rest = PulseCounts(counts.shape, counts.idx[pick], up[pick], down[pick])
            self._send(rest, -rest.down if first_up else rest.up)
        if calibration:
            self.calibration_pulses += n
        else:
            self.pulses += n
        return n

    def _send(self, counts: PulseCounts, signed: np.ndarray) -> None:
        """Signed pulses (positive = set) on the cells ``counts.idx``."""
        c = self.cfg
        if self._outer:
            # the listed cells: the backend need not scan the whole array for them
            self.array.pulse_outer(counts.cells(signed), c.width_s,  # type: ignore[attr-defined]
                                   set_V=c.set_V, reset_V=c.reset_V)
            return
        keep = signed != 0
        r, k = np.divmod(counts.idx[keep], self.cols)
        n = signed[keep]
        if r.size:
            self.array.pulse(Cells.at(r, k), np.where(n > 0, c.set_V, -c.reset_V), c.width_s,
                             count=np.abs(n))

    def pulse_all(self, sign: int, *, calibration: bool = True) -> None:
        """One identical pulse on every cell (symmetry-point settling)."""
        c = self.cfg
        amp = c.set_V if sign > 0 else -c.reset_V
        self.array.pulse(Cells.all(), amp, c.width_s)
        if calibration:
            self.calibration_pulses += self.rows * self.cols
        else:
            self.pulses += self.rows * self.cols
