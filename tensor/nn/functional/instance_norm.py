"""instance_norm and local_response_norm: per-sample normalisations composed from existing ops.

instance_norm is group_norm with one group per channel (the same statistics: each (sample, channel)
over its spatial positions), so it reuses that fused Function and its analytic backward; only the
running statistics are extra, averaged over the batch the way PyTorch does.
local_response_norm divides by a power of the mean square over a window of neighbouring channels,
a handful of shifted adds, so it stays a composition and autograd derives its gradient.
"""
from __future__ import annotations

import math

from ...autograd import no_grad
from ...errors import ShapeError
from ...ops.layout import pad
from .normalization import _check_param, _raw, _update_running_stats, batch_norm, empty_normalization, group_norm


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Normalise each channel of each sample of (N, C, *d) over its d spatial positions.

    use_input_stats=True: the input's own statistics, and running_mean/running_var (C,), when given,
    move towards their batch average by `momentum`. False: the running statistics instead (eval mode
    of a layer that tracks them). weight and bias (C,) scale and shift each channel.
    """
    if input.dim() < 3:
        raise ShapeError(f"instance_norm: input must be (N, C, *d) with d >= 1 spatial dims, got shape "
                         f"{tuple(input.shape)}; add a batch dim with unsqueeze(0)")
    channels = input.shape[1]
    for name, value in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                        ("bias", bias)):
        _check_param(value, (channels,), "instance_norm", name)
    if (running_mean is None) != (running_var is None):
        raise ValueError("instance_norm: pass both running_mean and running_var, or neither")
    if not use_input_stats:
        if running_mean is None:
            raise ValueError("instance_norm: use_input_stats=False needs running_mean and running_var")
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    spatial = input.numel() // max(input.shape[0] * channels, 1)
    if spatial <= 1:  # too few spatial elements, or an empty input
        if not input.numel() and math.prod(input.shape[2:]) != 1:
            # PyTorch normalises an empty batch, channels or volume (running stats unchanged: see
            # empty_normalization), but refuses a single spatial element even then.
            return empty_normalization(input, weight, bias)
        raise ValueError(f"instance_norm: expected more than 1 spatial element per channel when training, got "
                         f"input of shape {tuple(input.shape)}")
    if running_mean is not None:
        _track_instance_stats(input, running_mean, running_var, float(momentum or 0.0), spatial)
    return group_norm(input, channels, weight, bias, eps)


def _track_instance_stats(input, running_mean, running_var, momentum, count):
    """Move the running stats (C,) towards the batch average of the per-instance mean and unbiased variance."""
    with no_grad():
        data = input.data
        axes = tuple(range(2, data.ndim))
        mean = data.mean(axis=axes)
        var = data.var(axis=axes)  # biased; _update_running_stats rescales it by count / (count - 1)
        _update_running_stats(mean.mean(axis=0), var.mean(axis=0), count, _raw(running_mean), _raw(running_var),
                              momentum)
    running_mean._bump_version()
    running_var._bump_version()


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """x / (k + alpha * mean of x^2 over `size` neighbouring channels) ** beta, for (N, C, *).

    The window is centred like PyTorch's: size // 2 channels before, (size - 1) // 2 after, zeros
    beyond the edges, and the mean always divides by `size`.
    """
    if input.dim() < 3:
        raise ShapeError(f"local_response_norm: input must be (N, C, *) with 3 or more dims, got shape "
                         f"{tuple(input.shape)}")
    if int(size) != size or size < 1:
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")
    size, channels = int(size), input.shape[1]
    squares = input * input
    # pad dim 1 only: F.pad counts its (before, after) pairs from the last dim backwards
    padded = pad(squares, (0, 0) * (input.dim() - 2) + (size // 2, (size - 1) // 2))
    window = padded[:, 0:channels]
    for shift in range(1, size):
        window = window + padded[:, shift:shift + channels]
    return input / (window * (alpha / size) + k) ** beta
