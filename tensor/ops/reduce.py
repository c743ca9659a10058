"""Reductions: sum mean prod, max min amax amin argmax argmin, var std, logsumexp, norm, and cumsum.

`dim` is an int or a tuple of ints; None, and (as in PyTorch) an empty tuple, mean every dim.
`keepdim=True` keeps reduced dims with size 1. Backward spreads the reduced gradient back over
the input's shape as a broadcast view, without a copy (the engine copies before storing .grad).
"""
from __future__ import annotations

import builtins
import math
from collections import namedtuple
from types import SimpleNamespace

from .. import dtypes
from ..autograd import Function
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from ._util import normalize_dim, normalize_dims

return_types = SimpleNamespace(  # torch.return_types: `values, indices = x.max(dim=1)`, or `.values`
    max=namedtuple("max", ["values", "indices"]),
    min=namedtuple("min", ["values", "indices"]),
)


# ----------------------------------------------------------------------------------------- helpers
def reduction_dims(x, dim, op):
    """The reduced dims as a sorted tuple (None and () mean all); 0-d tensors reduce over nothing."""
    if dim is None or (not isinstance(dim, int) and len(dim) == 0):
        return tuple(range(x.ndim))
    dims = normalize_dims(dim, x.ndim, op)
    return dims if x.ndim else ()


def _kept_shape(shape, dims):
    return tuple(1 if i in dims else n for i, n in enumerate(shape))


def _keep(array, shape, dims, keepdim):
    """A reduced array with its reduced dims restored as size 1 (so it broadcasts against the input)."""
    return array if keepdim else array.reshape(_kept_shape(shape, dims))


def _unreduce(xp, grad, shape, dims, keepdim):
    """The gradient of a reduction, spread over the input's shape (a read-only broadcast view)."""
    return xp.broadcast_to(_keep(grad, shape, dims, keepdim), shape)


def _count(shape, dims):
    return math.prod(shape[d] for d in dims)


def _axis(dims, ndim):
    return None if len(dims) == ndim else dims  # NumPy's full reduction is its fastest path


def _require_float(x, op):
    if x.data.dtype.kind != "f":
        raise DTypeError(f"{op}: needs a floating-point tensor, got {x.dtype}; call .float() first")


def _require_nonempty(x, dims, op):
    for d in dims:
        if x.shape[d] == 0:
            raise ShapeError(f"{op}: cannot reduce over dim {d} of size 0 (shape {tuple(x.shape)}): it has no identity")
    if not dims and x.data.size == 0:
        raise ShapeError(f"{op}: the tensor is empty (shape {tuple(x.shape)}); there is no element to return")


def _integer_accumulator(x, dtype):
    """PyTorch sums and multiplies bool and integer tensors in int64."""
    if dtype is not None:
        return dtypes.as_dtype(dtype)
    return dtypes.int64 if x.data.dtype.kind in "biu" else None


# -------------------------------------------------------------------------------- sum, mean, prod
class Sum(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim, dtype):
        ctx.meta = (x.shape, x.dtype, dims, keepdim)
        return x.sum(axis=_axis(dims, x.ndim), dtype=dtype, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad):
        shape, dtype, dims, keepdim = ctx.meta
        return _unreduce(ctx.xp, grad.astype(dtype, copy=False), shape, dims, keepdim), None, None, None


class Mean(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim, dtype):
        ctx.meta = (x.shape, x.dtype, dims, keepdim)
        if _count(x.shape, dims) == 0:  # PyTorch's NaN, without NumPy's "mean of empty slice" warning
            reduced = x.sum(axis=_axis(dims, x.ndim), dtype=dtype, keepdims=keepdim)
            return ctx.xp.full_like(reduced, math.nan)
        return x.mean(axis=_axis(dims, x.ndim), dtype=dtype, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad):
        shape, dtype, dims, keepdim = ctx.meta
        scaled = grad * (1.0 / builtins.max(_count(shape, dims), 1))
        return _unreduce(ctx.xp, scaled.astype(dtype, copy=False), shape, dims, keepdim), None, None, None


class Prod(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim, dtype):
        ctx.meta = (dims, keepdim)
        out = x.prod(axis=_axis(dims, x.ndim), dtype=dtype, keepdims=keepdim)
        ctx.save_for_backward(x)
        return out

    @staticmethod
    def backward(ctx, grad):
        """d prod / d x_i = product of the other elements, computed without dividing by zero:
        from the product of the nonzero elements, and zero where another element is zero."""
        (x,) = ctx.saved_tensors
        dims, keepdim = ctx.meta
        is_zero = x == 0
        nonzero = x + is_zero  # zeros replaced by ones
        nonzero_product = nonzero.prod(axis=dims, keepdims=True)
        zeros_elsewhere = is_zero.sum(axis=dims, keepdims=True) - is_zero
        others = nonzero_product / nonzero * (zeros_elsewhere == 0)
        return (_keep(grad, x.shape, dims, keepdim) * others).astype(x.dtype, copy=False), None, None, None


