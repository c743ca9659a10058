"""torch's top-level linear-algebra names and their Tensor methods (x.det(), tensor.inverse(x), ...),
forwarding to tensor.linalg; plus kron, mv, inner, vdot and chain_matmul, built on products.

Legacy forms keep torch's legacy signatures: svd returns V (not Vh) and takes some=True;
cholesky takes upper=False positionally; cross without dim uses the first dim of size 3;
cholesky_solve(B, L), triangular_solve(B, A) and lu_solve(B, LU, pivots) take the right-hand side
first, and triangular_solve defaults to upper=True.
"""
from __future__ import annotations

from collections import namedtuple

from .. import linalg  # the tensor.linalg package (ops/linalg.py is matmul's family)
from ..autograd import Function
from ..creation import eye
from ..errors import ShapeError
from ..graph_backward import saved_in_graph
from ..linalg._common import mT, require_float
from ..linalg.triangular import tri_solve
from ..linalg.lowrank import pca_lowrank, svd_lowrank  # noqa: F401 - top-level names, bound in methods.py
from ..tensor import Tensor
from ._util import sum_to
from .linalg import matmul, tensordot

svd_result = namedtuple("svd", ["U", "S", "V"])  # torch.return_types.svd
triangular_solve_result = namedtuple("triangular_solve", ["solution", "cloned_coefficient"])
lu_result = namedtuple("lu", ["LU", "pivots"])
lu_infos_result = namedtuple("lu", ["LU", "pivots", "infos"])


def inverse(x):
    """torch.inverse: linalg.inv."""
    return linalg.inv(x)


def det(x):
    """torch.det: linalg.det."""
    return linalg.det(x)


def slogdet(x):
    """torch.slogdet: linalg.slogdet, (sign, logabsdet)."""
    return linalg.slogdet(x)


def logdet(x):
    """torch.logdet: log(det(x)): NaN where det < 0 and -inf where det = 0; the gradient is x^-T."""
    sign, logabs = linalg.slogdet(x)
    return logabs.where(sign >= 0, float("nan"))


def qr(x, some=True):
    """torch.qr (deprecated in torch for linalg.qr, still in Glow-style code): Q, R; some=False gives the
    complete Q (m, m)."""
    return linalg.qr(x, "reduced" if some else "complete")


def cholesky(x, upper=False):
    """torch.cholesky (deprecated in torch): linalg.cholesky."""
    return linalg.cholesky(x, upper=upper)


class CholeskySolve(Function):
    """X = A^-1 B for A = L L^T (or U^T U): two triangular solves, reading only the factor's triangle.
    The factor's gradient is torch's, -(G + G^T) L with G = gB X^T (L (G + G^T) for U): that of
    (L L^T)^-1 B in a full L, so it is not kept on the triangle; through linalg.cholesky, whose backward
    reads only the lower part, it is the same."""

    @staticmethod
    def forward(ctx, b, factor, upper):
        x = _cholesky_solve(ctx.xp, b, factor, upper)
        ctx.save_for_backward(factor, x)
        ctx.meta = (upper, b.shape, factor.shape)
        return x

    @staticmethod
    def backward(ctx, grad):
        factor, x = ctx.saved_tensors
        upper, b_shape, f_shape = ctx.meta
        grad_b = _cholesky_solve(ctx.xp, grad, factor, upper)
        grad_f = None
        if ctx.needs_input_grad[1]:
            common = grad_b @ mT(x)
            common = common + mT(common)
            grad_f = sum_to(-(factor @ common) if upper else -(common @ factor), f_shape)
        return (sum_to(grad_b, b_shape) if ctx.needs_input_grad[0] else None), grad_f, None

    @staticmethod
    def backward_graph(ctx, grad):
        factor, x = saved_in_graph(ctx)
        upper, b_shape, f_shape = ctx.meta
        grad_b = CholeskySolve.apply(grad, factor, upper)
        grad_f = None
        if ctx.needs_input_grad[1]:
            common = grad_b @ x.mT
            common = common + common.mT
            grad_f = sum_to(-(factor @ common) if upper else -(common @ factor), f_shape)
        return (sum_to(grad_b, b_shape) if ctx.needs_input_grad[0] else None), grad_f, None


