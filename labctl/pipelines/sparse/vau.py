"""The vectorial approximate update (VAU) and the exact cell-by-cell update, as pulse counts.

Seed 001 (Ning et al., Nat. Electron. 8, 222, 2025) programs a whole row or column vector per
step instead of cell by cell and reports the error of that approximation against the exact
update as an MSE that grows with sparsity (reference/training.md section 5).  The exact rule is
not in the seed; this module implements a documented row-then-column approximation:

* **exact (cell by cell)**, mode ``cell`` - every sample's update ``-lr S (.) (x_b^T d_b)`` is
  programmed cell by cell: each active cell is addressed on its own and gets
  ``stochastic_round(-lr x_bj d_bi / dw_min)`` pulses (clipped to ``max_count``), masked cells
  none.  Same programming granularity as the VAU (one programming step per sample), so the
  comparison isolates the row/column approximation.  Mode ``cell-batch`` first accumulates the
  mini-batch gradient ``S (.) (X^T D)`` digitally and rounds it once per cell (less rounding
  noise, and a per-cell digital matrix the VAU does not need).
* **VAU (row then column)** - per sample ``b`` of the mini-batch, the layer input ``x_b`` is
  written as *row vectors* and the error ``d_b`` as *column vectors*, each quantised to a sign
  and a stochastic 1-bit magnitude per time slot (the parallel stochastic update of Gokmen &
  Vlasov, Front. Neurosci. 10, 333, 2016; reference/training.md section 1, aihwkit's update
  desired bit length): sample ``b`` takes ``BL_b = max(slots, ceil(lr max|x_b| max|d_b| /
  dw_min))`` time slots (``slots`` = 31, aihwkit's ``desired_bl``); in each slot the row phase
  drives row line ``j`` with a gate pulse of sign ``sign(x_j)`` with probability ``A |x_j|``
  and the column phase enables column ``i`` (sign ``-sign(d_i)``) with probability
  ``B |d_i|``, ``A B = lr / (dw_min BL_b)``, balanced so ``A max|x| = B max|d| <= 1``.
  Only where a row and a column pulse coincide does the gate see more than the coercive
  voltage (half-select), so cell ``(j, i)`` gets pulses with expected count
  ``-lr x_j d_i / dw_min`` - the exact update in expectation.  The approximation: (1) the
  noise is that of coincidence counting (``BL p (1 - p)`` per cell and sample) instead of one
  rounding per cell, and it is shared along lines; many slots with small probabilities
  decorrelate it (with ``BL = ceil(k)``, ~1 slot, VAU on the 784-wide layer alone cost ~2
  points on a letters subset; with 31 slots the VAU matched the exact update); (2) without an
  index memory the lines reach every cell, masked or not: the weight FeFETs of pruned cells
  are programmed too (the device programs whatever the mask state).  The second effect is why
  the error against the exact update grows with sparsity.  (Sign and integer-magnitude
  vectors whose outer product is the count were tried first: 71.2 % on that letters subset,
  against 75.4 % with 31-slot trains and 74.3 % for the exact update.)

Up and down pulses of the batch are summed per cell and applied as two parallel steps (the
order of the pulses inside one batch matters only at second order in the step size).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from labctl.pipelines.sparse.topology import initial_mask

UPDATE_MODES = ("vau", "cell", "cell-batch")


@dataclass
class PulseCounts:
    """Set (``up``) and reset (``down``) pulses per cell, shape (rows, cols), int64 >= 0, and
    the pulse time slots the update takes (VAU: line slots shared by all cells; exact: one
    slot per pulse of each addressed cell)."""

    up: np.ndarray
    down: np.ndarray
    slots: int = 0

    @property
    def net(self) -> np.ndarray:
        return self.up - self.down

    @property
    def total(self) -> int:
        return int(self.up.sum() + self.down.sum())


def stochastic_round(v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unbiased integer rounding: floor(v) + Bernoulli(v - floor(v))."""
    v = np.asarray(v, np.float64)
    f = np.floor(v)
    return f.astype(np.int64) + (rng.random(v.shape, dtype=np.float32) < (v - f))


def rounding_variance(v: np.ndarray) -> np.ndarray:
    """Variance of :func:`stochastic_round` of ``v``: frac (1 - frac)."""
    frac = v - np.floor(v)
    return frac * (1 - frac)