def sum(x, dim=None, keepdim=False, *, dtype=None):  # noqa: A001 - torch.sum
    """Sum over `dim`; bool and integer tensors sum to int64, as in PyTorch."""
    return Sum.apply(x, reduction_dims(x, dim, "sum"), keepdim, _integer_accumulator(x, dtype))


def mean(x, dim=None, keepdim=False, *, dtype=None):
    if x.data.dtype.kind != "f" and (dtype is None or dtypes.as_dtype(dtype).kind != "f"):
        raise DTypeError(f"mean: needs a floating-point tensor, got {x.dtype}; call .float() first or pass dtype=")
    return Mean.apply(x, reduction_dims(x, dim, "mean"), keepdim, None if dtype is None else dtypes.as_dtype(dtype))


def prod(x, dim=None, keepdim=False, *, dtype=None):
    return Prod.apply(x, reduction_dims(x, dim, "prod"), keepdim, _integer_accumulator(x, dtype))


# ------------------------------------------------------------------------------------ max and min
class _Extreme(Function):
    """amax / amin: ties share the gradient evenly (PyTorch)."""

    pick = None  # "max" or "min", the array method

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        out = getattr(x, ctx.pick)(axis=_axis(dims, x.ndim), keepdims=keepdim)
        ctx.save_for_backward(x, out)
        ctx.meta = (dims, keepdim)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        dims, keepdim = ctx.meta
        hits = x == _keep(out, x.shape, dims, keepdim)
        share = _keep(grad, x.shape, dims, keepdim) / hits.sum(axis=dims, keepdims=True)
        return hits * share, None, None


class Amax(_Extreme):
    pick = "max"


class Amin(_Extreme):
    pick = "min"


class _ExtremeAlongDim(Function):
    """max / min over one dim: (values, indices); the gradient goes to the returned index."""

    pick = None  # "argmax" or "argmin"

    @staticmethod
    def forward(ctx, x, dim, keepdim):
        xp = ctx.xp
        ctx.meta = (x.shape, dim, keepdim)
        if x.ndim == 0:
            indices = xp.zeros((), dtype=dtypes.int64)
            ctx.mark_non_differentiable(indices)
            return x.copy(), indices
        indices = getattr(x, ctx.pick)(axis=dim, keepdims=True)
        values = xp.take_along_axis(x, indices, axis=dim)
        ctx.save_for_backward(indices)
        if not keepdim:
            values, indices = values.squeeze(dim), indices.squeeze(dim)
        ctx.mark_non_differentiable(indices)
        return values, indices

    @staticmethod
    def backward(ctx, grad, _indices_grad):
        shape, dim, keepdim = ctx.meta
        if not shape:
            return grad, None, None
        (indices,) = ctx.saved_tensors
        positions = ctx.xp.arange(shape[dim]).reshape((-1,) + (1,) * (len(shape) - dim - 1))
        return _keep(grad, shape, (dim,), keepdim) * (positions == indices), None, None


class MaxAlongDim(_ExtremeAlongDim):
    pick = "argmax"


class MinAlongDim(_ExtremeAlongDim):
    pick = "argmin"


def _max_or_min(x, dim, keepdim, name, whole, along_dim, elementwise):
    if isinstance(dim, Tensor):  # x.max(other): the elementwise maximum
        return elementwise(x, dim)
    if dim is None:
        _require_nonempty(x, (), name)
        return whole.apply(x, tuple(range(x.ndim)), False)
    if not isinstance(dim, int):
        raise TypeError(f"{name}: dim must be an int (use amax/amin for several dims), got {dim!r}")
    dim = normalize_dim(dim, x.ndim, name)
    _require_nonempty(x, (dim,) if x.ndim else (), name)
    values, indices = along_dim.apply(x, dim, keepdim)
    return getattr(return_types, name)(values, indices)


def max(x, dim=None, keepdim=False):  # noqa: A001 - torch.max
    """max(): the largest element; max(dim): (values, indices); max(other): elementwise maximum."""
    from .compare import maximum

    return _max_or_min(x, dim, keepdim, "max", Amax, MaxAlongDim, maximum)


def min(x, dim=None, keepdim=False):  # noqa: A001 - torch.min
    from .compare import minimum

    return _max_or_min(x, dim, keepdim, "min", Amin, MinAlongDim, minimum)