def _cholesky_solve(xp, b, factor, upper):
    """(F F^T)^-1 b for a lower factor F, or (F^T F)^-1 b for an upper one (upper=True); arrays."""
    first, second = (mT(factor), factor) if upper else (factor, mT(factor))
    return tri_solve(xp, second, tri_solve(xp, first, b, False, op="cholesky_solve"), True, op="cholesky_solve")


def cholesky_solve(x, input2, upper=False):
    """torch.cholesky_solve(B, L, upper=False): X with A X = B for A = L L^T (upper=False, L lower) or
    A = U^T U (upper=True), B (..., n, k), the factor (..., n, n); batch dims broadcast. Reads only the
    factor's triangle; its gradient is torch's (see CholeskySolve)."""
    _require_rhs("cholesky_solve", x, input2)
    require_float("cholesky_solve", x, input2)
    return CholeskySolve.apply(x, input2, bool(upper))


def cholesky_inverse(x, upper=False):
    """torch.cholesky_inverse(L, upper=False): A^-1 for A = L L^T (or U^T U with upper=True), (..., n, n)."""
    if not isinstance(x, Tensor) or x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ShapeError(f"cholesky_inverse: expects a (batch of) square Cholesky factor (..., n, n), got {got}")
    return cholesky_solve(eye(x.shape[-1], dtype=x.dtype, device=x.device), x, upper=upper)


def triangular_solve(x, A, upper=True, transpose=False, unitriangular=False):
    """torch.triangular_solve(B, A, upper=True, transpose=False, unitriangular=False) (deprecated in torch
    for linalg.solve_triangular, which takes A first): (solution, cloned_coefficient) with A X = B, or
    A^T X = B for transpose=True; B (..., n, k), A (..., n, n) triangular, batch dims broadcast."""
    _require_rhs("triangular_solve", x, A)
    a = A.mT if transpose else A
    solution = linalg.solve_triangular(a, x, upper=bool(upper) != bool(transpose), unitriangular=unitriangular)
    return triangular_solve_result(solution, A.clone())


def lu(x, pivot=True, get_infos=False):
    """torch.lu (deprecated in torch for linalg.lu_factor): (LU, pivots), plus infos with get_infos=True
    (then a singular matrix does not raise)."""
    if get_infos:
        return lu_infos_result(*linalg.lu_factor_ex(x, pivot=pivot))
    return lu_result(*linalg.lu_factor(x, pivot=pivot))


def lu_solve(x, LU_data, LU_pivots):  # noqa: N803 - torch's argument names
    """torch.lu_solve(B, LU_data, LU_pivots) (deprecated in torch for linalg.lu_solve, which takes B last)."""
    return linalg.lu_solve(LU_data, LU_pivots, x)


