"""Reductions: sum mean prod, max min amax amin argmax argmin, and cumsum (var, std, logsumexp and norm
are in statistics.py, on the helpers here).

`dim` is an int or a tuple of ints; None, and (as in PyTorch) an empty tuple, mean every dim.
`keepdim=True` keeps reduced dims with size 1. Backward spreads the reduced gradient back over
the input's shape as a broadcast view, without a copy (the engine copies before storing .grad).
"""
from __future__ import annotations

import builtins
import math
from collections import namedtuple
from types import SimpleNamespace

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..errors import AutogradError, DTypeError, ShapeError
from ..graph_backward import linear_backward_graph, saved_in_graph
from ..tensor import Tensor, _wrap
from ._util import normalize_dim, normalize_dims, numpy_dim_names

return_types = SimpleNamespace(  # torch.return_types: `values, indices = x.max(dim=1)`, or `.values`
    max=namedtuple("max", ["values", "indices"]),
    min=namedtuple("min", ["values", "indices"]),
)


# ----------------------------------------------------------------------------------------- helpers
def reduction_dims(x, dim, op):
    """The reduced dims as a sorted tuple (None and () mean all); 0-d tensors reduce over nothing."""
    ndim = x.data.ndim
    if dim is None or (not isinstance(dim, int) and len(dim) == 0):
        return tuple(range(ndim))
    if type(dim) is int:  # the common x.sum(1): no set or sort needed
        dim = normalize_dim(dim, ndim, op)
        return (dim,) if ndim else ()
    dims = normalize_dims(dim, ndim, op)
    return dims if ndim else ()


def _kept_shape(shape, dims):
    return tuple(1 if i in dims else n for i, n in enumerate(shape))


def _keep(array, shape, dims, keepdim):
    """A reduced array with its reduced dims restored as size 1 (so it broadcasts against the input)."""
    return array if keepdim else array.reshape(_kept_shape(shape, dims))


def _unreduce(xp, grad, shape, dims, keepdim):
    """The gradient of a reduction, spread over the input's shape (a read-only broadcast view)."""
    return xp.broadcast_to(_keep(grad, shape, dims, keepdim), shape)


def _unreduce_graph(grad, dtype, shape, dims, keepdim):
    """_unreduce on a Tensor gradient (backward_graph): recorded, so it can be differentiated again."""
    kept = grad.to(dtype) if keepdim else grad.to(dtype).reshape(_kept_shape(shape, dims))
    return kept.expand(shape)


def _count(shape, dims):
    return math.prod(shape[d] for d in dims)


def _axis(dims, ndim):
    return None if len(dims) == ndim else dims  # NumPy's full reduction is its fastest path


# ndarray.sum/max/min are Python wrappers around these ufunc reductions (positional arguments:
# axis, dtype, out, keepdims); calling them directly saves about a microsecond per small op.
_add_reduce, _max_reduce, _min_reduce = np.add.reduce, np.maximum.reduce, np.minimum.reduce


def _require_nonempty(x, dims, op):
    if x.data.size:  # no dim of a non-empty tensor has size 0
        return
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
        if type(x) is np.ndarray:
            return _add_reduce(x, _axis(dims, x.ndim), dtype, None, keepdim)
        return x.sum(axis=_axis(dims, x.ndim), dtype=dtype, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad):
        shape, dtype, dims, keepdim = ctx.meta
        return _unreduce(ctx.xp, grad.astype(dtype, copy=False), shape, dims, keepdim), None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        shape, dtype, dims, keepdim = ctx.meta
        return _unreduce_graph(grad, dtype, shape, dims, keepdim), None, None, None


class Mean(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim, dtype):
        ctx.meta = (x.shape, x.dtype, dims, keepdim)
        count = _count(x.shape, dims)
        if count == 0:  # PyTorch's NaN, without NumPy's "mean of empty slice" warning
            reduced = x.sum(axis=_axis(dims, x.ndim), dtype=dtype, keepdims=keepdim)
            return ctx.xp.full_like(reduced, math.nan)
        if type(x) is np.ndarray and dtype is None and x.dtype.char in "fd" and count < 1 << 24:
            # Bit for bit what ndarray.mean gives for float32/64 (the same pairwise sum, one correctly
            # rounded division; the count is exact in float32 below 2**24), without its Python-level
            # bookkeeping, which costs more than the work itself on small tensors.
            return _add_reduce(x, _axis(dims, x.ndim), None, None, keepdim) / count
        return x.mean(axis=_axis(dims, x.ndim), dtype=dtype, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad):
        shape, dtype, dims, keepdim = ctx.meta
        scaled = grad * (1.0 / builtins.max(_count(shape, dims), 1))
        return _unreduce(ctx.xp, scaled.astype(dtype, copy=False), shape, dims, keepdim), None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        shape, dtype, dims, keepdim = ctx.meta
        scaled = grad * (1.0 / builtins.max(_count(shape, dims), 1))
        return _unreduce_graph(scaled, dtype, shape, dims, keepdim), None, None, None


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

    @staticmethod
    def backward_graph(ctx, grad):
        (x,) = saved_in_graph(ctx)
        dims, keepdim = ctx.meta
        if bool((x.data == 0).any()):
            # The zero masks above are constants to the graph, which would make the second derivative
            # wrong there (PyTorch special-cases it); refused rather than wrong.
            raise AutogradError("prod: higher-order gradients at inputs that contain zeros are not supported")
        others = x.prod(dims, keepdim=True) / x
        return (_keep(grad, x.shape, dims, keepdim) * others).to(x.dtype), None, None, None


