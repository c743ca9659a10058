"""dropout as two elementwise kernels: the mask and the scaled product in one pass, and backward.

The uniforms come from the engine's generator for the device (cupy's random, one launch), so a
seed gives the same mask as the unfused path. Forward then writes, in one pass,

    keep = u < keep_prob                     (kept as 1 byte per element for backward)
    y    = x * (keep ? scale : 0)            scale = 1 / keep_prob, rounded to x's dtype

where the unfused path spends four more launches (compare, cast, scale, multiply) and keeps a mask
in x's dtype. x * 0 (not a plain 0) keeps NaN and inf inputs NaN where dropped, as x * mask does.
"""
from __future__ import annotations

import functools

from ..backend import cupy_module


@functools.cache
def _forward_kernel():
    return cupy_module().ElementwiseKernel(
        "T x, float32 u, float32 keep_prob, T scale",
        "T y, bool keep",
        "keep = u < keep_prob; y = x * (keep ? scale : T(0));",
        "raygrad_dropout_forward",
    )


@functools.cache
def _backward_kernel():
    return cupy_module().ElementwiseKernel(
        "T grad, bool keep, T scale", "T dx", "dx = grad * (keep ? scale : T(0));", "raygrad_dropout_backward"
    )


def dropout_forward(x, uniforms, p: float):
    """(y, keep) for a CuPy float array x and float32 uniforms in [0, 1) of x's shape; 0 < p < 1."""
    keep_prob = 1.0 - p
    return _forward_kernel()(x, uniforms, keep_prob, 1.0 / keep_prob)


def dropout_backward(grad, keep, p: float):
    """The input gradient: grad scaled where kept, 0 where dropped."""
    return _backward_kernel()(grad, keep, 1.0 / (1.0 - p))
