"""inv, det, slogdet, solve, cholesky: square matrices (batched over leading dims), one Function each.

Gradients for real matrices (A^-T is the inverse transposed):
  inv:      -A^-T G A^-T
  det:      G det(A) A^-T, or G times the cofactor matrix (from an SVD) where A is singular
  slogdet:  G A^-T for logabsdet; the sign has no gradient
  solve:    grad_B = solve(A^T, G), grad_A = -grad_B X^T
  cholesky: L^-T sym(tril(L^T G)) L^-1, sym halving the diagonal (PyTorch's formula)
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..errors import ShapeError
from ..ops._util import sum_to
from ._common import diag_embed, float_matrix, lapack, mT, raising, require_float, require_matrix, slogdet_result, tril


# -------------------------------------------------------------------------------------------- inv
class Inv(Function):
    @staticmethod
    def forward(ctx, a):
        out = lapack("linalg.inv", ctx.xp.linalg.inv, a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        t = mT(inverse)
        return -(t @ grad @ t)


def inv(A):
    """torch.linalg.inv: the inverse of each square matrix in A (..., n, n)."""
    float_matrix("linalg.inv", A, square=True)
    return Inv.apply(A)


# ---------------------------------------------------------------------------------- det, slogdet
class Det(Function):
    @staticmethod
    def forward(ctx, a):
        out = ctx.xp.asarray(ctx.xp.linalg.det(a))
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, d = ctx.saved_tensors
        xp = ctx.xp
        try:
            with raising(a):
                inverse = xp.linalg.inv(a)
        except np.linalg.LinAlgError:  # a singular matrix in the batch: det's gradient is still defined
            return grad[..., None, None] * _cofactors(xp, a)
        return (grad * d)[..., None, None] * mT(inverse)


def _cofactors(xp, a):
    """The cofactor matrix adj(A)^T = det(U) det(V) U diag(prod_{j != i} s_j) V^T, defined for any A."""
    u, s, vh = xp.linalg.svd(a)
    ones = xp.ones(s.shape[:-1] + (1,), s.dtype)
    before = xp.cumprod(xp.concatenate([ones, s[..., :-1]], axis=-1), axis=-1)
    after = xp.flip(xp.cumprod(xp.flip(xp.concatenate([s[..., 1:], ones], axis=-1), axis=-1), axis=-1), axis=-1)
    signs = xp.linalg.det(u) * xp.linalg.det(vh)
    return xp.asarray(signs)[..., None, None] * (u @ diag_embed(xp, before * after) @ vh)


def det(A):
    """torch.linalg.det: the determinant of each square matrix in A (..., n, n) -> (...)."""
    float_matrix("linalg.det", A, square=True)
    return Det.apply(A)


class Slogdet(Function):
    @staticmethod
    def forward(ctx, a):
        xp = ctx.xp
        sign, logabs = xp.linalg.slogdet(a)
        sign, logabs = xp.asarray(sign), xp.asarray(logabs)
        ctx.save_for_backward(a)
        ctx.mark_non_differentiable(sign)
        return sign, logabs

    @staticmethod
    def backward(ctx, grad_sign, grad_logabs):
        (a,) = ctx.saved_tensors
        inverse = lapack("linalg.slogdet", ctx.xp.linalg.inv, a)
        return grad_logabs[..., None, None] * mT(inverse)


def slogdet(A):
    """torch.linalg.slogdet: (sign, logabsdet) of each square matrix; det = sign * exp(logabsdet)."""
    float_matrix("linalg.slogdet", A, square=True)
    return slogdet_result(*Slogdet.apply(A))


# ------------------------------------------------------------------------------------------ solve
class Solve(Function):
    """X = A^-1 B for B a batch of matrices; forward gets B as matrices (vectors have a dim added)."""

    @staticmethod
    def forward(ctx, a, b):
        xp = ctx.xp
        wide_a, wide_b = _broadcast_batch(xp, a, b)
        x = lapack("linalg.solve", xp.linalg.solve, wide_a, wide_b, probe=xp.linalg.inv)
        ctx.save_for_backward(a, x)
        ctx.b_shape = b.shape
        return x

    @staticmethod
    def backward(ctx, grad):
        a, x = ctx.saved_tensors
        xp = ctx.xp
        need_a, need_b = ctx.needs_input_grad
        wide_a, grad = _broadcast_batch(xp, a, grad)
        grad_b = lapack("linalg.solve", xp.linalg.solve, mT(wide_a), grad)
        grad_a = sum_to(-(grad_b @ mT(x)), a.shape) if need_a else None
        return grad_a, (sum_to(grad_b, ctx.b_shape) if need_b else None)


def _broadcast_batch(xp, a, b):
    """a and b with their batch dims broadcast: CuPy's solve does not broadcast them itself."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return xp.broadcast_to(a, batch + a.shape[-2:]), xp.broadcast_to(b, batch + b.shape[-2:])


def solve(A, B, *, left=True):
    """torch.linalg.solve: X with A X = B (left=True) or X A = B (left=False).

    A is (..., n, n); B is (..., n, k), or a vector: (n,) or A's shape without its last dim, as in
    PyTorch; batch dims broadcast.
    """
    op = "linalg.solve"
    require_float(op, A, B)
    require_matrix(op, A, square=True)
    if not left:
        if B.ndim < 2:
            raise ShapeError(f"{op}: left=False solves X A = B, which needs B to be a matrix, got shape {tuple(B.shape)}")
        return solve(A.mT, B.mT).mT
    n = A.shape[-1]
    vector = B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))
    rows = B.shape[-1] if vector else (B.shape[-2] if B.ndim >= 2 else None)
    if rows != n:
        raise ShapeError(f"{op}: A {tuple(A.shape)} and B {tuple(B.shape)} do not fit A X = B: B needs {n} rows "
                         f"(a (..., {n}, k) matrix or a (..., {n}) vector)")
    try:
        np.broadcast_shapes(tuple(A.shape[:-2]), tuple(B.shape[:-1 if vector else -2]))
    except ValueError:
        raise ShapeError(f"{op}: the batch dims of A {tuple(A.shape)} and B {tuple(B.shape)} do not broadcast") from None
    if vector:
        return Solve.apply(A, B.unsqueeze(-1)).squeeze(-1)
    return Solve.apply(A, B)


# --------------------------------------------------------------------------------------- cholesky
class Cholesky(Function):
    @staticmethod
    def forward(ctx, a):
        out = lapack("linalg.cholesky", ctx.xp.linalg.cholesky, a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (low,) = ctx.saved_tensors
        xp = ctx.xp
        phi = tril(xp, mT(low) @ grad)
        phi = 0.5 * (phi + mT(tril(xp, phi, -1)))  # symmetric, the diagonal counted once
        inverse = xp.linalg.inv(low)
        return mT(inverse) @ phi @ inverse


def cholesky(A, *, upper=False):
    """torch.linalg.cholesky: L (lower) with A = L L^T for symmetric positive-definite A (..., n, n),
    reading A's lower triangle; upper=True gives U = L^T (A = U^T U)."""
    float_matrix("linalg.cholesky", A, square=True)
    low = Cholesky.apply(A)
    return low.mT.contiguous() if upper else low
