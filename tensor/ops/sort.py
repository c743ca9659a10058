"""sort, argsort and topk along a dim.

Values are differentiable: each gets the gradient of the position it came from. Indices are int64
and carry no gradient.

Descending order is an ascending sort of the reversed array, reversed back, rather than a sort of
-x: NaN then comes first, as PyTorch orders it (NaN is the largest value), unsigned and bool
dtypes work, and a stable sort keeps equal elements in their original order.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ..autograd import Function
from ..tensor import _wrap
from ._util import normalize_dim
from .gather import along_dim

# torch.return_types.sort / .topk: tuples that also name their fields.
sort_result = namedtuple("sort", ["values", "indices"])
topk_result = namedtuple("topk", ["values", "indices"])


def _argsort(xp, x, axis, descending, stable):
    if not descending:
        return _argsort_ascending(xp, x, axis, stable)
    order = _argsort_ascending(xp, xp.flip(x, axis), axis, stable)
    return (x.shape[axis] - 1) - xp.flip(order, axis)


def _argsort_ascending(xp, x, axis, stable):
    if xp is np:
        return np.argsort(x, axis=axis, kind="stable" if stable else None)
    return x.argsort(axis=axis)  # CuPy's sort is always stable and takes no `kind`


def _topk_indices(xp, x, k, axis, largest, sorted):  # noqa: A002 - torch's argument name
    n = x.shape[axis]
    if k == 0:
        return xp.empty(x.shape[:axis] + (0,) + x.shape[axis + 1:], np.int64)
    if 2 * k >= n or xp is not np:  # most of the line is wanted (or CuPy, whose argpartition sorts fully)
        return _argsort(xp, x, axis, largest, stable=False)[(slice(None),) * axis + (slice(0, k),)]
    # Few wanted: partition (linear time), then order only the k winners.
    kth, winners = (n - k, slice(n - k, n)) if largest else (k - 1, slice(0, k))
    picked = xp.argpartition(x, kth, axis=axis)[(slice(None),) * axis + (winners,)]
    if not sorted:
        return picked
    order = _argsort(xp, x[along_dim(xp, picked, axis)], axis, largest, stable=False)
    return picked[along_dim(xp, order, axis)]


class _Selection(Function):
    """Values taken from x at indices along a dim; the gradient goes back to those positions."""

    @staticmethod
    def backward(ctx, grad_values, grad_indices):
        (indices,) = ctx.saved_tensors
        xp, dim = ctx.xp, ctx.dim
        if ctx.scalar:
            indices, grad_values = indices.reshape(-1), grad_values.reshape(-1)
        g = xp.zeros(ctx.shape if not ctx.scalar else (1,), grad_values.dtype)
        g[along_dim(xp, indices, dim)] = grad_values  # indices along a line never repeat
        return (g.reshape(ctx.shape),) + (None,) * (len(ctx.needs_input_grad) - 1)

    @staticmethod
    def backward_graph(ctx, grad_values, grad_indices):
        from .index import IndexGradient

        (indices,) = ctx.saved_tensors
        if ctx.scalar:
            indices, grad_values = indices.reshape(-1), grad_values.reshape(-1)
        shape = ctx.shape if not ctx.scalar else (1,)
        g = IndexGradient.apply(grad_values, shape, along_dim(ctx.xp, indices, ctx.dim), False)
        return (g.reshape(ctx.shape),) + (None,) * (len(ctx.needs_input_grad) - 1)

    @staticmethod
    def finish(ctx, x, indices):
        values = x[along_dim(ctx.xp, indices, ctx.dim)]  # (faster than take_along_axis)
        if ctx.scalar and values.size == 1:  # a 0-d input gives 0-d results, as in PyTorch
            values, indices = values.reshape(()), indices.reshape(())
        ctx.save_for_backward(indices)  # saved as an output, so in-place edits to it are caught
        return values, indices


class Sort(_Selection):
    @staticmethod
    def forward(ctx, x, dim, descending, stable):
        ctx.shape, ctx.dim, ctx.scalar = x.shape, dim, x.ndim == 0
        x = x.reshape(1) if ctx.scalar else x
        return _Selection.finish(ctx, x, _argsort(ctx.xp, x, dim, descending, stable))


class TopK(_Selection):
    @staticmethod
    def forward(ctx, x, k, dim, largest, sorted):  # noqa: A002
        ctx.shape, ctx.dim, ctx.scalar = x.shape, dim, x.ndim == 0
        x = x.reshape(1) if ctx.scalar else x
        return _Selection.finish(ctx, x, _topk_indices(ctx.xp, x, k, dim, largest, sorted))


def sort(x, dim=-1, descending=False, stable=False):
    """(values, indices) sorted along `dim`; stable=True keeps equal elements in input order."""
    dim = normalize_dim(dim, x.ndim, "sort")
    return sort_result(*Sort.apply(x, dim, bool(descending), bool(stable)))


def argsort(x, dim=-1, descending=False, stable=False):
    """The int64 indices that sort x along `dim` (no gradient)."""
    dim = normalize_dim(dim, x.ndim, "argsort")
    if x.ndim == 0:
        return _wrap(x.xp.zeros((), np.int64))
    return _wrap(_argsort(x.xp, x.data, dim, descending, stable).astype(np.int64, copy=False))


def topk(x, k, dim=-1, largest=True, sorted=True):  # noqa: A002
    """(values, indices) of the k largest (or smallest) elements along `dim`, ordered if sorted."""
    dim = normalize_dim(dim, x.ndim, "topk")
    size = x.shape[dim] if x.ndim else 1
    k = int(k)
    if not 0 <= k <= size:
        raise ValueError(f"topk: k={k} is out of range for dim {dim} with size {size}; k must be in 0..{size}")
    return topk_result(*TopK.apply(x, k, dim, bool(largest), bool(sorted)))


def msort(x):
    """x sorted along its first dim (the values of sort(x, dim=0))."""
    return sort(x, 0)[0]
