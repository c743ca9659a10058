"""More views and the ops built on them: narrow, select, diagonal, diag, trace; broadcast_to,
broadcast_tensors, meshgrid; nonzero and argwhere; numel; and `Tensor.where(condition, other)`.

narrow and select are basic indexing (views through index.getitem); diagonal is a strided view of
its input, so an in-place change through it reaches the base, as in PyTorch.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..graph_backward import linear_backward_graph
from ..errors import ShapeError
from ..tensor import Size, Tensor, _wrap
from . import compare, shape
from ._util import normalize_dim
from .index import getitem


# ---------------------------------------------------------------------------------- narrow, select
def _along(dim, item):
    return (slice(None),) * dim + (item,)


def narrow(x, dim, start, length):
    """The `length` elements of `dim` from `start` on (a view)."""
    dim = normalize_dim(dim, x.ndim, "narrow")
    size, start, length = x.shape[dim], int(start), int(length)
    if not -size <= start <= size:
        raise IndexError(f"narrow: start {start} is out of range for dim {dim} of size {size} "
                         f"(expected {-size}..{size})")
    if start < 0:  # -size..-1 count from the end
        start += size
    if length < 0 or start + length > size:
        raise IndexError(f"narrow: start ({start}) + length ({length}) exceeds dim {dim} of size {size}; "
                         f"length must be 0..{size - start}")
    return getitem(x, _along(dim, slice(start, start + length)))


def select(x, dim, index):
    """x indexed by `index` along `dim`, which is removed (a view): x.select(1, 2) is x[:, 2]."""
    if x.ndim == 0:
        raise IndexError("select: cannot select from a 0-d tensor; it has no dims")
    dim = normalize_dim(dim, x.ndim, "select")
    size, index = x.shape[dim], int(index)
    if not -size <= index < size:
        raise IndexError(f"select: index {index} is out of range for dim {dim} of size {size} "
                         f"(expected {-size}..{size - 1})")
    return getitem(x, _along(dim, index))


# ---------------------------------------------------------------------------------------- diagonal
def _diagonal_view(xp, x, offset, dim1, dim2):
    """The diagonal as a strided view of x's memory (xp.diagonal is read-only on NumPy)."""
    rest = [d for d in range(x.ndim) if d not in (dim1, dim2)]
    moved = x.transpose(rest + [dim1, dim2])
    corner = moved[..., max(-offset, 0):, max(offset, 0):]
    n = max(min(corner.shape[-2], corner.shape[-1]), 0)
    strides = corner.strides[:-2] + (corner.strides[-2] + corner.strides[-1],)
    return xp.lib.stride_tricks.as_strided(corner, corner.shape[:-2] + (n,), strides)


class Diagonal(Function):
    """The elements x[..., i, i + offset] over dims (dim1, dim2), as the last dim; a view of x."""

    view_of = 0

    @staticmethod
    def forward(ctx, x, offset, dim1, dim2):
        ctx.meta = (x.shape, offset, dim1, dim2)
        return _diagonal_view(ctx.xp, x, offset, dim1, dim2)

    @staticmethod
    def backward(ctx, grad):
        x_shape, offset, dim1, dim2 = ctx.meta
        g = ctx.xp.zeros(x_shape, grad.dtype)
        _diagonal_view(ctx.xp, g, offset, dim1, dim2)[...] = grad
        return g, None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, ctx.meta[1:])


def diagonal(x, offset=0, dim1=0, dim2=1):
    """The diagonal over dims (dim1, dim2) as a new last dim (a view); offset > 0 is above the main one."""
    if x.ndim < 2:
        raise ShapeError(f"diagonal: needs a tensor of at least 2 dims, got shape {tuple(x.shape)}; "
                         "use diag() to build a matrix from a vector")
    return _diagonal(x, offset, dim1, dim2)


def _diagonal(x, offset, dim1, dim2):
    d1, d2 = normalize_dim(dim1, x.ndim, "diagonal"), normalize_dim(dim2, x.ndim, "diagonal")
    if d1 == d2:
        raise ValueError(f"diagonal: dim1 and dim2 must differ, both are {d1}")
    return Diagonal.apply(x, int(offset), d1, d2)


