"""Draws whose parameters are tensors, as in PyTorch: multinomial, bernoulli and normal.

Each draws from the engine's generator for the parameters' device (or `generator=`), so
`manual_seed` reproduces it. As in PyTorch the draws are not reparameterized: a parameter that
requires grad gets a zero gradient through them (tensor.distributions.Normal(...).rsample() gives
the pathwise one). The in-place fills (x.uniform_(), x.bernoulli_(p), ...) are in random_fills.py.
"""
from __future__ import annotations

import operator

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..creation import _on
from ..errors import DTypeError, ShapeError
from ..random import _float_dtype, rng_for, sample_normal
from ..tensor import Tensor, _wrap
from .sort import _argsort_ascending


class Sampled(Function):
    """`draw(*params)` as a node: the tensor parameters get zero gradients, as PyTorch gives them."""

    @staticmethod
    def forward(ctx, draw, *params):
        ctx.params = [(p.shape, p.dtype) if hasattr(p, "shape") else None for p in params]
        return draw(*params)

    @staticmethod
    def backward(ctx, grad):
        needs = ctx.needs_input_grad[1:]
        return (None,) + tuple(ctx.xp.zeros(*meta) if need else None for meta, need in zip(ctx.params, needs))


# ------------------------------------------------------------------------------------ multinomial

# Up to this many draw-by-category comparisons, one broadcast comparison counts the categories below
# each draw for all rows at once; beyond it, one searchsorted per row (the same count, less memory).
_COMPARE_LIMIT = 1 << 20


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """int64 category indices of shape (num_samples,) or (rows, num_samples), drawn from each row of
    `input`: non-negative weights that need not sum to one. Without replacement no index repeats
    within a row; zero-weight categories come only after every positive one, as in PyTorch."""
    num_samples = _check_weights(input, num_samples, replacement)
    weights = input.data
    draw = _with_replacement if replacement else _without_replacement
    with _on(input.device):
        rows = weights.reshape(-1, weights.shape[-1]).astype(np.float64)
        picks = draw(input.xp, rng_for(input.device, generator), rows, num_samples)
    return _wrap(picks.reshape(weights.shape[:-1] + (num_samples,)))


def _with_replacement(xp, rng, rows, n):
    # A draw v in (0, 1] picks the category j with cdf[j-1] < v <= cdf[j], so a zero-weight category
    # (cdf[j-1] == cdf[j]) never; dividing by the row total makes the last entries exactly 1, so no v
    # runs past the end. The cdf is divided into a new array: CuPy does not guard in-place overlap.
    cdf = xp.cumsum(rows, axis=1)
    cdf = cdf / cdf[:, -1:]
    v = 1.0 - rng.random((rows.shape[0], n))
    if cdf.size * n <= _COMPARE_LIMIT:
        return (cdf[:, None, :] < v[:, :, None]).sum(axis=2, dtype=xp.int64)
    return xp.stack([xp.searchsorted(row, draws) for row, draws in zip(cdf, v)]).astype(xp.int64)


def _without_replacement(xp, rng, rows, n):
    # Exponential clocks: category j rings at E_j / w_j with E_j ~ Exp(1). The order in which they ring
    # is drawing without replacement, each pick in proportion to the weights still left. Zero weights
    # never ring (inf) and follow the positive ones in index order (a stable sort).
    positive = rows > 0
    rings = -xp.log(1.0 - rng.random(rows.shape)) / xp.where(positive, rows, 1.0)
    rings = xp.where(positive, rings, xp.inf)
    return _argsort_ascending(xp, rings, 1, stable=True)[:, :n].astype(xp.int64)


