"""Batch normalisation without affine parameters over every axis but the last (channels).

Non-affine as in edge-popup (Ramanujan et al., CVPR 2020), so the network has no trained
parameter besides the weights or the scores.  Running statistics live in a plain dict so
they can be checkpointed.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-5
MOMENTUM = 0.1


def new_stats(channels: int) -> dict[str, np.ndarray]:
    return {"mean": np.zeros(channels, np.float32), "var": np.ones(channels, np.float32)}


def bn_forward(x: np.ndarray, stats: dict[str, np.ndarray],
               train: bool) -> tuple[np.ndarray, tuple[np.ndarray | None, np.ndarray]]:
    """Normalise; in training, use batch statistics and update the running ones in place."""
    axes = tuple(range(x.ndim - 1))
    if not train:
        inv_run = (1.0 / np.sqrt(stats["var"] + EPS)).astype(x.dtype)
        return ((x - stats["mean"]) * inv_run).astype(x.dtype), (None, inv_run)
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    n = x.size // x.shape[-1]
    stats["mean"] *= 1 - MOMENTUM
    stats["mean"] += MOMENTUM * mean
    stats["var"] *= 1 - MOMENTUM
    stats["var"] += MOMENTUM * var * n / max(n - 1, 1)
    inv = 1.0 / np.sqrt(var + EPS)
    xhat = ((x - mean) * inv).astype(x.dtype)
    return xhat, (xhat, inv.astype(x.dtype))


def bn_backward(cache: tuple[np.ndarray | None, np.ndarray], grad_y: np.ndarray) -> np.ndarray:
    """Gradient of batch-statistics normalisation (or of the fixed affine map in eval mode)."""
    xhat, inv = cache
    if xhat is None:
        return (grad_y * inv).astype(grad_y.dtype)
    axes = tuple(range(grad_y.ndim - 1))
    g_mean = grad_y.mean(axis=axes)
    gx_mean = (grad_y * xhat).mean(axis=axes)
    return (inv * (grad_y - g_mean - xhat * gx_mean)).astype(grad_y.dtype)
