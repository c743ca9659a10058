"""Decompositions: qr, eigh, eigvalsh, svd, svdvals, and what is built on them: pinv, matrix_rank, lstsq.

Gradients for real matrices, as PyTorch computes them (skew(X) = X - X^T, E_ij = x_j - x_i):
  qr (m >= n):  [gQ + Q copyltu(R gR^T - gQ^T Q)] R^-T, copyltu mirroring the lower triangle up;
                m < n splits A = [X | Y] with X square (PyTorch's scheme)
  eigh:         V (diag(gw) + skew(V^T gV) / 2E) V^T, for distinct eigenvalues
  svd:          PyTorch's svd_backward, with the terms for the parts of U or V outside the rank
  svdvals:      U diag(gS) V^T, and eigvalsh V diag(gw) V^T: defined also for repeated values
pinv is a composition of svd (or eigh for hermitian=True) with tensor ops, so its gradient
is theirs; matrix_rank has none.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..errors import AutogradError, ShapeError
from ..ops.linalg import matmul
from ..tensor import Tensor, _wrap
from ._common import (
    diag_embed, eigh_result, float_matrix, lapack, lstsq_result, mT, qr_result, require_float, require_matrix,
    svd_result, tril, with_unit_diagonal,
)


# ---------------------------------------------------------------------------------------------- qr
class QR(Function):
    @staticmethod
    def forward(ctx, a, mode):
        xp = ctx.xp
        ctx.mode = mode
        if mode == "r":
            return xp.empty((0,), a.dtype), _qr(xp, a, "r")
        q, r = _qr(xp, a, mode)
        ctx.save_for_backward(q, r, a)
        return q, r

    @staticmethod
    def backward(ctx, grad_q, grad_r):
        if ctx.mode == "r":
            raise AutogradError("linalg.qr: the derivative of QR depends on Q, which mode='r' does not compute; "
                                "use mode='reduced' to differentiate through linalg.qr")
        q, r, a = ctx.saved_tensors
        xp = ctx.xp
        m, n = a.shape[-2:]
        if ctx.mode == "complete" and m > n:
            raise AutogradError(f"linalg.qr: backward is not defined for mode='complete' with more rows than "
                                f"columns (input {tuple(a.shape)}): Q's last {m - n} columns are not unique; "
                                "use mode='reduced'")
        if m >= n:
            return _qr_grad(xp, q, r, grad_q, grad_r), None
        # A = [X | Y], X = Q R1 square, Y = Q R2: R2 = Q^T Y feeds gQ and gives gY.
        y, gr1, gr2 = a[..., m:], grad_r[..., :m], grad_r[..., m:]
        grad_x = _qr_grad(xp, q, r[..., :m], grad_q + y @ mT(gr2), gr1)
        return xp.concatenate([grad_x, q @ gr2], axis=-1), None


def _qr(xp, a, mode):
    try:
        return xp.linalg.qr(a, mode)
    except np.linalg.LinAlgError:
        if a.ndim == 2 or xp is np:
            raise
    # older CuPy factorizes one matrix per call
    parts = [_qr(xp, a[i], mode) for i in range(a.shape[0])]
    if mode == "r":
        return xp.stack(parts)
    return xp.stack([p[0] for p in parts]), xp.stack([p[1] for p in parts])


def _qr_grad(xp, q, r, grad_q, grad_r):
    """The gradient of A = QR for m >= n, through one solve with R^T on the right."""
    m = r @ mT(grad_r) - mT(grad_q) @ q
    low = tril(xp, m)
    b = grad_q + q @ (low + mT(tril(xp, m, -1)))
    return mT(lapack("linalg.qr", xp.linalg.solve, r, mT(b)))


def qr(A, mode="reduced"):
    """torch.linalg.qr: Q, R with A = QR; 'reduced' Q (m, k) R (k, n), 'complete' Q (m, m), 'r' R only
    (Q empty), k = min(m, n)."""
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"linalg.qr: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    float_matrix("linalg.qr", A)
    return qr_result(*QR.apply(A, mode))


# -------------------------------------------------------------------------------- eigh, eigvalsh
class Eigh(Function):
    @staticmethod
    def forward(ctx, a, uplo):
        w, v = lapack("linalg.eigh", lambda x: ctx.xp.linalg.eigh(x, UPLO=uplo), a)
        ctx.save_for_backward(w, v)
        return w, v

    @staticmethod
    def backward(ctx, grad_w, grad_v):
        w, v = ctx.saved_tensors
        xp = ctx.xp
        vt_gv = mT(v) @ grad_v
        gaps = with_unit_diagonal(xp, w[..., None, :] - w[..., :, None])
        inner = 0.5 * (vt_gv - mT(vt_gv)) / gaps + diag_embed(xp, grad_w)
        return v @ inner @ mT(v), None


class Eigvalsh(Function):
    @staticmethod
    def forward(ctx, a, uplo):
        xp = ctx.xp
        if not ctx.needs_input_grad[0]:
            return lapack("linalg.eigvalsh", lambda x: xp.linalg.eigvalsh(x, UPLO=uplo), a)
        w, v = lapack("linalg.eigvalsh", lambda x: xp.linalg.eigh(x, UPLO=uplo), a)
        ctx.save_for_backward(v)
        return w

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        return (v * grad[..., None, :]) @ mT(v), None


def _uplo(op, A, UPLO):
    if UPLO not in ("L", "U"):
        raise ValueError(f"{op}: UPLO must be 'L' or 'U', got {UPLO!r}")
    float_matrix(op, A, square=True)


def eigh(A, UPLO="L"):
    """torch.linalg.eigh: eigenvalues (..., n) ascending and eigenvectors (..., n, n) of symmetric A,
    read from its lower (UPLO='L') or upper triangle."""
    _uplo("linalg.eigh", A, UPLO)
    return eigh_result(*Eigh.apply(A, UPLO))


def eigvalsh(A, UPLO="L"):
    """torch.linalg.eigvalsh: the eigenvalues of symmetric A, ascending."""
    _uplo("linalg.eigvalsh", A, UPLO)
    return Eigvalsh.apply(A, UPLO)


# ---------------------------------------------------------------------------------- svd, svdvals
class SVD(Function):
    @staticmethod
    def forward(ctx, a, full_matrices):
        u, s, vh = lapack("linalg.svd", lambda x: ctx.xp.linalg.svd(x, full_matrices=full_matrices), a)
        ctx.save_for_backward(u, s, vh)
        return u, s, vh

    @staticmethod
    def backward(ctx, grad_u, grad_s, grad_vh):
        u, s, vh = ctx.saved_tensors
        k = s.shape[-1]
        # With full_matrices=True only the first k singular vectors are determined by A.
        u, grad_u, vh, grad_vh = u[..., :k], grad_u[..., :k], vh[..., :k, :], grad_vh[..., :k, :]
        xp = ctx.xp
        if not xp.any(grad_u) and not xp.any(grad_vh):
            # Only S was used (norms, spectra): U diag(gS) Vh, without the division by the gaps between
            # singular values, which is NaN where two are equal (as PyTorch skips it too).
            return (u * grad_s[..., None, :]) @ vh, None
        return _svd_grad(xp, u, s, vh, grad_u, grad_s, grad_vh), None


def _svd_grad(xp, u, s, vh, grad_u, grad_s, grad_vh):
    m, n, k = u.shape[-2], vh.shape[-1], s.shape[-1]
    v, grad_v = mT(vh), mT(grad_vh)
    ut_gu = mT(u) @ grad_u
    vt_gv = mT(v) @ grad_v
    s2 = s * s
    gaps = with_unit_diagonal(xp, s2[..., None, :] - s2[..., :, None])
    inner = ((ut_gu - mT(ut_gu)) * s[..., None, :] + s[..., :, None] * (vt_gv - mT(vt_gv))) / gaps
    inner = inner + diag_embed(xp, grad_s)
    if m > k:  # the part of gU outside U's columns
        grad_u_s = grad_u / s[..., None, :]
        return (u @ inner + grad_u_s - u @ (mT(u) @ grad_u_s)) @ vh
    if n > k:  # the part of gV outside V's columns
        s_grad_vh = grad_vh / s[..., :, None]
        return u @ (inner @ vh + s_grad_vh - (s_grad_vh @ v) @ vh)
    return u @ inner @ vh


class Svdvals(Function):
    @staticmethod
    def forward(ctx, a):
        xp = ctx.xp
        if not ctx.needs_input_grad[0]:
            return lapack("linalg.svdvals", lambda x: xp.linalg.svd(x, compute_uv=False), a)
        u, s, vh = lapack("linalg.svdvals", lambda x: xp.linalg.svd(x, full_matrices=False), a)
        ctx.save_for_backward(u, vh)
        return s

    @staticmethod
    def backward(ctx, grad):
        u, vh = ctx.saved_tensors
        return u @ (grad[..., :, None] * vh)


def svd(A, full_matrices=True):
    """torch.linalg.svd: U (..., m, m|k), S (..., k) descending, Vh (..., m|k, n) with A = U diag(S) Vh,
    k = min(m, n); full_matrices=False gives the reduced U and Vh."""
    float_matrix("linalg.svd", A)
    return svd_result(*SVD.apply(A, bool(full_matrices)))


def svdvals(A):
    """torch.linalg.svdvals: the singular values (..., k), descending."""
    float_matrix("linalg.svdvals", A)
    return Svdvals.apply(A)


# ----------------------------------------------------------------------- pinv, matrix_rank, lstsq
def _cutoff(A, largest, atol, rtol):
    """max(atol, rtol * largest singular value), per matrix, with PyTorch's default rtol."""
    raw = lambda v: v.data if isinstance(v, Tensor) else v  # noqa: E731 (a Tensor or a number)
    if rtol is None:
        rtol = np.finfo(A.data.dtype).eps * max(A.shape[-2:]) if atol is None or np.all(raw(atol) <= 0) else 0.0
    return A.xp.maximum(raw(0.0 if atol is None else atol), raw(rtol) * largest)


