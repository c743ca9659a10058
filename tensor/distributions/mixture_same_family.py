"""MixtureSameFamily: a mixture whose K components are the last batch dim of one distribution.

    mix = Categorical(logits=w)                                   # batch_shape B, K components
    gmm = MixtureSameFamily(mix, Independent(Normal(mu, sd), 1))  # mu, sd: B + (K, D)
"""
from __future__ import annotations

from ..autograd import no_grad
from .categorical import Categorical
from .distribution import Distribution


class MixtureSameFamily(Distribution):
    """p(x) = sum_k pi_k p_k(x); batch_shape is the component's batch_shape less its last dim (K), event_shape
    the component's. log_prob is a logsumexp over the components; samples pick a component per draw and
    gather its sample (no rsample, as torch)."""

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, mixture_distribution, component_distribution, validate_args=None):
        if not isinstance(mixture_distribution, Categorical):
            raise ValueError(f"MixtureSameFamily: mixture_distribution must be a Categorical, got "
                             f"{type(mixture_distribution).__name__}")
        if not isinstance(component_distribution, Distribution):
            raise ValueError(f"MixtureSameFamily: component_distribution must be a Distribution, got "
                             f"{type(component_distribution).__name__}")
        comp_batch = tuple(component_distribution.batch_shape)
        mix_batch = tuple(mixture_distribution.batch_shape)
        if len(comp_batch) < 1:
            raise ValueError("MixtureSameFamily: component_distribution needs a batch dim for the K components "
                             "(its batch_shape is ())")
        k = mixture_distribution.logits.shape[-1]
        if comp_batch[-1] != k:
            raise ValueError(f"MixtureSameFamily: the mixture has {k} components but component_distribution's last "
                             f"batch dim is {comp_batch[-1]} (batch_shape {comp_batch}); they must agree")
        for m, c in zip(reversed(mix_batch), reversed(comp_batch[:-1])):
            if m != 1 and c != 1 and m != c:
                raise ValueError(f"MixtureSameFamily: mixture batch_shape {mix_batch} does not broadcast with the "
                                 f"component batch_shape less its last dim, {comp_batch[:-1]}")
        self._mixture_distribution = mixture_distribution
        self._component_distribution = component_distribution
        self._num_component = k
        self._event_ndims = len(component_distribution.event_shape)
        super().__init__(comp_batch[:-1], component_distribution.event_shape, validate_args)

    @property
    def mixture_distribution(self):
        return self._mixture_distribution

    @property
    def component_distribution(self):
        return self._component_distribution

    @property
    def support(self):
        return self._component_distribution.support

    def _pad(self, x):
        """x (..., K) -> (..., K) + (1,) * event dims, to weight component statistics."""
        return x.reshape(*x.shape, *((1,) * self._event_ndims))

    @property
    def mean(self):
        probs = self._pad(self._mixture_distribution.probs)
        return (probs * self._component_distribution.mean).sum(-1 - self._event_ndims)

    @property
    def variance(self):
        """The law of total variance: E[Var] + Var[E] over the components."""
        probs = self._pad(self._mixture_distribution.probs)
        dim = -1 - self._event_ndims
        mean_cond_var = (probs * self._component_distribution.variance).sum(dim)
        diff = self._component_distribution.mean - self.mean.unsqueeze(dim)
        return mean_cond_var + (probs * diff.square()).sum(dim)

    def _pad_value(self, value):
        return value.unsqueeze(-1 - self._event_ndims)

    def cdf(self, value):
        cdf_x = self._component_distribution.cdf(self._pad_value(value))
        return (cdf_x * self._mixture_distribution.probs).sum(-1)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        log_prob_x = self._component_distribution.log_prob(self._pad_value(value))  # (S, B, K)
        log_mix = self._mixture_distribution.logits.log_softmax(-1)
        return (log_prob_x + log_mix).logsumexp(-1)

    def sample(self, sample_shape=()):
        with no_grad():
            extended = tuple(self._extended_shape(sample_shape))
            sample_shape = extended[:len(extended) - len(self._batch_shape) - self._event_ndims]
            x = self._component_distribution.sample(sample_shape)  # S + B + (K,) + E
            index = self._mixture_distribution.sample(sample_shape).expand(*sample_shape, *self._batch_shape)
            index = index.reshape(*index.shape, 1, *((1,) * self._event_ndims))
            index = index.expand(*index.shape[:index.ndim - self._event_ndims], *self._event_shape)
            dim = len(sample_shape) + len(self._batch_shape)
            return x.gather(dim, index).squeeze(dim)
