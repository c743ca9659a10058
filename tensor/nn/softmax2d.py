"""Softmax2d: a softmax over the channels at every spatial position of an image."""
from __future__ import annotations

from ..errors import ShapeError
from .functional.activation import softmax
from .module import Module


class Softmax2d(Module):
    """(N, C, H, W) or unbatched (C, H, W) -> same shape, summing to 1 over C at each (h, w)."""

    def forward(self, input):
        if input.dim() not in (3, 4):
            raise ShapeError(f"Softmax2d: expected a 3D (C, H, W) or 4D (N, C, H, W) input, got {input.dim()}D "
                             f"input of shape {tuple(input.shape)}")
        return softmax(input, -3)
