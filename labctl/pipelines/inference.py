"""Analog inference on a programmed chip: MVM accuracy now and years later, and why.

Reproduces the benchmark of seed 004 (Falcone et al., arXiv 2502.04524, Fig. 4f and
Methods "HW-aware simulation of analog MVM"; devices.md section 1): random inputs in
[-1, 1] through an input DAC (default 6 bit) onto the rows, the array's column currents
(``Array.mvm``: IR drop on the wires and read noise are the chip's, real or simulated)
through an output ADC (default 8 bit), at t = 1 s, 1 h, 1 d, 1 y and 10 y after the
transfer on the array's clock (virtual in the simulator).

Units.  Weights are normalised by ``w_max`` of the transfer's mapping (``w / w_max`` in
[-1, 1]) and inputs are in [-1, 1], so the floating-point reference is ``y = W x`` with
those; every RMSE is ``sqrt(mean over inputs and outputs of (y_analog - y)^2)`` in these
units, as in the seed (which normalises the weights to [-1, 1]).

Readout.  The DAC drives ``x_q * V_read`` (``V_read`` the chip's read voltage); currents are
turned into outputs by the mapping (reference current ``G_ref * sum(V)`` subtracted, or
``I+ - I-``), the ADC quantises them over +/- ``adc_sigmas`` standard deviations of the
output expected for uniform inputs (known from the weights alone), and partial sums of
tiles are added digitally.  With ``calibration="columns"`` every column gets a
gain and a reference-current correction once, at the first time point: a least-squares
fit of ADC outputs to the intended ``W x`` over separate random calibration inputs.  It
takes out the static part of the IR drop (the row-wire attenuation, which scales a
column's whole current including the reference part) as chips do with per-column
calibration; relaxation after it stays uncorrected.  ``calibration="rows"`` (default) fits
in the same least squares one reference correction per row as well, shared by all columns
of a tile: the readout then subtracts ``sum_i g_i V_i`` instead of ``G_ref * sum(V)``.  It
takes out the part of the column-wire drop common to all columns (rows far from the
amplifiers deliver less of the reference current), which per-column constants cannot; it
costs ``rows`` numbers per tile and one ``rows``-long dot product per input vector, like
``sum(V)`` itself.  At the 64x64 benchmark the IR-drop residual is about 0.035 with it and
0.064 with columns alone.

Breakdown.  Each cause is measured alone, as an RMSE against ``y`` (they add roughly in
quadrature, not linearly):

* ``quantisation`` -- the digital model with only the DAC and ADC: ``ADC(W DAC(x))``;
* ``programming`` -- ``W_prog x`` with ``W_prog`` from the verify reads that ended the
  transfer;
* ``relaxation`` -- ``(W_t - W_prog) x`` with ``W_t`` from ``read_repeats`` averaged reads of
  every cell at time t;
* ``read_noise`` -- ``(W_read - W_t) x`` of single reads about their mean, over the
  ``read_repeats`` reads (with the ``n / (n - 1)`` correction);
* ``ir_drop`` -- the calibrated, unquantised MVM output against ``W_t DAC(x)`` (the same
  chip state through ideal wires), with the read noise of the MVM and of the averaged
  reads removed in quadrature.  On a station, whose MVM adds currents measured cell by cell
  (no IR drop), and on a simulated chip without wire resistance, the same term is named
  ``mvm_vs_reads``: what is left there is the calibration's own error (fitted to noisy,
  quantised outputs) and the estimator's spread, about 0.001-0.002 at the default
  calibration inputs (:func:`auto_calibration_inputs`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from labctl.array import Array, Cells
from labctl.errors import ConfigError
from labctl.pipelines.tiling import Placement, Tile
from labctl.pipelines.weight_mapping import Mapping
from labctl.protocols.analysis.relaxation import read_late as read_late  # shared, re-exported
from labctl.protocols.base import BaseProtocol, RunData, Step

GROUP = "inference"
YEAR_S = 365.25 * 86400.0
TIME_UNITS = (("y", YEAR_S), ("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0))
DEFAULT_TIMES_S = (1.0, 3600.0, 86400.0, YEAR_S, 10 * YEAR_S)
CAUSES = ("quantisation", "programming", "relaxation", "read_noise", "ir_drop")
#: the last cause on a station: its MVM adds currents measured cell by cell
#: (:meth:`labctl.drivers.hardware_array.HardwareArray.mvm`), so there is no IR drop to see,
#: and the term is what the MVM at the input voltages differs from the reads (the I-V's
#: curvature between read and input voltage, sweep noise)
STATION_LAST_CAUSE = "mvm_vs_reads"
CALIBRATIONS = ("rows", "columns", "none")
CALIBRATION_KEYS = ("gain", "offset", "row_reference")


def time_label(t_s: float) -> str:
    """1 -> '1s', 3600 -> '1h', 315576000 -> '10y' (the largest unit that divides it)."""
    for unit, scale in TIME_UNITS:
        q = t_s / scale
        if q >= 1 and abs(q - round(q)) < 1e-9 * q:
            return f"{int(round(q))}{unit}"
    return f"{t_s:g}s"


def parse_times(spec: str) -> tuple[float, ...]:
    """'1s,1h,1d,1y,10y' -> seconds; ConfigError for anything else."""
    items = [s.strip() for s in spec.split(",")]
    if not any(items):
        raise ConfigError("--times: give at least one time (e.g. 1s,1h,1d,1y,10y)", key="times")
    if not all(items):   # "1s,,1h" or "1s,": a time left out by mistake, not nothing
        raise ConfigError(f"--times {spec!r} has an empty item", key="times")
    out: list[float] = []
    for item in items:
        for unit, scale in TIME_UNITS:  # noqa: B007 (scale is used after the break)
            if item.endswith(unit):
                num = item[: -len(unit)]
                break
        else:
            num, scale = item, 1.0
        try:
            t = float(num) * scale
        except ValueError:
            raise ConfigError(f"--times: cannot read {item!r} (use e.g. 1s,1h,1d,1y,10y)",
                              key="times") from None
        if t in out:   # each time is one row of results: a repeat would replace one
            raise ConfigError(f"--times: {item} is given twice", key="times")
        out.append(t)
    return tuple(out)


@dataclass(frozen=True)
class InferenceConfig:
    """Options of an inference run; defaults follow seed 004's benchmark ([A]) or say [C]."""

    transfer_file: str
    dac_bits: int = 6                          # [A]
    adc_bits: int = 8                          # [A]
    inputs: int = 100                          # [A] random input vectors
    input_seed: int = 0
    times_s: tuple[float, ...] = DEFAULT_TIMES_S   # [A] 1 s ... 10 y after programming
    # [A] per segment, applied by the simulator; None on a station (a real chip's wires are
    # its own and not known to labctl)
    wire_resistance_ohm: float | None = 0.35
    adc_sigmas: float = 3.5                    # [C] ADC full scale in expected output sigmas
    calibration: str = "rows"                  # [C] per-row reference + per-column gain, once
    calibration_inputs: int = 0                # 0: auto_calibration_inputs() [C]
    read_repeats: int = 4                      # [C] reads averaged for the ablations

    def validate(self) -> None:
        if not (2 <= self.dac_bits <= 24 and 2 <= self.adc_bits <= 24):
            # signed codes: 1 bit leaves no level besides zero (the MVM was all zeros)
            raise ConfigError("--dac-bits and --adc-bits must be in 2..24 (signed codes)",
                              key="bits")
        if self.inputs < 1:
            raise ConfigError(f"--inputs must be >= 1, got {self.inputs}", key="inputs")
        if not self.times_s or any(not (np.isfinite(t) and t >= 0) for t in self.times_s):
            raise ConfigError("--times must be non-negative and finite", key="times")
        if any(b <= a for a, b in zip(self.times_s, self.times_s[1:], strict=False)):
            raise ConfigError("--times must be distinct and in increasing order", key="times")
        if self.wire_resistance_ohm is not None and self.wire_resistance_ohm < 0:
            raise ConfigError("--wire-resistance-ohm must be >= 0", key="wire_resistance_ohm")
        if self.calibration not in CALIBRATIONS:
            raise ConfigError(f"calibration must be one of {', '.join(CALIBRATIONS)}",
                              key="calibration")
        if not self.adc_sigmas > 0:
            raise ConfigError(f"--adc-sigmas must be > 0, got {self.adc_sigmas:g}",
                              key="adc_sigmas")
        if self.read_repeats < 2:
            raise ConfigError("read_repeats must be >= 2", key="read_repeats")
        if self.calibration_inputs < 0:
            raise ConfigError(f"--calibration-inputs must be >= 1 (0: automatic), got "
                              f"{self.calibration_inputs}", key="calibration_inputs")


