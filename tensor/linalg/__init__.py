"""tensor.linalg: torch.linalg on NumPy / CuPy (xp.linalg), differentiable, batched over leading dims.

    import tensor
    A = tensor.randn(4, 3, 3, dtype=tensor.float64, requires_grad=True)
    tensor.linalg.slogdet(A).logabsdet.sum().backward()

Real float32 / float64 tensors only (what LAPACK and cuSOLVER compute in); integer tensors and
float16 are refused with a DTypeError, and a singular or non-positive-definite matrix raises
tensor.linalg.LinAlgError naming the op and the batch element.

eig and eigvals are not provided: for real input PyTorch returns complex results, which raygrad has no
dtype for; use eigh / eigvalsh for symmetric matrices.
"""
from ._common import LinAlgError
from .constructions import householder_product, vander
from .decomp import eigh, eigvalsh, lstsq, matrix_rank, pinv, qr, svd, svdvals
from .ex import cholesky_ex, inv_ex, solve_ex
from .lu import lu, lu_factor, lu_factor_ex, lu_solve
from .matrix_functions import matrix_exp
from .norms import cond, matrix_norm, norm, vector_norm
from .products import cross, diagonal, matmul, matrix_power, multi_dot, vecdot
from .solve import cholesky, det, inv, slogdet, solve
from .tensor_systems import tensorinv, tensorsolve
from .triangular import solve_triangular

__all__ = [
    "LinAlgError", "cholesky", "cholesky_ex", "cond", "cross", "det", "diagonal", "eigh", "eigvalsh",
    "householder_product", "inv", "inv_ex", "lstsq", "lu", "lu_factor", "lu_factor_ex", "lu_solve", "matmul",
    "matrix_exp", "matrix_norm", "matrix_power", "matrix_rank", "multi_dot", "norm", "pinv", "qr", "slogdet",
    "solve", "solve_ex", "solve_triangular", "svd", "svdvals", "tensorinv", "tensorsolve", "vander", "vecdot",
    "vector_norm",
]
