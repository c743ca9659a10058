"""What every tensor.linalg op shares: input checks, LAPACK calls with readable errors, and array helpers.

LAPACK (NumPy) and cuSOLVER (CuPy) take float32 and float64 only: integer tensors are refused as
PyTorch refuses them, and float16 with a hint to compute in float32. A failed factorization
(a singular or non-positive-definite matrix) becomes LinAlgError naming the op, the shape and the
batch index of the first bad matrix. CuPy returns NaNs there unless asked to raise: `lapack` asks.
"""
from __future__ import annotations

import contextlib
from collections import namedtuple

import numpy as np

from ..errors import DTypeError, ShapeError, TensorError
from ..tensor import Tensor


class LinAlgError(TensorError, np.linalg.LinAlgError):
    """torch.linalg.LinAlgError: a matrix that cannot be factorized (singular, not positive-definite...)."""


# torch.return_types.linalg_*: tuples that also name their fields.
slogdet_result = namedtuple("slogdet", ["sign", "logabsdet"])
qr_result = namedtuple("qr", ["Q", "R"])
eigh_result = namedtuple("eigh", ["eigenvalues", "eigenvectors"])
svd_result = namedtuple("svd", ["U", "S", "Vh"])
lstsq_result = namedtuple("lstsq", ["solution", "residuals", "rank", "singular_values"])
lu_factor_result = namedtuple("lu_factor", ["LU", "pivots"])
lu_factor_ex_result = namedtuple("lu_factor_ex", ["LU", "pivots", "info"])
lu_result = namedtuple("lu", ["P", "L", "U"])
cholesky_ex_result = namedtuple("cholesky_ex", ["L", "info"])
inv_ex_result = namedtuple("inv_ex", ["inverse", "info"])
solve_ex_result = namedtuple("solve_ex", ["result", "info"])


# ------------------------------------------------------------------------------------------ checks
def require_float(op, *tensors):
    """Real floating tensors of one dtype, float32 or float64 (what LAPACK computes in)."""
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected a Tensor, got {type(t).__name__}")
        dtype = t.data.dtype
        if dtype == np.float16:
            raise DTypeError(f"{op}: float16 is not supported (LAPACK and cuSOLVER have no half-precision "
                             "routines); call .float() first, and .half() on the result if you need it")
        if dtype.kind != "f":
            raise DTypeError(f"{op}: expected a floating-point tensor, got {dtype}; call .float() or .double() first")
    if len({t.data.dtype for t in tensors}) > 1:
        names = " and ".join(str(t.data.dtype) for t in tensors)
        raise DTypeError(f"{op}: expected tensors of one dtype, got {names}; convert one with .to(dtype)")


def require_matrix(op, x, square=False, name="A"):
    """x is a (batch of) matrix: at least 2 dims, and square when asked."""
    shape = tuple(x.shape)
    if len(shape) < 2:
        raise ShapeError(f"{op}: {name} must have at least 2 dimensions (a matrix or a batch of them), "
                         f"got shape {shape}")
    if square and shape[-1] != shape[-2]:
        raise ShapeError(f"{op}: {name} must be a (batch of) square matrices, but its last two dims are "
                         f"{shape[-2]} by {shape[-1]} (shape {shape})")


def float_matrix(op, x, square=False):
    require_float(op, x)
    require_matrix(op, x, square)


# ----------------------------------------------------------------------------------------- LAPACK
_FAILURES = {
    "linalg.inv": "singular (not invertible)",
    "linalg.solve": "singular (not invertible)",
    "linalg.cholesky": "not positive-definite",
    "linalg.det": "singular",
    "linalg.slogdet": "singular (its log-determinant is -inf)",
    "linalg.solve_triangular": "singular (a zero on its diagonal)",
    "linalg.lu_solve": "singular (U has a zero on its diagonal)",
    "linalg.lu": "singular (U has a zero on its diagonal, so the derivative of A = P L U is not defined)",
    "linalg.matrix_exp": "not exponentiable here (the Pade denominator is singular: the input is not finite)",
}


def lapack(op, fn, a, *rest, probe=None):
    """fn(a, *rest), raising LinAlgError that names the failing batch element (found by running
    `probe`, fn by default, on each matrix of a: only once something has failed)."""
    try:
        with raising(a):
            return fn(a, *rest)
    except np.linalg.LinAlgError as exc:
        raise _failure(op, probe or fn, a, exc) from None


def raising(a):
    """CuPy reports failed factorizations only inside cupyx.errstate(linalg='raise')."""
    if isinstance(a, np.ndarray):
        return contextlib.nullcontext()
    import cupyx

    return cupyx.errstate(linalg="raise")


def _failure(op, probe, a, exc):
    what = _FAILURES.get(op, "not factorizable")
    shape = tuple(a.shape)
    where = ""
    if a.ndim > 2:
        for index in np.ndindex(*shape[:-2]):
            try:
                with raising(a):
                    probe(a[index])
            except np.linalg.LinAlgError:
                where = f" (batch element {index} of the batch of shape {shape[:-2]})"
                break
    return LinAlgError(f"{op}: the input of shape {shape} holds a matrix that is {what}{where}: {exc}")


# ------------------------------------------------------------------------------------ array helpers
def mT(a):
    """The transpose of each matrix in a batch (real dtypes only, so also the conjugate transpose)."""
    return a.swapaxes(-1, -2)


def tril(xp, a, k=0):
    """The lower triangle (diagonal k and below) of each matrix in a batch."""
    mask = xp.tri(a.shape[-2], a.shape[-1], k, dtype=bool)
    return xp.where(mask, a, a.dtype.type(0))


def diag_embed(xp, d):
    """Square matrices with the vectors d (..., n) on their diagonals."""
    return d[..., :, None] * xp.eye(d.shape[-1], dtype=d.dtype)


def triu(xp, a, k=0):
    """The upper triangle (diagonal k and above) of each matrix in a batch."""
    mask = ~xp.tri(a.shape[-2], a.shape[-1], k - 1, dtype=bool)
    return xp.where(mask, a, a.dtype.type(0))


def broadcast_batch(xp, op, *arrays):
    """The arrays (each a batch of matrices) with their batch dims broadcast to one shape: CuPy's
    solvers do not broadcast them. Raises ShapeError naming the shapes where they do not broadcast."""
    try:
        batch = np.broadcast_shapes(*(a.shape[:-2] for a in arrays))
    except ValueError:
        shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
        raise ShapeError(f"{op}: the batch dims (all but the last two) of {shapes} do not broadcast") from None
    return tuple(xp.broadcast_to(a, batch + a.shape[-2:]) for a in arrays)


def with_unit_diagonal(xp, e):
    """e with ones on each matrix's diagonal: the divisor for the off-diagonal terms of a backward."""
    return xp.where(xp.eye(e.shape[-1], dtype=bool), e.dtype.type(1), e)
