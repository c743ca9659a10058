"""torch.special's names for the engine's special functions: `tensor.special.expit(x)`, `gammaln`, `ndtr`, ...

Every function here is an op of tensor/ops (differentiable, on NumPy and CuPy) under PyTorch's name.
Not provided: the Bessel functions beyond i0/i1 (j0, j1, y0, y1, k0, k1, scaled forms, i0e, i1e),
ndtri, erfcx, gammainc/gammaincc, airy_ai and the orthogonal polynomials; calling one raises
AttributeError naming it.
"""
from __future__ import annotations

from .nn.functional.activation import log_softmax, softmax
from .ops.elementwise import logit
from .ops.special import (
    digamma, entr, erfc, erfinv, exp2, i0, i1, log_ndtr, mvlgamma as multigammaln, ndtr, polygamma, xlog1py, xlogy,
    zeta,
)
from .ops.special import lgamma as gammaln
from .ops.statistics import logsumexp
from .ops.trig import sinc
from .ops.unary import erf, expm1, log1p, round  # noqa: A004 - torch.special.round
from .ops.activation import sigmoid as expit

psi = digamma

__all__ = [
    "digamma", "entr", "erf", "erfc", "erfinv", "exp2", "expit", "expm1", "gammaln", "i0", "i1", "log1p", "log_ndtr",
    "log_softmax", "logit", "logsumexp", "multigammaln", "ndtr", "polygamma", "psi", "round", "sinc", "softmax",
    "xlog1py", "xlogy", "zeta",
]
