"""scatter_reduce and index_reduce: src combined into x at `index` along a dim by sum, prod, mean,
amax or amin, with or without x's own values (include_self).

index_reduce(dim, index, source) is scatter_reduce with the 1-D index spread over source's shape
along dim, so one Function serves both. Its gradients follow PyTorch's (FunctionsManual.cpp,
scatter_reduce_backward): prod divides each factor out, with zero factors handled exactly; amax and
amin share the gradient evenly among the values that tie for the result. One deliberate difference:
with include_self=False an x value that merely equals the result at a scattered position takes no
share (PyTorch counts it, then drops its share, so the src values that won get too little).

Integer means round down (floor division), as in PyTorch.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..errors import ShapeError
from ..tensor import Tensor
from . import shape
from ._util import normalize_dim
from .gather import _leading, add_at, along_dim, check_range
from .index_ops import as_vector, check_source, index_arg, same_dtype, vector_index

REDUCES = ("sum", "prod", "mean", "amax", "amin")
_UFUNCS = {"prod": np.multiply, "amax": np.maximum, "amin": np.minimum}


def _identity(reduce, dtype):
    """The value that leaves a reduction unchanged: what x contributes with include_self=False."""
    if reduce in ("sum", "mean"):
        return 0
    if reduce == "prod":
        return 1
    if dtype.kind == "f":
        return -np.inf if reduce == "amax" else np.inf
    info = np.iinfo(dtype) if dtype.kind in "iu" else np.iinfo(np.uint8)  # bool: as 0/1
    return info.min if reduce == "amax" else info.max


def reduce_at(xp, target, positions, values, reduce):
    """target[positions] (reduce)= values, combining repeated positions."""
    if reduce in ("sum", "mean"):
        add_at(xp, target, positions, values)
    elif xp is np:
        _UFUNCS[reduce].at(target, positions, values)
    else:
        # On the host: CuPy has no atomic multiply, and its scatter_max / scatter_min gave float64 results
        # that differ from the values (so the gradients' exact comparisons with the result find no winner).
        host = target.get()
        _UFUNCS[reduce].at(host, tuple(p.get() if hasattr(p, "get") else p for p in positions), values.get())
        target[...] = xp.asarray(host)


def _counts(xp, shape, positions, index_shape, include_self, dtype):
    """How many values each position of the result averages over (at least 1)."""
    counts = xp.full(shape, 1 if include_self else 0, dtype)
    add_at(xp, counts, positions, xp.ones(index_shape, dtype))
    return xp.maximum(counts, 1)


class ScatterReduce(Function):
    """x with src combined in at `index` along `dim`; index may be smaller than src (its leading part counts)."""

    @staticmethod
    def forward(ctx, x, index, src, dim, reduce, include_self):
        xp = ctx.xp
        ctx.meta = (dim, reduce, include_self, src.shape)
        positions = along_dim(xp, index, dim)
        part = src if src.shape == index.shape else src[_leading(index.shape)]
        out = x.copy()
        if not include_self:
            out[positions] = _identity(reduce, x.dtype)
        reduce_at(xp, out, positions, part, reduce)
        if reduce == "mean":
            counts = _counts(xp, x.shape, positions, index.shape, include_self, x.dtype)
            out = out // counts if x.dtype.kind in "iub" else out / counts
        if reduce in ("prod", "amax", "amin"):  # their gradients compare against the values and the result
            ctx.save_for_backward(index, x, src, out)
        else:
            ctx.save_for_backward(index)
        return out

    @staticmethod
    def backward(ctx, grad):
        xp = ctx.xp
        dim, reduce, include_self, src_shape = ctx.meta
        index, *saved = ctx.saved_tensors
        positions = along_dim(xp, index, dim)
        if reduce == "sum":
            gx, gsrc = grad, grad[positions]
        elif reduce == "mean":
            gx = grad / _counts(xp, grad.shape, positions, index.shape, include_self, grad.dtype)
            gsrc = gx[positions]
        elif reduce == "prod":
            gx, gsrc = _prod_grads(xp, grad, positions, include_self, *saved, index.shape)
        else:
            gx, gsrc = _extreme_grads(xp, grad, positions, include_self, *saved, index.shape)
        if not include_self:  # x's values at the scattered positions were not used
            gx = gx.copy() if gx is grad else gx
            gx[positions] = 0
        if src_shape != index.shape:
            padded = xp.zeros(src_shape, grad.dtype)
            padded[_leading(index.shape)] = gsrc
            gsrc = padded
        return gx, None, gsrc, None, None, None


def _prod_grads(xp, grad, positions, include_self, x, src, out, index_shape):
    src = src if src.shape == index_shape else src[_leading(index_shape)]
    # x's factor times the product of the src values at its position gives the result: that product is
    # x's derivative, exact even where x is 0.
    others = xp.ones_like(x)
    reduce_at(xp, others, positions, src, "prod")
    gx = grad * others
    # src's derivative: the result divided by the src value, except for a src value that is the only
    # zero at its position, whose derivative is the product of the others, computed with it set to 1.
    zero = src == 0
    zeros_at = xp.zeros(x.shape, grad.dtype)
    add_at(xp, zeros_at, positions, zero.astype(grad.dtype))
    only_zero = zero & (zeros_at[positions] == 1)
    base = x.copy()
    if not include_self:
        base[positions] = 1
    reduce_at(xp, base, positions, xp.where(only_zero, 1, src), "prod")
    gsrc = xp.where(only_zero, (grad * base)[positions], (grad * out)[positions] / xp.where(zero, 1, src))
    return gx, gsrc


def _extreme_grads(xp, grad, positions, include_self, x, src, out, index_shape):
    src = src if src.shape == index_shape else src[_leading(index_shape)]
    x_wins = x == out
    if not include_self:
        x_wins[positions] = False
    src_wins = src == out[positions]
    winners = x_wins.astype(grad.dtype)
    add_at(xp, winners, positions, src_wins.astype(grad.dtype))
    share = grad / xp.maximum(winners, 1)  # (no winner only with NaNs, which get no gradient)
    return xp.where(x_wins, share, 0), xp.where(src_wins, share[positions], 0)


# ------------------------------------------------------------------------------------ the API


def _check_reduce(op, reduce, allowed):
    if reduce not in allowed:
        raise ValueError(f"{op}: reduce must be one of {', '.join(map(repr, allowed))}, got {reduce!r}")


def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):  # noqa: A002 - torch's names
    """input with src combined in at `index` along `dim` by `reduce` ('sum', 'prod', 'mean', 'amax',
    'amin'); include_self=False leaves input's own values out wherever something is scattered.

    index: int64/int32, as many dims as input, no larger than src in any dim nor than input off dim;
    values in [0, input.shape[dim]). src: input's dtype."""
    x = input
    _check_reduce("scatter_reduce", reduce, REDUCES)
    if x.ndim == 0:
        return shape.reshape(scatter_reduce(as_vector(x), dim, as_vector(index),
                                            as_vector(src), reduce, include_self=include_self), ())
    dim = normalize_dim(dim, x.ndim, "scatter_reduce")
    index = index_arg("scatter_reduce", index, x, wide=True)
    same_dtype("scatter_reduce", src, x, "src")
    misfit = _index_shape_misfit(index, x, src, dim)
    if misfit:
        if index.data.size == 0:  # PyTorch checks no shapes for an empty index: nothing to combine
            return x.clone()
        raise ShapeError(misfit)
    check_range("scatter_reduce", index.data, dim, x.shape[dim])
    return ScatterReduce.apply(x, index, src, dim, reduce, bool(include_self))


