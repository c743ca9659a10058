"""Volumetric pooling: max_pool3d and avg_pool3d (the adaptive ones are in adaptive_pooling3d.py).

As pooling.py one dimension up: the (padded only when padding or ceil_mode needs it) input is read
through kd*kh*kw strided tap views, each the size of the output, and reduced tap by tap; the
backward writes (or, where windows overlap, adds) the gradient back through the same views. Every
step is one vectorised pass; nothing loops over voxels or channels.
"""
from __future__ import annotations

import itertools

from ...autograd import Function
from ...errors import AutogradError, DTypeError, ShapeError
from ...graph_backward import linear_backward_graph
from ...tensor import Tensor
from .pooling import _first_argmax, _Window, window_counts
from ._zero_size import refuse_empty_dims

# ------------------------------------------------------------------------------------ geometry


def _triple(value, op, name, minimum):
    values = (value,) * 3 if isinstance(value, int) else tuple(value)
    if len(values) == 1:
        values = values * 3
    if len(values) != 3 or not all(isinstance(v, int) and v >= minimum for v in values):
        raise ValueError(f"{op}: {name} must be an int >= {minimum} or a tuple of 3 of them, got {value!r}")
    return values


def _windows(op, x, kernel_size, stride, padding, dilation, ceil_mode):
    """One _Window per spatial axis (depth, height, width)."""
    kernel = _triple(kernel_size, op, "kernel_size", 1)
    stride = kernel if stride is None or stride == [] or stride == () else _triple(stride, op, "stride", 1)
    padding, dilation = _triple(padding, op, "padding", 0), _triple(dilation, op, "dilation", 1)
    for k, p, d in zip(kernel, padding, dilation):
        if 2 * p > d * (k - 1) + 1:
            raise ValueError(
                f"{op}: padding {padding} must be at most half the (dilated) kernel size {kernel}; reduce the padding"
            )
    windows = tuple(_Window(n, k, s, p, d, ceil_mode)
                    for n, k, s, p, d in zip(x.shape[-3:], kernel, stride, padding, dilation))
    if min(w.out for w in windows) < 1:
        raise ShapeError(
            f"{op}: output size {tuple(w.out for w in windows)} is too small for input {tuple(x.shape)} with kernel "
            f"{kernel}, stride {stride}, padding {padding}, dilation {dilation}; use a smaller kernel"
        )
    return windows