@dataclass(frozen=True)
class ChipPlan:
    """What inference needs from the transfer: the intended and programmed matrix, where."""

    weights: np.ndarray              # normalised, w / w_max
    mapping: Mapping
    placement: Placement
    g_programmed_S: np.ndarray       # device matrix: the verify read that ended programming
    pulses: np.ndarray               # per programmed cell
    programmed_at_s: float           # array clock at the end of the transfer


def dac(x: np.ndarray, bits: int) -> np.ndarray:
    """Signed DAC: ``2^(bits-1) - 1`` levels each side of zero over [-1, 1]."""
    levels = 2 ** (bits - 1) - 1
    return np.round(np.clip(x, -1.0, 1.0) * levels) / levels


def adc(y: np.ndarray, bits: int, full_scale: np.ndarray | float) -> np.ndarray:
    """Signed ADC over +/- ``full_scale`` with ``2^(bits-1) - 1`` levels each side; clips."""
    step = np.asarray(full_scale) / (2 ** (bits - 1) - 1)
    return np.clip(np.round(y / step) * step, -full_scale, full_scale)


def _fit_columns(y: np.ndarray, s: np.ndarray, target: np.ndarray) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """Least squares per column of ``a * y + b * s ~ target`` (2x2 normal equations)."""
    a11, a12, a22 = (y * y).sum(0), (y * s[:, None]).sum(0), float(s @ s)
    b1, b2 = (y * target).sum(0), s @ target
    det = a11 * a22 - a12 ** 2
    ok = np.abs(det) > 1e-12 * np.maximum(a11 * a22, 1e-300)
    safe = np.where(ok, det, 1.0)
    return (np.where(ok, (b1 * a22 - a12 * b2) / safe, 1.0),
            np.where(ok, (a11 * b2 - a12 * b1) / safe, 0.0))


