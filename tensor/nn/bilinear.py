"""Bilinear: y = x1^T A x2 + b, one (in1, in2) matrix A per output feature."""
from __future__ import annotations

import math

from ..creation import empty
from . import init
from .functional.bilinear import bilinear
from .module import Module
from .parameter import Parameter


class Bilinear(Module):
    """(*, in1_features), (*, in2_features) -> (*, out_features).

    weight (out_features, in1_features, in2_features) and bias (out_features,) start uniform in
    +-1/sqrt(in1_features), as PyTorch's.
    """

    def __init__(self, in1_features: int, in2_features: int, out_features: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__()
        self.in1_features = in1_features
        self.in2_features = in2_features
        self.out_features = out_features
        self.weight = Parameter(empty(out_features, in1_features, in2_features, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.weight.shape[1])
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        return bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")
