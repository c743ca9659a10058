"""Activations that draw noise: rrelu (randomized leaky ReLU) and gumbel_softmax.

The noise comes from the engine's generator for the input's device (tensor/random.py), so
`tensor.manual_seed` makes both reproducible. rrelu multiplies by a drawn slope array and reuses
dropout's multiply-by-a-constant Function, so its gradient is the same drawn slope.
"""
from __future__ import annotations

import warnings

import numpy as np

from ...creation import _on, zeros_like
from ...errors import DTypeError
from ...ops.inplace_math import _unary_inplace
from ...random import rng_for, sample_uniform
from ...tensor import Tensor, _wrap
from .activation import softmax
from .dropout import Dropout


def _check_float(op, input, name="input"):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise DTypeError(f"{op}: {name} must be floating point, got {input.dtype}; convert with .float()")


# ------------------------------------------------------------------------------------------ rrelu


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):  # noqa: A002
    """x where x > 0, else a * x. Training: a ~ U(lower, upper) drawn per element (the gradient uses
    the drawn a); eval: the fixed slope (lower + upper) / 2. inplace=True writes into input (rrelu_)."""
    if inplace:
        return rrelu_(input, lower, upper, training)
    _check_float("rrelu", input)
    if not lower <= upper:
        raise ValueError(f"rrelu: lower ({lower}) must not exceed upper ({upper}); swap them")
    if not training:
        return input.leaky_relu((lower + upper) / 2)
    slopes = sample_uniform(tuple(input.shape), lower, upper, input.dtype, input.device)
    # PyTorch draws for x <= 0 and keeps slope 1 elsewhere: the gradient at 0 is the drawn slope too
    slopes[input.data > 0] = 1
    return Dropout.apply(input, slopes)


def rrelu_(input, lower=1.0 / 8, upper=1.0 / 3, training=False):  # noqa: A002
    """rrelu written into input (refused, as in PyTorch, on a leaf that requires grad)."""
    _check_float("rrelu_", input)
    return _unary_inplace(input, lambda t: rrelu(t, lower, upper, training), "rrelu_")


# --------------------------------------------------------------------------------- gumbel_softmax


def _gumbel_noise(like):
    """A raw array of Gumbel(0, 1) draws shaped like `like`: -log(E) with E ~ Exponential(1)."""
    dtype = like.dtype
    sample_dtype = dtype if dtype in (np.float32, np.float64) else np.float32
    with _on(like.device):  # draws land on the generator's device, not the current one
        draws = rng_for(like.device).standard_exponential(tuple(like.shape), dtype=sample_dtype)
    xp = like.xp
    xp.log(draws, out=draws)
    xp.negative(draws, out=draws)
    return draws.astype(dtype, copy=False)


def gumbel_softmax(logits, tau=1, hard=False, eps=1e-10, dim=-1):
    """softmax((logits + g) / tau) along dim with g ~ Gumbel(0, 1) per element: a differentiable
    sample from the categorical distribution of `logits`. hard=True returns the one-hot of the
    sample's argmax whose gradient is the soft sample's (straight-through), as PyTorch does."""
    _check_float("gumbel_softmax", logits, "logits")
    if eps != 1e-10:
        warnings.warn("gumbel_softmax: `eps` is deprecated and has no effect", stacklevel=2)
    if not tau > 0:
        raise ValueError(f"gumbel_softmax: tau must be positive, got {tau}")
    y_soft = softmax((logits + _wrap(_gumbel_noise(logits))) / tau, dim)
    if not hard:
        return y_soft
    index = y_soft.argmax(dim, keepdim=True)
    y_hard = zeros_like(logits).scatter(dim, index, 1.0)
    return y_hard - y_soft.detach() + y_soft
