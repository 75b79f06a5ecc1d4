"""ReLU and the softmax cross-entropy loss (mean over the batch)."""

from __future__ import annotations

import numpy as np


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0, dtype=x.dtype)


def relu_backward(x: np.ndarray, grad_y: np.ndarray) -> np.ndarray:
    """Gradient through ReLU given the layer's input ``x``."""
    return grad_y * (x > 0)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax_cross_entropy(logits: np.ndarray,
                          labels: np.ndarray) -> tuple[float, np.ndarray, int]:
    """(mean loss, dL/dlogits, number correct)."""
    logp = log_softmax(logits.astype(np.float64))
    n = len(labels)
    loss = float(-logp[np.arange(n), labels].mean())
    grad = np.exp(logp)
    grad[np.arange(n), labels] -= 1.0
    correct = int((logits.argmax(axis=1) == labels).sum())
    return loss, (grad / n).astype(logits.dtype), correct