def sum(x, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):  # noqa: A001 - torch.sum
    """Sum over `dim`; bool and integer tensors sum to int64, as in PyTorch."""
    if axis is not None or keepdims is not None:
        dim, keepdim = numpy_dim_names("sum", dim, keepdim, axis, keepdims)
    return Sum.apply(x, reduction_dims(x, dim, "sum"), keepdim, _integer_accumulator(x, dtype))


def mean(x, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
    if axis is not None or keepdims is not None:
        dim, keepdim = numpy_dim_names("mean", dim, keepdim, axis, keepdims)
    if x.data.dtype.kind != "f" and (dtype is None or dtypes.as_dtype(dtype).kind != "f"):
        raise DTypeError(f"mean: needs a floating-point tensor, got {x.dtype}; call .float() first or pass dtype=")
    return Mean.apply(x, reduction_dims(x, dim, "mean"), keepdim, None if dtype is None else dtypes.as_dtype(dtype))


def prod(x, dim=None, keepdim=False, *, dtype=None):
    return Prod.apply(x, reduction_dims(x, dim, "prod"), keepdim, _integer_accumulator(x, dtype))


# ------------------------------------------------------------------------------------ max and min
class _Extreme(Function):
    """amax / amin: ties share the gradient evenly (PyTorch)."""

    pick = None  # "max" or "min", the array method
    reduce = None  # the same as a NumPy ufunc reduction

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        if type(x) is np.ndarray:
            out = ctx.reduce(x, _axis(dims, x.ndim), None, None, keepdim)
        else:
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

    @staticmethod
    def backward_graph(ctx, grad):
        x, out = saved_in_graph(ctx)
        dims, keepdim = ctx.meta
        hits = x == _keep(out, x.shape, dims, keepdim)  # a constant mask
        share = _keep(grad, x.shape, dims, keepdim) / hits.sum(dims, keepdim=True)
        return hits * share, None, None


class Amax(_Extreme):
    pick, reduce = "max", staticmethod(_max_reduce)


class Amin(_Extreme):
    pick, reduce = "min", staticmethod(_min_reduce)


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
        return _ExtremeAlongDim.route(ctx, grad, lambda mask: mask)

    @staticmethod
    def backward_graph(ctx, grad, _indices_grad):
        return _ExtremeAlongDim.route(ctx, grad, _wrap)  # the mask is a constant of the graph

    @staticmethod
    def route(ctx, grad, constant):
        """grad (array or Tensor) put at each line's chosen index; constant() wraps the mask."""
        shape, dim, keepdim = ctx.meta
        if not shape:
            return grad, None, None
        (indices,) = ctx.saved_tensors
        positions = ctx.xp.arange(shape[dim]).reshape((-1,) + (1,) * (len(shape) - dim - 1))
        return _keep(grad, shape, (dim,), keepdim) * constant(positions == indices), None, None


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


# ------------------------------------------------------------------------------------------- cumsum
class Cumsum(Function):
    @staticmethod
    def forward(ctx, x, dim, dtype):
        ctx.meta, ctx.dtype_arg = (dim, x.dtype), dtype
        if x.ndim == 0:
            return x.astype(dtype or x.dtype)  # a copy: the running sum of one element
        return _running_sum(ctx.xp, x, dim, dtype)

    @staticmethod
    def backward(ctx, grad):
        """Each input element feeds every later output: the reversed running sum of the gradient."""
        dim, dtype = ctx.meta
        if grad.ndim == 0:
            return grad.astype(dtype, copy=False), None, None
        xp = ctx.xp
        reversed_sum = xp.flip(_running_sum(xp, xp.flip(grad, dim), dim, dtype), dim)
        return reversed_sum, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, (ctx.meta[0], ctx.dtype_arg))


def _running_sum(xp, x, dim, dtype):
    """cumsum along dim. Half and single precision accumulate in double on the CPU, as PyTorch's CPU kernel
    does: a float32 running sum drifts (1e-4 over 400 values) where losses like Lovasz's pass near zero.
    (PyTorch's CUDA kernel accumulates in float32, and so does CuPy's.)"""
    out_dtype = np.dtype(dtype) if dtype is not None else x.dtype
    if xp is np and out_dtype.kind == "f" and out_dtype.itemsize < 8:
        return np.cumsum(x, axis=dim, dtype=np.float64).astype(out_dtype)
    return xp.cumsum(x, axis=dim, dtype=dtype)


def cumsum(x, dim, *, dtype=None):
    """Running sum along `dim`; bool and integer tensors accumulate in int64, as in PyTorch."""
    return Cumsum.apply(x, normalize_dim(dim, x.ndim, "cumsum"), _integer_accumulator(x, dtype))

