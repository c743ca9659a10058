"""Separable resampling: interpolate ('nearest', 'nearest-exact', 'linear', 'bilinear', 'trilinear')
and the general case of adaptive_avg_pool2d.

Each of these maps an (H, W) plane linearly and separably: out = Mh @ x @ Mw.T with small fixed
matrices Mh (oh, H) and Mw (ow, W) (interpolation weights, one-hot rows for nearest, bin means for
adaptive pooling). Forward and backward are then two matrix products each (backward:
Mh.T @ grad @ Mw), vectorised over every plane and exact for the scatter-adds a gather's backward
would otherwise need. Nearest's forward gathers instead, so an inf in the input stays where it is.
"""
from __future__ import annotations

import math

import numpy as np

from ...autograd import Function
from ...graph_backward import linear_backward_graph
from ...errors import DTypeError, ShapeError
from ...tensor import Tensor
from ._zero_size import refuse_empty_dims


class Resample2d(Function):
    """x (N, C, H, W) -> Mh @ x @ Mw.T (N, C, oh, ow); with `rows`/`cols` index arrays the forward
    gathers x[..., rows, cols] instead (the same map when Mh, Mw are their one-hot matrices)."""

    @staticmethod
    def forward(ctx, x, mh, mw, rows, cols):
        N, C, H, W = x.shape
        ctx.save_for_backward(mh, mw)
        ctx.picks = (rows, cols)
        if rows is not None:
            return x.take(rows, axis=2).take(cols, axis=3)
        across = (x.reshape(-1, W) @ mw.T).reshape(N, C, H, mw.shape[0])  # one product over all rows
        return mh @ across

    @staticmethod
    def backward(ctx, grad):
        mh, mw = ctx.saved_tensors
        N, C, oh, ow = grad.shape
        down = mh.T @ grad  # (N, C, H, ow)
        H = down.shape[2]
        return (down.reshape(-1, ow) @ mw).reshape(N, C, H, mw.shape[1]), None, None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, (*ctx.saved_tensors, *ctx.picks))


def resample(x, mh, mw, rows=None, cols=None):
    """Apply Resample2d to a 3-d (C, H, W) or 4-d input; mh, mw raw arrays of x's dtype and device."""
    if x.ndim == 3:
        return resample(x.unsqueeze(0), mh, mw, rows, cols).squeeze(0)
    return Resample2d.apply(x, mh, mw, rows, cols)


# --------------------------------------------------------------------------------- the matrices


def resample_matrix_pool(n, out, dtype, xp):
    """(out, n): row i averages bin [floor(i*n/out), ceil((i+1)*n/out)), adaptive pooling's bins."""
    m = np.zeros((out, n), dtype=dtype)
    for i in range(out):
        start, end = (i * n) // out, -(-(i + 1) * n // out)
        m[i, start:end] = 1.0 / (end - start)
    return xp.asarray(m)


def _nearest_index(n, out, scale, exact, xp):
    """PyTorch's nearest source index, computed in float32 as its kernels do."""
    step = np.float32(n / out if scale is None else 1.0 / scale)
    pos = np.arange(out, dtype=np.float32)
    if exact:
        pos = pos + np.float32(0.5)
    index = np.minimum(np.floor(pos * step).astype(np.int64), n - 1)
    return xp.asarray(index)


def _one_hot_rows(index, n, dtype, xp):
    m = xp.zeros((index.shape[0], n), dtype=dtype)
    m[xp.arange(index.shape[0]), index] = 1
    return m


def _linear_matrix(n, out, scale, align_corners, dtype, xp):
    """(out, n) linear-interpolation weights with PyTorch's source-coordinate rule."""
    acc = np.float64 if dtype == np.float64 else np.float32
    if align_corners:
        step = acc((n - 1) / (out - 1)) if out > 1 else acc(0)
        src = np.arange(out, dtype=acc) * step
    else:
        step = acc(n / out if scale is None else 1.0 / scale)
        src = np.maximum((np.arange(out, dtype=acc) + acc(0.5)) * step - acc(0.5), 0)
    low = np.minimum(src.astype(np.int64), n - 1)
    high = np.minimum(low + 1, n - 1)
    frac = (src - low).astype(dtype)
    m = np.zeros((out, n), dtype=dtype)
    np.add.at(m, (np.arange(out), low), 1 - frac)
    np.add.at(m, (np.arange(out), high), frac)
    return xp.asarray(m)


