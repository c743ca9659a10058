"""matrix_exp: exp(A) = sum A^k / k! for square A (..., n, n), batched, NumPy and CuPy.

Computed by scaling and squaring with the degree-13 Pade approximant (Higham 2005, as
scipy.linalg.expm and PyTorch's float64 path): each matrix is scaled by 2^-s so that its 1-norm is
at most theta_13 = 5.37, r_13(A / 2^s) = (V - U)^-1 (V + U) is formed with six matrix products and
one solve, and squared s times (s chosen per matrix; a batch squares as often as its largest s needs,
each matrix only as often as its own).

Gradient (the Frechet derivative, as PyTorch): gA = the upper-right block of
exp([[A^T, G], [0, A^T]]); G is scaled to A's 1-norm first (the block is linear in G) so that a large
or tiny gradient does not change how far the block is scaled down. backward_graph does the same with
Tensor ops, so the gradient is differentiable again.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..graph_backward import saved_in_graph
from ..ops.join import cat
from ..tensor import _wrap
from ._common import float_matrix, lapack, mT

THETA_13 = 5.371920351148152
_COEFFICIENTS = (64764752532480000, 32382376266240000, 7771770303897600, 1187353796428800, 129060195264000,
                 10559470521600, 670442572800, 33522128640, 1323241920, 40840800, 960960, 16380, 182, 1)
PADE_13 = tuple(b / _COEFFICIENTS[0] for b in _COEFFICIENTS)  # b_0 = 1: exp(0) is I exactly


def expm(xp, a):
    """exp of each matrix in a (..., n, n); an array of a's dtype."""
    if a.size == 0:
        return a.copy()
    norm = abs(a).sum(axis=-2).max(axis=-1)  # the 1-norm of each matrix
    finite = xp.isfinite(norm)
    ratio = xp.where(finite, norm, 0) / THETA_13
    s = xp.ceil(xp.log2(xp.maximum(ratio, 1.0))).astype(np.int64)
    scale = xp.ldexp(xp.ones((), a.dtype), -s.astype(np.int32)).astype(a.dtype)
    r = _pade13(xp, a * scale[..., None, None])
    for i in range(int(s.max())):
        r = xp.where((s > i)[..., None, None], r @ r, r)
    return r


def _pade13(xp, a):
    b = PADE_13
    ident = xp.eye(a.shape[-1], dtype=a.dtype)
    a2 = a @ a
    a4 = a2 @ a2
    a6 = a4 @ a2
    u = a @ (a6 @ (b[13] * a6 + b[11] * a4 + b[9] * a2) + b[7] * a6 + b[5] * a4 + b[3] * a2 + b[1] * ident)
    v = a6 @ (b[12] * a6 + b[10] * a4 + b[8] * a2) + b[6] * a6 + b[4] * a4 + b[2] * a2 + b[0] * ident
    return lapack("linalg.matrix_exp", xp.linalg.solve, v - u, v + u, probe=xp.linalg.inv)


def _gradient_scale(xp, a, grad):
    """c per matrix with c * ||G||_1 = ||A||_1 (1 where either is zero or not finite)."""
    if a.size == 0:  # 0 x 0 matrices, or none: no norm to match (the max below has no identity)
        return xp.ones(a.shape[:-2] + (1, 1), a.dtype)
    a_norm = abs(a).sum(axis=-2).max(axis=-1)
    g_norm = abs(grad).sum(axis=-2).max(axis=-1)
    ok = (g_norm > 0) & (a_norm > 0) & xp.isfinite(a_norm) & xp.isfinite(g_norm)
    return xp.where(ok, a_norm / xp.where(ok, g_norm, 1), 1).astype(a.dtype)[..., None, None]


class MatrixExp(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return expm(ctx.xp, a)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        xp = ctx.xp
        n = a.shape[-1]
        c = _gradient_scale(xp, a, grad)
        at = mT(a)
        block = xp.concatenate([xp.concatenate([at, grad * c], -1),
                                xp.concatenate([xp.zeros_like(at), at], -1)], -2)
        return expm(xp, block)[..., :n, n:] / c

    @staticmethod
    def backward_graph(ctx, grad):
        (a,) = saved_in_graph(ctx)
        n = a.shape[-1]
        c = _wrap(_gradient_scale(ctx.xp, a.data, grad.data))  # a constant: it cancels out
        at = a.mT
        top = cat([at, grad * c], -1)
        bottom = cat([a.new_zeros(a.shape), at], -1)
        return MatrixExp.apply(cat([top, bottom], -2))[..., :n, n:] / c


def matrix_exp(A):
    """torch.linalg.matrix_exp: the matrix exponential of each square matrix in A (..., n, n)."""
    float_matrix("linalg.matrix_exp", A, square=True)
    return MatrixExp.apply(A)
