"""tensor.linalg: torch.linalg on NumPy / CuPy (xp.linalg), differentiable, batched over leading dims.

    import tensor
    A = tensor.randn(4, 3, 3, dtype=tensor.float64, requires_grad=True)
    tensor.linalg.slogdet(A).logabsdet.sum().backward()

Real float32 / float64 tensors only (what LAPACK and cuSOLVER compute in); integer tensors and
float16 are refused with a DTypeError, and a singular or non-positive-definite matrix raises
tensor.linalg.LinAlgError naming the op and the batch element.
"""
from ._common import LinAlgError
from .decomp import eigh, eigvalsh, lstsq, matrix_rank, pinv, qr, svd, svdvals
from .norms import matrix_norm, norm, vector_norm
from .products import cross, diagonal, matmul, matrix_power, multi_dot, vecdot
from .solve import cholesky, det, inv, slogdet, solve

__all__ = [
    "LinAlgError", "cholesky", "cross", "det", "diagonal", "eigh", "eigvalsh", "inv", "lstsq", "matmul",
    "matrix_norm", "matrix_power", "matrix_rank", "multi_dot", "norm", "pinv", "qr", "slogdet", "solve", "svd",
    "svdvals", "vecdot", "vector_norm",
]
