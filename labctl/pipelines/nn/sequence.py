"""Sequence layers for spoken digits: 1-D convolution over time, time pooling, a tanh RNN.

Sequences are (N, T, C).  The RNN is an Elman cell h_t = tanh(x_t Wx + q(h_{t-1}) Wh), whose
two matmuls go through the pluggable matmul (two array tiles on a chip); the fed-back state
is quantised (signed, range [-1, 1]) as a DAC would drive it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from labctl.pipelines.nn.quant import quantize


def im2col_time(x: np.ndarray, k: int) -> np.ndarray:
    """(N, T, C) -> (N*(T-k+1), k*C), patch order (dt, c)."""
    n, t, c = x.shape
    win = sliding_window_view(x, k, axis=1)  # (N, T', C, k)
    return np.ascontiguousarray(win.transpose(0, 1, 3, 2)).reshape(n * (t - k + 1), k * c)


def col2im_time(cols_grad: np.ndarray, shape: tuple[int, int, int], k: int) -> np.ndarray:
    n, t, c = shape
    g = cols_grad.reshape(n, t - k + 1, k, c)
    out = np.zeros(shape, dtype=cols_grad.dtype)
    for dt in range(k):
        out[:, dt:dt + t - k + 1, :] += g[:, :, dt, :]
    return out


def maxpool_time(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max over pairs of time steps (T even)."""
    n, t, c = x.shape
    pairs = x.reshape(n, t // 2, 2, c)
    first = pairs[:, :, 0, :] >= pairs[:, :, 1, :]
    return pairs.max(axis=2), first


def maxpool_time_backward(first: np.ndarray, grad_y: np.ndarray) -> np.ndarray:
    n, t2, c = grad_y.shape
    out = np.zeros((n, t2, 2, c), grad_y.dtype)
    out[:, :, 0, :] = grad_y * first
    out[:, :, 1, :] = grad_y * ~first
    return out.reshape(n, 2 * t2, c)


def rnn_forward(x: np.ndarray, name: str, matmul: Any, bits: int) -> tuple[np.ndarray, Any]:
    """Last hidden state of the tanh RNN; weights ``name/x`` and ``name/h``."""
    n, t, _ = x.shape
    hidden = None
    hs: list[np.ndarray] = []
    us: list[np.ndarray | None] = []
    h = None
    for step in range(t):
        a = matmul(f"{name}/x", np.ascontiguousarray(x[:, step]))
        u: np.ndarray | None
        if h is not None:
            u = quantize(h, bits, 1.0, signed=True)
            a = a + matmul(f"{name}/h", u)
        else:
            u = None
        h = np.tanh(a)
        hs.append(h)
        us.append(u)
        hidden = h
    assert hidden is not None
    return hidden, (x, hs, us)


def rnn_backward(cache: Any, grad_h: np.ndarray, name: str,
                 weights: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Back-propagation through time; the quantiser passes the gradient straight through."""
    x, hs, us = cache
    wx, wh = weights[f"{name}/x"], weights[f"{name}/h"]
    gx = np.zeros_like(x)
    g_wx, g_wh = np.zeros_like(wx), np.zeros_like(wh)
    dh = grad_h
    for step in range(len(hs) - 1, -1, -1):
        da = dh * (1 - hs[step] ** 2)
        g_wx += x[:, step].T @ da
        gx[:, step] = da @ wx.T
        if us[step] is None:
            break
        g_wh += us[step].T @ da
        dh = da @ wh.T
    return gx, {f"{name}/x": g_wx, f"{name}/h": g_wh}
