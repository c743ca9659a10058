"""bilinear: y_o = x1 . weight_o . x2 + bias_o, composed from one matmul, a product and a sum."""
from __future__ import annotations

import math

from ...errors import ShapeError


def bilinear(input1, input2, weight, bias=None):
    """input1 (*, in1), input2 (*, in2), weight (out, in1, in2), bias (out,) -> (*, out).

    x1 first meets all of weight at once, (B, in1) @ (in1, out * in2), so the work is one BLAS
    product plus a (B, out, in2) multiply-and-sum, and autograd derives every gradient exactly.
    """
    _check_shapes(input1, input2, weight, bias)
    out_features, in1, in2 = weight.shape
    lead = tuple(input1.shape[:-1])
    batch = math.prod(lead)  # not -1 in the reshapes: the batch or a feature count may be 0
    x1, x2 = input1.reshape(batch, in1), input2.reshape(batch, in2)
    mixed = x1 @ weight.permute(1, 0, 2).reshape(in1, out_features * in2)
    out = (mixed.reshape(batch, out_features, in2) * x2.unsqueeze(1)).sum(-1)
    if bias is not None:
        out = out + bias
    return out.reshape(*lead, out_features)


def _check_shapes(input1, input2, weight, bias):
    if weight.dim() != 3:
        raise ShapeError(f"bilinear: weight must be 3-D (out_features, in1_features, in2_features), got shape "
                         f"{tuple(weight.shape)}")
    _, in1, in2 = weight.shape
    if input1.dim() < 1 or input1.shape[-1] != in1 or input2.dim() < 1 or input2.shape[-1] != in2:
        raise ShapeError(f"bilinear: inputs must end in in1_features={in1} and in2_features={in2}, got shapes "
                         f"{tuple(input1.shape)} and {tuple(input2.shape)}")
    if tuple(input1.shape[:-1]) != tuple(input2.shape[:-1]):
        raise ShapeError(f"bilinear: inputs must share their leading (batch) dims, got shapes {tuple(input1.shape)} "
                         f"and {tuple(input2.shape)}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ShapeError(f"bilinear: bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
