"""Dropout layers: zero elements (Dropout), whole channels (Dropout1d, Dropout2d, Dropout3d) or set elements to
SELU's saturation value (AlphaDropout) with probability p while training; the identity in eval mode."""
from __future__ import annotations

from . import functional as F
from .module import Module


class _DropoutNd(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: probability p must be between 0 and 1, got {p}")
        self.p = p
        self.inplace = inplace

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)


class Dropout1d(_DropoutNd):
    """(N, C, L) or (C, L): one keep/drop draw per channel."""

    def forward(self, input):
        return F.dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """(N, C, H, W) or (C, H, W): one keep/drop draw per channel."""

    def forward(self, input):
        return F.dropout2d(input, self.p, self.training, self.inplace)


class Dropout3d(_DropoutNd):
    """(N, C, D, H, W) or (C, D, H, W): one keep/drop draw per channel."""

    def forward(self, input):
        return F.dropout3d(input, self.p, self.training, self.inplace)


class AlphaDropout(_DropoutNd):
    """Dropout for SELU networks: keeps zero mean and unit variance (see F.alpha_dropout)."""

    def forward(self, input):
        return F.alpha_dropout(input, self.p, self.training)


class FeatureAlphaDropout(_DropoutNd):
    """AlphaDropout over whole channels of (N, C, *) (see F.feature_alpha_dropout)."""

    def forward(self, input):
        return F.feature_alpha_dropout(input, self.p, self.training)
