"""Fused pointwise formulas PyTorch names: clamp_min, clamp_max, lerp, addcmul, addcdiv, addmm, nan_to_num,
and the NaN-skipping reductions nansum and nanmean.

Most are exact compositions of existing Functions (each already differentiable and broadcasting), so
they add no new backward; nan_to_num is its own Function because its gradient masks non-finite inputs.
"""
from __future__ import annotations

import numbers

from ..autograd import Function
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor, _wrap
from . import arithmetic, compare, linalg, reduce
from ._util import number_first
from .unary import clamp


def clamp_min(x, min):  # noqa: A002 - torch's argument names
    """max(x, min) elementwise; min is a number or a tensor."""
    return clamp(x, min=min)


def clamp_max(x, max):  # noqa: A002
    """min(x, max) elementwise; max is a number or a tensor."""
    return clamp(x, max=max)


def _require_float(op, *tensors):
    for t in tensors:
        if isinstance(t, Tensor) and t.dtype.kind != "f":
            raise DTypeError(f"{op}: needs floating-point tensors, got {t.dtype}; convert with .float() first")


def lerp(x, end, weight):
    """x + weight * (end - x): linear interpolation; weight is a number or a tensor (broadcasts)."""
    _require_float("lerp", x, end, weight)
    return arithmetic.add(x, arithmetic.mul(weight, arithmetic.sub(end, x)))


def _scaled(term, factor):
    return term if isinstance(factor, numbers.Number) and factor == 1 else arithmetic.mul(term, factor)


def addcmul(x, tensor1, tensor2, *deprecated, value=1):
    """x + value * tensor1 * tensor2 (all three broadcast)."""
    if deprecated:  # addcmul(x, value, tensor1, tensor2), PyTorch's deprecated order
        tensor1, tensor2, value = number_first("addcmul", tensor1, (tensor2, *deprecated), "addcmul(x, t1, t2, value=v)")
    return arithmetic.add(x, _scaled(arithmetic.mul(tensor1, tensor2), value))


def addcdiv(x, tensor1, tensor2, *deprecated, value=1):
    """x + value * tensor1 / tensor2; integer division is refused, as in PyTorch."""
    if deprecated:  # addcdiv(x, value, tensor1, tensor2), PyTorch's deprecated order
        tensor1, tensor2, value = number_first("addcdiv", tensor1, (tensor2, *deprecated), "addcdiv(x, t1, t2, value=v)")
    for t in (tensor1, tensor2):
        if isinstance(t, Tensor) and t.dtype.kind != "f":
            raise DTypeError(f"addcdiv: integer division of tensor1 by tensor2 is not supported (got {t.dtype}); "
                             "convert them with .float() first")
    return arithmetic.add(x, _scaled(arithmetic.div(tensor1, tensor2), value))


def addmm(x, mat1, mat2, *, beta=1, alpha=1):
    """beta * x + alpha * (mat1 @ mat2); mat1 (n, k), mat2 (k, m), x broadcasts to (n, m).

    As in PyTorch, beta=0 ignores x's values (NaN and inf in x do not leak into the result).
    """
    for name, m in (("mat1", mat1), ("mat2", mat2)):
        if not isinstance(m, Tensor) or m.ndim != 2:
            got = tuple(m.shape) if isinstance(m, Tensor) else type(m).__name__
            raise ShapeError(f"addmm: {name} must be a 2-D tensor, got {got}; use matmul/baddbmm for batches")
    return beta_x_plus(x, beta, _scaled(linalg.mm(mat1, mat2), alpha))


def beta_x_plus(x, beta, product):
    """beta * x + product, the BLAS-style update of addmm, baddbmm, addmv, ...: beta=0 ignores x's values
    (NaN and inf in x do not leak into the result) but x still broadcasts into the result's shape."""
    if isinstance(beta, numbers.Number) and beta == 0:
        zeros_like_x = nan_to_num(arithmetic.mul(x.detach(), 0), 0.0, 0.0, 0.0)
        return arithmetic.add(product, zeros_like_x)
    return arithmetic.add(_scaled(x, beta), product)


class NanToNum(Function):
    """NaN, +inf, -inf replaced by numbers; the replaced elements get no gradient (PyTorch's rule)."""

    @staticmethod
    def forward(ctx, x, nan, posinf, neginf):
        ctx.save_for_backward(x)
        return ctx.xp.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ctx.xp.isfinite(x), None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        return grad * _wrap(ctx.xp.isfinite(ctx.saved_tensors[0])), None, None, None


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """NaN -> nan, +inf -> posinf, -inf -> neginf (None: the dtype's largest / lowest finite value)."""
    if x.dtype.kind != "f":
        return x.clone()  # integers and bools hold no NaN or inf
    return NanToNum.apply(x, nan, posinf, neginf)


def _nan_as_zero(x, op):
    if x.dtype.kind != "f":
        raise DTypeError(f"{op}: needs a floating-point tensor, got {x.dtype}; use sum/mean for integers")
    return compare.where(compare.isnan(x), 0.0, x)


def nansum(x, dim=None, keepdim=False, *, dtype=None):
    """sum that treats NaN as zero; the NaN elements get no gradient."""
    if x.dtype.kind != "f":
        return reduce.sum(x, dim, keepdim, dtype=dtype)
    return reduce.sum(_nan_as_zero(x, "nansum"), dim, keepdim, dtype=dtype)


def nanmean(x, dim=None, keepdim=False, *, dtype=None):
    """mean over the non-NaN elements (NaN where a slice is all NaN, as in PyTorch)."""
    if x.data.size == 0 and x.dtype.kind == "f":  # mean's NaN, without the 0 / 0 warnings of the division
        return reduce.mean(x, dim, keepdim, dtype=dtype)
    total = reduce.sum(_nan_as_zero(x, "nanmean"), dim, keepdim, dtype=dtype)
    count = reduce.sum(compare.logical_not(compare.isnan(x)), dim, keepdim)
    return arithmetic.div(total, count.to(dtype=total.dtype))