def pinv(A, *, atol=None, rtol=None, hermitian=False):
    """torch.linalg.pinv: the pseudo-inverse (..., n, m) of A (..., m, n), singular values at or below
    max(atol, rtol * largest) treated as zero (rtol defaults to eps * max(m, n) without atol)."""
    float_matrix("linalg.pinv", A, square=hermitian)
    if hermitian:
        w, v = eigh(A)
        keep = _wrap(abs(w.data) > _cutoff(A, abs(w.data).max(axis=-1, keepdims=True), atol, rtol))
        inverse = (1 / w.where(keep, 1.0)).where(keep, 0.0)  # 1 / 0 never computed, so no NaN gradient
        return matmul(v * inverse.unsqueeze(-2), v.mT)
    u, s, vh = svd(A, full_matrices=False)
    keep = _wrap(s.data > _cutoff(A, s.data[..., :1], atol, rtol))
    inverse = (1 / s.where(keep, 1.0)).where(keep, 0.0)
    return matmul(vh.mT * inverse.unsqueeze(-2), u.mT)


def matrix_rank(A, *, atol=None, rtol=None, hermitian=False):
    """torch.linalg.matrix_rank: the number of singular values above max(atol, rtol * largest), int64 (...)."""
    float_matrix("linalg.matrix_rank", A, square=hermitian)
    data = A.data
    xp = A.xp
    if hermitian:
        s = abs(lapack("linalg.matrix_rank", xp.linalg.eigvalsh, data))
    else:
        s = lapack("linalg.matrix_rank", lambda x: xp.linalg.svd(x, compute_uv=False), data)
    if s.shape[-1] == 0:
        return _wrap(xp.zeros(s.shape[:-1], dtype=np.int64))
    largest = s.max(axis=-1, keepdims=True)
    return _wrap((s > _cutoff(A, largest, atol, rtol)).sum(axis=-1).astype(np.int64))


