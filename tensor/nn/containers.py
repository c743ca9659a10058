"""Containers: Sequential, ModuleList, ModuleDict, ParameterList, ParameterDict.

Children are registered under their position ("0", "1", ...) or key, which is where state-dict
names such as "0.weight" and "layers.1.bias" come from.
"""
from __future__ import annotations

import operator
from collections import OrderedDict

from ..tensor import Tensor
from .module import Module
from .parameter import Parameter


def _index(index, length, owner):
    """A non-negative position for `index`, or an IndexError naming the container and its length."""
    index = operator.index(index)
    if not -length <= index < length:
        raise IndexError(f"{owner}: index {index} is out of range for {length} entries")
    return index % length


class _IndexedModules(Module):
    """What Sequential and ModuleList share: modules stored under "0", "1", ... in order."""

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        if isinstance(index, slice):
            return type(self)._from_list(list(self._modules.values())[index])
        return self._modules[str(_index(index, len(self), type(self).__name__))]

    def __setitem__(self, index, module):
        self.register_module(str(_index(index, len(self), type(self).__name__)), module)

    def __delitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            del modules[index]
        else:
            del modules[_index(index, len(self), type(self).__name__)]
        self._renumber(modules)

    def _renumber(self, modules):
        self._modules.clear()
        for i, module in enumerate(modules):
            self.register_module(str(i), module)

    def append(self, module: Module):
        self.register_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module):
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._renumber(modules)

    def pop(self, index):
        """Remove and return the module at `index` (the rest are renumbered)."""
        module = self[index]
        del self[index]
        return module

    def __iadd__(self, other):
        return self.extend(other)

    def __dir__(self):
        return [name for name in super().__dir__() if not name.isdigit()]


class Sequential(_IndexedModules):
    """Runs its modules in order, each on the previous one's output.

    Sequential(m0, m1, ...) names them "0", "1", ...; Sequential(OrderedDict(name=module)) keeps
    the given names.
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for name, module in modules[0].items():
                self.register_module(name, module)
        else:
            for i, module in enumerate(modules):
                self.register_module(str(i), module)

    @classmethod
    def _from_list(cls, modules):
        return cls(*modules)

    def __getitem__(self, index):
        if isinstance(index, slice):  # keeps the children's names, as PyTorch does
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        return list(self._modules.values())[_index(index, len(self), "Sequential")]

    def __setitem__(self, index, module):
        name = list(self._modules)[_index(index, len(self), "Sequential")]
        self.register_module(name, module)

    def __add__(self, other):
        if not isinstance(other, Sequential):
            raise TypeError(f"can only add a Sequential to a Sequential, got {type(other).__name__}")
        return Sequential(*self, *other)

    def forward(self, input):
        for module in self._modules.values():
            input = module(input)
        return input


class ModuleList(_IndexedModules):
    """A list of modules, registered so their parameters are found; it has no forward of its own."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    @classmethod
    def _from_list(cls, modules):
        return cls(modules)

    def __add__(self, other):
        return ModuleList(list(self) + list(other))


class ModuleDict(Module):
    """An ordered dict of modules, registered under their keys."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module):
        self.register_module(key, module)

    def __delitem__(self, key: str):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def clear(self):
        self._modules.clear()

    def update(self, modules):
        pairs = modules.items() if hasattr(modules, "items") else modules
        for key, module in pairs:
            self[key] = module


def _as_parameter(value):
    return value if isinstance(value, Parameter) or not isinstance(value, Tensor) else Parameter(value)


class ParameterList(Module):
    """A list of parameters (tensors are wrapped in Parameter), registered as "0", "1", ..."""

    def __init__(self, values=None):
        super().__init__()
        for value in values or ():
            self.append(value)

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ParameterList(list(self)[index])
        return self._parameters[str(_index(index, len(self), "ParameterList"))]

    def __setitem__(self, index, value):
        self.register_parameter(str(_index(index, len(self), "ParameterList")), _as_parameter(value))

    def append(self, value):
        self.register_parameter(str(len(self)), _as_parameter(value))
        return self

    def extend(self, values):
        for value in values:
            self.append(value)
        return self

    def extra_repr(self):
        return "\n".join(f"({i}): Parameter containing: [{_describe(p)}]" for i, p in enumerate(self))


class ParameterDict(Module):
    """An ordered dict of parameters (tensors are wrapped in Parameter)."""

    def __init__(self, parameters=None):
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key: str) -> Parameter:
        return self._parameters[key]

    def __setitem__(self, key: str, value):
        self.register_parameter(key, _as_parameter(value))

    def __delitem__(self, key: str):
        del self._parameters[key]

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters)

    def __contains__(self, key):
        return key in self._parameters

    def keys(self):
        return self._parameters.keys()

    def items(self):
        return self._parameters.items()

    def values(self):
        return self._parameters.values()

    def get(self, key: str, default=None):
        return self._parameters.get(key, default)

    def pop(self, key: str) -> Parameter:
        value = self[key]
        del self[key]
        return value

    def popitem(self):
        key = next(reversed(self._parameters))
        return key, self.pop(key)

    def setdefault(self, key: str, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def clear(self):
        self._parameters.clear()

    def copy(self) -> ParameterDict:
        """A new ParameterDict holding the same Parameter objects."""
        return ParameterDict(self._parameters.copy())

    def update(self, parameters):
        """Add or replace entries. A plain dict goes in sorted by key, as in PyTorch (so state-dict and
        optimizer orders match its); an OrderedDict, a ParameterDict or a list of pairs keeps its order."""
        if isinstance(parameters, (OrderedDict, ParameterDict)):
            pairs = parameters.items()
        elif hasattr(parameters, "items"):
            pairs = sorted(parameters.items())
        else:
            pairs = parameters
        for key, value in pairs:
            self[key] = value

    def extra_repr(self):
        return "\n".join(f"({k}): Parameter containing: [{_describe(p)}]" for k, p in self.items())


def _describe(param):
    size = "x".join(str(n) for n in param.shape)
    where = "" if param.device.type == "cpu" else f" on {param.device}"
    return f"Tensor of type {param.dtype} of size {size}{where}"
