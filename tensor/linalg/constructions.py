"""Matrices built from vectors: vander (powers of x) and householder_product (a product of reflections).

Both are compositions of Tensor ops, so their gradients (and gradients of gradients) are those ops':
vander is a cumulative product (cumprod's gradient is exact where x has zeros), householder_product k
rank-one updates applied right to left.
"""
from __future__ import annotations

import operator

from .. import dtypes
from ..creation import eye
from ..errors import ShapeError
from ..ops.join import cat
from ..tensor import Tensor
from ._common import require_float, require_matrix


def vander(x, N=None):  # noqa: N803 - torch's argument name
    """torch.linalg.vander: (..., n, N) with column j = x ** j (increasing powers) for x (..., n);
    N defaults to n and must be at least 2. Integer and bool inputs give int64, as PyTorch."""
    if not isinstance(x, Tensor):
        raise TypeError(f"linalg.vander: expected a Tensor, got {type(x).__name__}")
    if x.ndim < 1:
        raise ShapeError("linalg.vander: x must have at least 1 dimension (a vector or a batch of them), got a 0-d "
                         "tensor; use x.reshape(1)")
    n = x.shape[-1] if N is None else operator.index(N)
    if n < 2:
        raise ValueError(f"linalg.vander: N must be greater than 1, got {n}")
    if x.dtype.kind in "biu":
        x = x.to(dtype=dtypes.int64)
    powers = x.unsqueeze(-1).expand(*x.shape, n - 1).cumprod(-1)  # x, x^2, ..., x^(N-1)
    return cat([x.new_ones((*x.shape, 1)), powers], -1)


def householder_product(A, tau):
    """torch.linalg.householder_product: the first n columns of H_1 ... H_k, H_i = I - tau_i v_i v_i^T,
    v_i = (0, ..., 0, 1, A[i+1:, i]), for A (..., m, n), m >= n >= k, and tau (..., k) (geqrf's output).
    Returns (..., m, n)."""
    op = "linalg.householder_product"
    require_float(op, A, tau)
    require_matrix(op, A)
    m, n = A.shape[-2:]
    if m < n:
        raise ShapeError(f"{op}: A must have at least as many rows as columns, got shape {tuple(A.shape)}")
    if tau.ndim != A.ndim - 1 or tuple(tau.shape[:-1]) != tuple(A.shape[:-2]) or tau.shape[-1] > n:
        raise ShapeError(f"{op}: tau must have shape {tuple(A.shape[:-2]) + ('k',)} with k <= {n} for A of shape "
                         f"{tuple(A.shape)}, got {tuple(tau.shape)}")
    identity = eye(m, n, dtype=A.dtype, device=A.device)
    vectors = A.tril(-1) + identity
    q = identity.expand(*A.shape)
    for i in reversed(range(tau.shape[-1])):  # right to left: each reflection acts on the product so far
        v = vectors[..., :, i:i + 1]
        q = q - (tau[..., i:i + 1].unsqueeze(-1) * v) @ (v.mT @ q)
    return q