def amax(x, dim=(), keepdim=False):
    dims = reduction_dims(x, dim, "amax")
    _require_nonempty(x, dims, "amax")
    return Amax.apply(x, dims, keepdim)


def amin(x, dim=(), keepdim=False):
    dims = reduction_dims(x, dim, "amin")
    _require_nonempty(x, dims, "amin")
    return Amin.apply(x, dims, keepdim)


class _ArgExtreme(Function):
    pick = None

    @staticmethod
    def forward(ctx, x, dim, keepdim):
        return getattr(x, ctx.pick)(axis=dim if x.ndim else None, keepdims=keepdim)


class Argmax(_ArgExtreme):
    pick = "argmax"


class Argmin(_ArgExtreme):
    pick = "argmin"


def argmax(x, dim=None, keepdim=False):
    """Index of the largest element along `dim` (int64; of the flattened tensor when dim is None)."""
    dim = None if dim is None else normalize_dim(dim, x.ndim, "argmax")
    _require_nonempty(x, () if dim is None or not x.ndim else (dim,), "argmax")
    return Argmax.apply(x, dim, keepdim)


def argmin(x, dim=None, keepdim=False):
    dim = None if dim is None else normalize_dim(dim, x.ndim, "argmin")
    _require_nonempty(x, () if dim is None or not x.ndim else (dim,), "argmin")
    return Argmin.apply(x, dim, keepdim)


# ----------------------------------------------------------------------------------------- var, std
class Var(Function):
    @staticmethod
    def forward(ctx, x, dims, correction, keepdim):
        centered, scale, out = _variance(ctx.xp, x, dims, correction, keepdim)
        ctx.save_for_backward(centered)
        ctx.meta = (dims, keepdim, scale)
        return out

    @staticmethod
    def backward(ctx, grad):
        (centered,) = ctx.saved_tensors
        dims, keepdim, scale = ctx.meta
        return centered * (_keep(grad, centered.shape, dims, keepdim) * (2 * scale)), None, None, None


class Std(Function):
    @staticmethod
    def forward(ctx, x, dims, correction, keepdim):
        centered, scale, variance = _variance(ctx.xp, x, dims, correction, keepdim)
        out = ctx.xp.sqrt(variance)
        ctx.save_for_backward(centered, out)
        ctx.meta = (dims, keepdim, scale)
        return out

    @staticmethod
    def backward(ctx, grad):
        centered, out = ctx.saved_tensors
        dims, keepdim, scale = ctx.meta
        out = _keep(out, centered.shape, dims, keepdim)
        # std == 0 only where every centered value is 0: divide by 1 there, and the product is 0 (PyTorch).
        factor = _keep(grad, centered.shape, dims, keepdim) * scale / (out + (out == 0))
        return centered * factor, None, None, None


def _variance(xp, x, dims, correction, keepdim):
    """(x - mean, 1 / (n - correction), sum((x - mean)^2) / (n - correction))."""
    dof = _count(x.shape, dims) - correction
    scale = 1.0 / dof if dof > 0 else math.inf  # like PyTorch: inf, or NaN where the sum is 0
    if _count(x.shape, dims) == 0:
        centered = x.copy()
    else:
        centered = x - x.mean(axis=dims, keepdims=True)
    return centered, scale, (centered * centered).sum(axis=dims, keepdims=keepdim) * scale


def _correction(op, dim, unbiased, correction):
    if isinstance(dim, bool):  # var(False): PyTorch's older var(unbiased) form
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise ValueError(f"{op}: pass either unbiased= or correction=, not both")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return dim, correction


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over `dim` with Bessel's correction (correction=1) unless told otherwise."""
    dim, correction = _correction("var", dim, unbiased, correction)
    _require_float(x, "var")
    return Var.apply(x, reduction_dims(x, dim, "var"), correction, keepdim)


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    dim, correction = _correction("std", dim, unbiased, correction)
    _require_float(x, "std")
    return Std.apply(x, reduction_dims(x, dim, "std"), correction, keepdim)


# ------------------------------------------------------------------------------- logsumexp, norm
class LogSumExp(Function):
    """log(sum(exp(x))) with the max subtracted first; the gradient is softmax(x)."""

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        xp = ctx.xp
        if _count(x.shape, dims) == 0:
            out = xp.full(_kept_shape(x.shape, dims), -math.inf, dtype=x.dtype)
        else:
            shift = x.max(axis=dims, keepdims=True)
            shift = xp.where(xp.isfinite(shift), shift, 0)  # all -inf (or an inf): no inf - inf below
            out = xp.log(xp.exp(x - shift).sum(axis=dims, keepdims=True)) + shift
        ctx.save_for_backward(x, out)
        ctx.meta = (dims, keepdim)
        return out if keepdim else out.reshape([n for i, n in enumerate(x.shape) if i not in dims])

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        dims, keepdim = ctx.meta
        return _keep(grad, x.shape, dims, keepdim) * ctx.xp.exp(x - out), None, None


