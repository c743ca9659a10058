"""Volumetric pooling layers: MaxPool3d, AvgPool3d, AdaptiveAvgPool3d, AdaptiveMaxPool3d (PyTorch's
arguments and reprs; no parameters). They share the 2-d layers' arguments and reprs."""
from __future__ import annotations

from .functional import adaptive_pooling3d as FA3
from .functional import pooling3d as F3
from .pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d


class MaxPool3d(MaxPool2d):
    """(N, C, D, H, W) -> (N, C, Do, Ho, Wo) window maxima; stride defaults to kernel_size."""

    def forward(self, input):
        return F3.max_pool3d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                             ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class AvgPool3d(AvgPool2d):
    """(N, C, D, H, W) -> (N, C, Do, Ho, Wo) window means; stride defaults to kernel_size."""

    def forward(self, input):
        return F3.avg_pool3d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             self.count_include_pad, self.divisor_override)


class AdaptiveAvgPool3d(AdaptiveAvgPool2d):
    """(N, C, D, H, W) -> (N, C, *output_size) bin means; None in output_size keeps that input size."""

    def forward(self, input):
        return FA3.adaptive_avg_pool3d(input, self.output_size)


class AdaptiveMaxPool3d(AdaptiveMaxPool2d):
    """(N, C, D, H, W) -> (N, C, *output_size) bin maxima; None in output_size keeps that input size."""

    def forward(self, input):
        return FA3.adaptive_max_pool3d(input, self.output_size, self.return_indices)