def _require_rhs(op, b, a):
    """B (..., n, k) and a square factor A (..., n, n) that fit, for the legacy B-first solvers."""
    for name, t in (("B", b), ("A", a)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if b.ndim < 2 or a.ndim < 2 or a.shape[-1] != a.shape[-2] or b.shape[-2] != a.shape[-1]:
        raise ShapeError(f"{op}: expects B (..., n, k) and a square A (..., n, n), got B {tuple(b.shape)} and "
                         f"A {tuple(a.shape)}; a vector right-hand side needs B.unsqueeze(-1)")


def svd(x, some=True, compute_uv=True):
    """torch.svd: U, S, V with x = U diag(S) V^T (V, not Vh); some=False gives full U and V.
    compute_uv=False gives S and zero-filled U (m, m) and V (n, n), as torch does."""
    if not compute_uv:
        s = linalg.svdvals(x)
        m, n = x.shape[-2:]
        zeros = lambda k: x.new_zeros(tuple(x.shape[:-2]) + (k, k))  # noqa: E731
        return svd_result(zeros(m), s, zeros(n))
    u, s, vh = linalg.svd(x, full_matrices=not some)
    return svd_result(u, s, vh.mT)


def pinverse(x, rcond=1e-15):
    """torch.pinverse: linalg.pinv with rtol=rcond."""
    return linalg.pinv(x, rtol=rcond)


def matrix_power(x, n):
    """torch.matrix_power: linalg.matrix_power."""
    return linalg.matrix_power(x, n)


def cross(x, other, dim=None):
    """torch.cross: like linalg.cross, but dim=None picks the first dim of size 3 (torch's legacy default)."""
    if dim is None:
        sizes = tuple(max(a, b) for a, b in zip(x.shape, other.shape))  # the broadcast shape
        dim = next((d for d, n in enumerate(sizes) if n == 3), None)
        if dim is None:
            raise ShapeError(f"cross: no dimension of size 3 in shapes {tuple(x.shape)} and {tuple(other.shape)}; pass dim")
    return linalg.products.cross_along("cross", x, other, dim)


def kron(x, other):
    """torch.kron: the Kronecker product; the shorter shape gets leading 1s, and
    out[i*m + k, j*n + l, ...] = x[i, j, ...] * other[k, l, ...]."""
    ndim = max(x.ndim, other.ndim)
    a = x.reshape((1,) * (ndim - x.ndim) + tuple(x.shape))
    b = other.reshape((1,) * (ndim - other.ndim) + tuple(other.shape))
    # interleave: a's dims at even positions, b's at odd, then merge each pair
    a = a.reshape(tuple(d for n in a.shape for d in (n, 1)))
    b = b.reshape(tuple(d for n in b.shape for d in (1, n)))
    return (a * b).reshape(tuple(p * q for p, q in zip(a.shape[::2], b.shape[1::2])))


def mv(x, vec):
    """torch.mv: matrix (n, m) times vector (m,)."""
    if not isinstance(vec, Tensor) or x.ndim != 2 or vec.ndim != 1 or x.shape[1] != vec.shape[0]:
        got = tuple(vec.shape) if isinstance(vec, Tensor) else type(vec).__name__
        raise ShapeError(f"mv: expects a matrix (n, m) and a vector (m,), got {tuple(x.shape)} and {got}")
    return matmul(x, vec)


def inner(x, other):
    """torch.inner: the sum over the last dims: shape x.shape[:-1] + other.shape[:-1]; a 0-d operand scales."""
    if x.ndim == 0 or other.ndim == 0:
        return x * other
    if x.shape[-1] != other.shape[-1]:
        raise ShapeError(f"inner: the last dims of {tuple(x.shape)} and {tuple(other.shape)} differ "
                         f"({x.shape[-1]} != {other.shape[-1]})")
    return tensordot(x, other, dims=([x.ndim - 1], [other.ndim - 1]))


def vdot(x, other):
    """torch.vdot: the dot product of two 1-D tensors (real, so no conjugation)."""
    if not isinstance(other, Tensor) or x.ndim != 1 or other.ndim != 1:
        got = tuple(other.shape) if isinstance(other, Tensor) else type(other).__name__
        raise ShapeError(f"vdot: expects two 1-D tensors, got shapes {tuple(x.shape)} and {got}")
    if x.shape[0] != other.shape[0]:
        raise ShapeError(f"vdot: lengths {x.shape[0]} and {other.shape[0]} differ")
    return matmul(x, other)


def chain_matmul(*matrices):
    """torch.chain_matmul (deprecated in torch for linalg.multi_dot): the product of 2-D matrices."""
    for i, m in enumerate(matrices):
        if not isinstance(m, Tensor) or m.ndim != 2:
            got = f"shape {tuple(m.shape)}" if isinstance(m, Tensor) else type(m).__name__
            raise ShapeError(f"chain_matmul: every argument must be a 2-D matrix; argument {i} has {got}")
    if len(matrices) == 1:
        return matrices[0].clone()
    return linalg.multi_dot(matrices)


def matrix_exp(x):
    """exp of a square matrix or batch (..., n, n): tensor.linalg.matrix_exp as a method and torch.matrix_exp."""
    from ..linalg import matrix_exp as linalg_matrix_exp

    return linalg_matrix_exp(x)
