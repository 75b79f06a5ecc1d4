"""Stochastic pulse trains for the parallel outer-product update, as per-cell pulse counts.

Gokmen & Vlasov, Front. Neurosci. 10, 333 (2016); reference/training.md section 1, with the
bit-length and update management of aihwkit (``UpdateParameters(desired_bl,
update_bl_management=True, update_management=True)``):

* per sample b, k_b = lr * max|x_b| * max|d_b| / dw_min and BL_b = min(ceil(k_b), bl_max);
* row j fires in each of the BL_b slots with probability A_b |x_bj|, column i with
  B_b |d_bi|, where A_b B_b = lr / (dw_min BL_b) and A_b max|x_b| = B_b max|d_b| (<= 1);
* the expected number of coincidences at (j, i) is lr |x_bj d_bi| / dw_min;
* a coincidence is one device pulse in direction -sign(x_bj d_bi).

All slots of a mini-batch are drawn at once, and the coincidences are counted with matrix
products of the binary trains, split into up (set) and down (reset) counts per cell: one
product when every input line keeps one sign over the batch (the usual case), two (signed and
unsigned) otherwise.  Within one sample a cell only gets pulses of one sign, so summing over the
batch and applying ups and downs as two parallel steps changes the result only at second
order in the step size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.array import CellCounts


@dataclass
class PulseCounts:
    """Set (``up``) and reset (``down``) pulses of the cells ``idx`` (flat, row-major) of a
    ``shape`` array; only cells that get a pulse are listed (updates are sparse)."""

    shape: tuple[int, int]
    idx: np.ndarray    # flat cell indices, int64
    up: np.ndarray     # set pulses per listed cell, >= 0
    down: np.ndarray   # reset pulses per listed cell, >= 0

    @property
    def total(self) -> int:
        return int(self.up.sum() + self.down.sum())

    def dense(self, values: np.ndarray) -> np.ndarray:
        """A full (rows, cols) int32 matrix with ``values`` at the listed cells."""
        out = np.zeros(self.shape, dtype=np.int32)
        out.ravel()[self.idx] = values
        return out

    def cells(self, values: np.ndarray) -> CellCounts:
        """The same matrix by its listed cells (sparse, for ``pulse_outer``)."""
        return CellCounts(self.shape, self.idx, np.asarray(values, np.int64))


def _bit_lengths(k: np.ndarray, bl_max: int) -> np.ndarray:
    return np.where(k > 0, np.clip(np.ceil(k), 1, bl_max), 0).astype(np.int64)


def coincidence_counts(x: np.ndarray, d: np.ndarray, lr: float | np.ndarray, dw_min: float,
                       bl_max: int, rng: np.random.Generator) -> PulseCounts:
    """Pulse counts of a batch update ``W <- W - lr * x^T d`` (x: (B, rows), d: (B, cols)).

    ``lr`` may be one value or one per sample (choppers and auto-scaling use that).
    """
    x = np.asarray(x, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    lr_b = (np.full(x.shape[0], float(lr)) if np.ndim(lr) == 0  # type: ignore[arg-type]
            else np.broadcast_to(np.asarray(lr, dtype=np.float64), (x.shape[0],)))
    mx = np.abs(x).max(axis=1)
    md = np.abs(d).max(axis=1)
    k = lr_b * mx * md / dw_min
    bl = _bit_lengths(k, bl_max)
    live = bl > 0
    if not np.any(live):
        return _empty((x.shape[1], d.shape[1]))
    if not live.all():
        x, d, mx, md, lr_b, bl = x[live], d[live], mx[live], md[live], lr_b[live], bl[live]
    base = np.sqrt(lr_b / (dw_min * bl))
    ax = base * np.sqrt(md / mx)
    bd = base * np.sqrt(mx / md)
    shape = (x.shape[1], d.shape[1])
    # a line whose value is 0 in every sample never fires: draw and count only the others
    jx = np.flatnonzero(np.any(x != 0, axis=0))
    jd = np.flatnonzero(np.any(d != 0, axis=0))
    x, d = x[:, jx], d[:, jd]
    px = np.minimum(np.abs(x) * ax[:, None], 1.0).astype(np.float32)
    pd = np.minimum(np.abs(d) * bd[:, None], 1.0).astype(np.float32)
    rep = np.repeat(np.arange(x.shape[0]), bl)
    xb = rng.random((rep.size, jx.size), dtype=np.float32) < px[rep]
    db = rng.random((rep.size, jd.size), dtype=np.float32) < pd[rep]
    if rep.size < _PACK:
        # one product if every line keeps one sign over the batch (always when x >= 0)
        xneg = None if x.min() >= 0 else np.any(x < 0, axis=0)
        if xneg is None or not np.any(xneg & np.any(x > 0, axis=0)):
            return _split_packed(xb, db, d[rep] < 0, xneg, jx, jd, shape)
    return _split(xb, db, np.sign(x)[rep], np.sign(d)[rep], jx, jd, shape)


def line_counts(shape: tuple[int, int], rows: np.ndarray, d: np.ndarray,
                lr: float | np.ndarray, dw_min: float, bl_max: int,
                rng: np.random.Generator) -> PulseCounts:
    """Pulse counts of ``W[rows] <- W[rows] - lr * d``: the update with one-hot inputs.

    The same pulse trains as :func:`coincidence_counts` with ``x`` = 1 on line ``rows[b]``
    of sample b, drawn without the other lines' trains: line j fires in n ~ Bin(BL, p_x)
    of the BL slots, and only in those slots are the columns drawn, column i coinciding
    with probability p_di in each -- exactly the distribution of the slot-by-slot draw, at
    the cost of one uniform per fired slot and column (Tiki-Taka v1's transfers write a
    handful of lines per batch, where the trains' fixed cost dominated; their BL is
    almost always 1, and a uniform costs ~20x less than a binomial per cell).  ``rows``
    must be distinct.
    """
    rows = np.asarray(rows, dtype=np.int64)
    d = np.asarray(d, dtype=np.float64)
    increasing = rows.size < 2 or bool((rows[1:] > rows[:-1]).all())   # (the schedule's runs)
    if not increasing and np.unique(rows).size != rows.size:
        raise ValueError("line_counts needs distinct rows")
    lr_b = (np.full(rows.size, float(lr)) if np.ndim(lr) == 0  # type: ignore[arg-type]
            else np.broadcast_to(np.asarray(lr, dtype=np.float64), (rows.size,)))
    md = np.abs(d).max(axis=1)
    bl = _bit_lengths(lr_b * md / dw_min, bl_max)      # max|x| = 1
    live = bl > 0
    if not np.any(live):
        return _empty(shape)
    rows, d, md, lr_b, bl = rows[live], d[live], md[live], lr_b[live], bl[live]
    base = np.sqrt(lr_b / (dw_min * bl))
    px = np.minimum(base * np.sqrt(md), 1.0)            # ax with max|x| = 1
    pd = np.minimum(np.abs(d) * (base / np.sqrt(md))[:, None], 1.0)
    # slots each line fires in; BL is 1 for nearly every transfer line: a Bernoulli then
    n_x = ((rng.random(bl.size) < px).astype(np.int64) if bl.max() == 1
           else rng.binomial(bl, px))
    fired = n_x > 0                                     # a silent line pulses no cell
    if not fired.all():
        if not fired.any():
            return _empty(shape)
        rows, d, pd, n_x = rows[fired], d[fired], pd[fired], n_x[fired]
    slot = np.repeat(np.arange(n_x.size), n_x)          # one entry per fired slot
    hit = rng.random((slot.size, pd.shape[1])) < pd[slot]
    if slot.size == n_x.size:                            # one slot per line (the usual case)
        n = hit.astype(np.int64)
    else:
        n = np.add.reduceat(hit, np.cumsum(n_x) - n_x, axis=0, dtype=np.int64)
    # x d > 0 (d > 0 with x = 1) -> the weight goes down: reset pulses
    return row_counts(shape, rows, np.where(d > 0, -n, n))


def _empty(shape: tuple[int, int]) -> PulseCounts:
    z = np.zeros(0, dtype=np.int64)
    return PulseCounts(shape, z, z.copy(), z.copy())


#: slots per batch below which both directions' counts fit one float32 product (see
#: :func:`_split_packed`): counts < _PACK, and _PACK * _PACK <= 2**24
_PACK_BITS = 12
_PACK = 1 << _PACK_BITS


def _split_packed(xb: np.ndarray, db: np.ndarray, dneg: np.ndarray, xneg: np.ndarray | None,
                  jx: np.ndarray, jd: np.ndarray, shape: tuple[int, int]) -> PulseCounts:
    """:func:`_split` for inputs whose every line keeps one sign over the batch (pixels,
    activations, chopped lines), with one matrix product instead of two.

    On a line with x >= 0 a coincidence with d > 0 is a reset, with d < 0 a set, so
    ``xb^T (db [d > 0] + K db [d < 0])`` is ``down + K up`` per cell; with fewer than
    K = :data:`_PACK` slots both counts are below K and the sum is an exact float32
    integer (< 2**24), split again with integer arithmetic.  Lines with x <= 0
    (``xneg``; None: there are none) swap the two.  The same counts as :func:`_split`, bit
    for bit.
    """
    xf = xb.astype(np.float32)
    df = db.astype(np.float32)
    df[dneg & db] = np.float32(_PACK)
    packed = xf.T @ df
    nz = np.flatnonzero(packed != 0)        # (a mask scans ~6x faster than floats)
    v = packed.ravel()[nz].astype(np.int64)
    r, idx = _cells(nz, jx, jd, shape)
    hi = v >> _PACK_BITS                    # coincidences with d < 0 (x >= 0: set pulses)
    lo = v & (_PACK - 1)
    if xneg is not None and xneg.any():
        flip = xneg[r]
        hi, lo = np.where(flip, lo, hi), np.where(flip, hi, lo)
    return PulseCounts(shape, idx, hi, lo)


def _cells(nz: np.ndarray, jx: np.ndarray, jd: np.ndarray,
           shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Flat positions ``nz`` in a (jx lines, jd lines) product -> (its row, the flat cell of
    the ``shape`` array), row-major, as jx and jd are sorted."""
    r = nz // jd.size
    if jd.size == shape[1]:   # every column (the usual case): jd[c] = c, one gather fewer
        return r, nz + ((jx - np.arange(jx.size)) * shape[1])[r]
    return r, jx[r] * shape[1] + jd[nz - r * jd.size]


