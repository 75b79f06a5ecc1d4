"""A network as a flat list of ops whose weight layers call a pluggable matmul.

The same graph runs in software (``matmul = x @ W``) and on a chip (``matmul`` drives an array
tile and reads the column currents), so training, edge-popup and analog inference share one
forward pass.  ``backward`` returns dL/dW_effective for every weight layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labctl.pipelines.nn import conv, sequence
from labctl.pipelines.nn.activations import relu, relu_backward
from labctl.pipelines.nn.batchnorm import bn_backward, bn_forward, new_stats
from labctl.pipelines.nn.quant import RangeTracker, quantize, quantize_backward

MatMul = Callable[[str, np.ndarray], np.ndarray]
WEIGHT_OPS = ("conv", "conv1d", "linear", "rnn")


@dataclass(frozen=True)
class Op:
    """One layer: ``kind`` in pool2, pool1d, quant, conv, conv1d, bn, relu, flatten, linear, rnn."""

    kind: str
    name: str = ""
    k: int = 0
    bits: int = 0
    clip: float | None = None   # fixed quantiser range (None: tracked during training)
    signed: bool = False
    channels: int = 0           # bn channels / rnn hidden size


@dataclass(frozen=True)
class WeightSpec:
    """A weight matrix (fan_in, fan_out) and the std of its software initialisation."""

    fan_in: int
    fan_out: int
    init_std: float


@dataclass(frozen=True)
class Network:
    name: str
    input_shape: tuple[int, ...]
    ops: tuple[Op, ...]
    weights: dict[str, WeightSpec] = field(default_factory=dict)
    channel_axis: bool = False  # append a channel axis to (N, H, W) images

    def n_weights(self) -> int:
        return sum(s.fan_in * s.fan_out for s in self.weights.values())

    def init_state(self) -> dict[str, Any]:
        """Running BN statistics and quantiser ranges (JSON/array values, checkpointable)."""
        bn = {op.name: new_stats(op.channels) for op in self.ops if op.kind == "bn"}
        clip = {op.name: -1.0 for op in self.ops if op.kind == "quant" and op.clip is None}
        return {"bn": bn, "clip": clip}

    def init_weights(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {n: (rng.standard_normal((s.fan_in, s.fan_out)) * s.init_std).astype(np.float32)
                for n, s in self.weights.items()}


def _clip(op: Op, state: dict[str, Any], x: np.ndarray, train: bool,
          rng: np.random.Generator | None) -> float:
    if op.clip is not None:
        return op.clip
    current = float(state["clip"][op.name])
    if train:
        assert rng is not None
        current = RangeTracker().update(current if current > 0 else None, x, rng)
        state["clip"][op.name] = current
    if current <= 0:
        raise RuntimeError(f"quantiser {op.name} has no range yet: train the network first")
    return current


def forward(net: Network, x: np.ndarray, matmul: MatMul, state: dict[str, Any], *,
            train: bool = False, rng: np.random.Generator | None = None,
            tape: list[Any] | None = None, digital_ops: list[int] | None = None) -> np.ndarray:
    """Logits for ``x``; with ``tape`` (a list) records what :func:`backward` needs; with
    ``digital_ops`` (a one-element list) adds the element count of every digital op."""
    h = x.astype(np.float32, copy=False)
    if net.channel_axis:
        h = h[..., None]
    rec = tape.append if tape is not None else (lambda _: None)
    for op in net.ops:
        if op.kind == "pool2":
            h, mask = conv.maxpool2(h)
            rec(mask)
        elif op.kind == "pool1d":
            h, mask = sequence.maxpool_time(h)
            rec(mask)
        elif op.kind == "quant":
            clip = _clip(op, state, h, train, rng)
            rec((h, clip))
            h = quantize(h, op.bits, clip, op.signed)
        elif op.kind == "conv":
            n, hh, ww, _ = h.shape
            cols = conv.im2col(h, op.k)
            rec((cols, h.shape))
            h = conv.conv_output(matmul(op.name, cols), n, hh, ww, op.k)
        elif op.kind == "conv1d":
            cols = sequence.im2col_time(h, op.k)
            rec((cols, h.shape))
            h = matmul(op.name, cols).reshape(h.shape[0], h.shape[1] - op.k + 1, -1)
        elif op.kind == "bn":
            h, cache = bn_forward(h, state["bn"][op.name], train)
            rec(cache)
        elif op.kind == "relu":
            rec(h)
            h = relu(h)
        elif op.kind == "flatten":
            rec(h.shape)
            h = h.reshape(len(h), -1)
        elif op.kind == "linear":
            rec(h)
            h = matmul(op.name, h)
        elif op.kind == "rnn":
            h, cache = sequence.rnn_forward(h, op.name, matmul, op.bits)
            rec(cache)
        else:
            raise ValueError(f"unknown op {op.kind!r}")
        if digital_ops is not None and op.kind not in WEIGHT_OPS and op.kind != "flatten":
            digital_ops[0] += int(h.size)
    return h


def backward(net: Network, tape: list[Any], grad: np.ndarray,
             weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """dL/dW for every weight layer, given the loss gradient at the logits."""
    grads: dict[str, np.ndarray] = {}
    first = next(i for i, op in enumerate(net.ops) if op.kind in WEIGHT_OPS)
    for i in range(len(net.ops) - 1, first - 1, -1):
        op, saved = net.ops[i], tape[i]
        need_dx = i > first
        if op.kind == "pool2":
            grad = conv.maxpool2_backward(saved, grad)
        elif op.kind == "pool1d":
            grad = sequence.maxpool_time_backward(saved, grad)
        elif op.kind == "quant":
            grad = quantize_backward(saved[0], grad, saved[1], op.signed)
        elif op.kind == "conv":
            cols, shape = saved
            g2d = grad.reshape(-1, grad.shape[-1])
            grads[op.name] = cols.T @ g2d
            if need_dx:
                grad = conv.col2im(g2d @ weights[op.name].T, shape, op.k)
        elif op.kind == "conv1d":
            cols, shape = saved
            g2d = grad.reshape(-1, grad.shape[-1])
            grads[op.name] = cols.T @ g2d
            if need_dx:
                grad = sequence.col2im_time(g2d @ weights[op.name].T, shape, op.k)
        elif op.kind == "bn":
            grad = bn_backward(saved, grad)
        elif op.kind == "relu":
            grad = relu_backward(saved, grad)
        elif op.kind == "flatten":
            grad = grad.reshape(saved)
        elif op.kind == "linear":
            grads[op.name] = saved.T @ grad
            if need_dx:
                grad = grad @ weights[op.name].T
        elif op.kind == "rnn":
            grad, g_w = sequence.rnn_backward(saved, grad, op.name, weights)
            grads.update(g_w)
    return grads


def software_matmul(weights: Mapping[str, np.ndarray]) -> MatMul:
    """The digital matmul: ``x @ W``."""
    return lambda name, x: x @ weights[name]
