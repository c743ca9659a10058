"""Dirichlet over the probability simplex, with `concentration` (..., K); reparameterisable."""
from __future__ import annotations

import math

from ..creation import zeros
from ..dtypes import int64
from ..ops.compare import where
from ..ops.convert import finfo
from ..ops.gather import one_hot
from ..ops.special import xlogy
from ..tensor import Tensor
from . import constraints
from ._standard_gamma import standard_gamma
from .distribution import Distribution


class Dirichlet(Distribution):
    """Density prod x_k^(a_k - 1) / B(a) on the simplex; batch_shape concentration.shape[:-1], event_shape (K,).

    rsample normalises K independent standard-gamma draws, g / g.sum(-1). Gradients reach concentration through
    each gamma's implicit reparameterisation gradient and then the normalisation: an exact pathwise gradient of
    that construction. PyTorch instead differentiates the marginal Beta CDF of each coordinate (_dirichlet_grad),
    so single-draw gradients differ from torch's while their expectations agree (both are unbiased).
    """

    arg_constraints = {"concentration": constraints.independent(constraints.positive, 1)}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, concentration, validate_args=None):
        if not isinstance(concentration, Tensor) or concentration.ndim < 1:
            raise ValueError(f"Dirichlet: concentration must be a Tensor with at least one dim (the K categories), "
                             f"got {concentration!r}")
        self.concentration = concentration
        super().__init__(concentration.shape[:-1], concentration.shape[-1:], validate_args)

    @property
    def mean(self):
        return self.concentration / self.concentration.sum(-1, keepdim=True)

    @property
    def mode(self):
        """(a - 1) / sum(a - 1) with a - 1 clamped at 0; where every a < 1 the density is unbounded at every vertex,
        and torch picks the first category's (its argmax runs over the NaN quotients, not over a)."""
        a = self.concentration
        excess = (a - 1).clamp(min=0)
        total = excess.sum(-1, keepdim=True)
        mode = excess / where(total > 0, total, math.nan)  # NaN (as torch) where every a == 1, without a warning
        vertex = one_hot(zeros(a.shape[:-1], dtype=int64, device=a.device), a.shape[-1]).to(dtype=a.dtype)
        return where((a < 1).all(-1, keepdim=True), vertex, mode)

    @property
    def variance(self):
        a = self.concentration
        total = a.sum(-1, keepdim=True)
        return a * (total - a) / (total.square() * (total + 1))

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        gammas = standard_gamma(self.concentration.expand(*shape))
        x = gammas / gammas.sum(-1, keepdim=True)
        info = finfo(x.dtype)
        return x.clamp(min=info.tiny, max=1 - info.eps)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        a = self.concentration
        return xlogy(a - 1.0, value).sum(-1) + a.sum(-1).lgamma() - a.lgamma().sum(-1)

    def entropy(self):
        a = self.concentration
        k = a.shape[-1]
        total = a.sum(-1)
        return (a.lgamma().sum(-1) - total.lgamma() - (k - total) * total.digamma()
                - ((a - 1.0) * a.digamma()).sum(-1))
