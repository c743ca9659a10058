"""Tensors assembled from the elements of others: diag_embed, diagflat, block_diag, vander,
cartesian_prod, combinations.

diag_embed is one Function, the adjoint of diagonal (it writes through the same strided view that
diagonal reads). The others are compositions (pad and cat, cumprod, meshgrid and stack,
index_select), so their gradients come from those ops.
"""
from __future__ import annotations

import itertools
import operator

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..errors import DTypeError, ShapeError
from ..graph_backward import linear_backward_graph
from ..tensor import _wrap
from ._util import cast, normalize_dim
from .gather import index_select
from .join import _checked_list, _promoted, cat, stack
from .layout import flip, pad
from .ranking import _require_tensor
from .sequence import cumprod
from .shape import expand, reshape
from .views import _diagonal_view, diag, meshgrid


# ---------------------------------------------------------------------------------------- diag_embed
class DiagEmbed(Function):
    """x's last dim laid on the `offset` diagonal of new dims (dim1, dim2) of a zero tensor."""

    @staticmethod
    def forward(ctx, x, offset, dim1, dim2):
        ctx.meta = (offset, dim1, dim2)
        side = x.shape[-1] + abs(offset)
        shape = list(x.shape[:-1])
        for d in sorted((dim1, dim2)):
            shape.insert(d, side)
        out = ctx.xp.zeros(shape, x.dtype)
        _diagonal_view(ctx.xp, out, offset, dim1, dim2)[...] = x
        return out

    @staticmethod
    def backward(ctx, grad):
        offset, dim1, dim2 = ctx.meta
        return _diagonal_view(ctx.xp, grad, offset, dim1, dim2).copy(), None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, ctx.meta)


def diag_embed(x, offset=0, dim1=-2, dim2=-1):
    """A tensor whose (dim1, dim2) diagonals (offset above the main one) hold x's last dim; dim1 and
    dim2 index the result, which has one dim more than x."""
    _require_tensor("diag_embed", x)
    if x.ndim == 0:
        raise ShapeError("diag_embed: needs a tensor with at least one dim (its last dim fills the diagonals), "
                         "got a 0-d tensor")
    d1, d2 = normalize_dim(dim1, x.ndim + 1, "diag_embed"), normalize_dim(dim2, x.ndim + 1, "diag_embed")
    if d1 == d2:
        raise ValueError(f"diag_embed: dim1 and dim2 must differ, both are {d1}")
    return DiagEmbed.apply(x, operator.index(offset), d1, d2)


def diagflat(x, offset=0):
    """The square matrix with x's elements (flattened) on its `offset` diagonal."""
    _require_tensor("diagflat", x)
    return diag(reshape(x, (-1,)), offset)


# ---------------------------------------------------------------------------------------- block_diag
def block_diag(*tensors):
    """The tensors (0-d, 1-D as one row, or 2-D) placed corner to corner on the diagonal of a zero
    matrix, in their promoted dtype."""
    if not tensors:
        return _wrap(np.zeros((1, 0), dtypes.get_default_dtype()))
    blocks = []
    for i, t in enumerate(_checked_list(tensors, "block_diag")):
        if t.ndim > 2:
            raise ShapeError(f"block_diag: every input must have at most 2 dims, input {i} has shape {tuple(t.shape)}")
        blocks.append(reshape(t, (1, -1) if t.ndim == 1 else (1, 1)) if t.ndim < 2 else t)
    blocks = _promoted(blocks)
    width = sum(b.shape[1] for b in blocks)
    rows, left = [], 0
    for b in blocks:
        rows.append(pad(b, (left, width - left - b.shape[1])))
        left += b.shape[1]
    return cat(rows, 0)


# -------------------------------------------------------------------------------------------- vander
def vander(x, N=None, increasing=False):  # noqa: N803 - torch's argument name
    """The Vandermonde matrix of the 1-D x: column j is x ** (N - 1 - j), or x ** j with increasing;
    N columns (len(x) by default). Integer and bool inputs give int64."""
    _require_tensor("vander", x)
    if x.ndim != 1:
        raise ShapeError(f"vander: x must be 1-D, got shape {tuple(x.shape)}")
    n = x.shape[0] if N is None else operator.index(N)
    if n < 0:
        raise ValueError(f"vander: N must be non-negative, got {n}")
    dtype = dtypes.promote_types(x.dtype, dtypes.int64)
    columns = [_wrap(x.xp.ones((x.shape[0], min(n, 1)), dtype))]
    if n > 1:  # running products of x: x, x^2, ... (cumprod's gradient handles zeros exactly)
        columns.append(cumprod(expand(reshape(cast(x, dtype), (-1, 1)), x.shape[0], n - 1), 1))
    out = cat(columns, 1) if len(columns) > 1 else columns[0]
    return out if increasing else flip(out, 1)


# ------------------------------------------------------------------------------ cartesian_prod
def cartesian_prod(*tensors):
    """Every combination of one element from each 1-D tensor, as the rows of a (count, len(tensors))
    tensor, the last input varying fastest; a single tensor comes back as it is."""
    if not tensors:
        raise ValueError("cartesian_prod: expects at least one tensor")
    for i, t in enumerate(tensors):
        _require_tensor("cartesian_prod", t)
        if t.ndim != 1:
            raise ShapeError(f"cartesian_prod: every input must be 1-D, input {i} has shape {tuple(t.shape)}")
        if t.dtype != tensors[0].dtype:
            raise DTypeError(f"cartesian_prod: every input must have the same dtype, input {i} is {t.dtype} but "
                             f"input 0 is {tensors[0].dtype}; convert them first")
    if len(tensors) == 1:
        return tensors[0]
    return stack([reshape(g, (-1,)) for g in meshgrid(*tensors, indexing="ij")], 1)


def combinations(x, r=2, with_replacement=False):
    """The length-r combinations of the 1-D x's elements (itertools order), as rows of a (count, r)
    tensor; with_replacement allows an element to repeat. r=0 gives an empty 1-D tensor."""
    _require_tensor("combinations", x)
    if x.ndim != 1:
        raise ShapeError(f"combinations: x must be 1-D, got shape {tuple(x.shape)}")
    r = operator.index(r)
    if r < 0:
        raise ValueError(f"combinations: r must be non-negative, got {r}")
    if r == 0:
        return _wrap(x.xp.empty((0,), x.dtype))
    pick = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    index = np.fromiter(itertools.chain.from_iterable(pick(range(x.shape[0]), r)), dtype=np.int64)
    return reshape(index_select(x, 0, _wrap(x.xp.asarray(index))), (-1, r))

