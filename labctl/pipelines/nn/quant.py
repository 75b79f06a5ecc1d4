"""Uniform quantisers for inputs and activations (the DAC), with a straight-through gradient.

Unsigned: ``bits`` levels-1 steps over [0, clip]; signed: symmetric over [-clip, clip].  The
clip value of an activation is tracked as an exponential moving average of a high batch
percentile during training and frozen at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def quantize(x: np.ndarray, bits: int, clip: float, signed: bool = False) -> np.ndarray:
    """Round to the grid of a ``bits``-bit DAC spanning [0, clip] (or [-clip, clip])."""
    levels = (2 ** bits - 1) if not signed else (2 ** (bits - 1) - 1)
    lo = -clip if signed else 0.0
    step = clip / levels
    return (np.round(np.clip(x, lo, clip) / step) * step).astype(x.dtype)


def quantize_backward(x: np.ndarray, grad_y: np.ndarray, clip: float,
                      signed: bool = False) -> np.ndarray:
    """Straight-through estimator: gradient passes inside the clip range, zero outside."""
    lo = -clip if signed else 0.0
    return grad_y * ((x >= lo) & (x <= clip))


@dataclass(frozen=True)
class RangeTracker:
    """EMA of the ``percentile`` of |x| on a subsample of each training batch."""

    momentum: float = 0.9
    percentile: float = 99.9
    sample: int = 8192

    def update(self, clip: float | None, x: np.ndarray, rng: np.random.Generator) -> float:
        flat = np.abs(x.ravel())
        if flat.size > self.sample:
            flat = flat[rng.integers(0, flat.size, self.sample)]
        value = float(np.percentile(flat, self.percentile))
        value = max(value, 1e-6)
        return value if clip is None else self.momentum * clip + (1 - self.momentum) * value