class DiagEmbed(Function):
    """A vector placed on the `offset` diagonal of a square matrix of zeros."""

    @staticmethod
    def forward(ctx, v, offset):
        ctx.offset = offset
        return ctx.xp.diag(v, offset)

    @staticmethod
    def backward(ctx, grad):
        return ctx.xp.diagonal(grad, ctx.offset).copy(), None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, (ctx.offset,))


def diag(x, diagonal=0):
    """1-D: the square matrix with x on the `diagonal`-th diagonal; 2-D: that diagonal of x (a copy)."""
    if x.ndim == 1:
        return DiagEmbed.apply(x, int(diagonal))
    if x.ndim == 2:
        from .convert import clone

        return clone(_diagonal(x, diagonal, 0, 1))
    raise ShapeError(f"diag: needs a 1-D or 2-D tensor, got shape {tuple(x.shape)}; use diagonal() for batches")


def trace(x):
    """The sum of a matrix's main diagonal."""
    if x.ndim != 2:
        raise ShapeError(f"trace: needs a 2-D tensor, got shape {tuple(x.shape)}")
    return diagonal(x).sum()


# ------------------------------------------------------------------------------------- broadcasting
def broadcast_to(x, *size):
    """x expanded to `size` (ints or one tuple; a view; -1 keeps a dim), as torch.broadcast_to."""
    return shape.expand(x, shape.sizes_arg(size, "broadcast_to"))


def broadcast_shapes(*shapes):
    """The shape that tensors of `shapes` (tuples, or ints for 1-D) broadcast to, as a Size."""
    shapes = [(s,) if isinstance(s, int) else tuple(s) for s in shapes]
    try:
        return Size(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(f"broadcast: shapes {', '.join(str(tuple(s)) for s in shapes)} do not broadcast "
                         "together; sizes must match or be 1 in each dim (counting from the last)") from None


def broadcast_tensors(*tensors):
    """The tensors expanded to their common shape (views)."""
    target = broadcast_shapes(*[t.shape for t in tensors])
    return tuple(shape.expand(t, *target) for t in tensors)


def meshgrid(*tensors, indexing="ij"):
    """Coordinate grids from 1-D tensors; indexing 'ij' (matrix) or 'xy' (Cartesian: first two dims swapped)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor) or t.ndim > 1:
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ShapeError(f"meshgrid: every input must be a 0-d or 1-D tensor, input {i} is {got}")
    sizes = [t.numel() for t in tensors]
    grids = []
    for i, t in enumerate(tensors):
        view = [1] * len(tensors)
        view[i] = sizes[i]
        grids.append(shape.expand(shape.reshape(t, *view), *sizes))
    if indexing == "xy" and len(tensors) >= 2:  # Cartesian: the 'ij' grids with the first two dims swapped
        grids = [shape.transpose(g, 0, 1) for g in grids]
    return tuple(grids)


# ---------------------------------------------------------------------------------------- selection
def nonzero(x, *, as_tuple=False):
    """Indices of the nonzero elements: an int64 (count, ndim) tensor, or with as_tuple one 1-D tensor per dim."""
    raw = x.data if x.ndim else x.data.reshape(1)  # as PyTorch: a 0-d input counts as 1-D
    indices = [i.astype(np.int64, copy=False) for i in x.xp.nonzero(raw)]
    if as_tuple:
        return tuple(_wrap(i) for i in indices)
    if x.ndim == 0:
        return _wrap(x.xp.zeros((len(indices[0]), 0), np.int64))
    return _wrap(x.xp.stack(indices, axis=1))


def argwhere(x):
    """nonzero(x) as one (count, ndim) tensor."""
    return nonzero(x)


def where(x, condition, other):
    """Tensor.where: x where condition is True, else other (torch's method form of where)."""
    return compare.where(condition, x, other)


def numel(x):
    """The number of elements of x."""
    return x.numel()
