"""max_unpool1d / max_unpool2d / max_unpool3d: the partial inverse of max pooling.

Each input value goes back to the position its `indices` entry names (the flat index within its
(D, H, W) volume, (H, W) plane, or L, as max_pool*d(return_indices=True) gives it); everything else is zero.
One write along the flattened planes; the gradient w.r.t. the input is a gather at the same indices
(what PyTorch computes), itself differentiable for create_graph.
"""
from __future__ import annotations

import math

from ...autograd import Function
from ...errors import DTypeError, ShapeError
from ...ops.gather import along_dim, gather
from ...tensor import Tensor, _wrap
from ._zero_size import refuse_empty_dims


class MaxUnpool(Function):
    """x (..., P) and index (..., P) -> (..., plane): out[..., index[..., i]] = x[..., i], else 0."""

    @staticmethod
    def forward(ctx, x, index, plane):
        xp = ctx.xp
        out = xp.zeros(x.shape[:-1] + (plane,), dtype=x.dtype)
        out[along_dim(xp, index, index.ndim - 1)] = x
        ctx.save_for_backward(index)
        return out

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        return grad[along_dim(ctx.xp, index, index.ndim - 1)], None, None

    @staticmethod
    def backward_graph(ctx, grad):
        (index,) = ctx.saved_tensors
        return gather(grad, -1, _wrap(index)), None, None


def _tuple(value, n, op, name, minimum):
    values = (value,) * n if isinstance(value, int) else tuple(value)
    if len(values) == 1:
        values = values * n
    if len(values) != n or not all(isinstance(v, int) and v >= minimum for v in values):
        raise ValueError(f"{op}: {name} must be an int >= {minimum} or a tuple of {n} of them, got {value!r}")
    return values


def _output_size(op, input, kernel, stride, padding, output_size):
    """PyTorch's rule: by default (L - 1) * stride - 2 * padding + kernel per spatial dim; an explicit
    size (with or without the leading N, C) must lie strictly within one stride of that."""
    n = len(kernel)
    default = [(size - 1) * s + k - 2 * p for size, k, s, p in zip(input.shape[-n:], kernel, stride, padding)]
    if output_size is None:
        sizes = default
    else:
        sizes = [int(v) for v in output_size]
        if len(sizes) == n + 2:
            sizes = sizes[2:]
        if len(sizes) != n:
            raise ValueError(f"{op}: output_size must have {n} or {n + 2} elements, got {tuple(output_size)}")
        for d, (size, base, s) in enumerate(zip(sizes, default, stride)):
            if not base - s < size < base + s:
                raise ValueError(f"{op}: invalid output_size {tuple(sizes)}: dim {d} must be between "
                                 f"{base - s} and {base + s} (exclusive) for input shape {tuple(input.shape)}")
    for d, size in enumerate(sizes):
        if size < 0:
            raise ValueError(f"{op}: output size {tuple(sizes)} has a negative dim {d}; check kernel_size, stride "
                             "and padding against the pooling that made the indices")
    return tuple(sizes)


def _check(op, input, indices, spatial):
    for name, t in (("input", input), ("indices", indices)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if input.dim() not in (spatial + 1, spatial + 2):
        layout = {1: "(N, C, L) or (C, L)", 2: "(N, C, H, W) or (C, H, W)",
                  3: "(N, C, D, H, W) or (C, D, H, W)"}[spatial]
        raise ShapeError(f"{op}: expected a {layout} input, got shape {tuple(input.shape)}")
    if tuple(indices.shape) != tuple(input.shape):
        raise ShapeError(f"{op}: indices shape {tuple(indices.shape)} must equal the input shape "
                         f"{tuple(input.shape)} (pass the indices max_pool returned with that output)")
    if indices.dtype.kind not in "iu":
        raise DTypeError(f"{op}: indices must be an integer tensor, got {indices.dtype}; use the indices "
                         "max_pool returns with return_indices=True")


def _unpool(op, input, indices, sizes):
    spatial = len(sizes)
    lead = tuple(input.shape[:-spatial])
    plane = math.prod(sizes)
    flat = lead + (math.prod(input.shape[-spatial:]),)  # not -1: the batch may be empty
    flat_index = indices.reshape(flat)
    if flat_index.numel():
        low, high = int(flat_index.data.min()), int(flat_index.data.max())
        if low < 0 or high >= plane:
            bad = low if low < 0 else high
            raise IndexError(f"{op}: found an invalid max index {bad}: the output planes have size "
                             f"{'x'.join(map(str, sizes))} (valid 0..{plane - 1}); the indices must come from the "
                             "max pooling whose kernel_size, stride and padding (or output_size) are given here")
    return MaxUnpool.apply(input.reshape(flat), flat_index, plane).reshape(lead + sizes)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):  # noqa: A002
    """(N, C, L) -> (N, C, Lo), Lo = (L - 1) * stride - 2 * padding + kernel_size unless output_size
    says otherwise; zeros except where `indices` (from max_pool1d) put the input values."""
    return _max_unpool("max_unpool1d", 1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):  # noqa: A002
    """(N, C, H, W) -> (N, C, Ho, Wo), Ho = (H - 1) * stride - 2 * padding + kernel_size unless
    output_size says otherwise; zeros except where `indices` (from max_pool2d) put the input values."""
    return _max_unpool("max_unpool2d", 2, input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):  # noqa: A002
    """(N, C, D, H, W) -> (N, C, Do, Ho, Wo), Do = (D - 1) * stride - 2 * padding + kernel_size unless
    output_size says otherwise; zeros except where `indices` (from max_pool3d) put the input values."""
    return _max_unpool("max_unpool3d", 3, input, indices, kernel_size, stride, padding, output_size)


def _max_unpool(op, spatial, input, indices, kernel_size, stride, padding, output_size):  # noqa: A002
    _check(op, input, indices, spatial)
    if not input.data.size:  # PyTorch lets dim 0 be empty, batched or not
        refuse_empty_dims(op, input, 1, what="only dim 0 may be")
    kernel = _tuple(kernel_size, spatial, op, "kernel_size", 1)
    strides = kernel if stride is None else _tuple(stride, spatial, op, "stride", 1)
    sizes = _output_size(op, input, kernel, strides, _tuple(padding, spatial, op, "padding", 0), output_size)
    return _unpool(op, input, indices, sizes)
