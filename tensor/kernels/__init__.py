"""Fused CuPy kernels for the GPU paths of a few ops, each compiled once on first use.

An op calls these only when its `ctx.xp` is cupy (the `*_fits` predicates below say when the
layout fits), and CuPy is imported inside the cached builders, so importing this package and the
NumPy path never touch it. Every kernel here is memory-bound: composed from CuPy ufuncs and
reductions, the ops below read and write their tensors several times each way; fused, about once.

    pointwise       gelu, silu (ElementwiseKernel), erf, relu backward
    softmax         softmax / log_softmax along the last dim (row kernels)
    cross_entropy   cross-entropy of (N, C) logits at class indices, forward and backward (row kernels)
    layer_norm      layer norm over the trailing dims, with the weight/bias gradients (row + column kernels)
    dropout         mask and scale in one pass, backward from the 1-byte mask (ElementwiseKernel)
    columns         im2col and col2im, the convolutions' column matrix and its adjoint, a thread per element
    max_pool        max_pool2d: a thread per output walks its window; backward scatters to the taps

_rows.py holds what the row kernels share: the CUDA preamble, the reductions, launch geometry.
"""
from __future__ import annotations

import numpy as np

from ._rows import C_TYPES, fits_rows
from .cross_entropy import RowLoss, cross_entropy_backward, cross_entropy_forward
from .dropout import dropout_backward, dropout_forward
from .columns import col2im, columns_fit, im2col
from .layer_norm import layer_norm_backward, layer_norm_forward
from .max_pool import max_pool_backward, max_pool_fits, max_pool_forward
from .pointwise import erf, gelu_backward, gelu_forward, relu_backward, silu_backward, silu_forward
from .softmax import softmax_backward, softmax_forward

__all__ = [
    "RowLoss", "col2im", "columns_fit", "cross_entropy_backward", "cross_entropy_fits", "cross_entropy_forward",
    "dropout_backward", "dropout_fits", "dropout_forward", "erf", "fits_rows", "gelu_backward", "gelu_forward",
    "im2col", "layer_norm_backward", "layer_norm_fits", "layer_norm_forward", "max_pool_backward", "max_pool_fits",
    "max_pool_forward", "relu_backward", "silu_backward", "silu_forward", "softmax_backward", "softmax_forward",
]


def _on_gpu_float(x) -> bool:
    return not isinstance(x, np.ndarray) and x.dtype.char in C_TYPES and x.size > 0


def cross_entropy_fits(logits, target) -> bool:
    """The fused cross-entropy takes CuPy (N, C) or (C,) float logits with integer class targets."""
    return _on_gpu_float(logits) and logits.ndim in (1, 2) and target.dtype.kind in "iu"


def layer_norm_fits(x, weight, bias) -> bool:
    """The fused layer norm takes a CuPy float x whose affine parameters (if any) share its dtype."""
    return _on_gpu_float(x) and all(p is None or p.dtype == x.dtype for p in (weight, bias))


def dropout_fits(x) -> bool:
    """The fused dropout takes CuPy float16/32/64 arrays."""
    return _on_gpu_float(x)