def _fit_rows(y: np.ndarray, x: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The per-row reference ``u`` of ``a_j y_j + b_j s + x @ u ~ target_j`` (all j at once).

    For a given ``u`` every column's ``(a_j, b_j)`` is its own 2-parameter fit, so the
    optimal ``u`` minimises ``sum_j |P_j (target_j - x u)|^2`` with ``P_j`` the projection
    off ``span(s, y_j)``: normal equations of size ``rows``, built with one orthonormal
    basis per column.  ``u`` along ``(1, ..., 1)`` is the same as the offsets ``b``; the
    minimum-norm solution is taken.
    """
    s = x.sum(axis=1)
    q1 = s / max(float(np.linalg.norm(s)), 1e-300)
    y2 = y - np.outer(q1, q1 @ y)
    q2 = y2 / np.maximum(np.linalg.norm(y2, axis=0), 1e-300)      # (inputs, cols)
    xq1 = x.T @ q1                                                 # (rows,)
    z = x.T @ q2                                                   # (rows, cols)
    m = y.shape[1]
    a = m * (x.T @ x - np.outer(xq1, xq1)) - z @ z.T
    t_sum = target.sum(axis=1)
    rhs = x.T @ t_sum - xq1 * (q1 @ t_sum) - z @ np.einsum("kj,kj->j", q2, target)
    return np.linalg.lstsq(a, rhs, rcond=None)[0]


def fit_calibration(y: np.ndarray, x: np.ndarray, target: np.ndarray,
                    rows: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gain ``a`` and offset ``b`` per column, reference ``u`` per row (zeros unless ``rows``):
    ``a * y + outer(sum(x), b) + x @ u`` is the least-squares fit of ``target``."""
    u = _fit_rows(y, x, target) if rows else np.zeros(x.shape[1])
    a, b = _fit_columns(y, x.sum(axis=1), target - (x @ u)[:, None])
    return a, b, u


def rms(e: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(e)))) if e.size else float("nan")