def _check_input(op, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if x.ndim not in (4, 5):
        raise ShapeError(
            f"{op}: expected a 5-d (N, C, D, H, W) or 4-d unbatched (C, D, H, W) input, got shape {tuple(x.shape)}"
        )


def _source(x, windows, fill, xp):
    """x (N, C, D, H, W) padded by `fill` to cover every window, or x itself when nothing needs padding."""
    if all(w.source == w.n for w in windows):
        return x
    src = xp.full(x.shape[:2] + tuple(w.source for w in windows), fill, dtype=x.dtype)
    src[_interior(windows)] = x
    return src


def _interior(windows):
    return (slice(None), slice(None)) + tuple(slice(w.p, w.p + w.n) for w in windows)


def _taps(array, windows):
    """(tap number, view) for every kernel tap, row-major like the kernel."""
    ranges = (range(w.k) for w in windows)
    for t, (a, b, c) in enumerate(itertools.product(*ranges)):
        yield t, array[:, :, windows[0].tap(a), windows[1].tap(b), windows[2].tap(c)]


def _batched(x):
    return x if x.ndim == 5 else x[None]


def _unbatched_like(y, batched):
    return y if batched else y[0]


def _scatter(g, windows, xp, weight=None):
    """The input-shaped gradient of g through the tap views: tap t gets g (times weight(t))."""
    padded = xp.zeros(g.shape[:2] + tuple(w.source for w in windows), dtype=g.dtype)
    disjoint = all(w.disjoint for w in windows)
    for t, view in _taps(padded, windows):
        part = g if weight is None else weight(t)
        if disjoint:  # each input is in at most one window: write, don't accumulate
            view[...] = part
        else:
            view += part
    return padded[_interior(windows)]


# ------------------------------------------------------------------------------------ max pool


class MaxPool3d(Function):
    """Window maxima (NaN propagates); backward routes each gradient to its window's first maximum."""

    @staticmethod
    def forward(ctx, x, windows, return_indices):
        xp, x5 = ctx.xp, _batched(x)
        ctx.windows, ctx.batched = windows, x.ndim == 5
        low = -xp.inf if x.dtype.kind == "f" else xp.iinfo(x.dtype).min
        views = [view for _, view in _taps(_source(x5, windows, low, xp), windows)]
        out = views[0].copy() if len(views) == 1 else xp.maximum(views[0], views[1])
        for view in views[2:]:
            xp.maximum(out, view, out=out)
        if not (any(ctx.needs_input_grad) or return_indices):
            return _unbatched_like(out, ctx.batched)
        arg = _first_argmax(views, out, xp)
        ctx.save_for_backward(arg)
        if not return_indices:
            return _unbatched_like(out, ctx.batched)
        indices = _flat_indices(arg, windows, xp)
        ctx.mark_non_differentiable(indices)
        return _unbatched_like(out, ctx.batched), _unbatched_like(indices, ctx.batched)

    @staticmethod
    def backward(ctx, grad, *_):
        (arg,) = ctx.saved_tensors
        g = _batched(grad)
        grad_x = _scatter(g, ctx.windows, ctx.xp, weight=lambda t: g * (arg == t))
        return _unbatched_like(grad_x, ctx.batched), None, None

    @staticmethod
    def backward_graph(ctx, grad, *_):
        from .pooling_graph import MaxPoolGradient  # routes through this class's backward

        if not all(w.disjoint for w in ctx.windows):
            raise AutogradError(
                "max_pool3d: higher-order gradients need windows that do not overlap (stride >= dilation * "
                f"(kernel_size - 1) + 1; got kernel {tuple(w.k for w in ctx.windows)}, stride "
                f"{tuple(w.s for w in ctx.windows)})"
            )
        return MaxPoolGradient.apply(grad, ctx), None, None


def _flat_indices(arg, windows, xp):
    """PyTorch's return_indices: each maximum's position in its (D, H, W) volume, (d*H + h)*W + w, int64."""
    arg = arg.astype(xp.int64)
    depth, rows, cols = windows
    a, b, c = arg // (rows.k * cols.k), (arg // cols.k) % rows.k, arg % cols.k
    d = (xp.arange(depth.out) * depth.s - depth.p)[:, None, None] + a * depth.d
    h = (xp.arange(rows.out) * rows.s - rows.p)[:, None] + b * rows.d
    w = xp.arange(cols.out) * cols.s - cols.p + c * cols.d
    return (d * rows.n + h) * cols.n + w


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,  # noqa: A002
               return_indices=False):
    """(N, C, D, H, W) or (C, D, H, W) -> (N, C, Do, Ho, Wo) window maxima,
    Do = floor((D + 2*padding - dilation*(kd-1) - 1) / stride) + 1 (ceil with ceil_mode);
    with return_indices also each maximum's flat index (d*H + h)*W + w in its volume (int64)."""
    _check_input("max_pool3d", input)
    if not input.data.size:
        refuse_empty_dims("max_pool3d", input, input.ndim - 4)
    windows = _windows("max_pool3d", input, kernel_size, stride, padding, dilation, ceil_mode)
    return MaxPool3d.apply(input, windows, bool(return_indices))


# ------------------------------------------------------------------------------------ avg pool


class AvgPool3d(Function):
    @staticmethod
    def forward(ctx, x, windows, divisor):
        xp, x5 = ctx.xp, _batched(x)
        views = [view for _, view in _taps(_source(x5, windows, 0, xp), windows)]
        out = views[0].copy() if len(views) == 1 else views[0] + views[1]
        for view in views[2:]:
            out += view
        divisor = divisor if isinstance(divisor, (int, float)) else xp.asarray(divisor, dtype=x.dtype)
        out /= divisor
        ctx.windows, ctx.divisor, ctx.batched = windows, divisor, x.ndim == 5
        return _unbatched_like(out, ctx.batched)

    @staticmethod
    def backward(ctx, grad):
        grad_x = _scatter(_batched(grad) / ctx.divisor, ctx.windows, ctx.xp)
        return _unbatched_like(grad_x, ctx.batched), None, None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, (ctx.windows, ctx.divisor))


def _divisor(windows, count_include_pad, divisor_override):
    """Each window's divisor as PyTorch computes it: a number, or a (Do, Ho, Wo) nested list."""
    if divisor_override is not None:
        if not divisor_override:
            raise ValueError("avg_pool3d: divisor_override must be non-zero")
        return divisor_override
    sizes = [window_counts(w, count_include_pad) for w in windows]
    if all(len(set(counts)) == 1 for counts in sizes):
        return sizes[0][0] * sizes[1][0] * sizes[2][0]
    return [[[a * b * c for c in sizes[2]] for b in sizes[1]] for a in sizes[0]]


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,  # noqa: A002
               divisor_override=None):
    """(N, C, D, H, W) or (C, D, H, W) -> (N, C, Do, Ho, Wo) window means; count_include_pad counts
    the zero padding in the divisor; divisor_override replaces the divisor."""
    _check_input("avg_pool3d", input)
    if not input.data.size:
        refuse_empty_dims("avg_pool3d", input, input.ndim - 4)
    if input.dtype.kind != "f":
        raise DTypeError(f"avg_pool3d: needs a floating-point input, got {input.dtype}; convert with .float()")
    windows = _windows("avg_pool3d", input, kernel_size, stride, padding, 1, ceil_mode)
    return AvgPool3d.apply(input, windows, _divisor(windows, count_include_pad, divisor_override))
