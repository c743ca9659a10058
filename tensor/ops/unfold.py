"""Tensor.unfold(dimension, size, step): the sliding windows along one dim, as a strided view.

The result has x's shape with dim `dimension` replaced by the number of windows,
(n - size) // step + 1, and a new last dim of length `size`: out[..., i, ..., j] is
x[..., i * step + j, ...]. Like PyTorch's, it is a view of x's memory (windows overlap where
step < size), so in-place changes through it reach x.

as_strided(size, stride, storage_offset) is the general form: any strided view of x's storage.
"""
from __future__ import annotations

import operator

from ..autograd import Function
from ..errors import ShapeError
from ..graph_backward import linear_backward_graph
from . import shape
from ._util import normalize_dim
from .introspect import array_address, storage_root
from .introspect import storage_offset as offset_of


def _windows(xp, x, dim, size, step):
    count = (x.shape[dim] - size) // step + 1
    out_shape = x.shape[:dim] + (count,) + x.shape[dim + 1:] + (size,)
    strides = x.strides[:dim] + (x.strides[dim] * step,) + x.strides[dim + 1:] + (x.strides[dim],)
    return xp.lib.stride_tricks.as_strided(x, out_shape, strides)


class Unfold(Function):
    view_of = 0

    @staticmethod
    def forward(ctx, x, dim, size, step):
        ctx.meta = (x.shape, dim, size, step)
        return _windows(ctx.xp, x, dim, size, step)

    @staticmethod
    def backward(ctx, grad):
        x_shape, dim, size, step = ctx.meta
        xp = ctx.xp
        g = xp.zeros(x_shape, grad.dtype)
        if step >= size:  # the windows do not overlap: one write through the same view
            _windows(xp, g, dim, size, step)[...] = grad
            return g, None, None, None
        # Overlapping windows: add one offset within the windows at a time, so that no element is
        # written twice by one (buffered, last-write-wins) assignment.
        count, lead = grad.shape[dim], (slice(None),) * dim
        for k in range(size):
            g[lead + (slice(k, k + step * (count - 1) + 1, step),)] += grad[..., k]
        return g, None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, ctx.meta[1:])


def unfold(input, dimension, size, step):  # noqa: A002 - torch's argument names
    """Windows of `size` elements every `step` along `dimension`, as a new last dim (a view of input)."""
    size, step = operator.index(size), operator.index(step)
    if input.ndim == 0:  # as PyTorch: a 0-d tensor unfolds as one element
        return shape.reshape(unfold(shape.reshape(input, 1), dimension, size, step), size)
    dim = normalize_dim(dimension, input.ndim, "unfold")
    if step <= 0:
        raise ValueError(f"unfold: step is {step} but must be > 0")
    if not 0 <= size <= input.shape[dim]:
        raise ShapeError(f"unfold: size {size} must be in 0..{input.shape[dim]}, the size of dim {dim} of a tensor "
                         f"of shape {tuple(input.shape)}")
    return Unfold.apply(input, dim, size, step)


# ---- as_strided: any strided view of a tensor's storage --------------------------------------------

def _storage_elements_after(data):
    """How many elements of `data`'s dtype its storage holds from data's first element on."""
    if data.size == 0:
        return 0
    ptr, root = array_address(data), storage_root(data)
    if root.flags.c_contiguous:
        end = array_address(root) + root.nbytes
    else:  # a root that is itself a strided view: only data's own extent is known
        end = ptr + sum((n - 1) * s for n, s in zip(data.shape, data.strides) if s > 0) + data.itemsize
    return (end - ptr) // data.itemsize


def _positions(xp, shape, strides, offset):
    """The storage position (in elements) of each element of a strided view."""
    pos = xp.full(shape, offset, dtype=xp.int64)
    for d, (n, s) in enumerate(zip(shape, strides)):
        pos = pos + (xp.arange(n, dtype=xp.int64) * s).reshape((n,) + (1,) * (len(shape) - d - 1))
    return pos


class AsStrided(Function):
    view_of = 0

    @staticmethod
    def forward(ctx, x, size, stride, offset):
        xp = ctx.xp
        ctx.meta = (x.shape, tuple(s // x.itemsize for s in x.strides), size, stride, offset)
        start = xp.lib.stride_tricks.as_strided(x, (offset + 1,), (x.itemsize,))[offset:]
        return xp.lib.stride_tricks.as_strided(start, size, tuple(s * x.itemsize for s in stride))

    @staticmethod
    def backward(ctx, grad):
        # As PyTorch: each input element gets the gradients of every output element at its storage
        # position, shared equally among input elements that alias one position (an expanded input).
        x_shape, x_stride, size, stride, offset = ctx.meta
        xp = ctx.xp
        if grad.size == 0 or 0 in x_shape:
            return xp.zeros(x_shape, grad.dtype), None, None, None
        x_pos, out_pos = _positions(xp, x_shape, x_stride, 0), _positions(xp, size, stride, offset)
        low = min(int(x_pos.min()), 0)
        x_pos, out_pos = x_pos - low, out_pos - low
        span = max(int(x_pos.max()), int(out_pos.max())) + 1
        storage = xp.bincount(out_pos.ravel(), weights=grad.ravel(), minlength=span)
        if 0 in x_stride:
            storage = storage / xp.maximum(xp.bincount(x_pos.ravel(), minlength=span), 1)
        return storage[x_pos].astype(grad.dtype, copy=False), None, None, None


def as_strided(input, size, stride, storage_offset=None):  # noqa: A002 - torch's argument names
    """The view of input's storage with shape `size` and `stride` (in elements), starting
    `storage_offset` elements into the storage (default: where input starts), as torch.as_strided."""
    size, stride = tuple(operator.index(n) for n in size), tuple(operator.index(s) for s in stride)
    if len(size) != len(stride):
        raise ShapeError(f"as_strided: size {size} and stride {stride} must have the same length")
    if any(n < 0 for n in size) or any(s < 0 for s in stride):
        raise ValueError(f"as_strided: sizes and strides must be >= 0, got size {size}, stride {stride}")
    own = offset_of(input)
    offset = own if storage_offset is None else operator.index(storage_offset)
    if offset < own:
        raise ValueError(f"as_strided: storage_offset {offset} lies before this tensor's own first element "
                         f"(offset {own}); raygrad views storage from there on: call as_strided on the base tensor")
    need = 0 if 0 in size else offset - own + 1 + sum((n - 1) * s for n, s in zip(size, stride))
    have = _storage_elements_after(input.data)
    if need > have:
        raise ShapeError(f"as_strided: size {size}, stride {stride} and storage_offset {offset} need {need} elements "
                         f"from this tensor's start, but its storage holds {have} from there")
    return AsStrided.apply(input, size, stride, offset - own)
