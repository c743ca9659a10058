"""Beta on [0, 1] with `concentration1` (alpha) and `concentration0` (beta); reparameterisable."""
from __future__ import annotations

import math

from ..ops.compare import where
from ..ops.convert import finfo
from ..ops.special import xlogy
from . import constraints
from ._standard_gamma import standard_gamma
from .distribution import Distribution
from .utils import broadcast_all


class Beta(Distribution):
    """Density x^(a-1) (1-x)^(b-1) / B(a, b), a = concentration1, b = concentration0; batch_shape is their
    broadcast shape.

    rsample is g1 / (g1 + g0) of two standard-gamma draws, differentiable through each gamma's implicit
    reparameterisation gradient. PyTorch draws the same construction (as a two-category Dirichlet) but
    differentiates the Beta CDF directly, so single-draw gradients differ from torch's; their expectations agree.
    """

    arg_constraints = {"concentration1": constraints.positive, "concentration0": constraints.positive}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, concentration1, concentration0, validate_args=None):
        self.concentration1, self.concentration0 = broadcast_all(concentration1, concentration0)
        super().__init__(self.concentration1.shape, (), validate_args)

    @property
    def mean(self):
        return self.concentration1 / (self.concentration1 + self.concentration0)

    @property
    def mode(self):
        """(a - 1) / (a + b - 2) with a - 1, b - 1 clamped at 0; 1 where a, b < 1 (the density is unbounded at both
        ends; torch's Dirichlet mode picks the first category, x = 1)."""
        a, b = self.concentration1, self.concentration0
        a1, b1 = (a - 1).clamp(min=0), (b - 1).clamp(min=0)
        total = a1 + b1
        return where((a < 1) & (b < 1), 1.0, a1 / where(total > 0, total, math.nan))

    @property
    def variance(self):
        a, b = self.concentration1, self.concentration0
        total = a + b
        return a * b / (total.square() * (total + 1))

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        g1 = standard_gamma(self.concentration1.expand(*shape))
        g0 = standard_gamma(self.concentration0.expand(*shape))
        info = finfo(g1.dtype)
        return (g1 / (g1 + g0)).clamp(min=info.tiny, max=1 - info.eps)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        a, b = self.concentration1, self.concentration0
        return xlogy(a - 1.0, value) + xlogy(b - 1.0, 1 - value) + (a + b).lgamma() - a.lgamma() - b.lgamma()

    def entropy(self):
        a, b = self.concentration1, self.concentration0
        total = a + b
        log_beta = a.lgamma() + b.lgamma() - total.lgamma()
        return log_beta - (a - 1) * a.digamma() - (b - 1) * b.digamma() + (total - 2) * total.digamma()
