"""Helpers the distributions share: broadcasting parameters, cached derived parameters, probs <-> logits."""
from __future__ import annotations

import numbers

from .. import dtypes
from ..autograd import enable_grad
from ..creation import as_tensor
from ..ops.convert import finfo
from ..ops.views import broadcast_tensors
from ..tensor import Tensor


class lazy_property:  # noqa: N801 - torch's name
    """A property computed on first use and then stored on the instance (probs from logits, or back).

    Computed with grad enabled, as PyTorch's is: sample() reads probs under no_grad, and the value it
    caches must still carry the graph that later losses (a policy's probs) backpropagate through."""

    def __init__(self, compute):
        self.compute = compute
        self.__doc__ = compute.__doc__
        self.__name__ = compute.__name__

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        with enable_grad():
            value = self.compute(instance)
        instance.__dict__[self.__name__] = value  # shadows this non-data descriptor from now on
        return value


def broadcast_all(*values):
    """Tensors and Python numbers -> tensors of one broadcast shape, on the tensors' device and float dtype.

    Numbers take the first float tensor's dtype (the default dtype where there is none), so a float64 loc
    with scale=1.0 stays float64. The results are expand views: gradients reach the original tensors.
    """
    tensors = [v for v in values if isinstance(v, Tensor)]
    for v in values:
        if not isinstance(v, (Tensor, numbers.Number)):
            raise TypeError(f"distribution parameters must be Tensors or numbers, got {type(v).__name__}")
    floats = [t for t in tensors if t.is_floating_point()]
    dtype = floats[0].dtype if floats else dtypes.get_default_dtype()
    device = tensors[0].device if tensors else None
    converted = [v if isinstance(v, Tensor) else as_tensor(float(v), dtype=dtype, device=device) for v in values]
    return broadcast_tensors(*converted)


def clamp_probs(probs):
    """probs kept inside (eps, 1 - eps) of their dtype, so log(p) and log1p(-p) stay finite."""
    eps = finfo(probs.dtype).eps
    return probs.clamp(min=eps, max=1 - eps)


def probs_to_logits(probs, is_binary=False):
    """Log-odds (binary) or log-probabilities (categorical) from probabilities."""
    clamped = clamp_probs(probs)
    return clamped.log() - (-clamped).log1p() if is_binary else clamped.log()


def logits_to_probs(logits, is_binary=False):
    """sigmoid (binary) or softmax over the last dim (categorical)."""
    return logits.sigmoid() if is_binary else logits.softmax(-1)


def sum_rightmost(value, dim: int):
    """value summed over its `dim` rightmost dims (none when dim is 0): log densities of independent dims."""
    return value.sum(tuple(range(-dim, 0))) if dim > 0 else value


class BinaryParameters:
    """probs and logits of a success probability (Bernoulli, Binomial, Geometric): the one given to
    __init__ is stored, the other computed on first use (logits from probs clamped inside (eps, 1 - eps))."""

    @lazy_property
    def logits(self):
        return probs_to_logits(self.probs, is_binary=True)

    @lazy_property
    def probs(self):
        return logits_to_probs(self.logits, is_binary=True)
