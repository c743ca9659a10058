"""In-place activations: F.relu_, elu_, leaky_relu_, hardtanh_, selu_, celu_, threshold_.

Each writes the out-of-place activation's result into its input through the engine's in-place
machinery (ops/inplace_math.py): with a graph to record the input takes the result's node, so
gradients flow and the saved-tensor version checks see the change; without one the values are
written straight into the input's memory. As in PyTorch, a leaf that requires grad is refused.
"""
from __future__ import annotations

from ...ops.inplace_math import _unary_inplace
from ...tensor import Tensor
from .activation import celu, elu, hardtanh, leaky_relu, relu, selu
from .activation import threshold as _threshold

__all__ = ["relu_", "elu_", "leaky_relu_", "hardtanh_", "selu_", "celu_", "threshold_"]


def _inplace(op, input, fn):  # noqa: A002
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    return _unary_inplace(input, fn, op)


def relu_(input):  # noqa: A002
    """relu written into input; returns input."""
    return _inplace("relu_", input, relu)


def elu_(input, alpha=1.0):  # noqa: A002
    return _inplace("elu_", input, lambda t: elu(t, alpha))


def leaky_relu_(input, negative_slope=0.01):  # noqa: A002
    return _inplace("leaky_relu_", input, lambda t: leaky_relu(t, negative_slope))


def hardtanh_(input, min_val=-1.0, max_val=1.0):  # noqa: A002
    return _inplace("hardtanh_", input, lambda t: hardtanh(t, min_val, max_val))


def selu_(input):  # noqa: A002
    return _inplace("selu_", input, selu)


def celu_(input, alpha=1.0):  # noqa: A002
    return _inplace("celu_", input, lambda t: celu(t, alpha))


def threshold_(input, threshold, value):  # noqa: A002 - PyTorch's argument names
    return _inplace("threshold_", input, lambda t: _threshold(t, threshold, value))
