"""Volumetric adaptive pooling: adaptive_avg_pool3d and adaptive_max_pool3d. The output size is fixed
and the bins derived from it as PyTorch does: along an axis of size n, bin i of `out` covers
[floor(i*n/out), ceil((i+1)*n/out)).

The mean over a box of bins is separable: three small matrix products, one per axis, with (out, n)
bin-mean matrices (their transposes in backward). The maximum is not, so adaptive_max_pool3d gathers
every bin's window at once, each axis padded to its longest bin by repeating the bin's last index (a
repeat never changes a maximum or which element is first to hold it), and reduces over it.
"""
from __future__ import annotations

import numpy as np

from ...autograd import Function
from ...errors import DTypeError
from ...graph_backward import linear_backward_graph
from ...ops.gather import add_at
from ._zero_size import refuse_empty_dims
from .pooling3d import _batched, _check_input, _unbatched_like
from .resample import resample_matrix_pool


def _bins(n, out):
    return [(i * n // out, -(-(i + 1) * n // out)) for i in range(out)]


def _output_size(op, x, output_size):
    """output_size as a (od, oh, ow) triple; None keeps that input size."""
    sizes = (output_size,) * 3 if isinstance(output_size, int) or output_size is None else tuple(output_size)
    if len(sizes) != 3 or not all(s is None or (isinstance(s, int) and s >= 1) for s in sizes):
        raise ValueError(f"{op}: output_size must be a positive int, a tuple of 3 of them, or None to keep a size; "
                         f"got {output_size!r}")
    return tuple(n if s is None else s for s, n in zip(sizes, x.shape[-3:]))


# --------------------------------------------------------------------------- adaptive avg pool


class AdaptiveAvgPool3d(Function):
    """x (N, C, D, H, W) -> Md x Mh x Mw applied along the three axes (N, C, od, oh, ow)."""

    @staticmethod
    def forward(ctx, x, out_size, matrices):
        x5 = _batched(x)
        N, C, D, H, W = x5.shape
        od, oh, ow = out_size
        ctx.batched, ctx.in_size, ctx.out_size, ctx.matrices = x.ndim == 5, (D, H, W), out_size, matrices
        if matrices is None:  # the sizes divide: means over equal blocks
            return _unbatched_like(x5.reshape(N, C, od, D // od, oh, H // oh, ow, W // ow).mean(axis=(3, 5, 7)),
                                   ctx.batched)
        md, mh, mw = matrices
        y = (x5.reshape(-1, W) @ mw.T).reshape(N, C, D, H, ow)
        y = mh @ y  # (N, C, D, oh, ow)
        y = (md @ y.reshape(N * C, D, oh * ow)).reshape(N, C, od, oh, ow)
        return _unbatched_like(y, ctx.batched)

    @staticmethod
    def backward(ctx, grad):
        g = _batched(grad)
        N, C = g.shape[:2]
        (D, H, W), (od, oh, ow) = ctx.in_size, ctx.out_size
        if ctx.matrices is None:
            spread = g[:, :, :, None, :, None, :, None] / ((D // od) * (H // oh) * (W // ow))
            grad_x = ctx.xp.broadcast_to(spread, (N, C, od, D // od, oh, H // oh, ow, W // ow)).reshape(N, C, D, H, W)
        else:
            md, mh, mw = ctx.matrices
            y = (md.T @ g.reshape(N * C, od, oh * ow)).reshape(N, C, D, oh, ow)
            y = mh.T @ y  # (N, C, D, H, ow)
            grad_x = (y.reshape(-1, ow) @ mw).reshape(N, C, D, H, W)
        return _unbatched_like(grad_x, ctx.batched), None, None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, (ctx.out_size, ctx.matrices))


def adaptive_avg_pool3d(input, output_size):  # noqa: A002
    """(N, C, D, H, W) or (C, D, H, W) -> (N, C, od, oh, ow) bin means. output_size: int or
    (od, oh, ow); None keeps that input size."""
    _check_input("adaptive_avg_pool3d", input)
    if input.dtype.kind != "f":
        raise DTypeError(f"adaptive_avg_pool3d: needs a floating-point input, got {input.dtype}; "
                         "convert with .float()")
    out = _output_size("adaptive_avg_pool3d", input, output_size)
    if not input.data.size:
        if out == (1, 1, 1):  # PyTorch's shortcut, which takes any empty dim: the mean over (D, H, W)
            return input.mean((-3, -2, -1), keepdim=True)
        refuse_empty_dims("adaptive_avg_pool3d", input, 1, what="only dim 0 may be")
    sizes = tuple(input.shape[-3:])
    matrices = None
    if any(n % o for n, o in zip(sizes, out)):
        matrices = tuple(resample_matrix_pool(n, o, input.dtype, input.xp) for n, o in zip(sizes, out))
    return AdaptiveAvgPool3d.apply(input, out, matrices)


# --------------------------------------------------------------------------- adaptive max pool


def _bin_index(n, out, xp):
    """(out, longest bin) positions of each bin's elements, the last repeated to fill short bins."""
    bins = _bins(n, out)
    longest = max(end - start for start, end in bins)
    index = np.array([[min(start + j, end - 1) for j in range(longest)] for start, end in bins], dtype=np.int64)
    return xp.asarray(index)


class AdaptiveMaxPool3d(Function):
    """Maximum of each adaptive bin (NaN propagates: argmax finds the first NaN); backward adds each
    gradient at its bin's first maximum (bins may share an edge, so the adds accumulate)."""

    @staticmethod
    def forward(ctx, x, out_size, return_indices):
        xp, x5 = ctx.xp, _batched(x)
        N, C, D, H, W = x5.shape
        di, hi, wi = (_bin_index(n, o, xp) for n, o in zip((D, H, W), out_size))
        kd, kh, kw = di.shape[1], hi.shape[1], wi.shape[1]
        # one gather: (N, C, od, oh, ow, kd, kh, kw), every bin's window
        windows = x5[:, :, di[:, None, None, :, None, None], hi[None, :, None, None, :, None],
                     wi[None, None, :, None, None, :]]
        windows = windows.reshape(N, C, *out_size, kd * kh * kw)  # not -1: N may be 0
        local = windows.argmax(axis=-1)
        out = xp.take_along_axis(windows, local[..., None], axis=-1)[..., 0]
        a, b, c = local // (kh * kw), (local // kw) % kh, local % kw
        od, oh, ow = out_size
        d = di[xp.arange(od)[:, None, None], a]
        h = hi[xp.arange(oh)[:, None], b]
        w = wi[xp.arange(ow), c]
        arg = (d * H + h) * W + w  # each maximum's flat index in its (D, H, W) volume
        ctx.save_for_backward(arg)
        ctx.in_shape, ctx.batched = x5.shape, x.ndim == 5
        if not return_indices:
            return _unbatched_like(out, ctx.batched)
        ctx.mark_non_differentiable(arg)
        return _unbatched_like(out, ctx.batched), _unbatched_like(arg, ctx.batched)

    @staticmethod
    def backward(ctx, grad, *_):
        xp, (arg,) = ctx.xp, ctx.saved_tensors
        g = _batched(grad)
        N, C, D, H, W = ctx.in_shape
        volume = D * H * W
        grad_x = xp.zeros(N * C * volume, dtype=g.dtype)
        bins = arg.shape[-3] * arg.shape[-2] * arg.shape[-1]  # not -1: N * C may be 0
        flat = (xp.arange(N * C)[:, None] * volume + arg.reshape(N * C, bins)).reshape(-1)
        add_at(xp, grad_x, flat, g.reshape(-1))
        return _unbatched_like(grad_x.reshape(N, C, D, H, W), ctx.batched), None, None


def adaptive_max_pool3d(input, output_size, return_indices=False):  # noqa: A002
    """(N, C, D, H, W) or (C, D, H, W) -> (N, C, od, oh, ow) bin maxima, bins as adaptive_avg_pool3d's;
    with return_indices also each maximum's flat index (d*H + h)*W + w in its volume (int64)."""
    _check_input("adaptive_max_pool3d", input)
    if not input.data.size:  # PyTorch lets dim 0 be empty, batched or not
        refuse_empty_dims("adaptive_max_pool3d", input, 1, what="only dim 0 may be")
    out = _output_size("adaptive_max_pool3d", input, output_size)
    return AdaptiveMaxPool3d.apply(input, out, bool(return_indices))