def lstsq(A, B, rcond=None, *, driver=None):
    """torch.linalg.lstsq: the X minimizing ||A X - B|| for A (..., m, n), B (..., m, k) or (m,).

    Computed as pinv(A) @ B (so differentiable in A and B). rank is always given; singular_values for
    driver 'gelsd'/'gelss', and residuals (squared column norms of A X - B) with those drivers when
    m > n and every matrix has full rank, as in PyTorch; otherwise they are empty.
    """
    op = "linalg.lstsq"
    if driver not in (None, "gels", "gelsy", "gelsd", "gelss"):
        raise ValueError(f"{op}: driver must be one of 'gels', 'gelsy', 'gelsd', 'gelss' or None, got {driver!r}")
    require_float(op, A, B)
    require_matrix(op, A)
    m, n = A.shape[-2:]
    vector = B.ndim == 1
    rhs = B.unsqueeze(-1) if vector else B
    if rhs.shape[-2] != m:
        raise ShapeError(f"{op}: A {tuple(A.shape)} and B {tuple(B.shape)} need the same number of rows ({m})")
    solution = matmul(pinv(A, rtol=rcond), rhs)
    rank = matrix_rank(A, rtol=rcond)
    residuals = values = _wrap(A.xp.empty((0,), dtype=A.data.dtype))
    if driver in ("gelsd", "gelss"):
        values = svdvals(A)
        if m > n and bool((rank.data == n).all()):
            residuals = ((matmul(A, solution) - rhs) ** 2).sum(-2)  # (..., k): (1,) for a vector B, as torch
    return lstsq_result(solution.squeeze(-1) if vector else solution, residuals, rank, values)

