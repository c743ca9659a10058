"""In-place indexing ops: scatter_ scatter_add_ scatter_reduce_ index_add_ index_copy_ index_fill_
index_reduce_ index_put_ masked_scatter_ put_, and tril_ triu_ fill_diagonal_.

Each is its out-of-place op run through inplace.py's machinery, as inplace_math.py does it: with a
graph to record, apply_tracked runs the op on a copy (arrays saved for backward stay intact, views
of the tensor stay consistent) and the tensor takes the new node; without one the result is written
straight into the tensor's memory. Either way the version counter moves, so a node that saved the
tensor refuses to backward through the changed value. The op validates its arguments before
anything is written, so a bad call leaves the tensor unchanged.
"""
from __future__ import annotations

import numpy as np

from ..autograd import no_grad
from ..errors import ShapeError
from ..tensor import _wrap
from . import gather, index_ops, layout, scatter_reduce as reductions, views
from .inplace import apply_tracked, needs_graph
from .inplace_math import _write, masked_fill_


def _in_place(self, name, op, *operands):
    """self = op(self), in place; `operands` are the tensors besides self that may need gradients."""
    if needs_graph(self, *operands):
        return apply_tracked(self, op, name=name)
    with no_grad():
        return _write(self, op(self.detach()).data, name)


# ------------------------------------------------------------------------------------- scatter


def scatter_(self, dim, index, src=None, value=None, reduce=None):
    """In-place scatter: src (a tensor) or value (a number) written, or combined by reduce, at index along dim."""
    return _in_place(self, "scatter_", lambda s: gather.scatter(s, dim, index, src, value, reduce), src)


def scatter_add_(self, dim, index, src):
    """In-place scatter_add: src added at index along dim, repeated positions accumulating."""
    return _in_place(self, "scatter_add_", lambda s: gather.scatter_add(s, dim, index, src), src)


def scatter_reduce_(self, dim, index, src, reduce, *, include_self=True):
    """In-place scatter_reduce ('sum', 'prod', 'mean', 'amax', 'amin')."""
    return _in_place(self, "scatter_reduce_", lambda s: reductions.scatter_reduce(
        s, dim, index, src, reduce, include_self=include_self), src)


# ---------------------------------------------------------------------------------- along a dim


def index_add_(self, dim, index, source, *, alpha=1):
    """In-place index_add: alpha * source added at index along dim."""
    return _in_place(self, "index_add_", lambda s: index_ops.index_add(s, dim, index, source, alpha=alpha), source)


def index_copy_(self, dim, index, source):
    """In-place index_copy: source's slices written at index along dim."""
    return _in_place(self, "index_copy_", lambda s: index_ops.index_copy(s, dim, index, source), source)


def index_fill_(self, dim, index, value):
    """In-place index_fill: value (a number or a 0-d tensor) at index along dim."""
    return _in_place(self, "index_fill_", lambda s: index_ops.index_fill(s, dim, index, value), value)


def index_reduce_(self, dim, index, source, reduce, *, include_self=True):
    """In-place index_reduce ('prod', 'mean', 'amax', 'amin')."""
    return _in_place(self, "index_reduce_", lambda s: reductions.index_reduce(
        s, dim, index, source, reduce, include_self=include_self), source)


# ------------------------------------------------------------------------------- index_put, put


def index_put_(self, indices, values, accumulate=False):
    """In-place index_put: self[indices] = values (accumulate: +=, repeats adding up)."""
    return _in_place(self, "index_put_", lambda s: index_ops.index_put(s, indices, values, accumulate), values)


def put_(self, index, source, accumulate=False):
    """In-place put: source written (accumulate: added) at the flat positions index."""
    return _in_place(self, "put_", lambda s: index_ops.put(s, index, source, accumulate), source)


def masked_scatter_(self, mask, source):
    """In-place masked_scatter: source's first elements, in order, where the bool mask (broadcast to self) is True."""
    if hasattr(mask, "shape") and views.broadcast_shapes(self.shape, mask.shape) != tuple(self.shape):
        raise ShapeError(f"masked_scatter_: mask of shape {tuple(mask.shape)} does not broadcast to the tensor's "
                         f"shape {tuple(self.shape)}")
    return _in_place(self, "masked_scatter_", lambda s: index_ops.masked_scatter(s, mask, source), source)


# ---------------------------------------------------------------------------------- triangles


def tril_(self, diagonal=0):
    """In-place tril: zero the elements above the `diagonal`-th diagonal of the last two dims."""
    return _in_place(self, "tril_", lambda s: layout.tril(s, diagonal))


def triu_(self, diagonal=0):
    """In-place triu: zero the elements below the `diagonal`-th diagonal of the last two dims."""
    return _in_place(self, "triu_", lambda s: layout.triu(s, diagonal))


def fill_diagonal_(self, fill_value, wrap=False):
    """Write fill_value on the main diagonal: of a matrix (a tall one restarts it every ncols + 1 rows
    with wrap=True), or of a tensor whose dims are all equal (the elements [i, i, ..., i])."""
    mask = _diagonal_mask(self.xp, tuple(self.shape), wrap)
    return masked_fill_(self, _wrap(mask), fill_value)


def _diagonal_mask(xp, shape, wrap):
    if len(shape) < 2:
        raise ShapeError(f"fill_diagonal_: needs a tensor of at least 2 dims, got shape {shape}")
    if len(shape) > 2 and len(set(shape)) != 1:
        raise ShapeError(f"fill_diagonal_: a tensor of more than 2 dims needs all dims equal, got shape {shape}")
    numel = int(np.prod(shape))
    # In the flat layout the next diagonal element is one step along every dim away: the sum of the
    # dims' strides in elements. Without wrap a tall matrix stops after its first square block.
    step = sum(int(np.prod(shape[d + 1:])) for d in range(len(shape)))
    end = shape[1] * shape[1] if len(shape) == 2 and not wrap else numel
    mask = xp.zeros(numel, dtype=bool)
    mask[:end:step] = True
    return mask.reshape(shape)
