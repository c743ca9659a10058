"""Window functions for spectral analysis, in PyTorch's names: hann, hamming, blackman, bartlett, kaiser.

Each is computed in float64 on the host (the windows are short) and then cast and moved, like torch's.
periodic=True (torch's default) gives the window for spectral use: the symmetric window of length + 1
without its last point.
"""
from __future__ import annotations

import math

import numpy as np

from .creation import _on, _xp_and_dtype
from .tensor import _wrap


def _window(name, window_length, periodic, dtype, device, requires_grad, shape):
    """shape(n, m): the symmetric window's values at the points n = 0..m-1 of an m-point window."""
    if isinstance(window_length, bool) or not isinstance(window_length, int) or window_length < 0:
        raise ValueError(f"{name}: window_length must be a non-negative int, got {window_length!r}")
    xp, dtype, dev = _xp_and_dtype(device, dtype)
    if dtype.kind != "f":
        raise TypeError(f"{name}: dtype must be a floating-point dtype, got {dtype}")
    if window_length <= 1:
        values = np.ones(window_length)
    else:
        points = window_length + 1 if periodic else window_length
        values = shape(np.arange(points, dtype=np.float64), points)[:window_length]
    with _on(dev):
        out = _wrap(xp.asarray(values.astype(dtype)))
    return out.requires_grad_(True) if requires_grad else out


def _cosine_sum(*coefficients):
    """a0 - a1 cos(2 pi n / (m - 1)) + a2 cos(4 pi n / (m - 1)) - ...: hann, hamming, blackman."""
    def shape(n, m):
        phase = 2.0 * math.pi * n / (m - 1)
        return sum((-1) ** k * a * np.cos(k * phase) for k, a in enumerate(coefficients))

    return shape


def hann_window(window_length, periodic=True, *, dtype=None, device=None, requires_grad=False):
    return _window("hann_window", window_length, periodic, dtype, device, requires_grad, _cosine_sum(0.5, 0.5))


def hamming_window(window_length, periodic=True, alpha=0.54, beta=0.46, *, dtype=None, device=None,
                   requires_grad=False):
    return _window("hamming_window", window_length, periodic, dtype, device, requires_grad,
                   _cosine_sum(alpha, beta))


def blackman_window(window_length, periodic=True, *, dtype=None, device=None, requires_grad=False):
    return _window("blackman_window", window_length, periodic, dtype, device, requires_grad,
                   _cosine_sum(0.42, 0.5, 0.08))


def bartlett_window(window_length, periodic=True, *, dtype=None, device=None, requires_grad=False):
    """The triangular window 1 - |2n / (m - 1) - 1|."""
    return _window("bartlett_window", window_length, periodic, dtype, device, requires_grad,
                   lambda n, m: 1.0 - np.abs(2.0 * n / (m - 1) - 1.0))


def kaiser_window(window_length, periodic=True, beta=12.0, *, dtype=None, device=None, requires_grad=False):
    """i0(beta sqrt(1 - (2n / (m - 1) - 1)^2)) / i0(beta)."""
    def shape(n, m):
        ratio = 2.0 * n / (m - 1) - 1.0
        return np.i0(beta * np.sqrt(np.clip(1.0 - ratio * ratio, 0.0, None))) / np.i0(beta)

    return _window("kaiser_window", window_length, periodic, dtype, device, requires_grad, shape)