def _cubic_matrix(n, out, scale, align_corners, dtype, xp, a=-0.75):
    """(out, n) bicubic weights (Keys' cubic convolution, a = -0.75) with PyTorch's source coordinates:
    unlike linear, a negative source coordinate is not clamped; out-of-range taps repeat the edge."""
    if align_corners:
        src = np.arange(out) * ((n - 1) / (out - 1) if out > 1 else 0.0)
    else:
        src = (np.arange(out) + 0.5) * (n / out if scale is None else 1.0 / scale) - 0.5
    low = np.floor(src).astype(np.int64)
    t = src - low
    near = lambda d: ((a + 2) * d - (a + 3)) * d * d + 1  # noqa: E731  |d| <= 1
    far = lambda d: ((a * d - 5 * a) * d + 8 * a) * d - 4 * a  # noqa: E731  1 < |d| < 2
    m = np.zeros((out, n), dtype=np.float64)
    for tap, weight in zip((-1, 0, 1, 2), (far(t + 1), near(t), near(1 - t), far(2 - t))):
        np.add.at(m, (np.arange(out), np.clip(low + tap, 0, n - 1)), weight)
    return xp.asarray(m.astype(dtype))


def _antialias_matrix(n, out, scale, align_corners, cubic, dtype, xp):
    """(out, n) PyTorch's antialiased weights (antialias=True, as PIL resizes): the filter (triangle, or
    Keys' cubic with a = -0.5) is widened by the downscale factor, so each output averages all the input
    pixels it covers; taps outside the input are dropped and each row renormalized (no edge repeat)."""
    if align_corners:
        step = (n - 1) / (out - 1) if out > 1 else 0.0
    else:
        step = n / out if scale is None else 1.0 / scale
    support = (2.0 if cubic else 1.0) * max(step, 1.0)
    invscale = 1.0 / step if step >= 1.0 else 1.0
    m = np.zeros((out, n), dtype=np.float64)
    for i in range(out):
        center = step * (i + 0.5)
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), n)  # int(): C's truncation
        d = np.abs((np.arange(lo, hi) - center + 0.5) * invscale)
        if cubic:
            a = -0.5
            w = np.where(d < 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                         np.where(d < 2, (((d - 5) * d + 8) * d - 4) * a, 0.0))
        else:
            w = np.maximum(1.0 - d, 0.0)
        total = w.sum()
        m[i, lo:hi] = w / total if total != 0 else w
    return xp.asarray(m.astype(dtype))


# ----------------------------------------------------------------------------------- interpolate

