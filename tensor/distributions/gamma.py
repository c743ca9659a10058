"""Gamma (shape `concentration`, `rate`) and Chi2 (Gamma(df / 2, 1 / 2)); reparameterisable."""
from __future__ import annotations

from ..ops.convert import finfo
from ..ops.special import xlogy
from . import constraints
from ._standard_gamma import standard_gamma
from .distribution import Distribution
from .utils import broadcast_all


class Gamma(Distribution):
    """Density rate^a x^(a-1) e^(-rate x) / Gamma(a) on x > 0, a = concentration; batch_shape is the broadcast
    parameters' shape.

    rsample draws standard gammas and divides by rate; gradients reach concentration through the implicit
    reparameterisation gradient (see _standard_gamma: PyTorch's evaluation of it, relative error below 1e-3)
    and rate through the division. cdf is not implemented (the engine has no regularised incomplete gamma).
    """

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, concentration, rate, validate_args=None):
        self.concentration, self.rate = broadcast_all(concentration, rate)
        super().__init__(self.concentration.shape, (), validate_args)

    @property
    def mean(self):
        return self.concentration / self.rate

    @property
    def mode(self):
        return ((self.concentration - 1) / self.rate).clamp(min=0)

    @property
    def variance(self):
        return self.concentration / self.rate.square()

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        value = standard_gamma(self.concentration.expand(*shape)) / self.rate.expand(*shape)
        return value.clamp(min=finfo(value.dtype).tiny)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        a, rate = self.concentration, self.rate
        return xlogy(a, rate) + xlogy(a - 1, value) - rate * value - a.lgamma()

    def entropy(self):
        a = self.concentration
        return a - self.rate.log() + a.lgamma() + (1.0 - a) * a.digamma()


class Chi2(Gamma):
    """Chi-squared with `df` degrees of freedom: Gamma(df / 2, 1 / 2)."""

    arg_constraints = {"df": constraints.positive}

    def __init__(self, df, validate_args=None):
        (df,) = broadcast_all(df)
        super().__init__(0.5 * df, 0.5, validate_args)

    @property
    def df(self):
        return self.concentration * 2
