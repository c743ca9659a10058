"""Poisson with `rate`: counts 0, 1, 2, ... (floats, as torch's samples)."""
from __future__ import annotations

from ..autograd import no_grad
from ..creation import _on
from ..ops.special import xlogy
from ..random import rng_for
from ..tensor import _wrap
from . import constraints
from .distribution import Distribution
from .utils import broadcast_all


class Poisson(Distribution):
    """P(k) = rate^k e^(-rate) / k!; batch_shape is rate's shape. Samples come from the device generator's
    poisson (NumPy / CuPy) in rate's float dtype, without a graph (no rsample). No entropy, as in torch."""

    arg_constraints = {"rate": constraints.nonnegative}
    support = constraints.nonnegative_integer

    def __init__(self, rate, validate_args=None):
        (self.rate,) = broadcast_all(rate)
        super().__init__(self.rate.shape, (), validate_args)

    @property
    def mean(self):
        return self.rate

    @property
    def mode(self):
        return self.rate.floor()

    @property
    def variance(self):
        return self.rate

    def sample(self, sample_shape=()):
        shape = tuple(self._extended_shape(sample_shape))
        with no_grad(), _on(self.rate.device):
            rate = self.rate.detach().data
            draws = rng_for(self.rate.device).poisson(rate, size=shape)
            return _wrap(draws.astype(rate.dtype))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return xlogy(value, self.rate) - self.rate - (value + 1).lgamma()
