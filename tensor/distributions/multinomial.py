"""Multinomial: category counts of `total_count` draws from a Categorical(probs or logits)."""
from __future__ import annotations

import math
import numbers

from ..autograd import no_grad
from ..ops.compare import where
from ..ops.gather import one_hot
from . import constraints
from .binomial import Binomial
from .categorical import Categorical
from .distribution import Distribution


class Multinomial(Distribution):
    """Count vectors (..., K) summing to total_count (an int); batch_shape is the parameter's shape less its
    last dim, event_shape (K,). Samples are float counts of total_count Categorical draws (no rsample);
    log_prob is log n! - sum log x_k! + sum x_k log p_k."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}

    def __init__(self, total_count=1, probs=None, logits=None, validate_args=None):
        if not isinstance(total_count, numbers.Integral) or isinstance(total_count, bool) or total_count < 0:
            raise ValueError(f"Multinomial: total_count must be a non-negative int (one count for the whole batch, "
                             f"as torch), got {total_count!r}")
        self.total_count = int(total_count)
        self._categorical = Categorical(probs=probs, logits=logits, validate_args=validate_args)
        self._binomial = Binomial(total_count=self.total_count, probs=self.probs, validate_args=False)
        param = self._categorical.param_shape
        super().__init__(param[:-1], param[-1:], validate_args)

    @property
    def probs(self):
        return self._categorical.probs

    @property
    def logits(self):
        return self._categorical.logits

    @property
    def param_shape(self):
        return self._categorical.param_shape

    @property
    def support(self):
        return constraints.multinomial(self.total_count)

    @property
    def mean(self):
        return self.probs * self.total_count

    @property
    def variance(self):
        return self.total_count * self.probs * (1 - self.probs)

    def sample(self, sample_shape=()):
        with no_grad():
            sample_shape = tuple(self._extended_shape(sample_shape))[:-1 - len(self._batch_shape)]
            draws = self._categorical.sample((self.total_count,) + sample_shape)  # (n,) + sample + batch
            return one_hot(draws, self._event_shape[0]).to(dtype=self.probs.dtype).sum(0)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits = self.logits
        logits = where((value == 0) & (logits == -math.inf), 0.0, logits)  # 0 * log 0 counts as 0
        return (value.sum(-1) + 1).lgamma() - (value + 1).lgamma().sum(-1) + (logits * value).sum(-1)

    def entropy(self):
        """n H(Categorical) - log n! + sum_k E[log x_k!], with x_k ~ Binomial(n, p_k), as torch."""
        n = self.total_count
        term1 = n * self._categorical.entropy() - math.lgamma(n + 1)
        support = self._binomial.enumerate_support(expand=False)[1:]
        binomial_probs = self._binomial.log_prob(support).exp()
        return term1 + (binomial_probs * (support + 1).lgamma()).sum((0, -1))