class Inference(BaseProtocol):
    """The inference pipeline over one programmed chip (only the Array interface)."""

    name: ClassVar[str] = "inference"

    def __init__(self, config: InferenceConfig, plan: ChipPlan) -> None:
        config.validate()
        if plan.placement.loads != 1:
            raise ConfigError(f"the transfer used {plan.placement.loads} array loads; only the "
                              "last is still on the chip -- inference needs the whole matrix on "
                              "one array: run `labctl program` again on a die that holds it "
                              "(on the simulator: --rows/--cols large enough)", key="transfer")
        super().__init__(config)
        self.plan = plan
        self.tiles = list(plan.placement.tiles)
        g = plan.mapping.devices_per_weight
        self.full_scale = [self._full_scale(t, g) for t in self.tiles]
        self._check_calibration_inputs()
        self._check_calibration_identifiable()

    def calibration_count(self) -> int:
        """The calibration inputs the readout fit uses (--calibration-inputs, or automatic)."""
        return self.config.calibration_inputs or auto_calibration_inputs(
            max(t.shape[0] for t in self.tiles))

    def _check_calibration_inputs(self) -> None:
        """Enough calibration inputs for the fit's unknowns: a gain and an offset per column,
        and with ``rows`` a reference per row of the tile (fewer leave it underdetermined)."""
        cfg = self.config
        n, rows = cfg.calibration_inputs, max(t.shape[0] for t in self.tiles)
        need = {"rows": rows + 2, "columns": 3}.get(cfg.calibration, 0)
        if 0 < n < need:
            raise ConfigError(f"--calibration-inputs {n} is too few for --calibration "
                              f"{cfg.calibration} on a {rows}-row tile: at least {need} (0: "
                              f"automatic, {auto_calibration_inputs(rows)})",
                              key="calibration_inputs")

    def _check_calibration_identifiable(self) -> None:
        """Refuse a tile whose weights the calibration's digital terms reproduce alone.

        The offsets (``b_j * sum(x)``) and, with ``rows``, the row references
        (``x @ u``) fit any ``W = 1 b^T`` (constant columns), or ``W = u 1^T + 1 b^T``
        (rows plus columns): a one-row tile, say.  The fit then sets the gains to ~0
        and the RMSE measures a digital product, not the chip.
        """
        cfg = self.config
        if cfg.calibration == "none":
            return
        for t in self.tiles:
            w = self._w(t, self.plan.weights)
            tiny = 1e-6 * max(float(np.linalg.norm(w)), 1e-300)
            left = w - w.mean(axis=0, keepdims=True)           # what column constants miss
            columns_ok = float(np.linalg.norm(left)) > tiny
            if cfg.calibration == "rows":                       # ... and row references
                left = left - left.mean(axis=1, keepdims=True)
            if np.linalg.norm(left) <= tiny:
                what = ("constant down each column" if cfg.calibration == "columns"
                        else "a per-row plus a per-column constant")
                c = self._wcols(t)
                raise ConfigError(
                    f"--calibration {cfg.calibration}: the tile of weight rows {t.rows[0]}.."
                    f"{t.rows[1] - 1} and columns {c.start}..{c.stop - 1} is {what}, which "
                    "the calibration's offsets fit without the chip (the result would not "
                    "measure it); use --calibration "
                    + ("columns or none" if columns_ok and cfg.calibration == "rows"
                       else "none"), key="calibration")

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)

    # --- helpers -----------------------------------------------------------------------------
    def _wcols(self, t: Tile) -> slice:
        g = self.plan.mapping.devices_per_weight
        return slice(t.cols[0] // g, t.cols[1] // g)

    def _w(self, t: Tile, w: np.ndarray) -> np.ndarray:
        return w[t.rows[0]:t.rows[1], self._wcols(t)]

    def _full_scale(self, t: Tile, g: int) -> float:
        w = self.plan.weights[t.rows[0]:t.rows[1], t.cols[0] // g:t.cols[1] // g]
        sigma = np.sqrt(np.mean(np.sum(w ** 2, axis=0)) / 3.0)   # E[x^2] = 1/3 for U[-1, 1]
        return float(self.config.adc_sigmas * max(sigma, 1e-12))

    def inputs(self) -> np.ndarray:
        rng = np.random.default_rng([self.config.input_seed, 0])
        return rng.uniform(-1.0, 1.0, (self.config.inputs, self.plan.weights.shape[0]))

    def _cells(self) -> Cells:
        rs, cs = zip(*(t.array_cells() for t in self.tiles), strict=True)
        return Cells.at(np.concatenate(rs), np.concatenate(cs))

    def _device_matrix(self, flat: np.ndarray) -> np.ndarray:
        """Reads in ``_cells`` order -> the device matrix."""
        out = np.full(self.plan.g_programmed_S.shape, np.nan)
        k = 0
        for t in self.tiles:
            n, m = t.shape
            out[t.rows[0]:t.rows[1], t.cols[0]:t.cols[1]] = flat[k:k + n * m].reshape(n, m)
            k += n * m
        return out

    def _analog(self, array: Array, t: Tile, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One tile: (unquantised outputs, summed input) for DAC codes ``xq`` of its rows."""
        info = array.info
        v_fs = info.read_voltage_V
        v = np.zeros((xq.shape[0], info.rows))
        n, m = t.shape
        v[:, t.at[0]:t.at[0] + n] = xq * v_fs
        i = array.mvm(v)[:, t.at[1]:t.at[1] + m]
        y = self.plan.mapping.outputs(i, v[:, t.at[0]:t.at[0] + n], v_fs)
        return y, xq.sum(axis=1)

    # --- protocol ----------------------------------------------------------------------------
    def initial_state(self, array: Array) -> dict[str, Any]:
        need = self.plan.placement.array_shape
        if tuple(need) != array.info.shape:
            raise ConfigError(f"the transfer was placed on a {need[0]}x{need[1]} array, this "
                              f"one is {array.info.rows}x{array.info.cols}", key="transfer")
        return {"k": 0, "calibration": {}}

    def steps(self, array: Array, state: dict[str, Any]) -> Iterator[Step]:
        cfg: InferenceConfig = self.config
        x = self.inputs()
        xq = dac(x, cfg.dac_bits)
        w = self.plan.weights
        y_fp = x @ w
        w_prog = self.plan.mapping.weights(self.plan.g_programmed_S)
        digital = self._digital(xq)
        fixed = {"quantisation": rms(digital - y_fp), "programming": rms(x @ w_prog - y_fp)}
        first = {f"{GROUP}/inputs": (x, ""), f"{GROUP}/y_fp": (y_fp, ""),
                 f"{GROUP}/y_quantised": (digital, ""), f"{GROUP}/weights": (w, ""),
                 f"{GROUP}/g_programmed_S": (self.plan.g_programmed_S, "S"),
                 f"{GROUP}/pulses": (self.plan.pulses, ""),
                 f"{GROUP}/adc_full_scale": (np.array(self.full_scale), ""),
                 # the columns of breakdown, as the summary names them
                 f"{GROUP}/breakdown_causes": (np.array(cause_names(asdict(cfg))), "")}
        n_t = len(cfg.times_s)
        while int(state["k"]) < n_t:
            k = int(state["k"])
            t_target = self.plan.programmed_at_s + cfg.times_s[k]
            array.wait(max(0.0, t_target - array.now()))
            t_since = array.now() - self.plan.programmed_at_s
            reads = [self._device_matrix(array.read(self._cells()))
                     for _ in range(cfg.read_repeats)]
            write = dict(first) if k == 0 else {}
            if k == 0 and cfg.calibration != "none" and not state["calibration"]:
                state["calibration"] = self._calibrate(array, np.mean(reads, axis=0))
                # the count used (the config says 0 where it was automatic)
                write[f"{GROUP}/calibration/inputs"] = (np.array([self.calibration_count()]),
                                                         "")
                for key, per_tile in state["calibration"].items():
                    write[f"{GROUP}/calibration/{key}"] = (
                        np.concatenate([per_tile[str(i)] for i in range(len(self.tiles))]), "")
            rec = self._measure(array, state, x, xq, y_fp, w_prog, reads, fixed)
            state["k"] = k + 1
            append = {f"{GROUP}/t_s": (np.array([t_since]), "s"),
                      **{f"{GROUP}/{name}": (np.asarray(v)[None], u) for name, (v, u)
                         in rec.items()}}
            yield Step(done=k + 1, total=n_t, label=f"t = {time_label(cfg.times_s[k])}",
                       append=append, write=write)

    def _digital(self, xq: np.ndarray) -> np.ndarray:
        """The quantisation-only model: ADC(W DAC(x)) per tile, partial sums added."""
        y = np.zeros((xq.shape[0], self.plan.weights.shape[1]))
        for t, fs in zip(self.tiles, self.full_scale, strict=True):
            part = xq[:, t.rows[0]:t.rows[1]] @ self._w(t, self.plan.weights)
            y[:, self._wcols(t)] += adc(part, self.config.adc_bits, fs)
        return y

    def _calibrate(self, array: Array, g_S: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        """Per tile: gain a and offset b per column (and reference u per row with
        ``calibration="rows"``) with ``a * ADC(y) + b * sum(x) + x @ u ~ W x``.

        Fitted twice on the same calibration inputs: to the chip's MVM (what the readout
        uses) and to the ideal-wire model of the same conductances ``g_S`` (what the IR-drop
        ablation compares against, so that both absorb the same non-IR errors).
        """
        cfg = self.config
        n_cal = self.calibration_count()
        rng = np.random.default_rng([cfg.input_seed, 1])
        fits: dict[str, dict[str, np.ndarray]] = {k + suffix: {} for suffix in ("", "_ideal")
                                                  for k in CALIBRATION_KEYS}
        for i, (t, fs) in enumerate(zip(self.tiles, self.full_scale, strict=True)):
            xc = dac(rng.uniform(-1.0, 1.0, (n_cal, t.shape[0])), cfg.dac_bits)
            target = xc @ self._w(t, self.plan.weights)
            y, _ = self._analog(array, t, xc)
            y_ideal = xc @ self._w(t, self.plan.mapping.weights(g_S))
            for suffix, out in (("", y), ("_ideal", y_ideal)):
                fit = fit_calibration(adc(out, cfg.adc_bits, fs), xc, target,
                                      rows=cfg.calibration == "rows")
                for key, value in zip(CALIBRATION_KEYS, fit, strict=True):
                    fits[key + suffix][str(i)] = value
        return fits

    def _measure(self, array: Array, state: dict[str, Any], x: np.ndarray, xq: np.ndarray,
                 y_fp: np.ndarray, w_prog: np.ndarray, reads: list[np.ndarray],
                 fixed: dict[str, float]) -> dict[str, tuple[Any, str]]:
        cfg, mp = self.config, self.plan.mapping
        y_hw = np.zeros_like(y_fp)
        y_lin = np.zeros_like(y_fp)
        y_ideal = np.zeros_like(y_fp)
        g_avg = np.mean(reads, axis=0)
        w_t = mp.weights(g_avg)
        for i, (t, fs) in enumerate(zip(self.tiles, self.full_scale, strict=True)):
            xt = xq[:, t.rows[0]:t.rows[1]]
            y, s = self._analog(array, t, xt)
            (a, b, u), (a0, b0, u0) = self._gains(state, i, t.shape[0])
            ref = np.outer(s, b) + (xt @ u)[:, None]
            y_hw[:, self._wcols(t)] += a * adc(y, cfg.adc_bits, fs) + ref
            y_lin[:, self._wcols(t)] += a * y + ref
            ideal = xt @ self._w(t, w_t)
            y_ideal[:, self._wcols(t)] += a0 * ideal + np.outer(s, b0) + (xt @ u0)[:, None]
        # read noise of one read through x: spread of the repeated reads about their mean
        w_reads = [mp.weights(g) for g in reads]
        rn = float(np.sqrt(sum(rms(x @ (wk - w_t)) ** 2 for wk in w_reads) / (len(reads) - 1)))
        ir_ms = np.mean((y_lin - y_ideal) ** 2) - rn ** 2 * (1 + 1 / len(reads))
        breakdown = {**fixed, "relaxation": rms(x @ (w_t - w_prog)), "read_noise": rn,
                     "ir_drop": float(np.sqrt(max(ir_ms, 0.0)))}
        return {"rmse": (rms(y_hw - y_fp), ""),
                "breakdown": (np.array([breakdown[c] for c in CAUSES]), ""),
                "y_analog": (y_hw, ""),
                "g_mean_shift_S": (float(np.mean(g_avg - self.plan.g_programmed_S)), "S"),
                "g_spread_S": (float(np.std(g_avg - self.plan.g_programmed_S)), "S")}

    @staticmethod
    def _gains(state: dict[str, Any], i: int, rows: int) -> tuple[tuple[Any, Any, Any],
                                                                 tuple[Any, Any, Any]]:
        """(gain, offset, row reference) of tile ``i``: for the chip, for the ideal wires."""
        cal = state["calibration"]
        if not cal:
            none = (1.0, 0.0, np.zeros(rows))
            return none, none
        chip, ideal = ([np.asarray(cal[k + suffix][str(i)]) if k + suffix in cal
                        else np.zeros(rows) for k in CALIBRATION_KEYS]
                       for suffix in ("", "_ideal"))
        return tuple(chip), tuple(ideal)  # type: ignore[return-value]

    def analyse(self, data: RunData) -> dict[str, Any]:
        return analyse_inference(data)


def auto_calibration_inputs(rows: int) -> int:
    """Calibration inputs when none are given: 4 per row of the largest tile, at least 256.

    Each column's gain and offset come from these inputs alone, fitted to ADC outputs with
    read noise; with too few, the fit's own error is a readout error of its own, and the
    wire term of the breakdown (its two fits see different noise) shows it as a floor:
    16x8 weights, no wire resistance, 64 inputs 0.0025-0.0031, 256 inputs 0.0009-0.0019,
    1,024 inputs 0.0006-0.0016 (three input seeds; the rest is the estimator's spread).
    On a station each calibration input is one more point in every cell's sweep."""
    return max(256, 4 * rows)


def cause_names(config: dict[str, Any]) -> tuple[str, ...]:
    """:data:`CAUSES` as a run names them: a station's run (no wire resistance in its
    config) and a simulated chip without wire resistance call the last one
    :data:`STATION_LAST_CAUSE`: with no wire to drop a voltage along, it is no IR drop."""
    if not config.get("wire_resistance_ohm"):
        return (*CAUSES[:-1], STATION_LAST_CAUSE)
    return CAUSES


def analyse_inference(data: RunData) -> dict[str, Any]:
    """RMSE per time and its breakdown by cause, from the stored data alone."""
    cfg = data.config
    times = [float(t) for t in cfg["times_s"]]
    done = int(data.data(f"{GROUP}/rmse").shape[0]) if f"{GROUP}/rmse" in data else 0
    rmse = data.data(f"{GROUP}/rmse") if done else np.zeros(0)
    br = data.data(f"{GROUP}/breakdown") if done else np.zeros((0, len(CAUSES)))
    pulses = data.data(f"{GROUP}/pulses") if f"{GROUP}/pulses" in data else np.zeros(0)
    labels = [time_label(t) for t in times[:done]]
    t_read = [float(t) for t in data.data(f"{GROUP}/t_s")[:done]] \
        if f"{GROUP}/t_s" in data else []
    t_read += times[len(t_read):done]
    breakdown = {lab: {c: float(v) for c, v in zip(cause_names(cfg), row, strict=True)}
                 for lab, row in zip(labels, br, strict=True)}
    return {
        "cells": int(pulses.size),
        "pulses_mean": float(np.mean(pulses)) if pulses.size else None,
        "rmse": {lab: float(v) for lab, v in zip(labels, rmse, strict=True)},
        "rmse_breakdown": breakdown,
        "dominant": {lab: max(b, key=lambda c: b[c]) for lab, b in breakdown.items()},
        # when each read was taken, after programming (later than asked on a late station)
        "t_actual_s": dict(zip(labels, t_read, strict=True)),
        "dac_bits": cfg["dac_bits"], "adc_bits": cfg["adc_bits"],
        "wire_resistance_ohm": cfg.get("wire_resistance_ohm"),   # None: a station's chip
        "inputs": cfg["inputs"],
        "calibration_inputs": (int(data.data(f"{GROUP}/calibration/inputs")[0])
                               if f"{GROUP}/calibration/inputs" in data else None),
    }
