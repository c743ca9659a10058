"""Pooling: max_pool2d, avg_pool2d; the adaptive ones are in adaptive_pooling.py, the 1-d ones in
pooling1d.py, interpolate in resample.py.

Window ops loop over the kernel taps (kh*kw strided views of the padded input, each the size of
the output), never over pixels: a tap's view is basic slicing, so every step is one vectorised
pass. The padded copy is made only when padding or ceil_mode needs it, and in the input's memory
order (a convolution's output is channels-outermost), so the copy reads contiguous runs.
"""
from __future__ import annotations

from ... import kernels
from ...autograd import Function
from ...errors import DTypeError, ShapeError
from ...graph_backward import linear_backward_graph
from ...tensor import Tensor
from ._zero_size import refuse_empty_dims

# ------------------------------------------------------------------------------------ geometry


class _Window:
    """One pooling window along an axis of size n: kernel k, stride s, padding p, dilation d."""

    def __init__(self, n, k, s, p, d, ceil_mode):
        self.n, self.k, self.s, self.p, self.d = n, k, s, p, d
        span = d * (k - 1) + 1
        self.out = (n + 2 * p - span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (self.out - 1) * s >= n + p:  # the last window would start in the padding
            self.out -= 1
        # A ceil_mode window may run past the padded edge: the source must cover it.
        self.source = max(n + 2 * p, (self.out - 1) * s + span)

    def tap(self, i):
        """The slice of the padded source that kernel tap i reads for every output."""
        start = i * self.d
        return slice(start, start + (self.out - 1) * self.s + 1, self.s)

    @property
    def tiles(self):
        """Do the windows tile the input exactly (kernel == stride, no padding, dilation or overhang)?"""
        return self.k == self.s and self.p == 0 and self.d == 1 and self.source == self.n

    @property
    def disjoint(self):
        """Do the taps of different windows never touch the same input (so grads can be assigned)?"""
        return self.s >= self.d * (self.k - 1) + 1


def _windows(op, x, kernel_size, stride, padding, dilation, ceil_mode):
    kh, kw = _pair(kernel_size, op, "kernel_size", 1)
    sh, sw = (kh, kw) if stride is None or stride == [] or stride == () else _pair(stride, op, "stride", 1)
    ph, pw = _pair(padding, op, "padding", 0)
    dh, dw = _pair(dilation, op, "dilation", 1)
    for k, p, d in ((kh, ph, dh), (kw, pw, dw)):
        if 2 * p > d * (k - 1) + 1:
            raise ValueError(
                f"{op}: padding {(ph, pw)} must be at most half the (dilated) kernel size {(kh, kw)}; "
                "reduce the padding"
            )
    H, W = x.shape[-2:]
    rows, cols = _Window(H, kh, sh, ph, dh, ceil_mode), _Window(W, kw, sw, pw, dw, ceil_mode)
    if rows.out < 1 or cols.out < 1:
        raise ShapeError(
            f"{op}: output size {(rows.out, cols.out)} is too small for input {tuple(x.shape)} with kernel "
            f"{(kh, kw)}, stride {(sh, sw)}, padding {(ph, pw)}, dilation {(dh, dw)}; use a smaller kernel"
        )
    return rows, cols


def _pair(value, op, name, minimum):
    values = (value, value) if isinstance(value, int) else tuple(value)
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not all(isinstance(v, int) and v >= minimum for v in values):
        raise ValueError(f"{op}: {name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return values


def _check_input(op, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if x.ndim not in (3, 4):
        raise ShapeError(f"{op}: expected a 4-d (N, C, H, W) or 3-d (C, H, W) input, got shape {tuple(x.shape)}")


def _channels_outermost(x):
    """Is x laid out (C, N, H, W) in memory, as a convolution's output is?"""
    return x.strides[1] > x.strides[0] and x.shape[0] > 1


def _blank(shape, like, fill, xp):
    """A (N, C, H, W) array filled with `fill`, in the memory order of `like` (a view when permuted)."""
    N, C, H, W = shape
    make = (lambda s: xp.zeros(s, dtype=like.dtype)) if fill == 0 else (lambda s: xp.full(s, fill, dtype=like.dtype))
    if _channels_outermost(like):
        return make((C, N, H, W)).transpose(1, 0, 2, 3)
    return make(shape)


def _source(x, rows, cols, fill, xp):
    """x padded by `fill` to cover every window, or x itself when nothing needs padding."""
    if rows.source == rows.n and cols.source == cols.n:
        return x
    src = _blank(x.shape[:2] + (rows.source, cols.source), x, fill, xp)
    src[:, :, rows.p : rows.p + rows.n, cols.p : cols.p + cols.n] = x
    return src


def _taps(array, rows, cols):
    """(tap number, view) for every kernel tap, row-major like the kernel."""
    for i in range(rows.k):
        for j in range(cols.k):
            yield i * cols.k + j, array[:, :, rows.tap(i), cols.tap(j)]


def _crop(padded, rows, cols):
    return padded[:, :, rows.p : rows.p + rows.n, cols.p : cols.p + cols.n]


def _batched(x):
    return x if x.ndim == 4 else x[None]


def _batched_shape(shape):
    return tuple(shape) if len(shape) == 4 else (1, *shape)


def _geometry(rows, cols):
    """(kernel, stride, padding, dilation) as (h, w) pairs, for the fused kernels."""
    return (rows.k, cols.k), (rows.s, cols.s), (rows.p, cols.p), (rows.d, cols.d)


def _unbatched_like(y, x):
    return y if x.ndim == 4 else y[0]


# ------------------------------------------------------------------------------------ max pool


class MaxPool2d(Function):
    """Window maxima (NaN propagates); backward routes each gradient to its window's first maximum."""

    @staticmethod
    def forward(ctx, x, rows, cols, return_indices):
        xp = ctx.xp
        x4 = _batched(x)
        need_grad = any(ctx.needs_input_grad)
        ctx.rows, ctx.cols, ctx.in_shape, ctx.tiled, ctx.fused = rows, cols, x.shape, False, False
        if not return_indices and kernels.max_pool_fits(x4):  # CUDA: one launch, no host round trip
            ctx.fused, ctx.swapped = True, _channels_outermost(x4)
            out, taps = kernels.max_pool_forward(x4, *_geometry(rows, cols), (rows.out, cols.out), ctx.swapped)
            if need_grad:
                ctx.save_for_backward(taps)
            return _unbatched_like(out, x)
        if rows.tiles and cols.tiles and not return_indices:
            out, args, ctx.swapped = _tiled_max(x4, rows, cols, xp, need_grad)
            # A NaN maximum must route its gradient to the NaN, which only the tap path tracks.
            if not (need_grad and out.dtype.kind == "f" and bool(xp.isnan(out).any())):
                ctx.tiled = True
                ctx.save_for_backward(*args)
                return _unbatched_like(out, x)
        low = -xp.inf if x.dtype.kind == "f" else xp.iinfo(x.dtype).min
        views = [view for _, view in _taps(_source(x4, rows, cols, low, xp), rows, cols)]
        out = views[0].copy() if len(views) == 1 else xp.maximum(views[0], views[1])
        for view in views[2:]:
            xp.maximum(out, view, out=out)
        if not (need_grad or return_indices):
            return _unbatched_like(out, x)
        arg = _first_argmax(views, out, xp)
        ctx.save_for_backward(arg)
        if not return_indices:
            return _unbatched_like(out, x)
        indices = _flat_indices(arg, rows, cols, xp)
        ctx.mark_non_differentiable(indices)
        return _unbatched_like(out, x), _unbatched_like(indices, x)

    @staticmethod
    def backward(ctx, grad, *_):
        rows, cols, xp = ctx.rows, ctx.cols, ctx.xp
        g = _batched(grad)
        if ctx.fused:
            overlapping = not (rows.disjoint and cols.disjoint)
            grad_x = kernels.max_pool_backward(g, ctx.saved_tensors[0], _batched_shape(ctx.in_shape),
                                               *_geometry(rows, cols), ctx.swapped, overlapping)
        elif ctx.tiled:
            grad_x = _tiled_max_backward(g, ctx.saved_tensors, rows, cols, ctx.in_shape, ctx.swapped, xp)
        else:
            (arg,) = ctx.saved_tensors
            padded = _blank(g.shape[:2] + (rows.source, cols.source), g, 0, xp)
            disjoint = rows.disjoint and cols.disjoint
            for t, view in _taps(padded, rows, cols):
                if disjoint:  # each input is in at most one window: write, don't accumulate
                    xp.multiply(g, arg == t, out=view)
                else:
                    view += g * (arg == t)
            grad_x = _crop(padded, rows, cols)
        return grad_x if len(ctx.in_shape) == 4 else grad_x[0], None, None, None

    @staticmethod
    def backward_graph(ctx, grad, *_):
        from .pooling_graph import max_pool_backward_graph  # it builds on this class's backward

        return max_pool_backward_graph(ctx, grad)


# Tiled windows (kernel == stride, no padding or dilation: the common 2x2 pool) reduce in two
# stages, along W within each tile, then along H, on the input in its memory order: the W stage
# then runs over the whole array in a few long passes instead of kh*kw short strided ones.


def _memory_order(x):
    """x as (A, B, H, W) with A the outer dim in memory: (N, C, ...) or, for a conv output, (C, N, ...)."""
    swapped = _channels_outermost(x)
    return (x.transpose(1, 0, 2, 3) if swapped else x), swapped


def _tiled_max(x, rows, cols, xp, need_arg):
    """-> (N, C, Ho, Wo) maxima, (index along W per row, index along H) of each first maximum, and
    whether the work ran channels-outermost."""
    xm, swapped = _memory_order(x)
    height, width = rows.out * rows.k, cols.out * cols.k
    across, arg_w = _first_max([xm[:, :, :height, j:width:cols.k] for j in range(cols.k)], xp, need_arg)
    out, arg_h = _first_max([across[:, :, i::rows.k] for i in range(rows.k)], xp, need_arg)
    return (out.transpose(1, 0, 2, 3) if swapped else out), (arg_w, arg_h), swapped


def _first_max(slices, xp, need_arg):
    """Elementwise maximum of equally shaped arrays and (if need_arg) which one held the first
    maximum: a bool for two (True = the second), else int8."""
    if len(slices) == 1:
        return slices[0], None
    arg = slices[1] > slices[0] if need_arg else None
    best = xp.maximum(slices[0], slices[1])
    if len(slices) > 2 and need_arg:
        arg = arg.astype(xp.int8)
    for j, s in enumerate(slices[2:], start=2):
        if need_arg:
            xp.copyto(arg, j, where=s > best)
        xp.maximum(best, s, out=best)
    return best, arg


def _route(g, arg, parts, xp):
    """parts[j] = g where arg == j, else 0 (parts: equally shaped output views)."""
    if len(parts) == 1:
        parts[0][...] = g
        return
    for j in range(1, len(parts)):
        xp.multiply(g, arg if arg.dtype == bool else arg == j, out=parts[j])
    # Exact: at most one part of each element is non-zero, so the rest is g or 0.
    xp.subtract(g, parts[1], out=parts[0])
    for part in parts[2:]:
        parts[0] -= part


def _tiled_max_backward(g, args, rows, cols, in_shape, swapped, xp):
    arg_w, arg_h = args
    gm = g.transpose(1, 0, 2, 3) if swapped else g
    if not gm.flags.c_contiguous:  # mixed layouts would make every pass below a strided crawl
        gm = xp.ascontiguousarray(gm)
    A, B = gm.shape[:2]
    height, width = rows.out * rows.k, cols.out * cols.k
    across = xp.empty((A, B, height, cols.out), dtype=g.dtype)
    _route(gm, arg_h, [across[:, :, i::rows.k] for i in range(rows.k)], xp)
    H, W = in_shape[-2:]
    full = xp.zeros if (height, width) != (H, W) else xp.empty
    grad = full((A, B, H, W), dtype=g.dtype)
    _route(across, arg_w, [grad[:, :, :height, j:width:cols.k] for j in range(cols.k)], xp)
    return grad.transpose(1, 0, 2, 3) if swapped else grad


def _first_argmax(views, out, xp):
    """The tap number of each window's first maximum (of its first NaN where the maximum is NaN)."""
    arg = xp.zeros_like(out, dtype=xp.int8 if len(views) < 128 else xp.int32)  # same layout as out: fast passes
    has_nan = out.dtype.kind == "f" and bool(xp.isnan(out).any())
    for t in reversed(range(len(views))):  # the earliest tap written last wins ties, as in PyTorch
        hit = views[t] == out
        if has_nan:
            hit |= xp.isnan(views[t])
        xp.copyto(arg, t, where=hit)
    return arg


def _flat_indices(arg, rows, cols, xp):
    """PyTorch's return_indices: each maximum's position in its input plane, h * W + w, as int64."""
    arg = arg.astype(xp.int64)
    h = (xp.arange(rows.out) * rows.s - rows.p)[:, None] + (arg // cols.k) * rows.d
    w = (xp.arange(cols.out) * cols.s - cols.p)[None, :] + (arg % cols.k) * cols.d
    return h * cols.n + w


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,  # noqa: A002
               return_indices=False):
    """(N, C, H, W) -> (N, C, Ho, Wo) window maxima; with return_indices also each maximum's flat
    index h * W + w in its (H, W) plane (int64), as PyTorch returns it."""
    _check_input("max_pool2d", input)
    if not input.data.size:
        refuse_empty_dims("max_pool2d", input, input.ndim - 3)
    rows, cols = _windows("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    return MaxPool2d.apply(input, rows, cols, bool(return_indices))


# ------------------------------------------------------------------------------------ avg pool


class AvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, rows, cols, divisor):
        xp = ctx.xp
        x4 = _batched(x)
        views = [view for _, view in _taps(_source(x4, rows, cols, 0, xp), rows, cols)]
        out = views[0].copy() if len(views) == 1 else views[0] + views[1]
        for view in views[2:]:
            out += view
        divisor = divisor if isinstance(divisor, (int, float)) else xp.asarray(divisor, dtype=x.dtype)
        out /= divisor
        ctx.rows, ctx.cols, ctx.divisor, ctx.batched = rows, cols, divisor, x.ndim == 4
        return _unbatched_like(out, x)

    @staticmethod
    def backward(ctx, grad):
        rows, cols, xp = ctx.rows, ctx.cols, ctx.xp
        g = _batched(grad) / ctx.divisor
        padded = _blank(g.shape[:2] + (rows.source, cols.source), g, 0, xp)
        disjoint = rows.disjoint and cols.disjoint
        for _, view in _taps(padded, rows, cols):
            if disjoint:
                view[...] = g
            else:
                view += g
        grad_x = _crop(padded, rows, cols)
        return grad_x if ctx.batched else grad_x[0], None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, (ctx.rows, ctx.cols, ctx.divisor))


def _divisor(rows, cols, count_include_pad, divisor_override):
    """Each window's divisor as PyTorch computes it: a number, or an (Ho, Wo) nested list."""
    if divisor_override is not None:
        if not divisor_override:
            raise ValueError("avg_pool2d: divisor_override must be non-zero")
        return divisor_override
    sizes = [window_counts(w, count_include_pad) for w in (rows, cols)]
    if len(set(sizes[0])) == 1 and len(set(sizes[1])) == 1:
        return sizes[0][0] * sizes[1][0]
    return [[a * b for b in sizes[1]] for a in sizes[0]]


def window_counts(w, count_include_pad):
    """How many elements each output position's window averages along one axis (a _Window)."""
    counts = []
    for o in range(w.out):
        start = o * w.s - w.p
        end = min(start + w.k, w.n + w.p)  # windows are clipped at the padded edge (ceil_mode)
        counts.append(end - start if count_include_pad else min(end, w.n) - max(start, 0))
    return counts


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,  # noqa: A002
               divisor_override=None):
    """(N, C, H, W) -> (N, C, Ho, Wo) window means; count_include_pad counts the zero padding in
    the divisor; divisor_override replaces the divisor."""
    _check_input("avg_pool2d", input)
    if not input.data.size:
        refuse_empty_dims("avg_pool2d", input, input.ndim - 3)
    if input.dtype.kind != "f":
        raise DTypeError(f"avg_pool2d: needs a floating-point input, got {input.dtype}; convert with .float()")
    rows, cols = _windows("avg_pool2d", input, kernel_size, stride, padding, 1, ceil_mode)
    return AvgPool2d.apply(input, rows, cols, _divisor(rows, cols, count_include_pad, divisor_override))
