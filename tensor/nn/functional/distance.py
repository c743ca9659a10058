"""normalize, cosine_similarity, pairwise_distance and pdist, composed from the engine's Tensor ops."""
from __future__ import annotations

import numpy as np

from ...creation import ones_like
from ...creation import tensor as _tensor
from ... import dtypes
from ...errors import DTypeError, ShapeError
from ...linalg import vector_norm
from ...ops.compare import where
from ...ops.gather import index_select


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


def pdist(input, p=2.0):  # noqa: A002
    """(N, M) -> (N * (N - 1) / 2,): the p-norm distance between every pair of rows i < j, in row-major
    order of the upper triangle (torch.pdist's order). Differentiable; a zero distance has gradient 0."""
    if input.dim() != 2:
        raise ShapeError(f"pdist only supports 2D tensors, got: {input.dim()}D (shape {tuple(input.shape)})")
    if input.dtype.kind != "f":
        raise DTypeError(f"pdist only supports floating-point dtypes, got {input.dtype}; convert with .float()")
    if p < 0:
        raise ValueError(f"pdist only supports non-negative p values, got p={p}")
    rows, cols = np.triu_indices(input.shape[0], 1)
    first = index_select(input, 0, _tensor(rows, device=input.device))
    second = index_select(input, 0, _tensor(cols, device=input.device))
    difference = first - second
    if p == 0:
        # the count of differing entries; kept in the graph with a zero gradient, as torch.pdist does
        count = vector_norm(difference.detach(), 0, dim=-1)
        return where(ones_like(count, dtype=dtypes.bool), count, difference.sum(-1))
    return vector_norm(difference, p, dim=-1)
