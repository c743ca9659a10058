"""Ops that move or copy elements into a new layout: repeat, tile, flip (fliplr, flipud, rot90), roll, tril,
triu, pad.

Unlike the views in shape.py, every output here is a fresh array (as in PyTorch): NumPy's flip
would return a view, which we copy so that a later in-place change to the input cannot reach it.
"""
from __future__ import annotations

import operator

from ..autograd import Function
from ..errors import ShapeError
from ..graph_backward import linear_backward_graph
from ._util import normalize_dim, normalize_dims
from .shape import dims_kwarg, sizes_arg

# --------------------------------------------------------------------------------- repeat / tile


class Repeat(Function):
    @staticmethod
    def forward(ctx, x, reps):
        ctx.in_shape, ctx.reps = x.shape, reps
        return ctx.xp.tile(x, reps)

    @staticmethod
    def backward(ctx, grad):
        reps, in_shape = ctx.reps, ctx.in_shape
        padded = (1,) * (len(reps) - len(in_shape)) + tuple(in_shape)
        # Along each dim the output is `rep` copies of the input one after another: view it as
        # (rep, size) pairs and add the copies up.
        pairs = [n for pair in zip(reps, padded) for n in pair]
        folded = grad.reshape(pairs).sum(axis=tuple(range(0, len(pairs), 2)))
        return folded.reshape(in_shape), None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, (ctx.reps,))


def repeat(x, *sizes):
    """Copy x `sizes[i]` times along dim i (torch.Tensor.repeat); extra sizes add leading dims."""
    sizes = sizes_arg(sizes, "repeat")
    shape = x.data.shape
    if len(sizes) < len(shape):
        raise ShapeError(
            f"repeat: {len(sizes)} repeat counts {sizes} for a tensor of {len(shape)} dims {tuple(shape)}; "
            "give at least one per dim (or use tile, which pads the counts with ones)"
        )
    if min(sizes, default=0) < 0:
        raise ShapeError(f"repeat: repeat counts {sizes} must not be negative")
    return Repeat.apply(x, sizes)


def tile(x, dims):
    """torch.tile: like repeat, but fewer counts than dims are padded with ones in front."""
    dims = sizes_arg((dims,), "tile")
    missing = x.data.ndim - len(dims)
    return repeat(x, (1,) * missing + dims if missing > 0 else dims)


# ---------------------------------------------------------------------------------- flip / roll


class Flip(Function):
    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return ctx.xp.flip(x, axes).copy()

    @staticmethod
    def backward(ctx, grad):
        return ctx.xp.flip(grad, ctx.axes), None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, (ctx.axes,))


def flip(x, *dims, **kwargs):
    """Reverse the order of elements along `dims` (ints, or one tuple/list; also `dims=` as in torch)."""
    dims = dims_kwarg(dims, kwargs, "flip")
    return Flip.apply(x, normalize_dims(sizes_arg(dims, "flip"), x.data.ndim, "flip"))


def fliplr(x):
    """Reverse dim 1 (left/right) of a tensor with at least 2 dims."""
    if x.data.ndim < 2:
        raise ShapeError(f"fliplr: needs a tensor with at least 2 dims, got shape {tuple(x.data.shape)}")
    return flip(x, 1)


def flipud(x):
    """Reverse dim 0 (up/down) of a tensor with at least 1 dim."""
    if x.data.ndim < 1:
        raise ShapeError("flipud: needs a tensor with at least 1 dim, got a 0-d tensor")
    return flip(x, 0)


def rot90(x, k=1, dims=(0, 1)):
    """Rotate by 90 degrees k times in the plane of `dims`, from the first dim towards the second."""
    from .shape import transpose

    dims = tuple(dims)
    if len(dims) != 2:
        raise ShapeError(f"rot90: dims must name exactly 2 dims, got {dims}")
    if x.data.ndim < 2:
        raise ShapeError(f"rot90: needs a tensor with at least 2 dims, got shape {tuple(x.data.shape)}")
    d0, d1 = (normalize_dim(d, x.data.ndim, "rot90") for d in dims)
    if d0 == d1:
        raise ValueError(f"rot90: the two dims must differ, both are {d0}")
    k = operator.index(k) % 4
    if k == 1:
        return transpose(flip(x, d1), d0, d1)
    if k == 2:
        return flip(x, d0, d1)
    if k == 3:
        return flip(transpose(x, d0, d1), d1)
    return x.clone()


