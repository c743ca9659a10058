"""The matrix maps the orthogonal parametrization needs: matrix_exp, householder_product and geqrf.

matrix_exp is one Function (scaling and squaring of a degree-18 Taylor polynomial, accurate to
rounding once ||A / 2^s||_1 <= 1/2); its gradient is the Frechet derivative read off the exponential
of the block matrix [[A^T, G], [0, A^T]], whose top-right block is the gradient, so the backward is
itself a matrix_exp and differentiates again. householder_product is composed from Tensor ops (k
rank-one updates), so its gradients come from theirs. geqrf is LAPACK's Householder QR (dlarfg's
sign conventions) on raw arrays, without gradient; it serves right_inverse only.
All work on batches (..., n, k) and on any array module.
"""
from __future__ import annotations

import math

from ... import creation
from ...autograd import Function
from ...graph_backward import saved_in_graph
from ...ops.join import cat
from ...tensor import Tensor

_TAYLOR_DEGREE = 18


def _expm(xp, a):
    n = a.shape[-1]
    norm = float(xp.abs(a).sum(axis=-2).max()) if a.size else 0.0
    if not math.isfinite(norm):
        return xp.full_like(a, math.nan)
    squarings = math.ceil(math.log2(norm / 0.5)) if norm > 0.5 else 0
    scaled = a / (2.0 ** squarings)
    eye = xp.eye(n, dtype=a.dtype)
    out = xp.broadcast_to(eye, a.shape).copy()
    for k in range(_TAYLOR_DEGREE, 0, -1):  # Horner: I + A/1 (I + A/2 (I + ... (I + A/18)))
        out = eye + (scaled @ out) / k
    for _ in range(squarings):
        out = out @ out
    return out


def _block(xp_cat, a_t, grad, zeros):
    """[[A^T, G], [0, A^T]] along the last two dims."""
    top = xp_cat([a_t, grad], -1)
    bottom = xp_cat([zeros, a_t], -1)
    return xp_cat([top, bottom], -2)


class MatrixExp(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return _expm(ctx.xp, a)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        xp, n = ctx.xp, a.shape[-1]
        a_t = xp.swapaxes(a, -1, -2)
        block = _block(lambda parts, axis: xp.concatenate(parts, axis), a_t, grad.astype(a.dtype), xp.zeros_like(a))
        return _expm(xp, block)[..., :n, n:]

    @staticmethod
    def backward_graph(ctx, grad):
        (a,) = saved_in_graph(ctx)
        n = a.shape[-1]
        block = _block(lambda parts, axis: cat(parts, axis), a.mT, grad, a.new_zeros(a.shape))
        return MatrixExp.apply(block)[..., :n, n:]


def matrix_exp(a: Tensor) -> Tensor:
    """exp(A) = sum A^k / k! of a square matrix or batch (..., n, n); differentiable (twice and more)."""
    if a.dim() < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"matrix_exp: expected a square matrix or a batch of them (..., n, n), got shape "
                         f"{tuple(a.shape)}")
    if a.dtype.kind != "f":
        raise TypeError(f"matrix_exp: expected a floating-point tensor, got {a.dtype}")
    return MatrixExp.apply(a)


def householder_product(a: Tensor, tau: Tensor) -> Tensor:
    """The first k columns of H_1 ... H_k, H_i = I - tau_i v_i v_i^T, v_i = (0,..,0, 1, a[i+1:, i]):
    torch.linalg.householder_product for a (..., n, k), n >= k, and tau (..., k)."""
    n, k = a.shape[-2], a.shape[-1]
    if n < k:
        raise ValueError(f"householder_product: needs a (..., n, k) input with n >= k, got shape {tuple(a.shape)}")
    eye = creation.eye(n, k, dtype=a.dtype, device=a.device)
    vectors = a.tril(-1) + eye
    q = eye.expand(*a.shape)
    for i in reversed(range(k)):  # right to left: each reflection acts on the product so far
        v = vectors[..., :, i:i + 1]
        q = q - (tau[..., i:i + 1].unsqueeze(-1) * v) @ (v.mT @ q)
    return q


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
