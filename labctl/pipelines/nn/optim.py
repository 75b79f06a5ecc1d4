"""SGD with momentum and decoupled-from-nothing (L2) weight decay, and the cosine schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def cosine_lr(base_lr: float, step: int, total_steps: int) -> float:
    """Cosine annealing from ``base_lr`` to 0 over ``total_steps`` (Loshchilov & Hutter 2017)."""
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


@dataclass(frozen=True)
class SGD:
    """PyTorch-style SGD: v = mu v + (g + wd p); p -= lr v (in place on ``param`` and ``buf``)."""

    momentum: float = 0.9
    weight_decay: float = 5e-4

    def step(self, param: np.ndarray, grad: np.ndarray, buf: np.ndarray, lr: float) -> None:
        g = grad + self.weight_decay * param if self.weight_decay else grad
        buf *= self.momentum
        buf += g
        param -= lr * buf
