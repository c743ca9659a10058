"""Weibull with `scale` (lambda) and `concentration` (k), the parametric survival model; reparameterisable.

Written in closed form rather than torch's Exponential pushed through power and affine transforms; the
values are the same: log_prob(x) = log(k / lambda) + (k - 1) log(x / lambda) - (x / lambda)^k, and the
survival function is 1 - cdf(x) = exp(-(x / lambda)^k).
"""
from __future__ import annotations

from ..random import rand
from . import constraints
from .distribution import Distribution
from .utils import broadcast_all

_EULER_GAMMA = 0.5772156649015329


class Weibull(Distribution):
    """Weibull(scale, concentration); both broadcast to batch_shape. rsample = scale * (-log1p(-u))^(1/k)."""

    arg_constraints = {"scale": constraints.positive, "concentration": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, scale, concentration, validate_args=None):
        self.scale, self.concentration = broadcast_all(scale, concentration)
        self.concentration_reciprocal = self.concentration.reciprocal()
        super().__init__(self.scale.shape, (), validate_args)

    @property
    def mean(self):
        return self.scale * (1 + self.concentration_reciprocal).lgamma().exp()

    @property
    def mode(self):
        k = self.concentration
        return self.scale * ((k - 1) / k) ** self.concentration_reciprocal  # NaN for k < 1, as torch

    @property
    def variance(self):
        return self.scale.square() * ((1 + 2 * self.concentration_reciprocal).lgamma().exp()
                                      - (2 * (1 + self.concentration_reciprocal).lgamma()).exp())

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        u = rand(*shape, dtype=self.scale.dtype, device=self.scale.device)
        return self.icdf(u)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        z = value / self.scale
        return ((self.concentration / self.scale).log() + (self.concentration - 1) * z.log()
                - z ** self.concentration)

    def cdf(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return -(-(value / self.scale) ** self.concentration).expm1()

    def icdf(self, value):
        return self.scale * (-(-value).log1p()) ** self.concentration_reciprocal

    def entropy(self):
        return (_EULER_GAMMA * (1 - self.concentration_reciprocal)
                + (self.scale / self.concentration).log() + 1)