class Roll(Function):
    @staticmethod
    def forward(ctx, x, shifts, axes):
        ctx.shifts, ctx.axes = shifts, axes
        return ctx.xp.roll(x, shifts, axes)

    @staticmethod
    def backward(ctx, grad):
        back = tuple(-s for s in ctx.shifts) if isinstance(ctx.shifts, tuple) else -ctx.shifts
        return ctx.xp.roll(grad, back, ctx.axes), None, None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, (ctx.shifts, ctx.axes))


def roll(x, shifts, dims=None):
    """Shift elements cyclically by `shifts` along `dims`; with dims=None, over the flattened tensor."""
    if dims is None:
        if not isinstance(shifts, int) and len(shifts) != 1:
            raise ShapeError(f"roll: without dims, shifts must be one int, got {shifts}")
        return Roll.apply(x, operator.index(shifts if isinstance(shifts, int) else shifts[0]), None)
    shifts, dims = sizes_arg((shifts,), "roll"), sizes_arg((dims,), "roll")
    if len(shifts) != len(dims):
        raise ShapeError(f"roll: shifts {shifts} and dims {dims} must have the same length")
    axes = tuple(normalize_dim(d, x.data.ndim, "roll") for d in dims)
    return Roll.apply(x, shifts, axes)


# ---------------------------------------------------------------------------------- tril / triu


class Tril(Function):
    @staticmethod
    def forward(ctx, x, diagonal):
        ctx.diagonal = diagonal
        return ctx.xp.tril(x, diagonal)

    @staticmethod
    def backward(ctx, grad):
        return ctx.xp.tril(grad, ctx.diagonal), None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, (ctx.diagonal,))


class Triu(Function):
    @staticmethod
    def forward(ctx, x, diagonal):
        ctx.diagonal = diagonal
        return ctx.xp.triu(x, diagonal)

    @staticmethod
    def backward(ctx, grad):
        return ctx.xp.triu(grad, ctx.diagonal), None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, (ctx.diagonal,))


def tril(x, diagonal=0):
    """The lower triangle of the last two dims (elements j <= i + diagonal), the rest zero."""
    _check_matrix(x, "tril")
    return Tril.apply(x, operator.index(diagonal))


def triu(x, diagonal=0):
    """The upper triangle of the last two dims (elements j >= i + diagonal), the rest zero."""
    _check_matrix(x, "triu")
    return Triu.apply(x, operator.index(diagonal))


def _check_matrix(x, op):
    if x.data.ndim < 2:
        raise ShapeError(f"{op}: expects a tensor with at least 2 dimensions, got shape {tuple(x.data.shape)}")


# ------------------------------------------------------------------------------------------- pad

_NUMPY_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


class Pad(Function):
    """Crop the negative pads, then grow by the positive ones (constant value or mode)."""

    @staticmethod
    def forward(ctx, x, widths, mode, value):
        ctx.in_shape, ctx.mode, ctx.widths = x.shape, mode, widths
        ctx.crop = _crop_slices(widths) if any(b < 0 or a < 0 for b, a in widths) else None
        inner = x[ctx.crop] if ctx.crop else x
        grow = ctx.grow = tuple((max(b, 0), max(a, 0)) for b, a in widths)
        if mode != "constant":
            _check_mode_sizes(inner.shape, grow, mode)
            return ctx.xp.pad(inner, grow, mode=_NUMPY_MODES[mode])
        out = ctx.xp.full([n + b + a for n, (b, a) in zip(inner.shape, grow)], value, dtype=x.dtype)
        out[_inner_slices(grow, inner.shape)] = inner
        return out

    @staticmethod
    def backward(ctx, grad):
        grow = ctx.grow
        inner_shape = tuple(n - b - a for n, (b, a) in zip(grad.shape, grow))
        if ctx.mode == "constant":
            g = grad[_inner_slices(grow, inner_shape)]
        else:
            g = grad
            for axis, (before, after) in enumerate(grow):
                if before or after:
                    g = _fold_axis(ctx.xp, g, axis, before, after, ctx.mode)
        if ctx.crop:  # cropped elements get no gradient
            full = ctx.xp.zeros(ctx.in_shape, dtype=grad.dtype)
            full[ctx.crop] = g
            g = full
        return g, None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        # Linear in x only without the fill value: its adjoint pads with zeros (the value's part of
        # the output does not depend on x).
        return linear_backward_graph(ctx, grad, (ctx.widths, ctx.mode, 0))


