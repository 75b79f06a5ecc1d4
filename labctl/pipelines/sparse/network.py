"""The multilayer perceptron of sparse layers: analog forward/backward, digital glue.

Every weight product runs on the arrays (forward MVM, transposed MVM for the backward pass);
the periphery does what a digital controller does: ReLU, the activation range (the DAC full
scale of the next layer, an EMA of a high percentile - :class:`labctl.pipelines.nn.RangeTracker`),
softmax cross-entropy, and the row/column vectors of the update.  No biases (as the index-free
arrays of seed 001 store only weights).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labctl.pipelines.nn import RangeTracker, relu, softmax_cross_entropy
from labctl.pipelines.sparse.layer import SparseLayer
from labctl.pipelines.sparse.vau import update_counts


@dataclass
class BatchResult:
    """Loss and hits of one training batch, and each layer's input and error (for regrowth)."""

    loss: float
    correct: int
    inputs: list[np.ndarray] = field(default_factory=list)
    errors: list[np.ndarray] = field(default_factory=list)


class SparseNetwork:
    """Layers ``L0 .. L{n-1}`` with ReLU between them; ``scales[k]`` is the full scale of the
    input of layer ``k+1`` (hidden activations are divided by it and clipped to [0, 1])."""

    def __init__(self, layers: list[SparseLayer], *, logit_gain: float = 1.0,
                 tracker: RangeTracker | None = None) -> None:
        self.layers = layers
        self.logit_gain = float(logit_gain)
        self.tracker = tracker or RangeTracker(momentum=0.9, percentile=99.0)
        self.scales: list[float | None] = [None] * (len(layers) - 1)

    def _forward(self, x: np.ndarray, rng: np.random.Generator | None
                 ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        """Inputs of every layer, pre-activations of the hidden ones, and the logits."""
        inputs = [x]
        pre: list[np.ndarray] = []
        a = x
        for k, layer in enumerate(self.layers):
            y = layer.forward(a)
            if k == len(self.layers) - 1:
                return inputs, pre, y * self.logit_gain
            h = relu(y)
            if rng is not None:
                self.scales[k] = self.tracker.update(self.scales[k], h, rng)
            scale = self.scales[k] or max(float(h.max()), 1e-6)
            pre.append(h / scale)
            a = np.clip(h / scale, 0.0, 1.0)
            inputs.append(a)
        raise AssertionError("unreachable")

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self._forward(x, None)[2]

    def backprop(self, x: np.ndarray, y: np.ndarray,
                 rng: np.random.Generator | None) -> BatchResult:
        """Forward and backward through the arrays; ``rng`` given = training (ranges track)."""
        inputs, pre, logits = self._forward(x, rng)
        loss, d, correct = softmax_cross_entropy(logits, y)
        errors: list[np.ndarray] = [np.zeros(0)] * len(self.layers)
        d = d.astype(np.float64) * self.logit_gain
        for k in range(len(self.layers) - 1, -1, -1):
            errors[k] = d
            if k > 0:
                back = self.layers[k].backward(d)
                hk = pre[k - 1]
                d = back * ((hk > 0) & (hk < 1.0)) / (self.scales[k - 1] or 1.0)
        return BatchResult(loss=loss, correct=correct, inputs=inputs, errors=errors)

    def train_batch(self, x: np.ndarray, y: np.ndarray, *, mode: str, lr: float,
                    rng: np.random.Generator) -> BatchResult:
        """One SGD step: forward and backward through the arrays, then gate-pulse updates."""
        res = self.backprop(x, y, rng)
        for k, layer in enumerate(self.layers):
            counts = update_counts(mode, res.inputs[k], res.errors[k], layer.mask,
                                   lr / layer.dw_min, rng, slots=layer.cfg.slots,
                                   max_count=layer.cfg.max_count)
            layer.apply(counts, mode)
        return res

    def evaluate(self, x: np.ndarray, y: np.ndarray,
                 batch: int = 1000) -> tuple[float, float, np.ndarray]:
        """(accuracy, mean loss, predicted class of every input) through the arrays (fresh
        read noise on every MVM)."""
        loss_sum = 0.0
        predicted = np.empty(len(y), dtype=np.int64)
        for i in range(0, len(x), batch):
            z = self.logits(x[i:i + batch])
            loss, _, _ = softmax_cross_entropy(z, y[i:i + batch])
            predicted[i:i + batch] = z.argmax(axis=1)
            loss_sum += loss * len(y[i:i + batch])
        return (float(np.mean(predicted == y)) if len(y) else 0.0,
                loss_sum / max(len(y), 1), predicted)

    def state(self) -> dict[str, Any]:
        return {"scales": [s if s is not None else -1.0 for s in self.scales],
                "layers": {str(k): layer.state() for k, layer in enumerate(self.layers)}}

    def load_state(self, s: dict[str, Any]) -> None:
        self.scales = [None if v < 0 else float(v) for v in s["scales"]]
        for k, layer in enumerate(self.layers):
            layer.load_state(s["layers"][str(k)])
