"""solve_triangular: X with A X = B (or X A = B) for triangular A (..., n, n), batched, NumPy and CuPy.

NumPy has no triangular solver, so each system goes to xp.linalg.solve (LAPACK getrf + getrs;
cuSOLVER on CuPy), batched in one call, on an *upper* triangle: partial pivoting then never swaps
rows (every entry below a pivot is zero), getrf's factors are I and A itself, bit for bit, and the
solve is exactly back substitution. A lower triangle L is made upper by reversing its rows and
columns (J L J, J the reversal), which solves for J X. It costs the O(n^3) of an LU rather than the
O(n^2 k) of a substitution, in LAPACK's blocked kernels. Only A's triangle is read.

Unlike PyTorch (which returns inf / NaN), a zero on the diagonal raises LinAlgError naming the
batch element.

Gradients (left=True, A X = B): gB = A^-T gX (a triangular solve with the other triangle),
gA = -gB X^T kept on A's triangle (strictly, for unitriangular=True). X A = B is A^T X^T = B^T.
"""
from __future__ import annotations

from ..autograd import Function
from ..errors import ShapeError
from ..graph_backward import saved_in_graph
from ..ops._util import sum_to
from ._common import broadcast_batch, lapack, mT, require_float, require_matrix, tril, triu

OP = "linalg.solve_triangular"


def triangle(xp, a, upper, unitriangular=False):
    """a's upper or lower triangle, strictly (without the diagonal) for unitriangular."""
    k = int(unitriangular)
    return triu(xp, a, k) if upper else tril(xp, a, -k)


def tri_solve(xp, a, b, upper, unitriangular=False, op=OP):
    """A^-1 B for the triangle of a (..., n, n) and b (..., n, k), batch dims broadcast; an array."""
    a = triangle(xp, a, upper, unitriangular)
    if unitriangular:
        a = a + xp.eye(a.shape[-1], dtype=a.dtype)
    if not upper:
        a, b = xp.flip(a, axis=(-2, -1)), xp.flip(b, axis=-2)
    a, b = broadcast_batch(xp, op, a, b)
    if a.shape[-1] == 0 or b.shape[-1] == 0:
        return xp.zeros(b.shape, dtype=b.dtype)
    x = lapack(op, xp.linalg.solve, a, b, probe=xp.linalg.inv)
    return x if upper else xp.flip(x, axis=-2)


class SolveTriangular(Function):
    """X = A^-1 B (left side only; the public function transposes for X A = B)."""

    @staticmethod
    def forward(ctx, a, b, upper, unitriangular):
        x = tri_solve(ctx.xp, a, b, upper, unitriangular)
        ctx.save_for_backward(a, x)
        ctx.meta = (upper, unitriangular, a.shape, b.shape)
        return x

    @staticmethod
    def backward(ctx, grad):
        a, x = ctx.saved_tensors
        xp = ctx.xp
        upper, unit, a_shape, b_shape = ctx.meta
        need_a, need_b = ctx.needs_input_grad[:2]
        grad_b = tri_solve(xp, mT(a), grad, not upper, unit)
        grad_a = sum_to(triangle(xp, -(grad_b @ mT(x)), upper, unit), a_shape) if need_a else None
        return grad_a, (sum_to(grad_b, b_shape) if need_b else None), None, None

    @staticmethod
    def backward_graph(ctx, grad):
        a, x = saved_in_graph(ctx)
        upper, unit, a_shape, b_shape = ctx.meta
        need_a, need_b = ctx.needs_input_grad[:2]
        grad_b = SolveTriangular.apply(a.mT, grad, not upper, unit)
        grad_a = None
        if need_a:
            outer = -(grad_b @ x.mT)
            k = int(unit)
            grad_a = sum_to(outer.triu(k) if upper else outer.tril(-k), a_shape)
        return grad_a, (sum_to(grad_b, b_shape) if need_b else None), None, None


def solve_triangular(A, B, *, upper, left=True, unitriangular=False):
    """torch.linalg.solve_triangular: X (..., n, k) with A X = B (left=True) or X A = B (left=False,
    X and B (..., k, n)), for A (..., n, n) triangular: upper=True reads its upper triangle, else its
    lower; unitriangular=True takes its diagonal as ones (without reading it). Batch dims broadcast."""
    require_float(OP, A, B)
    require_matrix(OP, A, square=True)
    if B.ndim < 2:
        raise ShapeError(f"{OP}: B must have at least 2 dimensions (a matrix or a batch), got shape "
                         f"{tuple(B.shape)}; use B.unsqueeze(-1) for a vector")
    n = A.shape[-1]
    if (B.shape[-2] if left else B.shape[-1]) != n:
        side, want = ("A X = B", f"(..., {n}, k)") if left else ("X A = B", f"(..., k, {n})")
        raise ShapeError(f"{OP}: A {tuple(A.shape)} and B {tuple(B.shape)} do not fit {side}: B must be {want}")
    if left:
        return SolveTriangular.apply(A, B, bool(upper), bool(unitriangular))
    return SolveTriangular.apply(A.mT, B.mT, not upper, bool(unitriangular)).mT
