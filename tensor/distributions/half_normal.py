"""HalfNormal: |X| for X ~ Normal(0, scale); reparameterisable."""
from __future__ import annotations

import math

from ..ops.compare import where
from ..random import randn
from . import constraints
from .distribution import Distribution
from .utils import broadcast_all


class HalfNormal(Distribution):
    """Density 2 N(x; 0, scale^2) on x >= 0; batch_shape is scale's shape. rsample = scale * |eps|.

    torch builds it as a TransformedDistribution of Normal(0, scale) through AbsTransform; this is a plain
    Distribution with the same values (log_prob is -inf below 0 with validate_args=False, as torch's).
    """

    arg_constraints = {"scale": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, scale, validate_args=None):
        (self.scale,) = broadcast_all(scale)
        super().__init__(self.scale.shape, (), validate_args)

    @property
    def mean(self):
        return self.scale * math.sqrt(2 / math.pi)

    @property
    def mode(self):
        return self.scale.new_zeros(self.scale.shape)

    @property
    def variance(self):
        return self.scale.square() * (1 - 2 / math.pi)

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        return self.scale * randn(*shape, dtype=self.scale.dtype, device=self.scale.device).abs()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        log_prob = -value.square() / (2 * self.scale.square()) - self.scale.log() + 0.5 * math.log(2 / math.pi)
        return where(value >= 0, log_prob, -math.inf)

    def cdf(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return (value / (self.scale * math.sqrt(2))).erf()

    def icdf(self, prob):
        return self.scale * math.sqrt(2) * prob.erfinv()

    def entropy(self):
        return 0.5 * math.log(math.pi / 2) + self.scale.log() + 0.5
