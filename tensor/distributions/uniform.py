"""Uniform on the half-open interval [low, high); reparameterisable."""
from __future__ import annotations

import math

from ..autograd import no_grad
from ..ops.compare import where
from ..random import rand
from . import constraints
from .distribution import Distribution, _raise_if_invalid
from .utils import broadcast_all


class Uniform(Distribution):
    """U[low, high); low and high broadcast to batch_shape. rsample = low + (high - low) * u, u ~ U[0, 1)."""

    arg_constraints = {"low": constraints.dependent, "high": constraints.dependent}
    has_rsample = True

    def __init__(self, low, high, validate_args=None):
        self.low, self.high = broadcast_all(low, high)
        super().__init__(self.low.shape, (), validate_args)
        if self._validate_args:
            with no_grad():
                _raise_if_invalid(self.low < self.high, self.high, f"parameter high of {self!r} to be greater "
                                  "than low (Uniform is not defined when low >= high)")

    @property
    def support(self):
        return constraints.half_open_interval(self.low, self.high)

    @property
    def mean(self):
        return (self.high + self.low) / 2

    @property
    def mode(self):
        return self.low * math.nan

    @property
    def stddev(self):
        return (self.high - self.low) / math.sqrt(12)

    @property
    def variance(self):
        return (self.high - self.low).square() / 12

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        u = rand(*shape, dtype=self.low.dtype, device=self.low.device)
        return self.low + u * (self.high - self.low)

    def log_prob(self, value):
        """-log(high - low) inside [low, high), -inf outside (reachable only with validate_args=False)."""
        if self._validate_args:
            self._validate_sample(value)
        inside = (value >= self.low) & (value < self.high)
        return where(inside, -(self.high - self.low).log(), -math.inf)

    def cdf(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return ((value - self.low) / (self.high - self.low)).clamp(min=0, max=1)

    def entropy(self):
        return (self.high - self.low).log()
