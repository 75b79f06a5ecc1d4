"""2-D convolution via im2col (valid padding, stride 1) and 2x2 max pooling, channels-last.

Images are (N, H, W, C); a conv weight is the matrix (k*k*C_in, C_out) so the same matmul
runs in software or on an array tile (rows = k*k*C_in inputs).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def im2col(x: np.ndarray, k: int) -> np.ndarray:
    """(N, H, W, C) -> (N*(H-k+1)*(W-k+1), k*k*C), patch order (ky, kx, c)."""
    n, h, w, c = x.shape
    win = sliding_window_view(x, (k, k), axis=(1, 2))  # (N, oh, ow, C, k, k)
    return np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(
        n * (h - k + 1) * (w - k + 1), k * k * c)


def col2im(cols_grad: np.ndarray, shape: tuple[int, int, int, int], k: int) -> np.ndarray:
    """Adjoint of :func:`im2col`: scatter-add patch gradients back to (N, H, W, C)."""
    n, h, w, c = shape
    oh, ow = h - k + 1, w - k + 1
    g = cols_grad.reshape(n, oh, ow, k, k, c)
    out = np.zeros(shape, dtype=cols_grad.dtype)
    for ky in range(k):
        for kx in range(k):
            out[:, ky:ky + oh, kx:kx + ow, :] += g[:, :, :, ky, kx, :]
    return out


def conv_output(y2d: np.ndarray, n: int, h: int, w: int, k: int) -> np.ndarray:
    """Matmul result (N*oh*ow, C_out) -> (N, oh, ow, C_out)."""
    return y2d.reshape(n, h - k + 1, w - k + 1, -1)


def maxpool2(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 max pooling (H, W even); returns the output and the arg-max mask for backward."""
    n, h, w, c = x.shape
    blocks = x.reshape(n, h // 2, 2, w // 2, 2, c)
    y = blocks.max(axis=(2, 4))
    hit = blocks == y[:, :, None, :, None, :]
    # keep only the first maximum of each window so ties do not multiply the gradient
    first = np.cumsum(np.cumsum(hit, axis=2), axis=4) == 1
    return y, (hit & first).reshape(x.shape)


def maxpool2_backward(mask: np.ndarray, grad_y: np.ndarray) -> np.ndarray:
    n, h2, w2, c = grad_y.shape
    up = np.broadcast_to(grad_y[:, :, None, :, None, :], (n, h2, 2, w2, 2, c))
    return up.reshape(mask.shape) * mask