def logsumexp(x, dim=None, keepdim=False):
    if x.data.dtype.kind != "f":
        x = x.to(dtype=dtypes.get_default_dtype())  # as in PyTorch: integers give floats
    return LogSumExp.apply(x, reduction_dims(x, dim, "logsumexp"), keepdim)


class Norm2(Function):
    """sqrt(sum(x^2)); the gradient x / norm is 0 where the norm is 0 (PyTorch)."""

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        out = ctx.xp.sqrt((x * x).sum(axis=dims, keepdims=keepdim))
        ctx.save_for_backward(x, out)
        ctx.meta = (dims, keepdim)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        dims, keepdim = ctx.meta
        out = _keep(out, x.shape, dims, keepdim)
        return x * (_keep(grad, x.shape, dims, keepdim) / (out + (out == 0))), None, None


class NormP(Function):
    """(sum |x|^p)^(1/p) for p other than 0, 1, 2 and +-inf."""

    @staticmethod
    def forward(ctx, x, dims, keepdim, p):
        xp = ctx.xp
        out = (xp.abs(x) ** p).sum(axis=dims, keepdims=keepdim) ** (1.0 / p)
        ctx.save_for_backward(x, out)
        ctx.meta = (dims, keepdim, p)
        return out

    @staticmethod
    def backward(ctx, grad):
        """grad * sign(x) |x|^(p-1) / norm^(p-1), with 0 where x or the norm is 0 (PyTorch)."""
        x, out = ctx.saved_tensors
        dims, keepdim, p = ctx.meta
        xp = ctx.xp
        magnitude = xp.abs(x)
        magnitude += magnitude == 0  # 1 at zeros (no 0 ** negative); sign(0) = 0 zeroes them again
        out = _keep(out, x.shape, dims, keepdim)
        factor = _keep(grad, x.shape, dims, keepdim) / (out + (out == 0)) ** (p - 1)
        return xp.sign(x) * magnitude ** (p - 1) * factor, None, None, None


def norm(x, p="fro", dim=None, keepdim=False, dtype=None):
    """The vector p-norm over `dim` (all dims by default): p = 'fro' (2), 1, 2, inf, -inf, 0 or any float."""
    if isinstance(p, str):
        if p != "fro":
            raise ValueError(f"norm: p={p!r} is not supported; use 'fro' or a number (matrix norms are not implemented)")
        p = 2
    if dtype is not None:
        x = x.to(dtype=dtypes.as_dtype(dtype))
    _require_float(x, "norm")
    dims = reduction_dims(x, dim, "norm")
    if p == 2:
        return Norm2.apply(x, dims, keepdim)
    if p == 1:
        return sum(x.abs(), dims, keepdim)
    if p == math.inf or p == -math.inf:
        _require_nonempty(x, dims, "norm")  # no identity for the max/min of an empty dim
        return (amax if p > 0 else amin)(x.abs(), dims, keepdim)
    if p == 0:  # the number of nonzero elements; piecewise constant, no gradient
        return sum(x != 0, dims, keepdim).to(dtype=x.dtype)
    return NormP.apply(x, dims, keepdim, float(p))


# ------------------------------------------------------------------------------------------- cumsum
class Cumsum(Function):
    @staticmethod
    def forward(ctx, x, dim, dtype):
        ctx.meta = (dim, x.dtype)
        if x.ndim == 0:
            return x.astype(dtype or x.dtype)  # a copy: the running sum of one element
        return ctx.xp.cumsum(x, axis=dim, dtype=dtype)

    @staticmethod
    def backward(ctx, grad):
        """Each input element feeds every later output: the reversed running sum of the gradient."""
        dim, dtype = ctx.meta
        if grad.ndim == 0:
            return grad.astype(dtype, copy=False), None, None
        xp = ctx.xp
        reversed_sum = xp.flip(xp.cumsum(xp.flip(grad, dim), axis=dim, dtype=dtype), dim)
        return reversed_sum, None, None


def cumsum(x, dim, *, dtype=None):
    """Running sum along `dim`; bool and integer tensors accumulate in int64, as in PyTorch."""
    return Cumsum.apply(x, normalize_dim(dim, x.ndim, "cumsum"), _integer_accumulator(x, dtype))
