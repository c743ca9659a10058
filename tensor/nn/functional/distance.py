"""normalize, cosine_similarity and pairwise_distance, composed from the engine's Tensor ops."""
from __future__ import annotations


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(||input||_p, eps) along dim (unit vectors; eps guards zero vectors)."""
    if out is not None:
        raise NotImplementedError("normalize: out= is not supported; use the returned tensor")
    return input / input.norm(p, dim, keepdim=True).clamp(min=eps)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1 * x2) / (max(||x1||, eps) * max(||x2||, eps)) along dim (inputs broadcast)."""
    unit1 = x1 / x1.norm(2, dim, keepdim=True).clamp(min=eps)
    unit2 = x2 / x2.norm(2, dim, keepdim=True).clamp(min=eps)
    return (unit1 * unit2).sum(dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p along the last dim (inputs broadcast); eps keeps the norm's gradient finite
    where x1 == x2."""
    if x1.dim() == 0 or x2.dim() == 0:
        raise ValueError(f"pairwise_distance: inputs need at least one dim, got shapes {tuple(x1.shape)} and "
                         f"{tuple(x2.shape)}")
    return (x1 - x2 + eps).norm(p, -1, keepdim=keepdim)
