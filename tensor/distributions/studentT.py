"""StudentT with `df` degrees of freedom, `loc` and `scale`; reparameterisable."""
from __future__ import annotations

import math

from ..ops.compare import where
from ..random import randn
from . import constraints
from .distribution import Distribution
from .gamma import Chi2
from .utils import broadcast_all


class StudentT(Distribution):
    """loc + scale * T, T a standard Student's t with df degrees of freedom; batch_shape is the broadcast shape.

    rsample = loc + scale * eps / sqrt(Chi2(df) / df), eps ~ N(0, 1): gradients reach loc and scale directly
    and df through the chi-squared (gamma) draw's implicit reparameterisation gradient, as in torch.
    mean is NaN for df <= 1; variance is inf for 1 < df <= 2 and NaN for df <= 1, as torch.
    """

    arg_constraints = {"df": constraints.positive, "loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, df, loc=0.0, scale=1.0, validate_args=None):
        self.df, self.loc, self.scale = broadcast_all(df, loc, scale)
        self._chi2 = Chi2(self.df, validate_args=False)
        super().__init__(self.df.shape, (), validate_args)

    @property
    def mean(self):
        return where(self.df > 1, self.loc, math.nan)

    @property
    def mode(self):
        return self.loc

    @property
    def variance(self):
        df = self.df
        finite = self.scale.square() * df / where(df > 2, df - 2, 1.0)
        return where(df > 2, finite, where(df > 1, math.inf, math.nan))

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        eps = randn(*shape, dtype=self.df.dtype, device=self.df.device)
        chi2 = self._chi2.rsample(sample_shape)
        return self.loc + self.scale * eps * (chi2 / self.df).rsqrt()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        df = self.df
        y = (value - self.loc) / self.scale
        z = (self.scale.log() + 0.5 * df.log() + 0.5 * math.log(math.pi) + (0.5 * df).lgamma()
             - (0.5 * (df + 1.0)).lgamma())
        return -0.5 * (df + 1.0) * (y.square() / df).log1p() - z

    def entropy(self):
        df = self.df
        log_beta = (0.5 * df).lgamma() + math.lgamma(0.5) - (0.5 * (df + 1)).lgamma()
        return (self.scale.log() + 0.5 * (df + 1) * ((0.5 * (df + 1)).digamma() - (0.5 * df).digamma())
                + 0.5 * df.log() + log_beta)