def _check_weights(input, num_samples, replacement):
    if not isinstance(input, Tensor):
        raise TypeError(f"multinomial: input must be a Tensor of weights, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise DTypeError(f"multinomial: weights must be floating point, got {input.dtype}; convert with .float()")
    if input.ndim not in (1, 2) or input.shape[-1] == 0:
        raise ShapeError(
            f"multinomial: weights must be 1-D (categories) or 2-D (rows, categories) with at least one "
            f"category, got shape {tuple(input.shape)}"
        )
    num_samples = operator.index(num_samples)
    if num_samples <= 0:
        raise ValueError(f"multinomial: num_samples must be >= 1, got {num_samples}")
    categories = input.shape[-1]
    if not replacement and num_samples > categories:
        raise ValueError(
            f"multinomial: cannot draw {num_samples} samples without replacement from {categories} categories; "
            "pass replacement=True or draw fewer"
        )
    w = input.data
    if not bool((w >= 0).all()) or not bool(input.xp.isfinite(w).all()):
        raise ValueError("multinomial: weights must be finite and >= 0; the input holds a negative, inf or nan")
    if not bool((w.sum(axis=-1) > 0).all()):
        raise ValueError("multinomial: every row of weights needs a positive sum; a row is all zeros")
    return num_samples


# -------------------------------------------------------------------------------------- bernoulli


def bernoulli(input, p=None, *, generator=None):
    """0/1 draws with input's shape and dtype: 1 with probability `input` (elementwise, in [0, 1]),
    or with probability `p` when it is given."""
    if not isinstance(input, Tensor) or input.dtype.kind != "f":
        raise DTypeError(
            f"bernoulli: input must be a floating-point Tensor, got {getattr(input, 'dtype', type(input).__name__)};"
            " convert with .float()"
        )
    if p is not None:
        check_probability(p, "bernoulli")
        with _on(input.device):
            return _wrap(coin_flips(input.xp, rng_for(input.device, generator), input.shape, p, input.dtype))
    check_probabilities(input.data, "bernoulli", "input")

    def draw(probs):
        return coin_flips(input.xp, rng_for(input.device, generator), probs.shape, probs, probs.dtype)

    with _on(input.device):
        return Sampled.apply(draw, input)


def coin_flips(xp, rng, shape, probs, dtype):
    """A raw array of 1/0 in `dtype`: 1 where a uniform draw falls below `probs` (a number or an array
    broadcast to `shape`). float64 draws, so that a probability as small as 1e-9 keeps its meaning."""
    return (rng.random(tuple(shape)) < probs).astype(dtype)


def check_probability(p, op):
    if not 0 <= p <= 1:
        raise ValueError(f"{op}: p must be a probability in [0, 1], got {p}")


def check_probabilities(array, op, name):
    if not bool(((array >= 0) & (array <= 1)).all()):
        raise ValueError(f"{op}: {name} must hold probabilities in [0, 1]; it holds a value outside (or nan)")


# ----------------------------------------------------------------------------------------- normal


def normal(mean, std=1.0, size=None, *, generator=None, dtype=None, device=None, requires_grad=False):
    """N(mean, std^2) draws. With a tensor mean and/or std: their broadcast shape and dtype, on their
    device. With numbers: `size` gives the shape, and dtype/device/requires_grad apply as in randn."""
    tensors = [t for t in (mean, std) if isinstance(t, Tensor)]
    if not tensors:
        return _normal_of_numbers(mean, std, size, generator, dtype, device, requires_grad)
    if size is not None or dtype is not None or device is not None or requires_grad:
        raise TypeError(
            "normal: size, dtype, device and requires_grad apply only when mean and std are numbers; with a "
            "tensor mean or std the result takes its shape, dtype and device"
        )
    for t in tensors:
        if t.dtype.kind != "f":
            raise DTypeError(f"normal: mean and std must be floating point, got {t.dtype}; convert with .float()")
    if isinstance(std, Tensor):
        if not bool((std.data >= 0).all()):
            raise ValueError("normal: std must be >= 0 everywhere; it holds a negative value (or nan)")
    elif not std >= 0:
        raise ValueError(f"normal: std must be >= 0, got {std}")
    shapes = [tuple(t.shape) for t in tensors]
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        raise ShapeError(f"normal: mean and std shapes {shapes[0]} and {shapes[-1]} do not broadcast") from None
    result_dtype, where = dtypes.result_type(mean, std), tensors[0].device

    def draw(mean, std):
        z = rng_for(where, generator).standard_normal(shape, dtype=_draw_dtype(result_dtype))
        return (z * std + mean).astype(result_dtype, copy=False)

    with _on(where):
        return Sampled.apply(draw, mean, std)


def _normal_of_numbers(mean, std, size, generator, dtype, device, requires_grad):
    if size is None:
        raise TypeError("normal: with a number mean and std, pass size=(...) for the shape of the result")
    if not std >= 0:
        raise ValueError(f"normal: std must be >= 0, got {std}")
    shape = (size,) if isinstance(size, int) else tuple(size)
    dtype = _float_dtype(dtype)
    out = _wrap(sample_normal(shape, mean, std, dtype, device, generator))
    return out.requires_grad_(True) if requires_grad else out


def _draw_dtype(dtype):
    """The generators draw float32 or float64; float16 results are drawn in float32."""
    return dtype if dtype in (np.float32, np.float64) else np.float32
