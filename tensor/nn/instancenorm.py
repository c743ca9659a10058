"""Per-sample normalisation layers: InstanceNorm1d/2d/3d and LocalResponseNorm."""
from __future__ import annotations

import warnings

from .functional.instance_norm import instance_norm, local_response_norm
from .module import Module
from .normalization import _BatchNorm


class _InstanceNorm(_BatchNorm):
    """Shared by InstanceNorm1d/2d/3d, which differ only in how many dims an unbatched input has.

    The parameters and buffers are BatchNorm's (same state_dict keys), with PyTorch's defaults
    affine=False and track_running_stats=False. Unlike BatchNorm, momentum=None means momentum 0
    (running stats frozen), and num_batches_tracked is kept but never counted.
    """

    _unbatched_dims = 0

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = False,
                 track_running_stats: bool = False, device=None, dtype=None, *, bias: bool = True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def forward(self, input):
        dims = (self._unbatched_dims, self._unbatched_dims + 1)
        if input.dim() not in dims:
            raise ValueError(f"{type(self).__name__}: expected {dims[0]}D (unbatched) or {dims[1]}D input, got "
                             f"{input.dim()}D input of shape {tuple(input.shape)}")
        self._check_features(input)
        if input.dim() == self._unbatched_dims:
            return self._normalize(input.unsqueeze(0)).squeeze(0)
        return self._normalize(input)

    def _check_features(self, input):
        feature_dim = input.dim() - self._unbatched_dims
        size = input.shape[feature_dim]
        if size == self.num_features:
            return
        if self.affine:
            raise ValueError(f"{type(self).__name__}: expected input's size at dim={feature_dim} to match "
                             f"num_features ({self.num_features}), got {size}")
        # without affine parameters num_features is unused, so a mismatch is only suspicious (as in PyTorch)
        warnings.warn(f"{type(self).__name__}: input's size at dim={feature_dim} ({size}) does not match "
                      f"num_features ({self.num_features})", stacklevel=3)

    def _normalize(self, input):
        use_input_stats = self.training or not self.track_running_stats
        momentum = self.momentum if self.momentum is not None else 0.0
        return instance_norm(input, self.running_mean, self.running_var, self.weight, self.bias, use_input_stats,
                             momentum, self.eps)


class InstanceNorm1d(_InstanceNorm):
    """Over (N, C, L) or unbatched (C, L): statistics per sample and channel, over L."""

    _unbatched_dims = 2


class InstanceNorm2d(_InstanceNorm):
    """Over (N, C, H, W) or unbatched (C, H, W): statistics per sample and channel, over H and W."""

    _unbatched_dims = 3


class InstanceNorm3d(_InstanceNorm):
    """Over (N, C, D, H, W) or unbatched (C, D, H, W)."""

    _unbatched_dims = 4


class LocalResponseNorm(Module):
    """x / (k + alpha * mean of x^2 over `size` neighbouring channels) ** beta for (N, C, *)."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, input):
        return local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
