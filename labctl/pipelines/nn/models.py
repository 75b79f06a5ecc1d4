"""The networks of the pipelines, by name (training.md section 4; seed 000).

* ``cnn-fmnist``: maxpool 2 -> conv3x3 1->64 -> BN -> ReLU -> conv3x3 64->16 -> maxpool 2 ->
  BN -> ReLU -> FC 400->128 -> ReLU -> FC 128->10, no biases (62,272 weights), 28x28 inputs.
* ``mlp``: flatten -> FC in->hidden -> BN -> ReLU -> FC hidden->classes (any input shape).
* ``crnn-fsdd``: conv1d k3 13->64 -> BN -> ReLU -> time maxpool 2 -> tanh RNN 64->128 ->
  FC 128->10 on (frames, 13) MFCC sequences.  The seed's exact spoken-digit network is not
  published (68,480 weights); this one has 28,352.

A quantiser (the DAC) sits in front of every weight layer: ``bits`` per task (4 for
Fashion-MNIST, 3 for spoken digits).  Initialisation std: Kaiming for ReLU layers, 1/sqrt(fan_in)
for the tanh RNN.
"""

from __future__ import annotations

import math

from labctl.errors import ConfigError
from labctl.pipelines.nn.network import Network, Op, WeightSpec

NETWORK_NAMES = ("cnn-fmnist", "mlp", "crnn-fsdd")


def _relu_spec(fan_in: int, fan_out: int) -> WeightSpec:
    return WeightSpec(fan_in, fan_out, math.sqrt(2.0 / fan_in))


def cnn_fmnist(input_shape: tuple[int, ...], n_classes: int, bits: int) -> Network:
    if tuple(input_shape) != (28, 28):
        raise ConfigError(f"cnn-fmnist needs 28x28 images, the data set has {input_shape}",
                          key="network")
    ops = (Op("pool2"), Op("quant", "in", bits=bits, clip=1.0),
           Op("conv", "conv1", k=3), Op("bn", "bn1", channels=64), Op("relu"),
           Op("quant", "q1", bits=bits), Op("conv", "conv2", k=3), Op("pool2"),
           Op("bn", "bn2", channels=16), Op("relu"), Op("flatten"),
           Op("quant", "q2", bits=bits), Op("linear", "fc1"), Op("relu"),
           Op("quant", "q3", bits=bits), Op("linear", "fc2"))
    weights = {"conv1": _relu_spec(9, 64), "conv2": _relu_spec(576, 16),
               "fc1": _relu_spec(400, 128), "fc2": _relu_spec(128, n_classes)}
    return Network("cnn-fmnist", (28, 28), ops, weights, channel_axis=True)


def mlp(input_shape: tuple[int, ...], n_classes: int, bits: int, hidden: int = 128) -> Network:
    fan_in = math.prod(input_shape)
    ops = (Op("flatten"), Op("quant", "in", bits=bits, clip=1.0), Op("linear", "fc1"),
           Op("bn", "bn1", channels=hidden), Op("relu"), Op("quant", "q1", bits=bits),
           Op("linear", "fc2"))
    weights = {"fc1": _relu_spec(fan_in, hidden), "fc2": _relu_spec(hidden, n_classes)}
    return Network("mlp", tuple(input_shape), ops, weights)


def crnn_fsdd(input_shape: tuple[int, ...], n_classes: int, bits: int,
              hidden: int = 128) -> Network:
    if len(input_shape) != 2:
        raise ConfigError(f"crnn-fsdd needs (frames, coefficients) sequences, got {input_shape}",
                          key="network")
    frames, coeffs = input_shape
    if (frames - 2) % 2:
        raise ConfigError("crnn-fsdd needs an even number of frames after the k=3 conv",
                          key="network")
    ops = (Op("quant", "in", bits=bits, clip=1.0), Op("conv1d", "conv1", k=3),
           Op("bn", "bn1", channels=64), Op("relu"), Op("pool1d"),
           Op("quant", "q1", bits=bits), Op("rnn", "rnn", bits=bits, channels=hidden),
           Op("quant", "q2", bits=bits, clip=1.0, signed=True), Op("linear", "fc"))
    weights = {"conv1": _relu_spec(3 * coeffs, 64),
               "rnn/x": WeightSpec(64, hidden, 1 / math.sqrt(64)),
               "rnn/h": WeightSpec(hidden, hidden, 1 / math.sqrt(hidden)),
               "fc": WeightSpec(hidden, n_classes, 1 / math.sqrt(hidden))}
    return Network("crnn-fsdd", tuple(input_shape), ops, weights)


def build_network(name: str, input_shape: tuple[int, ...], n_classes: int, bits: int) -> Network:
    """The named network for samples of ``input_shape``; ConfigError if it does not fit."""
    if name == "cnn-fmnist":
        return cnn_fmnist(input_shape, n_classes, bits)
    if name == "mlp":
        return mlp(input_shape, n_classes, bits)
    if name == "crnn-fsdd":
        return crnn_fsdd(input_shape, n_classes, bits)
    raise ConfigError(f"unknown network {name!r}; choose one of {', '.join(NETWORK_NAMES)}",
                      key="network")
