"""Bernoulli: 1 with probability `probs` (or sigmoid(`logits`)), else 0."""
from __future__ import annotations

from ..autograd import no_grad
from ..nn.functional import binary_cross_entropy_with_logits
from ..random import rand
from . import constraints
from .distribution import Distribution
from .utils import BinaryParameters, broadcast_all


class Bernoulli(BinaryParameters, Distribution):
    """Values 0.0 / 1.0 in the parameter's float dtype; batch_shape is the parameter's shape.

    log_prob and entropy are computed from the logits with the fused, overflow-free BCE-with-logits, so they
    stay finite (and their gradients exact) for logits of any size.
    """

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.boolean
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError(f"Bernoulli: give exactly one of probs or logits, not "
                             f"{'both' if probs is not None else 'neither'}")
        if probs is not None:
            (self.probs,) = broadcast_all(probs)
        else:
            (self.logits,) = broadcast_all(logits)
        self._param = self.probs if probs is not None else self.logits
        super().__init__(self._param.shape, (), validate_args)

    @property
    def param_shape(self):
        return self._param.shape

    @property
    def mean(self):
        return self.probs

    @property
    def mode(self):
        mode = (self.probs >= 0.5).to(dtype=self.probs.dtype)
        return mode.masked_fill(self.probs == 0.5, float("nan"))  # both outcomes equally likely

    @property
    def variance(self):
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        with no_grad():
            probs = self.probs.detach()
            return (rand(*shape, dtype=probs.dtype, device=probs.device) < probs).to(dtype=probs.dtype)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        return -binary_cross_entropy_with_logits(logits, value.to(dtype=logits.dtype), reduction="none")

    def entropy(self):
        return binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none")

    def enumerate_support(self, expand=True):
        values = self._param.new_tensor([0.0, 1.0])
        values = values.reshape(2, *((1,) * len(self.batch_shape)))
        return values.expand(2, *self.batch_shape) if expand else values
