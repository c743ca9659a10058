"""svd_lowrank and pca_lowrank: torch's randomized truncated SVD (torch._lowrank), top-level names.

Halko, Martinsson and Tropp's range finder (arXiv:0909.4061, algorithm 4.4): Q spans A R for a
Gaussian R (n, q), refined by niter subspace iterations A^T Q, A Q (each re-orthonormalised by QR);
then the SVD of the small Q^T A. It is exact when rank(A) <= q. Built from matmul, qr and svd, so it
is differentiable and batched over leading dims. R comes from tensor.randn (the global generator, as
torch does), so the singular vectors match torch's only up to sign and, within repeated or
underdetermined singular values, basis.
"""
from __future__ import annotations

from ..random import randn
from ._common import float_matrix
from .decomp import qr, svd


def _approximate_basis(A, q, niter, M=None):
    """Q (..., m, q) with orthonormal columns approximating the range of A - M."""
    R = randn(A.shape[-1], q, dtype=A.dtype, device=A.device)
    X = A @ R if M is None else A @ R - M @ R
    Q = qr(X).Q
    for _ in range(niter):
        X = A.mT @ Q if M is None else A.mT @ Q - M.mT @ Q
        Q = qr(X).Q
        X = A @ Q if M is None else A @ Q - M @ Q
        Q = qr(X).Q
    return Q


def svd_lowrank(A, q=6, niter=2, M=None):
    """torch.svd_lowrank: U (..., m, q), S (..., q), V (..., n, q) with A - M ~ U diag(S) V^T (V, not Vh,
    as torch.svd). q (6 by default) should be a little above the expected rank; a q above min(m, n)
    gives min(m, n) columns, as torch. niter subspace iterations (2 by default) sharpen the basis.
    M (broadcast to A's shape) is subtracted implicitly."""
    op = "svd_lowrank"
    float_matrix(op, A)
    q = 6 if q is None else q
    niter = 2 if niter is None else niter
    m, n = A.shape[-2:]
    # No upper bound, as torch: for q > min(m, n) the reduced QR caps the basis at min(m, n) columns,
    # so the factors have min(m, n) columns (the exact SVD).
    if q < 0:
        raise ValueError(f"{op}: q={q} must be a non-negative integer")
    if niter < 0:
        raise ValueError(f"{op}: niter={niter} must be a non-negative integer")
    if M is not None:
        M = M.broadcast_to(A.shape)
    if m < n:  # work on the tall side
        A = A.mT
        M = None if M is None else M.mT
    Q = _approximate_basis(A, q, niter, M)
    B = Q.mT @ A if M is None else Q.mT @ A - Q.mT @ M
    U, S, Vh = svd(B, full_matrices=False)
    U, V = Q @ U, Vh.mT
    return (V, S, U) if m < n else (U, S, V)


def pca_lowrank(A, q=None, center=True, niter=2):
    """torch.pca_lowrank: svd_lowrank of A (..., m, n) less its column means (center=True): the
    principal directions are V's columns, the projections A_centered @ V, the variances S**2 / (m - 1).
    q defaults to min(6, m, n)."""
    op = "pca_lowrank"
    float_matrix(op, A)
    m, n = A.shape[-2:]
    if q is None:
        q = min(6, m, n)
    if not 0 <= q <= min(m, n):
        raise ValueError(f"{op}: q={q} must be between 0 and min(m, n) = {min(m, n)} for A of shape "
                         f"{tuple(A.shape)}; pass a smaller q")
    if center:
        A = A - A.mean(dim=-2, keepdim=True)
    return svd_lowrank(A, q, niter=niter)
