"""lp_pool1d / lp_pool2d / lp_pool3d: the p-norm of each window, (sum x^p)^(1/p).

Composed exactly as PyTorch composes it (the average of x^p times the kernel size, then the
1/p-th power, through sign(out) * relu(|out|)), so values, NaNs for a negative sum under a
fractional power and gradients agree with PyTorch's, ceil_mode's clipped edge windows included.
norm_type = +-inf is the max of |x| (or minus the max of -|x|), as in PyTorch.
"""
from __future__ import annotations

import math

from ...errors import DTypeError
from ...tensor import Tensor
from ._zero_size import refuse_empty_dims
from .pooling import avg_pool2d, max_pool2d
from .pooling1d import avg_pool1d, max_pool1d
from .pooling3d import _triple, avg_pool3d, max_pool3d


def _check(op, input, norm_type):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise DTypeError(f"{op}: needs a floating-point input, got {input.dtype}; convert with .float()")
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float)) or norm_type == 0:
        raise ValueError(f"{op}: norm_type must be a non-zero number (e.g. 2 for the Euclidean norm), got "
                         f"{norm_type!r}")


def _root(out, norm_type, count):
    return ((out.sign() * out.abs().relu()) * count) ** (1.0 / norm_type)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):  # noqa: A002
    """(N, C, L) -> (N, C, Lo): each window's (sum x^p)^(1/p); stride defaults to kernel_size."""

    def window_size(k):
        return k[0] if isinstance(k, (tuple, list)) else k

    return _lp_pool("lp_pool1d", max_pool1d, avg_pool1d, window_size, input, norm_type, kernel_size, stride,
                    ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):  # noqa: A002
    """(N, C, H, W) -> (N, C, Ho, Wo): each window's (sum x^p)^(1/p); stride defaults to kernel_size."""

    def window_size(k):
        k = (k,) * 2 if isinstance(k, int) else tuple(k)  # checked by avg_pool2d
        return k[0] * k[-1]

    return _lp_pool("lp_pool2d", max_pool2d, avg_pool2d, window_size, input, norm_type, kernel_size, stride,
                    ceil_mode)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):  # noqa: A002
    """(N, C, D, H, W) -> (N, C, Do, Ho, Wo): each window's (sum x^p)^(1/p); stride defaults to kernel_size."""

    def window_size(k):
        k = _triple(k, "lp_pool3d", "kernel_size", 1)
        return k[0] * k[1] * k[2]

    return _lp_pool("lp_pool3d", max_pool3d, avg_pool3d, window_size, input, norm_type, kernel_size, stride,
                    ceil_mode)


def _lp_pool(op, max_pool, avg_pool, window_size, input, norm_type, kernel_size, stride, ceil_mode):  # noqa: A002
    """The shared recipe: the max of |x| for norm_type = +-inf, else the average of x^p times the window's
    size (window_size(kernel_size), taken after avg_pool has checked kernel_size) to the 1/p."""
    _check(op, input, norm_type)
    if not input.data.size:  # only the batch may be empty; named here, not as the avg_pool we call
        refuse_empty_dims(op, input, input.ndim - int(op[-2]) - 1)
    if math.isinf(norm_type):
        sign = 1 if norm_type > 0 else -1
        return max_pool(input.abs() * sign, kernel_size, stride, 0, 1, ceil_mode) * sign
    out = avg_pool(input ** norm_type, kernel_size, stride, 0, ceil_mode)
    return _root(out, norm_type, window_size(kernel_size))
