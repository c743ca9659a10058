"""Adaptive pooling: adaptive_avg_pool2d and adaptive_max_pool2d, output size fixed, windows
(bins) derived from it as PyTorch does: bin i covers [floor(i*H/oh), ceil((i+1)*H/oh))."""
from __future__ import annotations

from ...autograd import Function
from ...graph_backward import linear_backward_graph
from ...errors import DTypeError
from ._zero_size import refuse_empty_dims
from .pooling import _batched, _check_input, _unbatched_like

# --------------------------------------------------------------------------- adaptive avg pool


class BlockMean(Function):
    """Means over equal (kh, kw) blocks tiling the input: adaptive pooling when sizes divide."""

    @staticmethod
    def forward(ctx, x, out_hw):
        x4 = _batched(x)
        (N, C, H, W), (oh, ow) = x4.shape, out_hw
        ctx.shape, ctx.batched, ctx.out_hw = x4.shape, x.ndim == 4, out_hw
        out = x4.reshape(N, C, oh, H // oh, ow, W // ow).mean(axis=(3, 5))
        return _unbatched_like(out, x)

    @staticmethod
    def backward(ctx, grad):
        N, C, H, W = ctx.shape
        g = _batched(grad)
        oh, ow = g.shape[2:]
        spread = g[:, :, :, None, :, None] / ((H // oh) * (W // ow))
        grad_x = ctx.xp.broadcast_to(spread, (N, C, oh, H // oh, ow, W // ow)).reshape(N, C, H, W)
        return grad_x if ctx.batched else grad_x[0], None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, (ctx.out_hw,))


def adaptive_avg_pool2d(input, output_size):  # noqa: A002
    """(N, C, H, W) -> (N, C, oh, ow): bin i covers [floor(i*H/oh), ceil((i+1)*H/oh)), as PyTorch.
    output_size: int or (oh, ow); None keeps that input size."""
    from .resample import resample_matrix_pool, resample

    _check_input("adaptive_avg_pool2d", input)
    if input.dtype.kind != "f":
        raise DTypeError(f"adaptive_avg_pool2d: needs a floating-point input, got {input.dtype}")
    sizes = (output_size, output_size) if isinstance(output_size, int) or output_size is None else tuple(output_size)
    if len(sizes) != 2:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be an int or a pair, got {output_size!r}")
    H, W = input.shape[-2:]
    oh, ow = (n if s is None else s for s, n in zip(sizes, (H, W)))
    if oh < 1 or ow < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size {(oh, ow)} must be positive")
    if not input.data.size:
        if (oh, ow) == (1, 1):  # PyTorch's shortcut, which takes any empty dim: the mean over (H, W)
            return input.mean((-2, -1), keepdim=True)
        refuse_empty_dims("adaptive_avg_pool2d", input, input.ndim - 2, what="only the batch and channel dims may be")
    if H % oh == 0 and W % ow == 0:
        return BlockMean.apply(input, (oh, ow))
    xp = input.xp
    return resample(input, resample_matrix_pool(H, oh, input.dtype, xp), resample_matrix_pool(W, ow, input.dtype, xp))


# --------------------------------------------------------------------------- adaptive max pool


def _adaptive_bins(n, out):
    """PyTorch's adaptive bins along an axis of size n: bin i covers [floor(i*n/out), ceil((i+1)*n/out))."""
    return [(i * n // out, -(-(i + 1) * n // out)) for i in range(out)]


class AdaptiveMax(Function):
    """Maximum of each adaptive bin (NaN propagates); backward routes the gradient to each bin's first
    maximum. Loops over the (oh * ow) bins, each one vectorised over N and C: bins overlap when the
    sizes do not divide, so the gradient is accumulated bin by bin."""

    @staticmethod
    def forward(ctx, x, out_hw, return_indices):
        xp, x4 = ctx.xp, _batched(x)
        H, W = x4.shape[2:]
        rows, cols = _adaptive_bins(H, out_hw[0]), _adaptive_bins(W, out_hw[1])
        out = xp.empty(x4.shape[:2] + out_hw, dtype=x.dtype)
        arg = xp.empty(x4.shape[:2] + out_hw, dtype=xp.int64)  # each maximum's flat index h * W + w
        for i, (h0, h1) in enumerate(rows):
            for j, (w0, w1) in enumerate(cols):
                window = x4[:, :, h0:h1, w0:w1].reshape(x4.shape[:2] + ((h1 - h0) * (w1 - w0),))  # N may be 0
                local = window.argmax(axis=-1)  # the first maximum; the first NaN where there is one
                out[:, :, i, j] = xp.take_along_axis(window, local[..., None], axis=-1)[..., 0]
                arg[:, :, i, j] = (h0 + local // (w1 - w0)) * W + w0 + local % (w1 - w0)
        ctx.save_for_backward(arg)
        ctx.in_shape = x.shape
        if not return_indices:
            return _unbatched_like(out, x)
        ctx.mark_non_differentiable(arg)
        return _unbatched_like(out, x), _unbatched_like(arg, x)

    @staticmethod
    def backward(ctx, grad, *_):
        xp, (arg,) = ctx.xp, ctx.saved_tensors
        g = _batched(grad)
        N, C = g.shape[:2]
        H, W = ctx.in_shape[-2:]
        grad_x = xp.zeros((N * C, H * W), dtype=g.dtype)
        rows = xp.arange(N * C)[:, None]
        bins = arg.shape[-2] * arg.shape[-1]  # not -1: N * C may be 0
        flat_arg, flat_g = arg.reshape(N * C, bins), g.reshape(N * C, bins)
        for b in range(flat_arg.shape[1]):  # one bin at a time: within a bin each (n, c) row hits one place
            grad_x[rows[:, 0], flat_arg[:, b]] += flat_g[:, b]
        grad_x = grad_x.reshape(N, C, H, W)
        return grad_x if len(ctx.in_shape) == 4 else grad_x[0], None, None


def _adaptive_size(op, input, output_size):
    sizes = (output_size, output_size) if isinstance(output_size, int) or output_size is None else tuple(output_size)
    if len(sizes) != 2 or not all(s is None or (isinstance(s, int) and s >= 1) for s in sizes):
        raise ValueError(f"{op}: output_size must be a positive int, a pair of them, or None to keep a size; "
                         f"got {output_size!r}")
    return tuple(n if s is None else s for s, n in zip(sizes, input.shape[-2:]))


def adaptive_max_pool2d(input, output_size, return_indices=False):  # noqa: A002
    """(N, C, H, W) -> (N, C, oh, ow) bin maxima, bins as adaptive_avg_pool2d's; with return_indices
    also each maximum's flat index h * W + w (int64)."""
    _check_input("adaptive_max_pool2d", input)
    if not input.data.size:  # PyTorch lets dim 0 be empty, batched or not
        refuse_empty_dims("adaptive_max_pool2d", input, 1, what="only dim 0 may be")
    return AdaptiveMax.apply(input, _adaptive_size("adaptive_max_pool2d", input, output_size), bool(return_indices))