def exact_counts(x: np.ndarray, d: np.ndarray, mask: np.ndarray, lr_over_dw: float,
                 rng: np.random.Generator, max_count: int) -> PulseCounts:
    """Cell-by-cell pulse counts of ``W <- W - lr S (.) (x^T d)`` (x: (B, rows), d: (B, cols))."""
    target = -lr_over_dw * (np.asarray(x, np.float64).T @ np.asarray(d, np.float64))
    n = np.clip(stochastic_round(target, rng), -max_count, max_count) * np.asarray(mask, bool)
    return PulseCounts(up=np.maximum(n, 0), down=np.maximum(-n, 0), slots=int(np.abs(n).sum()))


def exact_sample_counts(x: np.ndarray, d: np.ndarray, mask: np.ndarray, lr_over_dw: float,
                        rng: np.random.Generator, max_count: int) -> PulseCounts:
    """Cell-by-cell pulses of every sample's own update, summed as set and reset pulses.

    Works in float32 on the (batch, rows, cols) tensor (whole pulse counts are exact there).
    """
    xs = np.asarray(x, np.float32) * np.float32(-lr_over_dw)
    per = xs[:, :, None] * np.asarray(d, np.float32)[:, None, :]
    n = np.floor(per)
    n += rng.random(per.shape, dtype=np.float32) < (per - n)
    np.clip(n, -max_count, max_count, out=n)
    n *= np.asarray(mask, bool)
    up = np.maximum(n, 0).sum(axis=0)
    down = np.maximum(-n, 0).sum(axis=0)
    return PulseCounts(up=up.astype(np.int64), down=down.astype(np.int64),
                       slots=int(up.sum() + down.sum()))


