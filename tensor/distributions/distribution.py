"""Distribution: the base class of torch.distributions' API (batch_shape, event_shape, sample, log_prob...).

A distribution over values of shape `event_shape`, one per index of `batch_shape`; `sample(sample_shape)`
returns sample_shape + batch_shape + event_shape. Parameters broadcast against each other at construction
(no expand() is needed). With validate_args (on by default, as in torch under `python` without -O),
parameters are checked against `arg_constraints` and log_prob's values against `support`.
"""
from __future__ import annotations

import numbers

from ..autograd import no_grad
from ..tensor import Size, Tensor
from . import constraints
from .utils import lazy_property


class Distribution:
    """The base class; subclasses set arg_constraints, support, has_rsample and the methods they support."""

    has_rsample = False
    has_enumerate_support = False
    arg_constraints: dict = {}
    support = None
    _validate_args = __debug__

    @staticmethod
    def set_default_validate_args(value: bool):
        """Turn argument validation on or off for distributions built without validate_args."""
        if value not in (True, False):
            raise ValueError(f"set_default_validate_args: expected True or False, got {value!r}")
        Distribution._validate_args = value

    def __init__(self, batch_shape=(), event_shape=(), validate_args=None):
        self._batch_shape = Size(batch_shape)
        self._event_shape = Size(event_shape)
        if validate_args is not None:
            self._validate_args = validate_args
        if self._validate_args:
            self._validate_parameters()

    # ------------------------------------------------------------------------------------------- shapes
    @property
    def batch_shape(self) -> Size:
        return self._batch_shape

    @property
    def event_shape(self) -> Size:
        return self._event_shape

    def _extended_shape(self, sample_shape=()) -> Size:
        """sample_shape + batch_shape + event_shape: the shape of sample(sample_shape)."""
        if isinstance(sample_shape, numbers.Integral):
            sample_shape = (sample_shape,)
        return Size(tuple(sample_shape) + tuple(self._batch_shape) + tuple(self._event_shape))

    # ----------------------------------------------------------------------------------- the interface
    @property
    def mean(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement mean")

    @property
    def mode(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement mode")

    @property
    def variance(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement variance")

    @property
    def stddev(self):
        return self.variance.sqrt()

    def sample(self, sample_shape=()):
        """Draws without a graph; reparameterisable distributions draw through rsample."""
        with no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape=()):
        raise NotImplementedError(f"{type(self).__name__} has no reparameterised sampler (has_rsample is False); "
                                  "use sample(), or a score-function estimator with log_prob")

    def sample_n(self, n: int):
        return self.sample((n,))

    def log_prob(self, value):
        raise NotImplementedError(f"{type(self).__name__} does not implement log_prob")

    def cdf(self, value):
        raise NotImplementedError(f"{type(self).__name__} does not implement cdf")

    def entropy(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement entropy")

    def perplexity(self):
        return self.entropy().exp()

    def enumerate_support(self, expand=True):
        raise NotImplementedError(f"{type(self).__name__} does not implement enumerate_support")

    # ------------------------------------------------------------------------------------- validation
    def _validate_parameters(self):
        for name, constraint in self.arg_constraints.items():
            if constraint is constraints.dependent:
                continue  # checked by the subclass (Uniform's low < high)
            if name not in self.__dict__ and isinstance(getattr(type(self), name, None), lazy_property):
                continue  # derived from the parameter that was given (logits from probs): not user input
            value = getattr(self, name)
            _raise_if_invalid(constraint.check(value), value,
                              f"parameter {name} of {self!r} to satisfy the constraint {constraint}")

    def _validate_sample(self, value):
        """log_prob's value: a tensor whose shape broadcasts with batch_shape + event_shape, inside the support."""
        if not isinstance(value, Tensor):
            raise TypeError(f"{type(self).__name__}.log_prob: value must be a Tensor, got {type(value).__name__}")
        _check_broadcastable(self, value)
        support = self.support
        _raise_if_invalid(support.check(value), value, f"value argument to be within the support ({support}) "
                          f"of the distribution {self!r}")

    def __repr__(self):
        shown = [f"{k}: {_describe(self.__dict__[k])}" for k in self.arg_constraints if k in self.__dict__]
        return f"{type(self).__name__}({', '.join(shown)})"


def _describe(param) -> str:
    """A scalar parameter by value, a larger one by shape (as torch's repr)."""
    if isinstance(param, Tensor) and param.numel() == 1:
        return repr(param.detach().reshape(()).item())
    return repr(param.shape) if isinstance(param, Tensor) else repr(param)


def _check_broadcastable(dist, value):
    """value.shape must end in something broadcastable with batch_shape + event_shape."""
    expected = tuple(dist.batch_shape) + tuple(dist.event_shape)
    actual = tuple(value.shape)
    event_dims = len(dist.event_shape)
    if event_dims and actual[-event_dims:] != tuple(dist.event_shape):
        raise ValueError(f"{type(dist).__name__}.log_prob: value shape {actual} must end in the event shape "
                         f"{tuple(dist.event_shape)}")
    for a, e in zip(reversed(actual), reversed(expected)):
        if a != e and a != 1 and e != 1:
            raise ValueError(f"{type(dist).__name__}.log_prob: value shape {actual} does not broadcast with "
                             f"batch_shape + event_shape {expected}")


def _raise_if_invalid(ok, value, what: str):
    """ValueError naming the first bad value and where it is, when `ok` (bool Tensor) has a False."""
    if bool(ok.all()):
        return
    value = value.detach()
    if tuple(value.shape[:ok.ndim]) != tuple(ok.shape):  # the check broadcast value against tensor bounds
        value = value.expand(*ok.shape, *value.shape[ok.ndim:])
    index = tuple((~ok).nonzero()[0].tolist()) if ok.ndim else ()
    bad_value = value[index] if index else value
    where = f" at index {index} of a tensor of shape {tuple(value.shape)}" if index else ""
    raise ValueError(f"Expected {what}, but found invalid values: {bad_value.tolist()}{where}")
