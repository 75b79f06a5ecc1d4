"""Small numpy neural-network pieces shared by the pipelines (prune, train, sparse-train).

Functional, float32, channels-last: every layer is a forward function that returns what its
backward needs.  Weight layers are matrices ``(fan_in, fan_out)`` so that the same matmul can
run in software or on an analog array (rows = inputs, columns = outputs).
"""

from labctl.pipelines.nn.activations import relu, relu_backward, softmax_cross_entropy
from labctl.pipelines.nn.linear import linear_backward, linear_forward
from labctl.pipelines.nn.optim import SGD, cosine_lr
from labctl.pipelines.nn.quant import RangeTracker, quantize, quantize_backward

__all__ = ["SGD", "RangeTracker", "cosine_lr", "linear_backward", "linear_forward",
           "quantize", "quantize_backward", "relu", "relu_backward", "softmax_cross_entropy"]