def vau_trains(x: np.ndarray, d: np.ndarray, lr_over_dw: float, rng: np.random.Generator,
               slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Signed binary row vectors (slots, rows) and column vectors (slots, cols) of the VAU.

    Sample ``b`` gets ``BL_b = max(slots, ceil(k_b))`` time slots, ``k_b = lr max|x_b|
    max|d_b| / dw_min``; in each slot row ``j`` fires with probability ``A_b |x_bj|`` and
    column ``i`` with ``B_b |d_bi|``, ``A_b B_b = lr / (dw_min BL_b)``,
    ``A_b max|x_b| = B_b max|d_b| <= 1``.
    """
    x = np.asarray(x, np.float64)
    d = np.asarray(d, np.float64)
    mx = np.abs(x).max(axis=1)
    md = np.abs(d).max(axis=1)
    live = (mx > 0) & (md > 0)
    x, d, mx, md = x[live], d[live], mx[live], md[live]
    bl = np.maximum(np.ceil(lr_over_dw * mx * md), slots).astype(np.int64)
    base = np.sqrt(lr_over_dw / bl)
    px = np.minimum(np.abs(x) * (base * np.sqrt(md / mx))[:, None], 1.0)
    pd = np.minimum(np.abs(d) * (base * np.sqrt(mx / md))[:, None], 1.0)
    rep = np.repeat(np.arange(len(x)), bl)
    rows = (rng.random((rep.size, x.shape[1]), dtype=np.float32) < px[rep]) * np.sign(x)[rep]
    cols = (rng.random((rep.size, d.shape[1]), dtype=np.float32) < pd[rep]) * -np.sign(d)[rep]
    return rows.astype(np.int8), cols.astype(np.int8)


def vau_counts(x: np.ndarray, d: np.ndarray, lr_over_dw: float, rng: np.random.Generator,
               slots: int) -> PulseCounts:
    """Per-cell up/down pulses of the row-then-column update of a mini-batch (all cells)."""
    r, c = vau_trains(x, d, lr_over_dw, rng, slots)
    rf, cf = r.astype(np.float32), c.astype(np.float32)
    net = rf.T @ cf
    total = np.abs(rf).T @ np.abs(cf)
    return PulseCounts(up=np.rint((total + net) / 2).astype(np.int64),
                       down=np.rint((total - net) / 2).astype(np.int64), slots=int(len(r)))


def update_counts(mode: str, x: np.ndarray, d: np.ndarray, mask: np.ndarray, lr_over_dw: float,
                  rng: np.random.Generator, *, slots: int, max_count: int) -> PulseCounts:
    """The pulse counts of one mini-batch step under ``mode`` (one of :data:`UPDATE_MODES`)."""
    if mode == "vau":
        return vau_counts(x, d, lr_over_dw, rng, slots)
    if mode == "cell":
        return exact_sample_counts(x, d, mask, lr_over_dw, rng, max_count)
    if mode == "cell-batch":
        return exact_counts(x, d, mask, lr_over_dw, rng, max_count)
    raise ValueError(f"unknown update mode {mode!r}")


# --- the error of the approximation ------------------------------------------------------------
@dataclass(frozen=True)
class ErrorCurve:
    """MSE (in dw_min^2, i.e. pulses^2) against the exact update, per sparsity, over ``runs``.

    ``vau_*`` compares the VAU with the exact (real-valued, masked) update ``-lr S (.) X^T D``;
    ``cell_mse`` is the error of the exact cell-by-cell update (``cell``), i.e. its stochastic
    rounding variance, in closed form.  ``vau_mse - cell_mse`` is what the row/column
    approximation adds.  ``*_norm`` divides by the mean square of the exact update over active
    cells (scale-free).  ``vau_bias_mse`` is the error of the VAU's *expected* update (no
    quantisation noise): the dense gradient it writes into masked cells, which grows in
    proportion to sparsity.  All over every cell: the weight FeFET of a masked cell is state
    that comes back on regrowth.
    """

    sparsity: np.ndarray
    vau_mse: np.ndarray
    vau_mse_std: np.ndarray
    cell_mse: np.ndarray
    vau_mse_masked: np.ndarray
    vau_mse_active: np.ndarray
    vau_mse_norm: np.ndarray
    vau_bias_mse: np.ndarray
    runs: int
    window: int


def _one_run(batches: list[tuple[np.ndarray, np.ndarray]], mask: np.ndarray, lr_over_dw: float,
             rng: np.random.Generator, slots: int) -> np.ndarray:
    """Errors of the VAU (sampled) and the exact update (its rounding variance, computed in
    closed form) over the accumulated batches of one run."""
    dense = np.zeros(mask.shape)
    vau = np.zeros(mask.shape)
    cell_var = np.zeros(mask.shape)
    for x, d in batches:
        dense -= lr_over_dw * (x.T @ d)
        vau += vau_counts(x, d, lr_over_dw, rng, slots).net
        per = np.asarray(x, np.float32)[:, :, None] * np.float32(-lr_over_dw) \
            * np.asarray(d, np.float32)[:, None, :]
        cell_var += rounding_variance(per).sum(axis=0)
    target = dense * mask
    err = (vau - target) ** 2
    active_ms = float(np.mean(target[mask] ** 2)) if mask.any() else np.nan
    return np.array([err.mean(), np.mean(cell_var * mask),
                     err[~mask].mean() if (~mask).any() else np.nan,   # no such cells:
                     err[mask].mean() if mask.any() else np.nan,       # undefined, not 0
                     err.mean() / active_ms if active_ms > 0 else np.nan,
                     np.mean((dense - target) ** 2)])


def update_error_curve(x_pool: np.ndarray, d_pool: np.ndarray, sparsities: np.ndarray, *,
                       runs: int, batch: int, lr_over_dw: float, rng: np.random.Generator,
                       slots: int, window: int = 1) -> ErrorCurve:
    """MSE of the VAU against the exact update over ``runs`` random draws per sparsity.

    ``x_pool`` (N, rows) and ``d_pool`` (N, cols) are matching layer inputs and errors of a
    network; a run draws a random mask at the sparsity and ``window`` random mini-batches of
    ``batch`` pairs, and compares the updates accumulated over them (a masked cell's spurious
    VAU drift adds up until a topology update may regrow it).
    """
    out = np.zeros((len(sparsities), runs, 6))
    shape = (x_pool.shape[1], d_pool.shape[1])
    size = min(batch, len(x_pool))
    for i, s in enumerate(sparsities):
        for k in range(runs):
            mask = initial_mask(shape, float(s), rng)
            picks = [rng.choice(len(x_pool), size=size, replace=False) for _ in range(window)]
            out[i, k] = _one_run([(x_pool[j], d_pool[j]) for j in picks], mask, lr_over_dw,
                                 rng, slots)
    with warnings.catch_warnings():   # a sparsity with no masked (or active) cells: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(out, axis=1)
    return ErrorCurve(sparsity=np.asarray(sparsities, float), vau_mse=mean[:, 0],
                      vau_mse_std=out[:, :, 0].std(axis=1), cell_mse=mean[:, 1],
                      vau_mse_masked=mean[:, 2], vau_mse_active=mean[:, 3],
                      vau_mse_norm=mean[:, 4], vau_bias_mse=mean[:, 5], runs=runs,
                      window=window)
