"""MultivariateNormal: a Gaussian over vectors, given by one of covariance_matrix, precision_matrix, scale_tril.

    dist = MultivariateNormal(loc, scale_tril=L)       # loc (..., n), L (..., n, n) lower-triangular
    z = dist.rsample((k,))                             # loc + L @ eps: gradients reach loc and L
"""
from __future__ import annotations

import math

from .. import linalg
from ..ops.views import broadcast_shapes
from ..random import randn
from ..tensor import Tensor
from . import constraints
from .distribution import Distribution
from .utils import lazy_property

_LOG_2PI = math.log(2 * math.pi)


def batch_mahalanobis(scale_tril, x):
    """x^T (L L^T)^-1 x = |L^-1 x|^2 for x (..., n) broadcasting against L (B..., n, n), by a linear solve.

    Leading dims of x beyond L's batch (sample dims) become right-hand-side columns: one factorisation of each L
    serves every draw, as in torch's _batch_mahalanobis.
    """
    n = x.shape[-1]
    shape = tuple(broadcast_shapes(tuple(x.shape[:-1]), tuple(scale_tril.shape[:-2])))
    x = x.expand(*shape, n)
    lead = len(shape) - (scale_tril.ndim - 2)
    if lead > 0:
        columns = x.reshape(-1, *shape[lead:], n).movedim(0, -1)  # (B..., n, S)
        y = linalg.solve(scale_tril, columns)
        return y.square().sum(-2).movedim(-1, 0).reshape(shape)
    return linalg.solve(scale_tril, x.unsqueeze(-1)).squeeze(-1).square().sum(-1)


class MultivariateNormal(Distribution):
    """N(loc, Sigma) over vectors: event_shape (n,), batch_shape the broadcast of loc.shape[:-1] and the matrix's
    batch dims. Give exactly one of covariance_matrix (Sigma), precision_matrix (Sigma^-1) or scale_tril (L, lower
    triangular with a positive diagonal, Sigma = L L^T).

    Everything is computed from L: covariance_matrix through linalg.cholesky, precision_matrix as
    cholesky(inv(P)) (torch uses a flipped Cholesky of P instead; the same L up to rounding). rsample is
    loc + L eps; log_prob solves L y = value - loc (a linear solve on the triangular L) and adds sum log diag L;
    only L's lower triangle is read, as torch's triangular solve reads it.
    """

    arg_constraints = {"loc": constraints.real_vector, "covariance_matrix": constraints.positive_definite,
                       "precision_matrix": constraints.positive_definite, "scale_tril": constraints.lower_cholesky}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, covariance_matrix=None, precision_matrix=None, scale_tril=None, validate_args=None):
        given = {k: v for k, v in [("covariance_matrix", covariance_matrix), ("precision_matrix", precision_matrix),
                                   ("scale_tril", scale_tril)] if v is not None}
        if len(given) != 1:
            raise ValueError(f"MultivariateNormal: give exactly one of covariance_matrix, precision_matrix or "
                             f"scale_tril, got {sorted(given) or 'none'}")
        (name, matrix), = given.items()
        for arg, value, dims in [("loc", loc, 1), (name, matrix, 2)]:
            if not isinstance(value, Tensor) or value.ndim < dims:
                raise ValueError(f"MultivariateNormal: {arg} must be a Tensor with at least {dims} dim(s) "
                                 f"({'(..., n)' if dims == 1 else '(..., n, n)'}), got {_shape_of(value)}")
        n = loc.shape[-1]
        if tuple(matrix.shape[-2:]) != (n, n):
            raise ValueError(f"MultivariateNormal: {name} of shape {tuple(matrix.shape)} must end in ({n}, {n}) to "
                             f"match loc of shape {tuple(loc.shape)}")
        try:
            batch = tuple(broadcast_shapes(tuple(loc.shape[:-1]), tuple(matrix.shape[:-2])))
        except Exception:  # noqa: BLE001 - re-raised with both shapes
            raise ValueError(f"MultivariateNormal: the batch dims of loc {tuple(loc.shape)} and {name} "
                             f"{tuple(matrix.shape)} do not broadcast") from None
        self.loc = loc.expand(*batch, n)
        setattr(self, name, matrix.expand(*batch, n, n))
        super().__init__(batch, (n,), validate_args)
        if name == "scale_tril":
            self._unbroadcasted_scale_tril = matrix.tril()
        elif name == "covariance_matrix":
            self._unbroadcasted_scale_tril = linalg.cholesky(matrix)
        else:
            self._unbroadcasted_scale_tril = linalg.cholesky(linalg.inv(matrix))

    @lazy_property
    def scale_tril(self):
        return self._unbroadcasted_scale_tril.expand(*self._batch_shape, *self._event_shape * 2)

    @lazy_property
    def covariance_matrix(self):
        low = self._unbroadcasted_scale_tril
        return (low @ low.mT).expand(*self._batch_shape, *self._event_shape * 2)

    @lazy_property
    def precision_matrix(self):
        inverse = linalg.inv(self._unbroadcasted_scale_tril)
        return (inverse.mT @ inverse).expand(*self._batch_shape, *self._event_shape * 2)

    @property
    def mean(self):
        return self.loc

    @property
    def mode(self):
        return self.loc

    @property
    def variance(self):
        return self._unbroadcasted_scale_tril.square().sum(-1).expand(*self._batch_shape, *self._event_shape)

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        eps = randn(*shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + (self._unbroadcasted_scale_tril @ eps.unsqueeze(-1)).squeeze(-1)

    def _half_log_det(self):
        return self._unbroadcasted_scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        n = self._event_shape[0]
        mahalanobis = batch_mahalanobis(self._unbroadcasted_scale_tril, value - self.loc)
        return -0.5 * (n * _LOG_2PI + mahalanobis) - self._half_log_det()

    def entropy(self):
        n = self._event_shape[0]
        entropy = 0.5 * n * (1.0 + _LOG_2PI) + self._half_log_det()
        return entropy.expand(*self._batch_shape) if self._batch_shape else entropy


def _shape_of(value):
    return f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