def _split(xb: np.ndarray, db: np.ndarray, sx: np.ndarray, sd: np.ndarray, jx: np.ndarray,
           jd: np.ndarray, shape: tuple[int, int]) -> PulseCounts:
    """Up/down counts from binary trains (slots, lines jx)/(slots, lines jd) and their signs
    (lines of a ``shape`` array)."""
    xf = xb.astype(np.float32)
    df = db.astype(np.float32)
    total = xf.T @ df                       # every coincidence (exact small integers)
    net = (xf * sx.astype(np.float32)).T @ (df * sd.astype(np.float32))
    nz = np.flatnonzero(total != 0)         # (a mask scans ~6x faster than floats)
    t = total.ravel()[nz]
    n = net.ravel()[nz]
    # sign(x d) > 0 -> the weight must go down (reset); < 0 -> up (set); t + n and t - n
    # are even and the halves exact (small integers in float32)
    half = np.float32(0.5)
    down = ((t + n) * half).astype(np.int64)
    up = ((t - n) * half).astype(np.int64)
    return PulseCounts(shape, _cells(nz, jx, jd, shape)[1], up, down)


def exact_counts(n_signed: np.ndarray) -> PulseCounts:
    """Deterministic counts from a signed integer matrix (positive = set pulses)."""
    n = np.asarray(n_signed)
    idx = np.flatnonzero(n)
    v = n.ravel()[idx].astype(np.int64)
    return PulseCounts(n.shape, idx, np.maximum(v, 0), np.maximum(-v, 0))


def row_counts(shape: tuple[int, int], rows: np.ndarray, n_signed: np.ndarray) -> PulseCounts:
    """Deterministic signed counts ``n_signed`` (k, cols) on the lines ``rows`` of the array."""
    idx = (np.asarray(rows, dtype=np.int64)[:, None] * shape[1]
           + np.arange(shape[1], dtype=np.int64)).ravel()
    v = np.asarray(n_signed, dtype=np.int64).ravel()
    keep = v != 0
    idx, v = idx[keep], v[keep]
    return PulseCounts(shape, idx, np.maximum(v, 0), np.maximum(-v, 0))


def stochastic_round(v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unbiased integer rounding: floor(v) + Bernoulli(frac(v))."""
    f = np.floor(v)
    return (f + (rng.random(v.shape) < (v - f))).astype(np.int64)
