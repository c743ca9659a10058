"""Modules PyTorch keeps for old code: CrossMapLRN2d (Lua Torch's SpatialCrossMapLRN) and NLLLoss2d
(deprecated: NLLLoss takes (N, C, H, W) inputs itself)."""
from __future__ import annotations

import warnings

import numpy as np

from ..creation import tensor
from ..errors import ShapeError
from .loss import NLLLoss
from .module import Module


class CrossMapLRN2d(Module):
    """x / (k + alpha / size * sum of x^2 over nearby channels) ** beta for (N, C, H, W).

    The channel window is PyTorch's, value for value: channel c sums channels c - (size - 1) // 2 to
    c + (size - 1) // 2 and, from channel (size - 1) // 2 + 1 on, channel 0 as well (PyTorch's port of
    the Lua loop never subtracts it; LocalResponseNorm has the clean window).
    The gradient is the exact gradient of that output; PyTorch's hand-written backward differs from it
    (torch.autograd.gradcheck fails on CrossMapLRN2d), so gradients are not compared with PyTorch's.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1):
        super().__init__()
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"CrossMapLRN2d: size must be a positive int, got {size!r}")
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, input):  # noqa: A002
        if input.dim() != 4:
            raise ShapeError(f"CrossMapLRN2d: expected a 4-d (N, C, H, W) input, got shape {tuple(input.shape)}")
        window = tensor(_window(input.shape[1], self.size), dtype=input.dtype, device=input.device)
        # (N, H, W, C) @ window.T sums each channel's window: one matmul, differentiable as is.
        sums = ((input * input).permute(0, 2, 3, 1) @ window.t()).permute(0, 3, 1, 2)
        return input * (sums * (self.alpha / self.size) + self.k) ** -self.beta

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


def _window(channels, size):
    """(C, C) 0/1 matrix: row c marks the channels whose squares channel c's scale sums (see above)."""
    reach = int((size - 1) / 2 + 1)  # PyTorch's pre_pad
    c = np.arange(channels)[:, None]
    j = np.arange(channels)[None, :]
    return ((j <= c + reach - 1) & ((j >= c - reach + 1) | (j == 0))).astype(np.float64)


class NLLLoss2d(NLLLoss):
    """Deprecated alias of NLLLoss (which takes (N, C, H, W) log-probabilities directly); warns once made."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean"):
        warnings.warn("`NLLLoss2d` has been deprecated. Please use `NLLLoss` instead as a drop-in replacement "
                      "(it takes (N, C, H, W) inputs).", FutureWarning, stacklevel=2)
        super().__init__(weight, size_average, ignore_index, reduce, reduction)
