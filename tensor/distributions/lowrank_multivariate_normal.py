"""LowRankMultivariateNormal: a Gaussian whose covariance is low-rank plus diagonal, W W^T + diag(D).

    q = LowRankMultivariateNormal(loc, cov_factor=W, cov_diag=D)   # loc (..., n), W (..., n, r), D (..., n)
    z = q.rsample()                      # loc + W eps_r + sqrt(D) eps_n: gradients reach loc, W and D
"""
from __future__ import annotations

from .. import linalg
from ..ops.views import broadcast_shapes
from ..random import randn
from ..tensor import Tensor
from . import constraints
from .distribution import Distribution
from .multivariate_normal import MultivariateNormal


class LowRankMultivariateNormal(MultivariateNormal):
    """N(loc, W W^T + diag(D)) over vectors: event_shape (n,), batch_shape the broadcast of loc.shape[:-1],
    cov_factor.shape[:-2] and cov_diag.shape[:-1].

    rsample draws as torch does (r + n standard normals per draw). log_prob, entropy, kl_divergence and the
    matrix properties go through the Cholesky factor of the full n x n covariance (torch uses the Woodbury
    identity on an r x r capacitance matrix instead: the same values up to rounding, O(n^3) rather than
    O(n r^2) work). Unlike torch's class it derives from MultivariateNormal, so the MultivariateNormal
    closed forms of kl_divergence apply to it.
    """

    arg_constraints = {"loc": constraints.real_vector, "cov_factor": constraints.independent(constraints.real, 2),
                       "cov_diag": constraints.independent(constraints.positive, 1)}

    def __init__(self, loc, cov_factor, cov_diag, validate_args=None):
        for name, value, dims, form in [("loc", loc, 1, "(..., n)"), ("cov_factor", cov_factor, 2, "(..., n, r)"),
                                        ("cov_diag", cov_diag, 1, "(..., n)")]:
            if not isinstance(value, Tensor) or value.ndim < dims:
                got = f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"LowRankMultivariateNormal: {name} must be a Tensor of shape {form}, got {got}")
        n = loc.shape[-1]
        if cov_factor.shape[-2] != n or cov_diag.shape[-1] != n:
            raise ValueError(f"LowRankMultivariateNormal: cov_factor {tuple(cov_factor.shape)} must end in ({n}, r) "
                             f"and cov_diag {tuple(cov_diag.shape)} in ({n},) to match loc {tuple(loc.shape)}")
        try:
            batch = tuple(broadcast_shapes(tuple(loc.shape[:-1]), tuple(cov_factor.shape[:-2]),
                                           tuple(cov_diag.shape[:-1])))
        except Exception:  # noqa: BLE001 - re-raised with the three shapes
            raise ValueError(f"LowRankMultivariateNormal: the batch dims of loc {tuple(loc.shape)}, cov_factor "
                             f"{tuple(cov_factor.shape)} and cov_diag {tuple(cov_diag.shape)} do not broadcast") from None
        self.loc = loc.expand(*batch, n)
        self.cov_factor = cov_factor.expand(*batch, *cov_factor.shape[-2:])
        self.cov_diag = cov_diag.expand(*batch, n)
        self._unbroadcasted_cov_factor, self._unbroadcasted_cov_diag = cov_factor, cov_diag
        Distribution.__init__(self, batch, (n,), validate_args)
        covariance = cov_factor @ cov_factor.mT + cov_diag.diag_embed()
        self._unbroadcasted_scale_tril = linalg.cholesky(covariance)

    @property
    def variance(self):
        variance = self._unbroadcasted_cov_factor.square().sum(-1) + self._unbroadcasted_cov_diag
        return variance.expand(*self._batch_shape, *self._event_shape)

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        rank = self.cov_factor.shape[-1]
        eps_w = randn(*shape[:-1], rank, dtype=self.loc.dtype, device=self.loc.device)
        eps_d = randn(*shape, dtype=self.loc.dtype, device=self.loc.device)
        low_rank = (self._unbroadcasted_cov_factor @ eps_w.unsqueeze(-1)).squeeze(-1)
        return self.loc + low_rank + self._unbroadcasted_cov_diag.sqrt() * eps_d
