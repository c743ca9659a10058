"""Geometric: the number of failures before the first success of Bernoulli(probs) trials."""
from __future__ import annotations

from ..autograd import no_grad
from ..nn.functional import binary_cross_entropy_with_logits
from ..ops.compare import where
from ..ops.convert import finfo
from ..random import rand
from . import constraints
from .distribution import Distribution, _raise_if_invalid
from .utils import BinaryParameters, broadcast_all


class Geometric(BinaryParameters, Distribution):
    """P(k) = (1 - p)^k p for k = 0, 1, ...; give probs (in (0, 1]) or logits. Samples are floats,
    floor(log u / log1p(-p)) for u ~ U(tiny, 1), without a graph (no rsample)."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError(f"Geometric: give exactly one of probs or logits, not "
                             f"{'both' if probs is not None else 'neither'}")
        if probs is not None:
            (self.probs,) = broadcast_all(probs)
        else:
            (self.logits,) = broadcast_all(logits)
        param = self.probs if probs is not None else self.logits
        super().__init__(param.shape, (), validate_args)
        if self._validate_args and probs is not None:
            with no_grad():
                _raise_if_invalid(self.probs > 0, self.probs, f"parameter probs of {self!r} to be in (0, 1] (with "
                                  "probs = 0 no success ever comes; pass logits for probabilities near 0)")

    @property
    def mean(self):
        return 1.0 / self.probs - 1.0

    @property
    def mode(self):
        return self.probs.new_zeros(self.probs.shape)

    @property
    def variance(self):
        return (1.0 / self.probs - 1.0) / self.probs

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        with no_grad():
            probs = self.probs.detach()
            u = rand(*shape, dtype=probs.dtype, device=probs.device).clamp(min=finfo(probs.dtype).tiny)
            certain = probs == 1  # log1p(-1) is -inf: the first trial always succeeds
            failures = (u.log() / (-where(certain, 0.5, probs)).log1p()).floor()
            return where(certain, 0.0, failures)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        probs = self.probs
        # 0 * log(0) counts as 0 where p == 1 and k == 0
        safe = where((probs == 1) & (value == 0), 0.0, probs)
        return value * (-safe).log1p() + probs.log()

    def entropy(self):
        return binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none") / self.probs
