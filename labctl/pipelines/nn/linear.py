"""Fully connected layer without bias: y = x @ W, W of shape (fan_in, fan_out)."""

from __future__ import annotations

import numpy as np


def linear_forward(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(N, fan_in) @ (fan_in, fan_out)."""
    return x @ w


def linear_backward(x: np.ndarray, w: np.ndarray, grad_y: np.ndarray,
                    need_dx: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """(dL/dW, dL/dx); dx is skipped for the first layer."""
    grad_w = x.T @ grad_y
    return grad_w, (grad_y @ w.T if need_dx else None)


def kaiming_std(fan_in: int) -> float:
    """He et al. 2015 standard deviation for a ReLU layer."""
    return float(np.sqrt(2.0 / fan_in))
