"""Gumbel (type-I extreme value) with `loc` and `scale`; reparameterisable."""
from __future__ import annotations

import math

from ..ops.convert import finfo
from ..random import rand
from . import constraints
from .distribution import Distribution
from .utils import broadcast_all

_EULER = 0.57721566490153286060


class Gumbel(Distribution):
    """Density exp(-(z + e^-z)) / scale, z = (x - loc) / scale; batch_shape is the broadcast parameters' shape.

    rsample = loc - scale * log(-log u), u ~ U(tiny, 1 - eps). torch builds Gumbel as a TransformedDistribution
    of a Uniform; this one is a plain Distribution with the same values, samples and gradients.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, (), validate_args)

    @property
    def mean(self):
        return self.loc + self.scale * _EULER

    @property
    def mode(self):
        return self.loc

    @property
    def stddev(self):
        return (math.pi / math.sqrt(6)) * self.scale

    @property
    def variance(self):
        return self.stddev.square()

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        info = finfo(self.loc.dtype)
        u = rand(*shape, dtype=self.loc.dtype, device=self.loc.device).clamp(min=info.tiny, max=1 - info.eps)
        return self.loc - self.scale * (-u.log()).log()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return -(self.scale.log() + z + (-z).exp())

    def cdf(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return (-(-(value - self.loc) / self.scale).exp()).exp()

    def icdf(self, value):
        return self.loc - self.scale * (-value.log()).log()

    def entropy(self):
        return self.scale.log() + (1 + _EULER)
