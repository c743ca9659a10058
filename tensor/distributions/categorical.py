"""Categorical and OneHotCategorical: K outcomes with probabilities `probs` or unnormalised `logits`."""
from __future__ import annotations

import math

from ..autograd import no_grad
from ..creation import arange, as_tensor, full
from ..ops.convert import finfo
from ..ops.gather import one_hot
from ..ops.views import broadcast_tensors
from ..random import rand
from ..tensor import Tensor
from . import constraints
from .distribution import Distribution
from .utils import lazy_property, logits_to_probs, probs_to_logits


def _float_tensor(value, name):
    """A list or array parameter as a float tensor; a tensor as it is (keeping its graph)."""
    if isinstance(value, Tensor):
        return value
    try:
        return as_tensor(value).float() if not hasattr(value, "dtype") else as_tensor(value)
    except Exception as exc:  # noqa: BLE001 - re-raised with the parameter's name
        raise TypeError(f"{name} must be a Tensor, got {type(value).__name__}") from exc


class Categorical(Distribution):
    """Integers 0..K-1 drawn with probabilities along the last dim of probs or logits (..., K).

    batch_shape is the parameter's shape less its last dim; event_shape is (). probs are normalised to sum
    to 1, logits to log-probabilities (minus their logsumexp, which stays finite for large logits).
    """

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError(f"{type(self).__name__}: give exactly one of probs or logits, not "
                             f"{'both' if probs is not None else 'neither'}")
        param = _float_tensor(probs if probs is not None else logits, "probs" if probs is not None else "logits")
        if param.ndim < 1:
            raise ValueError(f"{type(self).__name__}: {'probs' if probs is not None else 'logits'} must have at "
                             f"least one dim (the K outcomes), got a 0-d tensor")
        if probs is not None:
            self.probs = param / param.sum(-1, keepdim=True)
        else:
            self.logits = param - param.logsumexp(-1, keepdim=True)
        self._param = self.probs if probs is not None else self.logits
        self._num_events = param.shape[-1]
        super().__init__(param.shape[:-1], (), validate_args)

    @lazy_property
    def logits(self):
        """Normalised log-probabilities (..., K)."""
        return probs_to_logits(self.probs)

    @lazy_property
    def probs(self):
        """Probabilities (..., K), summing to 1 along the last dim."""
        return logits_to_probs(self.logits)

    @property
    def param_shape(self):
        return self._param.shape

    @property
    def support(self):
        return constraints.integer_interval(0, self._num_events - 1)

    @property
    def mean(self):
        return full(self.batch_shape, math.nan, dtype=self._param.dtype, device=self._param.device)

    @property
    def variance(self):
        return self.mean

    @property
    def mode(self):
        return self.probs.argmax(-1)

    def sample(self, sample_shape=()):
        """int64 indices of shape sample_shape + batch_shape, by inverting the CDF at uniform draws."""
        shape = self._extended_shape(sample_shape)
        with no_grad():
            cdf = self.probs.detach().cumsum(-1)
            # u in (0, total]: a category of probability 0 is never chosen, not even at u == 0
            u = (1 - rand(*shape, 1, dtype=cdf.dtype, device=cdf.device)) * cdf[..., -1:]
            index = (cdf < u).sum(-1)
            return index.clamp(max=self._num_events - 1)  # rounding in the cumsum could give K

    def log_prob(self, value):
        """log probs[value] for int values of shape broadcastable with batch_shape."""
        if self._validate_args:
            self._validate_sample(value)
        value = value.long().unsqueeze(-1)
        value, log_pmf = broadcast_tensors(value, self.logits)
        return log_pmf.gather(-1, value[..., :1]).squeeze(-1)

    def entropy(self):
        """-sum p log p; logits of -inf (p == 0) are clamped so that 0 * log 0 counts as 0, not NaN."""
        logits = self.logits.clamp(min=finfo(self.logits.dtype).min)
        return -(logits * self.probs).sum(-1)

    def enumerate_support(self, expand=True):
        """0..K-1 of shape (K,) + batch_shape (expanded) or (K,) + (1,) * len(batch_shape)."""
        values = arange(self._num_events, device=self._param.device)
        values = values.reshape(-1, *((1,) * len(self.batch_shape)))
        return values.expand(-1, *self.batch_shape) if expand else values


class OneHotCategorical(Distribution):
    """Categorical with one-hot samples: event_shape (K,), values float one-hot vectors."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    support = constraints.one_hot
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        self._categorical = Categorical(probs, logits, validate_args=validate_args)
        param = self._categorical._param
        super().__init__(self._categorical.batch_shape, param.shape[-1:], validate_args)

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
    def mean(self):
        return self.probs

    @property
    def mode(self):
        return one_hot(self.probs.argmax(-1), self.event_shape[0]).to(dtype=self.probs.dtype)

    @property
    def variance(self):
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape=()):
        index = self._categorical.sample(sample_shape)
        return one_hot(index, self.event_shape[0]).to(dtype=self.probs.dtype)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return self._categorical.log_prob(value.argmax(-1))

    def entropy(self):
        return self._categorical.entropy()

    def enumerate_support(self, expand=True):
        k = self.event_shape[0]
        values = one_hot(arange(k, device=self.probs.device), k).to(dtype=self.probs.dtype)
        values = values.reshape(k, *((1,) * len(self.batch_shape)), k)
        return values.expand(k, *self.batch_shape, k) if expand else values


class OneHotCategoricalStraightThrough(OneHotCategorical):
    """OneHotCategorical whose rsample is the straight-through estimator (Bengio et al., 2013): the
    one-hot sample forward, the gradient of probs backward (DreamerV2's discrete latents)."""

    has_rsample = True

    def rsample(self, sample_shape=()):
        samples = self.sample(sample_shape)
        probs = self._categorical.probs  # (cached, so the same graph for every sample)
        return samples + (probs - probs.detach())