def _index_shape_misfit(index, x, src, dim):
    """What is wrong with the shapes of index, x and src (None when they fit)."""
    ishape, xshape, sshape = tuple(index.shape), tuple(x.shape), tuple(src.shape)
    if len(ishape) != len(xshape) or len(sshape) != len(xshape):
        return f"scatter_reduce: index {ishape}, input {xshape} and src {sshape} must have the same number of dims"
    if any(i > s for i, s in zip(ishape, sshape)) or any(i > n for d, (i, n) in enumerate(zip(ishape, xshape))
                                                         if d != dim):
        return (f"scatter_reduce: index of shape {ishape} must be no larger than src {sshape} in any dim "
                f"and no larger than input {xshape} off dim {dim}")
    return None


def index_reduce(input, dim, index, source, reduce, *, include_self=True):  # noqa: A002
    """input with source's slices combined in at `index` along `dim` by `reduce` ('prod', 'mean',
    'amax', 'amin'); index: 1-D int64/int32 in [0, size); source: input's shape with len(index) at dim."""
    x = input
    _check_reduce("index_reduce", reduce, REDUCES[1:])
    if x.ndim == 0:
        return shape.reshape(index_reduce(as_vector(x), dim, index, as_vector(source), reduce,
                                          include_self=include_self), ())
    dim = normalize_dim(dim, x.ndim, "index_reduce")
    scalar_index = isinstance(index, Tensor) and index.ndim == 0
    index = vector_index("index_reduce", index, x, dim, wide=True)
    source = check_source("index_reduce", source, x, dim, index.shape[0], scalar_index)
    check_range("index_reduce", index.data, dim, x.shape[dim])
    spread = index.xp.broadcast_to(index.data.reshape((1,) * dim + (-1,) + (1,) * (x.ndim - dim - 1)), source.shape)
    return ScatterReduce.apply(x, spread, source, dim, reduce, bool(include_self))
