"""Float32 standard normals by the Box–Muller transform, for the simulator's hot paths.

Why this exists: training a 784-256-128-10 network draws ~120,000 standard normals per
mini-batch (cycle-to-cycle pulse noise in ``sim_backend/models/pulse_response.py``, the
output-space read noise of ``SimulatedArray._mvm_moments`` and the tiles' output noise in
``pipelines/train/tile.py``), ~10 % of a training step.  A leaf module: the simulator and
the pipelines both use it.
numpy's ``Generator.standard_normal(dtype=np.float32)`` (a ziggurat, one value at a time in
C) costs ~9 ns a value here; the vectorised, in-place transform below, built from uniforms
of the same generator, costs ~4 ns from a few thousand values up (``benchmarks/
bench_normals.py``: 1.7-2.1x at 4,096-8,192 values, 1.9-2.4x at 57,000-300,000) and cut
the time spent drawing normals in ``bench_train.py ttv1`` from 1.1 to 0.7 ms per batch.

Exact, not an approximation: for independent ``U1, U2 ~ U(0, 1)``,
``sqrt(-2 ln(1 - U1)) * (cos 2 pi U2, sin 2 pi U2)`` are two independent N(0, 1) values
(Box & Muller, Ann. Math. Statist. 29, 610 (1958)).  The radius comes from float64 uniforms:
``-2 ln(1 - U1)`` is computed in float64 and rounded to float32 once (resolution 2**-53:
``|z|`` reaches 8.6, and the radius is neither cut at 5.8 nor coarsely quantised near 0 and
in the tail, as it would be with float32 uniforms or a float32 ``1 - U1``); the angle uses
float32 uniforms (a 2**-24 turn is
below the float32 rounding of the result).  Calls of fewer than :data:`MIN_BOX_MULLER`
values, where the transform's dozen array operations cost more than they save, go to numpy's
own generator.  Either way the values come from the ``rng`` passed in, so a seed still fixes
every result (the stream differs from numpy's ``standard_normal``).
"""

from __future__ import annotations

import numpy as np

#: below this many values numpy's ziggurat is as fast or faster (per-call overhead dominates;
#: measured in the training path, where the transform's arrays are not in cache)
MIN_BOX_MULLER = 2048
#: pairs per block: keeps the scratch arrays (64 + 32 kB) under glibc's mmap threshold
#: (128 kB), so they are not mapped and page-faulted afresh on every call (which cost up to
#: 2x on our VMs with 28,000-pair blocks)
BLOCK_PAIRS = 8192

_TWO_PI = np.float32(2.0 * np.pi)


def standard_normal_f32(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` independent N(0, 1) values as a float32 array, drawn from ``rng``."""
    if n < MIN_BOX_MULLER:
        return rng.standard_normal(n, dtype=np.float32)
    m = (n + 1) // 2
    out = np.empty(2 * m, np.float32)
    k = min(m, BLOCK_PAIRS)
    u64, cos = np.empty(k), np.empty(k, np.float32)
    for s in range(0, m, BLOCK_PAIRS):
        e = min(s + BLOCK_PAIRS, m)
        _pairs(rng, out[s:e], out[m + s:m + e], u64[:e - s], cos[:e - s])
    return out[:n]


def _pairs(rng: np.random.Generator, r: np.ndarray, t: np.ndarray, u64: np.ndarray,
           cos: np.ndarray) -> None:
    """Fill ``r`` with ``R cos(theta)`` and ``t`` with ``R sin(theta)`` (same length), in
    place, using the scratch arrays ``u64`` (float64) and ``cos`` (float32)."""
    rng.random(out=u64)
    np.subtract(1.0, u64, out=u64)          # in (0, 1]: the log is finite
    np.log(u64, out=u64)
    np.multiply(u64, -2.0, out=r, casting="same_kind")   # R**2, rounded to float32 only now
    np.sqrt(r, out=r)
    rng.random(dtype=np.float32, out=t)
    t *= _TWO_PI
    np.cos(t, out=cos)
    np.sin(t, out=t)
    t *= r
    r *= cos
