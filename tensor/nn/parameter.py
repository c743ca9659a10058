"""Parameter (a Tensor a Module trains) and Buffer (a Tensor a Module keeps but does not train).

Assigning either to a Module attribute registers it: `self.weight = Parameter(w)` puts it in
`parameters()` and the state dict; `self.running_mean = Buffer(zeros(4))` is the same as
`self.register_buffer("running_mean", zeros(4))`, with `persistent=False` keeping it out of the
state dict.
"""
from __future__ import annotations

import copy

from ..creation import _to_array, empty
from ..tensor import Tensor, _wrap


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default and that Modules register as a parameter.

    Parameter(t) shares t's array (no copy), as in PyTorch; ops on a Parameter return plain Tensors.
    """

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = empty(0)
        self.data = data.data if isinstance(data, Tensor) else _to_array(data, copy=False)
        if requires_grad:
            self.requires_grad_(True)

    def __setattr__(self, name, value):
        # PyTorch's `param.data = t` (DLRM's init, weight surgery) swaps in t's storage: raygrad's .data is
        # the raw array, so take t's. Only on Parameter: plain tensors are made on every op's hot path.
        if name == "data" and isinstance(value, Tensor):
            value = value.data
        object.__setattr__(self, name, value)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol):
        # Stay a Parameter (with its grad flag) when pickled, e.g. when Ray ships a Module to an actor.
        rebuild, args = super().__reduce_ex__(protocol)
        return _rebuild_parameter, (rebuild, args)

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        result = Parameter(_wrap(self.data.copy()), self.requires_grad)
        memo[id(self)] = result
        if self._grad is not None:
            result._grad = copy.deepcopy(self._grad, memo)
        return result


def _rebuild_parameter(rebuild, args):
    t = rebuild(*args)
    return Parameter(t, t.requires_grad)


class Buffer(Tensor):
    """Marks a Tensor for registration as a buffer when assigned to a Module attribute.

    The Module stores a plain Tensor sharing this one's array; `persistent=False` keeps the buffer
    out of `state_dict()`.
    """

    def __init__(self, data=None, persistent=True):
        if data is None:
            data = empty(0)
        self.data = data.data if isinstance(data, Tensor) else _to_array(data, copy=False)
        self.persistent = bool(persistent)


def as_plain_tensor(t: Tensor) -> Tensor:
    """A plain Tensor sharing t's array and version counter (drops the Buffer marker class)."""
    if type(t) is Tensor:
        return t
    plain = _wrap(t.data)
    plain._version_box = t._version_counter()
    if t.requires_grad:
        plain.requires_grad_(True)
    return plain
