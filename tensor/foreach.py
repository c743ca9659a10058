"""torch._foreach_*: one op over a list of tensors (EMA and Polyak target updates, hand-written optimizers).

    with tensor.no_grad():
        tensor._foreach_lerp_(list(target.parameters()), list(net.parameters()), tau)

PyTorch fuses these into few kernels; here each is a loop over the tensors' own ops, so they give the same
values, keep autograd's in-place rules, and exist for the scripts that call them. The second argument of a
binary op is a number, a list of numbers, one tensor (broadcast to each), or a list of tensors. The in-place
forms (trailing _) return the list of the updated tensors, as torch 2's do.
"""
from __future__ import annotations

import numbers

from .tensor import Tensor

__all__ = [
    "_foreach_abs", "_foreach_abs_", "_foreach_add", "_foreach_add_", "_foreach_addcdiv_", "_foreach_addcmul_",
    "_foreach_clamp_max_", "_foreach_clamp_min_", "_foreach_copy_", "_foreach_div", "_foreach_div_",
    "_foreach_exp", "_foreach_exp_", "_foreach_lerp", "_foreach_lerp_", "_foreach_mul", "_foreach_mul_", "_foreach_neg", "_foreach_neg_",
    "_foreach_norm", "_foreach_sqrt", "_foreach_sqrt_", "_foreach_sub", "_foreach_sub_", "_foreach_zero_",
]


def _tensors(name, tensors):
    tensors = list(tensors)
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected a list of Tensors, got {type(t).__name__} at position {i}")
    return tensors


def _others(name, tensors, other):
    """other as one value per tensor: a number or a tensor repeated, or a list checked for length."""
    if isinstance(other, (numbers.Number, Tensor)):
        return [other] * len(tensors)
    other = list(other)
    if len(other) != len(tensors):
        raise ValueError(f"{name}: the lists have different lengths, {len(tensors)} and {len(other)}; "
                         "pass one value or tensor per tensor")
    return other


def _binary(method, with_alpha=False):
    def op(self, other, **kwargs):
        name = f"_foreach_{method}"
        if kwargs and not (with_alpha and set(kwargs) <= {"alpha"}):
            raise TypeError(f"{name}() got unexpected keyword arguments {sorted(kwargs)}")
        tensors = _tensors(name, self)
        return [getattr(t, method)(o, **kwargs) for t, o in zip(tensors, _others(name, tensors, other))]

    op.__name__ = f"_foreach_{method}"
    return op


def _unary(method):
    def op(self):
        return [getattr(t, method)() for t in _tensors(f"_foreach_{method}", self)]

    op.__name__ = f"_foreach_{method}"
    return op


_foreach_add, _foreach_add_ = _binary("add", with_alpha=True), _binary("add_", with_alpha=True)
_foreach_sub, _foreach_sub_ = _binary("sub", with_alpha=True), _binary("sub_", with_alpha=True)
_foreach_mul, _foreach_mul_ = _binary("mul"), _binary("mul_")
_foreach_div, _foreach_div_ = _binary("div"), _binary("div_")
_foreach_clamp_min_, _foreach_clamp_max_ = _binary("clamp_min_"), _binary("clamp_max_")
_foreach_copy_ = _binary("copy_")
_foreach_neg, _foreach_neg_ = _unary("neg"), _unary("neg_")
_foreach_abs, _foreach_abs_ = _unary("abs"), _unary("abs_")
_foreach_exp, _foreach_exp_ = _unary("exp"), _unary("exp_")
_foreach_sqrt, _foreach_sqrt_ = _unary("sqrt"), _unary("sqrt_")
_foreach_zero_ = _unary("zero_")


def _foreach_lerp(self, tensors1, weight):
    """self[i] + weight * (tensors1[i] - self[i]); weight a number or one tensor per pair."""
    name = "_foreach_lerp"
    tensors = _tensors(name, self)
    ends = _tensors(name, _others(name, tensors, tensors1))
    return [t.lerp(e, w) for t, e, w in zip(tensors, ends, _others(name, tensors, weight))]


def _foreach_lerp_(self, tensors1, weight):
    name = "_foreach_lerp_"
    tensors = _tensors(name, self)
    ends = _tensors(name, _others(name, tensors, tensors1))
    return [t.lerp_(e, w) for t, e, w in zip(tensors, ends, _others(name, tensors, weight))]


def _foreach_addcmul_(self, tensor1, tensor2, value=1):
    """self[i] += value * tensor1[i] * tensor2[i]; value a number or one number per tensor."""
    name = "_foreach_addcmul_"
    tensors = _tensors(name, self)
    firsts, seconds = (_tensors(name, _others(name, tensors, list(x))) for x in (tensor1, tensor2))
    return [t.addcmul_(a, b, value=v) for t, a, b, v in zip(tensors, firsts, seconds, _others(name, tensors, value))]


def _foreach_addcdiv_(self, tensor1, tensor2, value=1):
    """self[i] += value * tensor1[i] / tensor2[i]; value a number or one number per tensor."""
    name = "_foreach_addcdiv_"
    tensors = _tensors(name, self)
    firsts, seconds = (_tensors(name, _others(name, tensors, list(x))) for x in (tensor1, tensor2))
    return [t.addcdiv_(a, b, value=v) for t, a, b, v in zip(tensors, firsts, seconds, _others(name, tensors, value))]


def _foreach_norm(self, ord=2):  # noqa: A002 - torch's name
    """The vector norm of each tensor (0-d tensors), as torch.linalg.vector_norm(t, ord)."""
    from .linalg import vector_norm

    return [vector_norm(t, ord) for t in _tensors("_foreach_norm", self)]
