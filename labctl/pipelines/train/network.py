"""The fully connected network: analog layers (update rules) plus the digital parts.

Digital, in numpy: biases (aihwkit's ``digital_bias``), a fixed output scale per layer,
activations, softmax cross-entropy (mean over the batch).  A layer computes
``z = alpha * (x @ W) + b`` with W on the arrays; with weight scaling (aihwkit
``MappingParameter.weight_scaling_omega``) the initial weights are stored as
``W_init * omega / max|W_init|`` so that they use the device window, and
``alpha = max|W_init| / omega`` restores their scale.  Learning rates act on the effective
weights ``alpha W``: a rule gets the error ``d / alpha``, so that analog SGD at learning rate
lr moves ``alpha W`` as digital SGD at lr would.  The whole backward pass is computed before
any layer is updated, as autograd does.

:class:`DigitalNetwork` is the floating-point baseline: the same network, trained with
digital SGD from the same initial weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from labctl.errors import ConfigError
from labctl.pipelines.train.rules import UpdateRule

ACTIVATIONS = ("sigmoid", "relu", "tanh")


def activate(name: str, z: np.ndarray) -> np.ndarray:
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}",
                      key="activation")


def activation_grad(name: str, z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """d a / d z from the pre-activation z and the activation a."""
    if name == "sigmoid":
        return a * (1.0 - a)
    if name == "relu":
        return (z > 0).astype(z.dtype)
    return 1.0 - a * a


def softmax_xent(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and the softmax probabilities."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    loss = float(-np.mean(np.log(np.maximum(p[np.arange(y.size), y], 1e-12))))
    return loss, p


def init_weights(sizes: Sequence[int], rng: np.random.Generator) -> tuple[list[np.ndarray],
                                                                           list[np.ndarray]]:
    """PyTorch ``nn.Linear`` initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), (in, out)."""
    ws, bs = [], []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        k = 1.0 / np.sqrt(n_in)
        ws.append(rng.uniform(-k, k, (n_in, n_out)))
        bs.append(rng.uniform(-k, k, n_out))
    return ws, bs


Mvm = Callable[[int, np.ndarray], np.ndarray]


def _forward(x: np.ndarray, n_layers: int, mvm: Mvm, biases: Sequence[np.ndarray],
             activation: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    acts, zs = [x], []
    for k in range(n_layers):
        z = mvm(k, acts[-1]) + biases[k]
        zs.append(z)
        acts.append(activate(activation, z) if k < n_layers - 1 else z)
    return zs, acts


def _backward(zs: list[np.ndarray], acts: list[np.ndarray], d_out: np.ndarray,
              mvm_t: Mvm, activation: str) -> list[np.ndarray]:
    """dL/dz for every layer."""
    ds: list[np.ndarray] = [d_out]
    for k in range(len(zs) - 1, 0, -1):
        g = mvm_t(k, ds[0])
        ds.insert(0, g * activation_grad(activation, zs[k - 1], acts[k]))
    return ds


class AnalogNetwork:
    """Layers whose weights are on arrays (one update rule each) and digital biases."""

    def __init__(self, rules: list[UpdateRule], biases: list[np.ndarray], scales: list[float],
                 activation: str, bias_lr: float) -> None:
        self.rules = rules
        self.biases = [np.array(b, dtype=float) for b in biases]  # copies: init stays intact
        self.scales = [float(s) for s in scales]
        self.activation = activation
        self.bias_lr = float(bias_lr)

    def _mvm(self, k: int, x: np.ndarray) -> np.ndarray:
        return self.scales[k] * self.rules[k].forward(x)

    def _mvm_t(self, k: int, d: np.ndarray) -> np.ndarray:
        return self.scales[k] * self.rules[k].backward(d)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return _forward(x, len(self.rules), self._mvm, self.biases, self.activation)[1][-1]

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """Forward, backward and one update of every layer; returns (loss, correct)."""
        zs, acts = _forward(x, len(self.rules), self._mvm, self.biases, self.activation)
        loss, p = softmax_xent(zs[-1], y)
        correct = int(np.sum(np.argmax(zs[-1], axis=1) == y))
        p[np.arange(y.size), y] -= 1.0
        ds = _backward(zs, acts, p / y.size, self._mvm_t, self.activation)
        for k, rule in enumerate(self.rules):
            self.biases[k] -= self.bias_lr * ds[k].sum(axis=0)
            rule.update(acts[k], ds[k] / self.scales[k])
        return loss, correct

    def state(self) -> dict[str, Any]:
        return {f"b{k}": b.copy() for k, b in enumerate(self.biases)}

    def load_state(self, s: dict[str, Any]) -> None:
        self.biases = [np.array(s[f"b{k}"], dtype=float) for k in range(len(self.rules))]


class DigitalNetwork:
    """The floating-point baseline: same layers, digital weights, plain SGD."""

    def __init__(self, weights: list[np.ndarray], biases: list[np.ndarray], activation: str,
                 lr: float) -> None:
        self.weights = [np.array(w, dtype=np.float64) for w in weights]
        self.biases = [np.array(b, dtype=np.float64) for b in biases]
        self.activation = activation
        self.lr = float(lr)

    def _mvm(self, k: int, x: np.ndarray) -> np.ndarray:
        return x @ self.weights[k]

    def _mvm_t(self, k: int, d: np.ndarray) -> np.ndarray:
        return d @ self.weights[k].T

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        return _forward(x, len(self.weights), self._mvm, self.biases, self.activation)[1][-1]

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        x = x.astype(np.float64)
        zs, acts = _forward(x, len(self.weights), self._mvm, self.biases, self.activation)
        loss, p = softmax_xent(zs[-1], y)
        correct = int(np.sum(np.argmax(zs[-1], axis=1) == y))
        p[np.arange(y.size), y] -= 1.0
        ds = _backward(zs, acts, (p / y.size).astype(np.float64), self._mvm_t, self.activation)
        for k in range(len(self.weights)):
            self.weights[k] -= self.lr * (acts[k].T @ ds[k])
            self.biases[k] -= self.lr * ds[k].sum(axis=0)
        return loss, correct

    def state(self) -> dict[str, Any]:
        s = {f"w{k}": w.copy() for k, w in enumerate(self.weights)}
        s.update({f"b{k}": b.copy() for k, b in enumerate(self.biases)})
        return s

    def load_state(self, s: dict[str, Any]) -> None:
        n = len(self.weights)
        self.weights = [np.array(s[f"w{k}"], dtype=np.float64) for k in range(n)]
        self.biases = [np.array(s[f"b{k}"], dtype=np.float64) for k in range(n)]


def evaluate(logits_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray,
             chunk: int = 1000) -> tuple[float, float, np.ndarray]:
    """(accuracy, mean loss, predicted class of every input) over a data set, in chunks."""
    loss_sum = 0.0
    predicted = np.empty(len(x), dtype=np.int64)
    for i in range(0, len(x), chunk):
        z = logits_fn(x[i:i + chunk])
        loss, _ = softmax_xent(z, y[i:i + chunk])
        loss_sum += loss * len(z)
        predicted[i:i + chunk] = np.argmax(z, axis=1)
    return float(np.mean(predicted == y)), loss_sum / len(x), predicted