_MODES = {"nearest": 1, "nearest-exact": 1, "linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3, "area": 1}
_NEEDS_NDIM = {"linear": 3, "bilinear": 4, "bicubic": 4, "trilinear": 5}  # the others: 3-, 4- or 5-d


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,  # noqa: A002
                recompute_scale_factor=None, antialias=False):
    """Resize the last 1 (3-d input: 'nearest', 'nearest-exact', 'linear', 'area'), 2 (4-d input:
    'nearest', 'nearest-exact', 'bilinear', 'bicubic', 'area') or 3 (5-d input: 'nearest',
    'nearest-exact', 'trilinear', 'area') dims to `size`, or by `scale_factor`
    (output size floor(n * scale)). align_corners (linear and cubic modes only) maps corner pixels onto
    corner pixels; 'area' is adaptive average pooling to the output size. antialias=True ('bilinear' and
    'bicubic' only) widens the filter when downsampling, as PIL and torchvision's Resize do."""
    if not isinstance(input, Tensor):
        raise TypeError(f"interpolate: input must be a Tensor, got {type(input).__name__}")
    if mode not in _MODES:
        raise ValueError(f"interpolate: mode {mode!r} is not supported; use one of {sorted(_MODES)}")
    if antialias and mode not in ("bilinear", "bicubic"):
        raise ValueError(f"interpolate: antialias=True applies to modes 'bilinear' and 'bicubic' only, not {mode!r}")
    spatial = input.ndim - 2
    if spatial not in (1, 2, 3) or _NEEDS_NDIM.get(mode, input.ndim) != input.ndim:
        raise ShapeError(
            f"interpolate: mode {mode!r} needs a {_NEEDS_NDIM.get(mode, '3-, 4- or 5')}-d input (N, C, ...), "
            f"got shape {tuple(input.shape)}"
        )
    linear = mode in ("linear", "bilinear", "trilinear")
    if align_corners is not None and not (linear or mode == "bicubic"):
        raise ValueError(f"interpolate: align_corners only applies to linear and cubic modes, not {mode!r}")
    if input.dtype.kind != "f":
        raise DTypeError(f"interpolate: needs a floating-point input, got {input.dtype}; convert with .float()")
    if not input.data.size:
        # PyTorch resizes an empty batch; 'area' (adaptive average pooling) takes 0 channels too, below 3-d.
        first = 2 if mode == "area" and spatial < 3 else 1
        refuse_empty_dims(f"interpolate(mode={mode!r})", input, first,
                          what="only the batch dim (0) may be" if first == 1 else "only the batch and channel dims may be")
    in_sizes = tuple(input.shape[2:])
    out_sizes, scales = _output_sizes(in_sizes, size, scale_factor, recompute_scale_factor)
    xp, dtype = input.xp, input.dtype
    if spatial == 1:
        in_sizes, out_sizes, scales = (1, *in_sizes), (1, *out_sizes), (None, *scales)
    mats, index = [], []
    for n, out, scale in zip(in_sizes, out_sizes, scales):
        if antialias:
            mats.append(_antialias_matrix(n, out, scale, bool(align_corners), mode == "bicubic", dtype, xp))
        elif linear:
            mats.append(_linear_matrix(n, out, scale, bool(align_corners), dtype, xp))
        elif mode == "bicubic":
            mats.append(_cubic_matrix(n, out, scale, bool(align_corners), dtype, xp))
        elif mode == "area":
            mats.append(resample_matrix_pool(n, out, dtype, xp))
        else:
            index.append(_nearest_index(n, out, scale, mode == "nearest-exact", xp))
            mats.append(_one_hot_rows(index[-1], n, dtype, xp))
    if spatial == 3:
        return _resample3d(input, mats, index)
    rows, cols = index if index else (None, None)
    x = input.unsqueeze(2) if spatial == 1 else input
    y = Resample2d.apply(x, mats[0], mats[1], rows, cols)
    return y.squeeze(2) if spatial == 1 else y


def _resample3d(x, mats, index):
    """x (N, C, D, H, W) resampled separably: each (H, W) plane by mats[1:], then the D axis as the
    columns of (1, D) planes, each pass one Resample2d (so the backward stays two matrix products)."""
    N, C, D, H, W = x.shape
    rows, cols = index[1:] if index else (None, None)
    y = Resample2d.apply(x.reshape(N, C * D, H, W), mats[1], mats[2], rows, cols)
    od, oh, ow = mats[0].shape[0], y.shape[2], y.shape[3]
    y = y.reshape(N, C, D, oh * ow).transpose(2, 3).reshape(N, C * oh * ow, 1, D)
    one = x.xp.ones((1, 1), dtype=x.dtype)
    rows, cols = (x.xp.zeros(1, dtype=np.int64), index[0]) if index else (None, None)
    y = Resample2d.apply(y, one, mats[0], rows, cols)
    return y.reshape(N, C, oh * ow, od).transpose(2, 3).reshape(N, C, od, oh, ow)


def _output_sizes(in_sizes, size, scale_factor, recompute):
    """(output sizes, the scales the kernels use: None where they derive it from the sizes)."""
    spatial = len(in_sizes)
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    if size is not None:
        sizes = (size,) * spatial if isinstance(size, int) else tuple(size)
        if len(sizes) != spatial or not all(isinstance(s, int) and s > 0 for s in sizes):
            raise ValueError(f"interpolate: size {size!r} must be a positive int or {spatial} of them")
        return sizes, (None,) * spatial
    scales = (scale_factor,) * spatial if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
    if len(scales) != spatial or not all(s > 0 for s in scales):
        raise ValueError(f"interpolate: scale_factor {scale_factor!r} must be positive, one or {spatial} of them")
    sizes = tuple(int(math.floor(n * float(s))) for n, s in zip(in_sizes, scales))
    if min(sizes) < 1:
        raise ValueError(f"interpolate: scale_factor {scale_factor!r} makes input {in_sizes} empty ({sizes})")
    return sizes, ((None,) * spatial if recompute else tuple(float(s) for s in scales))
