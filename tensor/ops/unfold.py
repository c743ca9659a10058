"""Tensor.unfold(dimension, size, step): the sliding windows along one dim, as a strided view.

The result has x's shape with dim `dimension` replaced by the number of windows,
(n - size) // step + 1, and a new last dim of length `size`: out[..., i, ..., j] is
x[..., i * step + j, ...]. Like PyTorch's, it is a view of x's memory (windows overlap where
step < size), so in-place changes through it reach x.
"""
from __future__ import annotations

import operator

from ..autograd import Function
from ..errors import ShapeError
from ..graph_backward import linear_backward_graph
from . import shape
from ._util import normalize_dim


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
