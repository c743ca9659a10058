"""tensor.autograd.Variable: PyTorch's pre-0.4 wrapper, kept so that old scripts port (PINN and MAML
code still writes `x = Variable(torch.from_numpy(a).float(), requires_grad=True)`).

Since PyTorch 0.4 a Variable is a Tensor: `Variable(t, requires_grad=True)` returns a new leaf on t's
memory (no history), `volatile` is ignored with a warning, and `isinstance(x, Variable)` holds for every
Tensor.
"""
from __future__ import annotations

import warnings

from .tensor import Tensor

__all__ = ["Variable"]


class _VariableMeta(type):
    def __instancecheck__(cls, other):
        return isinstance(other, Tensor)


class Variable(metaclass=_VariableMeta):
    """Variable(data, requires_grad=False): data (a Tensor) detached, as a leaf that requires grad or not."""

    def __new__(cls, data, requires_grad=False, volatile=False):
        if not isinstance(data, Tensor):
            raise TypeError(f"Variable: data has to be a Tensor, got {type(data).__name__}; "
                            "make one with tensor.tensor(...) first (or drop Variable: Tensors track grad)")
        if volatile:
            warnings.warn("Variable: volatile was removed and has no effect; use `with tensor.no_grad():` instead",
                          UserWarning, stacklevel=2)
        return data.detach().requires_grad_(bool(requires_grad))
