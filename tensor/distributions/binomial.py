"""Binomial: successes in `total_count` Bernoulli(probs) trials."""
from __future__ import annotations

import numpy as np

from ..autograd import no_grad
from ..creation import _on, arange
from ..random import rng_for
from ..tensor import _wrap
from . import constraints
from .distribution import Distribution
from .utils import BinaryParameters, broadcast_all


def _clamp_by_zero(x):
    """max(x, 0) with gradient 1/2 at 0 (torch's choice, for logits exactly 0)."""
    return (x.clamp(min=0) + x - x.clamp(max=0)) / 2


class Binomial(BinaryParameters, Distribution):
    """P(k) = C(n, k) p^k (1 - p)^(n - k), n = total_count (a number or tensor of non-negative integers);
    batch_shape is the broadcast of total_count and probs (or logits).

    log_prob works from the logits so it stays finite for p near 0 or 1; samples come from the device
    generator's binomial, as floats and without a graph (no rsample).
    """

    arg_constraints = {"total_count": constraints.nonnegative_integer, "probs": constraints.unit_interval,
                       "logits": constraints.real}
    has_enumerate_support = True

    def __init__(self, total_count=1, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError(f"Binomial: give exactly one of probs or logits, not "
                             f"{'both' if probs is not None else 'neither'}")
        if probs is not None:
            self.total_count, self.probs = broadcast_all(total_count, probs)
            self.total_count = self.total_count.to(dtype=self.probs.dtype)
        else:
            self.total_count, self.logits = broadcast_all(total_count, logits)
            self.total_count = self.total_count.to(dtype=self.logits.dtype)
        self._param = self.probs if probs is not None else self.logits
        super().__init__(self._param.shape, (), validate_args)

    @property
    def support(self):
        return constraints.integer_interval(0, self.total_count)

    @property
    def mean(self):
        return self.total_count * self.probs

    @property
    def mode(self):
        return ((self.total_count + 1) * self.probs).floor().clamp(max=self.total_count)

    @property
    def variance(self):
        return self.total_count * self.probs * (1 - self.probs)

    def sample(self, sample_shape=()):
        shape = tuple(self._extended_shape(sample_shape))
        with no_grad(), _on(self._param.device):
            n = self.total_count.detach().data
            p = self.probs.detach().data
            draws = rng_for(self._param.device).binomial(n.astype(np.int64), p, size=shape)
            return _wrap(draws.astype(p.dtype))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        n, logits = self.total_count, self.logits
        log_factorials = (n + 1).lgamma() - (value + 1).lgamma() - (n - value + 1).lgamma()
        # n log(1 + e^logits), overflow-free
        normalize = n * _clamp_by_zero(logits) + n * (-logits.abs()).exp().log1p()
        return value * logits + log_factorials - normalize

    def entropy(self):
        """-sum p log p over 0..n; needs one total_count for the whole batch, as torch."""
        values = self.enumerate_support(expand=False)
        log_prob = self.log_prob(values)
        return -(log_prob.exp() * log_prob).sum(0)

    def enumerate_support(self, expand=True):
        """0..n of shape (n + 1,) + batch_shape (expanded) or (n + 1,) + (1,) * len(batch_shape)."""
        n = int(self.total_count.max().item()) if self.total_count.numel() else 0
        if self.total_count.numel() and not bool((self.total_count == n).all()):
            raise NotImplementedError(f"Binomial.enumerate_support needs one total_count for the whole batch, got "
                                      f"values from {int(self.total_count.min().item())} to {n}")
        values = arange(n + 1, dtype=self._param.dtype, device=self._param.device)
        values = values.reshape(-1, *((1,) * len(self.batch_shape)))
        return values.expand(-1, *self.batch_shape) if expand else values
