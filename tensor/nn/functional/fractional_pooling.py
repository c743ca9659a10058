"""fractional_max_pool2d / fractional_max_pool3d (Graham, "Fractional Max-Pooling"), with PyTorch's
pseudo-random pooling regions: given the same `_random_samples` the output and indices equal PyTorch's.

Each (sample, channel) plane has one sample u in [0, 1) per spatial dim; along a dim of input size n,
output size o and kernel k, window i starts at int((i + u) * a) - int(u * a) with a = (n - k) / (o - 1)
(computed in the input's dtype, as PyTorch does), the last window at n - k. The max runs as one
vectorised pass per kernel tap over every window at once (no loop over pixels); the gradient goes to
each window's max position, accumulated where windows overlap.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ...autograd import Function
from ...errors import DTypeError, ShapeError
from ...ops.gather import add_at, along_dim, scatter_add
from ...random import rand
from ...tensor import Tensor, _wrap
from ._zero_size import refuse_empty_dims

# Which sample of a plane's (N, C, n) row drives each spatial dim (PyTorch's order: W first in 2-d).
_SAMPLE_FOR_DIM = {2: (1, 0), 3: (0, 1, 2)}
_DIM_NAMES = {2: ("height", "width"), 3: ("time", "height", "width")}


class FractionalMaxPool(Function):
    """x (N, C, *S), base (N, C, *O) int64: each window's first flat position in its plane, offsets: the
    flat offset of each kernel tap within a window -> (max (N, C, *O), flat argmax (N, C, *O) int64)."""

    @staticmethod
    def forward(ctx, x, base, offsets):
        xp = ctx.xp
        N, C = x.shape[:2]
        # not -1: N may be 0
        planes, starts = x.reshape(N, C, math.prod(x.shape[2:])), base.reshape(N, C, math.prod(base.shape[2:]))
        best = arg = None
        for offset in offsets:
            position = starts + offset
            value = planes[along_dim(xp, position, 2)]
            if best is None:
                best, arg = value, position
                continue
            # PyTorch's rule: a strictly larger value or a NaN takes over, so ties keep the first tap
            # in row-major order and a NaN window reports its last NaN.
            better = (value > best) | xp.isnan(value)
            best, arg = xp.where(better, value, best), xp.where(better, position, arg)
        ctx.in_shape = x.shape
        ctx.save_for_backward(arg)
        indices = arg.reshape(base.shape)
        ctx.mark_non_differentiable(indices)
        return best.reshape(base.shape), indices

    @staticmethod
    def backward(ctx, grad, *_):
        (arg,) = ctx.saved_tensors
        xp, shape = ctx.xp, ctx.in_shape
        g = xp.zeros((shape[0], shape[1], math.prod(shape[2:])), dtype=grad.dtype)
        add_at(xp, g, along_dim(xp, arg, 2), grad.reshape(arg.shape))  # windows overlap: accumulate
        return g.reshape(shape), None, None

    @staticmethod
    def backward_graph(ctx, grad, *_):
        (arg,) = ctx.saved_tensors
        shape = ctx.in_shape
        zeros = grad.new_zeros((shape[0], shape[1], math.prod(shape[2:])))
        return scatter_add(zeros, 2, _wrap(arg), grad.reshape(arg.shape)).reshape(shape), None, None


# ----------------------------------------------------------------------------------- geometry


def _sizes(value, n, op, name, minimum):
    values = (value,) * n if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) == 1:
        values = values * n
    if len(values) != n or not all(isinstance(v, (int, np.integer)) and v >= minimum for v in values):
        raise ValueError(f"{op}: {name} must be an int >= {minimum} or a tuple of {n} of them, got {value!r}")
    return tuple(int(v) for v in values)


def _output_size(op, spatial, kernel, output_size, output_ratio):
    n = len(spatial)
    if output_size is None and output_ratio is None:
        raise ValueError(f"{op} requires specifying either an output_size or an output_ratio")
    if output_size is not None:
        out = _sizes(output_size, n, op, "output_size", 0)
    else:
        ratios = (output_ratio,) * n if isinstance(output_ratio, (int, float)) else tuple(output_ratio)
        if len(ratios) == 1:
            ratios = ratios * n
        if len(ratios) != n:
            raise ValueError(f"{op}: output_ratio must be a number or a tuple of {n}, got {output_ratio!r}")
        out = tuple(int(size * r) for size, r in zip(spatial, ratios))
    # PyTorch's bounds: a window of the last output must fit (strictly inside the input in 3-d).
    slack = 1 if n == 2 else 0
    for name, o, k, size in zip(_DIM_NAMES[n], out, kernel, spatial):
        if o + k - slack > size:
            raise ValueError(f"{op}: pool {name} {k} too large relative to input {name} {size} for output {name} "
                             f"{o} (need output + kernel{' - 1' if slack else ''} <= input); use a smaller "
                             "output_size, output_ratio or kernel_size")
    return out


def _samples(op, x, batch, n, samples):
    """(batch, C, n) samples in x's dtype: the given ones after checks, else drawn from the engine's generator."""
    C = x.shape[-n - 1]
    if samples is None:
        return rand(batch, C, n, dtype=x.dtype, device=x.device).data
    if not isinstance(samples, Tensor):
        raise TypeError(f"{op}: _random_samples must be a Tensor of shape (N, C, {n}), got {type(samples).__name__}")
    if samples.dtype != x.dtype:
        raise DTypeError(f"{op}: expected _random_samples to have the input's dtype {x.dtype}, got {samples.dtype}; "
                         f"convert them with .to({x.dtype})")
    if samples.device != x.device:
        raise ValueError(f"{op}: _random_samples are on {samples.device} but the input is on {x.device}; move "
                         "them with .to(input.device)")
    if samples.dim() != 3 or samples.shape[2] != n or samples.shape[1] != C or samples.shape[0] < batch:
        raise ShapeError(f"{op}: _random_samples must have shape ({batch}, {C}, {n}) (batch, channels, one per "
                         f"spatial dim), got {tuple(samples.shape)}")
    data = samples.data[:batch]
    if data.size and not bool(((data >= 0) & (data <= 1)).all()):  # outside [0, 1] windows would leave the input
        raise ValueError(f"{op}: _random_samples must lie in [0, 1), got values from {float(data.min())} to "
                         f"{float(data.max())}")
    return data


def _starts(xp, u, size, out, k):
    """(N, C, out) int64 window starts along one dim from samples u (N, C), in u's dtype as PyTorch."""
    last = xp.full(u.shape + (min(out, 1),), size - k, dtype=np.int64)
    if out <= 1:
        return last
    dt = u.dtype.type
    alpha = dt(size - k) / dt(out - 1)
    steps = xp.arange(out - 1, dtype=u.dtype)
    seq = ((steps + u[..., None]) * alpha).astype(np.int64) - (u * alpha).astype(np.int64)[..., None]
    return xp.concatenate([seq, last], axis=-1)