def _crop_slices(widths):
    return tuple(slice(max(-b, 0), (-max(-a, 0)) or None) for b, a in widths)


def _inner_slices(grow, inner_shape):
    return tuple(slice(b, b + n) for (b, _), n in zip(grow, inner_shape))


def _fold_axis(xp, g, axis, before, after, mode):
    """Undo one axis of reflect/replicate/circular padding: add each padded element's gradient
    to the input element it was copied from."""
    lead = (slice(None),) * axis
    n = g.shape[axis] - before - after
    left, right = g[lead + (slice(0, before),)], g[lead + (slice(before + n, None),)]
    out = g[lead + (slice(before, before + n),)].copy()
    if mode == "reflect":  # left pad holds x[before..1], right pad x[n-2..n-1-after]
        out[lead + (slice(1, before + 1),)] += xp.flip(left, axis)
        out[lead + (slice(n - 1 - after, n - 1),)] += xp.flip(right, axis)
    elif mode == "replicate":  # every pad element copies the edge element
        if before:
            out[lead + (slice(0, 1),)] += left.sum(axis=axis, keepdims=True)
        if after:
            out[lead + (slice(n - 1, n),)] += right.sum(axis=axis, keepdims=True)
    else:  # circular: the left pad holds x's last `before` elements, the right pad its first `after`
        out[lead + (slice(n - before, n),)] += left
        out[lead + (slice(0, after),)] += right
    return out


def _check_mode_sizes(shape, grow, mode):
    for dim, (n, (before, after)) in enumerate(zip(shape, grow)):
        widest = max(before, after)
        if not widest:
            continue
        if mode == "reflect" and widest >= n:
            raise ShapeError(f"pad: reflect padding {widest} must be less than the size {n} of dim {dim}")
        if mode == "circular" and widest > n:
            raise ShapeError(f"pad: circular padding {widest} must be at most the size {n} of dim {dim}")
        if mode == "replicate" and n == 0:
            raise ShapeError(f"pad: cannot replicate-pad dim {dim} of size 0")


def pad(input, pad, mode="constant", value=None):  # noqa: A002 - torch.nn.functional.pad's names
    """torch.nn.functional.pad: `pad` = (left, right) for the last dim, then (top, bottom) for the one
    before, ...; negative entries crop. mode: 'constant' (with `value`, default 0), 'reflect',
    'replicate' or 'circular'."""
    if mode not in ("constant", *_NUMPY_MODES):
        raise ValueError(f"pad: unknown mode {mode!r}; use 'constant', 'reflect', 'replicate' or 'circular'")
    if mode != "constant":
        if value not in (None, 0):
            raise ValueError(f"pad: mode {mode!r} takes no value (got {value!r}); only 'constant' does")
        if not input.data.size and mode != "circular":
            _refuse_empty_non_batch_dims(input.data.shape, pad, mode)
    return Pad.apply(input, _pad_widths(pad, input.data.shape), mode, 0 if value is None else value)


def _refuse_empty_non_batch_dims(shape, pad, mode):
    """torch's reflect and replicate kernels take (batch, channel, *padded) inputs whose batch may be
    empty but whose channel and padded dims may not (even where the pad is 0): refuse the same."""
    padded = len(sizes_arg((pad,), "pad")) // 2
    channel = max(len(shape) - padded - 1, 0)  # the dims before it are batch dims
    for dim in range(channel, len(shape)):
        if shape[dim] == 0:
            raise ShapeError(
                f"pad: {mode} padding of shape {tuple(shape)} needs its channel and padded dims (dim {channel} "
                f"on) non-empty, but dim {dim} has size 0 (only leading batch dims may be empty); use "
                "mode='constant' or 'circular' to pad an empty tensor"
            )


def _pad_widths(pad, shape):
    """torch's flat, last-dim-first pad list as NumPy's ((before, after), ...) for every dim."""
    pad = sizes_arg((pad,), "pad")
    if len(pad) % 2 or len(pad) > 2 * len(shape):
        raise ShapeError(
            f"pad: {pad} must hold a (before, after) pair per padded dim, last dim first, for at most the "
            f"{len(shape)} dims of shape {tuple(shape)}"
        )
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)][::-1]
    widths = ((0, 0),) * (len(shape) - len(pairs)) + tuple(pairs)
    for dim, (n, (before, after)) in enumerate(zip(shape, widths)):
        if n + before + after < 0:
            raise ShapeError(f"pad: {pad} would make dim {dim} of shape {tuple(shape)} negative ({n + before + after})")
    return widths
