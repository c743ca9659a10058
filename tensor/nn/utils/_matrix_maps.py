"""geqrf for the orthogonal parametrization's right_inverse: LAPACK's Householder QR (dlarfg's sign
conventions) on raw arrays of any array module, batched (..., n, k), without gradient. The maps
themselves (matrix_exp, householder_product) are tensor.linalg's.
"""
from __future__ import annotations


def geqrf(xp, a):
    """LAPACK's geqrf on an array (..., n, k), n >= k: R on and above the diagonal, the Householder
    vectors below it (unit leading entry implied), and tau (..., k). No gradient."""
    a = a.copy()
    n, k = a.shape[-2], a.shape[-1]
    tau = xp.zeros(a.shape[:-2] + (k,), dtype=a.dtype)
    for j in range(min(n, k)):
        alpha = a[..., j, j].copy()
        below = a[..., j + 1:, j]
        xnorm = xp.sqrt((below * below).sum(axis=-1))
        reflect = xnorm != 0  # dlarfg: H = I (tau = 0) when the column is already zero below the diagonal
        beta = -xp.where(alpha >= 0, 1.0, -1.0) * xp.sqrt(alpha * alpha + xnorm * xnorm)
        safe_beta = xp.where(reflect, beta, 1.0)
        tau[..., j] = xp.where(reflect, (beta - alpha) / safe_beta, 0.0)
        scale = xp.where(reflect, 1.0 / xp.where(reflect, alpha - beta, 1.0), 0.0)
        a[..., j + 1:, j] = below * scale[..., None]
        a[..., j, j] = xp.where(reflect, beta, alpha)
        if j + 1 < k:  # apply H_j to the columns on the right
            v = xp.concatenate([xp.ones(a.shape[:-2] + (1,), dtype=a.dtype), a[..., j + 1:, j]], axis=-1)
            rest = a[..., j:, j + 1:]
            projection = (v[..., :, None] * rest).sum(axis=-2, keepdims=True)
            a[..., j:, j + 1:] = rest - tau[..., j, None, None] * v[..., :, None] * projection
    return a, tau