def _windows(xp, u, spatial, out, kernel):
    """-> (base (N, C, *out): the flat start of every window, offsets: the flat offset of every tap)."""
    n = len(spatial)
    strides = [math.prod(spatial[d + 1:]) for d in range(n)]
    base = 0
    for d, sample in enumerate(_SAMPLE_FOR_DIM[n]):
        starts = _starts(xp, u[..., sample], spatial[d], out[d], kernel[d]) * strides[d]
        base = base + starts.reshape(starts.shape[:2] + (1,) * d + (out[d],) + (1,) * (n - d - 1))
    offsets = [sum(t * s for t, s in zip(tap, strides)) for tap in itertools.product(*map(range, kernel))]
    return base, offsets


# -------------------------------------------------------------------------------- the functions


def _fractional_max_pool(op, n, input, kernel_size, output_size, output_ratio, _random_samples):  # noqa: A002
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if input.dim() not in (n + 1, n + 2):
        raise ShapeError(f"{op}: expected a {n + 2}-d (N, C, ...) or {n + 1}-d (C, ...) input, got shape "
                         f"{tuple(input.shape)}")
    if input.dtype.kind != "f":
        raise DTypeError(f"{op}: input must be floating point, got {input.dtype}; convert it with .float()")
    if not input.data.size:  # PyTorch lets dim 0 be empty, batched or not
        refuse_empty_dims(op, input, 1, what="only dim 0 may be")
    kernel = _sizes(kernel_size, n, op, "kernel_size", 1)
    spatial = tuple(input.shape[-n:])
    out = _output_size(op, spatial, kernel, output_size, output_ratio)
    batched = input.dim() == n + 2
    x = input if batched else input.unsqueeze(0)
    u = _samples(op, input, x.shape[0], n, _random_samples)
    base, offsets = _windows(x.device.xp, u, spatial, out, kernel)
    values, indices = FractionalMaxPool.apply(x, _wrap(base), offsets)
    return (values, indices) if batched else (values.squeeze(0), indices.squeeze(0))


def fractional_max_pool2d_with_indices(input, kernel_size, output_size=None, output_ratio=None,  # noqa: A002
                                       return_indices=False, _random_samples=None):
    """(N, C, H, W) or (C, H, W) -> (output (N, C, oH, oW), indices: flat h * W + w of each max).
    output_size (oH, oW), or output_ratio r giving int(H * r_h), int(W * r_w); _random_samples (N, C, 2)
    in [0, 1) in the input's dtype fix the regions (drawn from the engine's generator when None)."""
    return _fractional_max_pool("fractional_max_pool2d", 2, input, kernel_size, output_size, output_ratio,
                                _random_samples)


def fractional_max_pool3d_with_indices(input, kernel_size, output_size=None, output_ratio=None,  # noqa: A002
                                       return_indices=False, _random_samples=None):
    """(N, C, T, H, W) or (C, T, H, W) -> (output, indices: flat (t * H + h) * W + w of each max);
    _random_samples (N, C, 3)."""
    return _fractional_max_pool("fractional_max_pool3d", 3, input, kernel_size, output_size, output_ratio,
                                _random_samples)


def fractional_max_pool2d(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,  # noqa: A002
                          _random_samples=None):
    """Fractional max pooling over (N, C, H, W); (output, indices) with return_indices=True."""
    out = fractional_max_pool2d_with_indices(input, kernel_size, output_size, output_ratio, True, _random_samples)
    return out if return_indices else out[0]


def fractional_max_pool3d(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,  # noqa: A002
                          _random_samples=None):
    """Fractional max pooling over (N, C, T, H, W); (output, indices) with return_indices=True."""
    out = fractional_max_pool3d_with_indices(input, kernel_size, output_size, output_ratio, True, _random_samples)
    return out if return_indices else out[0]
