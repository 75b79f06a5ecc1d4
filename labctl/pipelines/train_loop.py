"""Epoch loops shared by the pruning pipeline: score training (edge-popup), weight training
(the software baseline), BN/quantiser calibration and evaluation with any matmul.

SGD with momentum 0.9, weight decay 5e-4 and a per-step cosine schedule (training.md section 4).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from labctl.pipelines import edge_popup as ep
from labctl.pipelines.nn.activations import softmax_cross_entropy
from labctl.pipelines.nn.network import MatMul, Network, backward, forward, software_matmul
from labctl.pipelines.nn.optim import SGD, cosine_lr


@dataclass(frozen=True)
class Schedule:
    lr: float
    epochs: int
    batch_size: int
    momentum: float = 0.9
    weight_decay: float = 5e-4

    def steps_per_epoch(self, n: int) -> int:
        return -(-n // self.batch_size)

    def lr_at(self, epoch: int, step: int, n: int) -> float:
        per = self.steps_per_epoch(n)
        return cosine_lr(self.lr, epoch * per + step, self.epochs * per)


def batches(n: int, size: int, rng: np.random.Generator | None) -> Iterator[np.ndarray]:
    """Index batches over ``n`` samples, shuffled when ``rng`` is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for i in range(0, n, size):
        yield order[i:i + size]


def train_scores_epoch(net: Network, x: np.ndarray, y: np.ndarray, p: dict[str, Any],
                       state: dict[str, Any], sched: Schedule, epoch: int, keep: float,
                       threshold: float, rng: np.random.Generator) -> dict[str, float]:
    """One edge-popup epoch; ``p`` holds per layer ``w``, ``residual``, ``scores``, ``buf``,
    ``mask``, ``ref`` (all updated in place).  Returns loss, accuracy and flip counts."""
    opt = SGD(sched.momentum, sched.weight_decay)
    loss_sum = correct = resets = sets = 0.0
    for i, idx in enumerate(batches(len(y), sched.batch_size, rng)):
        w_eff = {n: ep.effective_weights(p["w"][n], p["residual"][n], p["mask"][n])
                 for n in net.weights}
        tape: list[Any] = []
        logits = forward(net, x[idx], software_matmul(w_eff), state, train=True, rng=rng,
                         tape=tape)
        loss, grad, ok = softmax_cross_entropy(logits, y[idx])
        grads = backward(net, tape, grad, w_eff)
        lr = sched.lr_at(epoch, i, len(y))
        for n in net.weights:
            g_s = ep.score_gradient(grads[n], p["w"][n], p["residual"][n], p["scores"][n])
            opt.step(p["scores"][n], g_s, p["buf"][n], lr)
            r, s = ep.hysteresis_update(p["mask"][n], p["scores"][n], p["ref"][n], keep,
                                        threshold)
            resets, sets = resets + r, sets + s
        loss_sum += loss * len(idx)
        correct += ok
    return {"loss": loss_sum / len(y), "accuracy": correct / len(y), "resets": resets,
            "sets": sets}


def train_weights_epoch(net: Network, x: np.ndarray, y: np.ndarray, weights: dict[str, Any],
                        bufs: dict[str, Any], state: dict[str, Any], sched: Schedule,
                        epoch: int, rng: np.random.Generator) -> dict[str, float]:
    """One epoch of ordinary SGD on the weights (the software baseline)."""
    opt = SGD(sched.momentum, sched.weight_decay)
    loss_sum = correct = 0.0
    for i, idx in enumerate(batches(len(y), sched.batch_size, rng)):
        tape: list[Any] = []
        logits = forward(net, x[idx], software_matmul(weights), state, train=True, rng=rng,
                         tape=tape)
        loss, grad, ok = softmax_cross_entropy(logits, y[idx])
        grads = backward(net, tape, grad, weights)
        lr = sched.lr_at(epoch, i, len(y))
        for n in net.weights:
            opt.step(weights[n], grads[n], bufs[n], lr)
        loss_sum += loss * len(idx)
        correct += ok
    return {"loss": loss_sum / len(y), "accuracy": correct / len(y)}


def calibrate(net: Network, x: np.ndarray, matmul: MatMul, state: dict[str, Any],
              rng: np.random.Generator, batch_size: int, n_batches: int = 30) -> None:
    """Fit BN running statistics and quantiser ranges of an untrained network (no gradient)."""
    for k, idx in enumerate(batches(len(x), batch_size, rng)):
        if k >= n_batches:
            break
        forward(net, x[idx], matmul, state, train=True, rng=rng)


def predict(net: Network, x: np.ndarray, matmul: MatMul, state: dict[str, Any],
            batch_size: int, digital_ops: list[int] | None = None) -> np.ndarray:
    """Predicted class of every input with ``matmul`` (software or an array); each batch
    calls it afresh."""
    predicted = np.empty(len(x), dtype=np.int64)
    for idx in batches(len(x), batch_size, None):
        logits = forward(net, x[idx], matmul, state, train=False, digital_ops=digital_ops)
        predicted[idx] = logits.argmax(axis=1)
    return predicted


def evaluate(net: Network, x: np.ndarray, y: np.ndarray, matmul: MatMul, state: dict[str, Any],
             batch_size: int, digital_ops: list[int] | None = None) -> float:
    """Test accuracy with ``matmul`` (software or an array)."""
    predicted = predict(net, x, matmul, state, batch_size, digital_ops)
    return float(np.mean(predicted == y)) if len(y) else 0.0
