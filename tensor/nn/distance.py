"""Distance layers: CosineSimilarity and PairwiseDistance, thin Modules over nn.functional (no parameters)."""
from __future__ import annotations

from . import functional as F
from .module import Module


class CosineSimilarity(Module):
    """(*, D, *) x2 -> cosine of the angle between x1 and x2 along dim (that dim removed)."""

    def __init__(self, dim: int = 1, eps: float = 1e-8):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1, x2):
        return F.cosine_similarity(x1, x2, self.dim, self.eps)


class PairwiseDistance(Module):
    """(N, D) x2 -> (N,) p-norm distance ||x1 - x2 + eps||_p along the last dim."""

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim  # PyTorch stores p as `norm`

    def forward(self, x1, x2):
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)
