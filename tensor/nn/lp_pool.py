"""LPPool1d / LPPool2d / LPPool3d: each window's p-norm, (sum x^p)^(1/p) (see F.lp_pool2d); no parameters."""
from __future__ import annotations

from .functional import lp_pool as F
from .module import Module


class _LPPoolNd(Module):
    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        super().__init__()
        self.norm_type, self.kernel_size, self.stride, self.ceil_mode = norm_type, kernel_size, stride, ceil_mode

    def extra_repr(self):
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"ceil_mode={self.ceil_mode}")


class LPPool1d(_LPPoolNd):
    """(N, C, L) -> (N, C, Lo); stride defaults to kernel_size."""

    def forward(self, input):
        return F.lp_pool1d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)


class LPPool2d(_LPPoolNd):
    """(N, C, H, W) -> (N, C, Ho, Wo); stride defaults to kernel_size."""

    def forward(self, input):
        return F.lp_pool2d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)


class LPPool3d(_LPPoolNd):
    """(N, C, D, H, W) -> (N, C, Do, Ho, Wo); stride defaults to kernel_size."""

    def forward(self, input):
        return F.lp_pool3d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)
