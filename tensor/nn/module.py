"""Module: the base class of every layer and model, with PyTorch's registration rules.

Parameters, buffers and submodules are registered by assigning them as attributes and live in
three ordered dicts (`_parameters`, `_buffers`, `_modules`); `__getattr__` finds them there, so
`self.weight` reads the registered Parameter. Everything that walks the tree (parameters(),
state_dict(), to(), train()) goes through `named_modules()`.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict

from .. import dtypes
from ..autograd import no_grad
from ..backend import as_device, to_device_array
from ..tensor import Tensor, _parse_to_args
from . import _hooks, _state
from .parameter import Buffer, Parameter, as_plain_tensor


class Module:
    """Base class for layers and models: subclass it, assign layers in __init__, write forward()."""

    training: bool
    _version = 1  # bumped by a subclass whose state-dict layout changes (PyTorch's convention)

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(
                f"{type(self).__name__}.__init__() got unexpected arguments {args} {kwargs}; "
                "Module.__init__ takes none (call super().__init__() with no arguments)"
            )
        # object.__setattr__: our own __setattr__ needs these dicts to exist already.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_hooks_with_kwargs", set())
        object.__setattr__(self, "_forward_hooks_always_called", set())
        object.__setattr__(self, "_backward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_backward_hooks", OrderedDict())
        for table in _state.HOOK_TABLES:
            object.__setattr__(self, table, OrderedDict())

    forward = None  # subclasses define forward(*inputs)

    # ----------------------------------------------------------------------------------- calling
    def __call__(self, *args, **kwargs):
        if not (self._forward_pre_hooks or self._forward_hooks or self._backward_hooks or self._backward_pre_hooks):
            return self.forward(*args, **kwargs)
        return self._call_with_hooks(args, kwargs)

    # Registration and the hooked call path live in _hooks.py; bound here as methods.
    _call_with_hooks = _hooks.call_with_hooks
    _run_always_called_hooks = _hooks.run_always_called_hooks
    register_forward_pre_hook = _hooks.register_forward_pre_hook
    register_forward_hook = _hooks.register_forward_hook
    register_full_backward_pre_hook = _hooks.register_full_backward_pre_hook
    register_full_backward_hook = _hooks.register_full_backward_hook
    register_backward_hook = _hooks.register_backward_hook
    _add_hook = _hooks.add_hook

    # ------------------------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() is called")
            self._drop(name, keep=self._parameters)  # a replaced parameter keeps its place in the order
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to parameter {name!r} of {type(self).__name__}: "
                    "wrap it in nn.Parameter, or assign None"
                )
            params[name] = None
        elif isinstance(value, Module):
            if params is None:
                raise AttributeError("cannot assign submodules before Module.__init__() is called")
            self._drop(name, keep=self._modules)
            self._modules[name] = value
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to submodule {name!r}: expected a Module or None"
                )
            self._modules[name] = None
        elif isinstance(value, Buffer) or (params is not None and name in self._buffers):
            if params is None:
                raise AttributeError("cannot assign buffers before Module.__init__() is called")
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} to buffer {name!r}: expected a Tensor or None")
            persistent = value.persistent if isinstance(value, Buffer) else name not in self._non_persistent_buffers_set
            self._drop(name, keep=self._buffers)
            self.register_buffer(name, value, persistent)
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only called when normal lookup fails; during unpickling the dicts may not exist yet.
        state = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            entries = state.get(table)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        if not self._drop(name):
            object.__delattr__(self, name)

    def _drop(self, name, keep=None) -> bool:
        """Forget `name` wherever it is registered (or set as a plain attribute) except in `keep`, the table
        about to take a new value for it (which thus keeps its place, as in PyTorch); True if it was."""
        found = False
        for table in (self._parameters, self._buffers, self._modules, self.__dict__):
            if table is not keep and name in table:
                del table[name]
                found = True
        if keep is not self._buffers:
            self._non_persistent_buffers_set.discard(name)
        return found

    def register_parameter(self, name: str, param: Parameter | None):
        """Add a parameter (or None, a declared but absent one such as a disabled bias)."""
        self._check_name(name, "parameter", self.__dict__.get("_parameters"))
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot register {type(param).__name__} as parameter {name!r}: expected nn.Parameter or None"
            )
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True):
        """Add a tensor that is state but not trained (running statistics); persistent ones are saved."""
        self._check_name(name, "buffer", self.__dict__.get("_buffers"))
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot register {type(tensor).__name__} as buffer {name!r}: expected a Tensor or None")
        self._buffers[name] = None if tensor is None else as_plain_tensor(tensor)
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def register_module(self, name: str, module: Module | None):
        self._check_name(name, "submodule", self.__dict__.get("_modules"))
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"cannot register {type(module).__name__} as submodule {name!r}: expected a Module")
        self._modules[name] = module

    add_module = register_module

    def _check_name(self, name, kind, table):
        """A name may be re-registered in its own table, never shadow another attribute."""
        if table is None:
            raise AttributeError(f"cannot register a {kind} before Module.__init__() is called")
        if not isinstance(name, str):
            raise TypeError(f"{kind} name must be a string, got {type(name).__name__} {name!r}")
        if not name or "." in name:
            raise KeyError(f"{kind} name must be a non-empty string without '.', got {name!r}")
        if hasattr(self, name) and name not in table:
            raise KeyError(f"attribute {name!r} already exists on {type(self).__name__}; pick another {kind} name")

    # --------------------------------------------------------------------------------- iteration
    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        """Yield (dotted name, module) for self and every submodule, depth first."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if self in memo:
                return
            memo.add(self)
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        seen = set()
        for name, child in self._modules.items():
            if child is not None and child not in seen:
                seen.add(child)
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def _named_members(self, table, prefix, recurse, remove_duplicate):
        seen = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, table).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """Yield (dotted name, Parameter); a parameter shared by two layers comes once (first name)."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def num_parameters(self, only_trainable: bool = False) -> int:
        """How many scalars the parameters hold (each shared parameter counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not only_trainable)

    def get_submodule(self, target: str) -> Module:
        """The submodule at a dotted path ('encoder.layers.0'); '' is self."""
        module = self
        walked = []
        for part in target.split(".") if target else []:
            child = module._modules.get(part)
            if child is None:
                where = ".".join(walked) or type(self).__name__
                raise AttributeError(
                    f"get_submodule({target!r}): {where} has no submodule {part!r} "
                    f"(it has: {', '.join(module._modules) or 'none'})"
                )
            walked.append(part)
            module = child
        return module

    def get_parameter(self, target: str) -> Parameter:
        return self._get_member(target, "_parameters", "parameter")

    def get_buffer(self, target: str) -> Tensor:
        return self._get_member(target, "_buffers", "buffer")

    def _get_member(self, target, table, kind):
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        entries = getattr(module, table)
        if name not in entries:
            raise AttributeError(f"get_{kind}({target!r}): {type(module).__name__} has no {kind} {name!r}")
        return entries[name]

    # ------------------------------------------------------------------------------------ modes
    def train(self, mode: bool = True):
        """Set training mode on self and every submodule (dropout drops, batch norm uses batch stats)."""
        if not isinstance(mode, bool):
            raise ValueError(f"train(mode): mode must be a bool, got {mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True):
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def compile(self, *args, **kwargs) -> None:
        """torch's Module.compile(): checks torch.compile's arguments; the module runs eagerly as before
        (see tensor/compiler.py: raygrad has no graph compiler)."""
        from ..compiler import compile as compile_fn

        compile_fn(self, *args, **kwargs)

    def zero_grad(self, set_to_none: bool = True):
        """Drop (or zero in place) every parameter's .grad."""
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad.data[...] = 0
                param.grad._bump_version()

    def apply(self, fn):
        """Call fn(module) on every submodule (children first) and on self; returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------------ devices and dtypes
    def to(self, *args, **kwargs):
        """to(device), to(dtype), to(device, dtype), to(tensor): moves/casts in place, returns self.

        Parameters keep their identity (only their arrays change), so an optimizer built before
        the move still updates the moved parameters. dtype applies to floating tensors only.
        memory_format (tensor.channels_last) is accepted and leaves the parameters in C order: a layout
        in memory changes no values, and the ops take inputs of any layout.
        """
        device, dtype = _parse_to_args(args, kwargs)
        if dtype is not None and dtype.kind != "f":
            raise TypeError(f"Module.to only accepts floating dtypes, got {dtype}")
        return self._convert(device, dtype)

    def cpu(self):
        return self._convert(as_device("cpu"), None)

    def cuda(self, device=None):
        spec = "cuda" if device is None else (f"cuda:{device}" if isinstance(device, int) else device)
        return self._convert(as_device(spec), None)

    def float(self):  # noqa: A003 - PyTorch's method names
        return self._convert(None, dtypes.float32)

    def double(self):
        return self._convert(None, dtypes.float64)

    def half(self):
        return self._convert(None, dtypes.float16)

    def type(self, dst_type):  # noqa: A003
        return self._convert(None, dtypes.as_dtype(dst_type))

    def _convert(self, device, dtype):
        with no_grad():
            for module in self.modules():
                for table in (module._parameters, module._buffers):
                    for value in table.values():
                        if value is not None:
                            _convert_in_place(value, device, dtype)
                            if value.grad is not None:
                                _convert_in_place(value.grad, device, dtype)
        return self

    # ---------------------------------------------------------------------------------- state
    state_dict = _state.state_dict
    load_state_dict = _state.load_state_dict
    _save_to_state_dict = _state.save_to_state_dict
    _load_from_state_dict = _state.load_from_state_dict
    get_extra_state = _state.get_extra_state
    set_extra_state = _state.set_extra_state
    register_state_dict_pre_hook = _state.register_state_dict_pre_hook
    register_state_dict_post_hook = _state.register_state_dict_post_hook
    _register_state_dict_hook = _state.register_state_dict_hook
    register_load_state_dict_pre_hook = _state.register_load_state_dict_pre_hook
    _register_load_state_dict_pre_hook = _state.register_load_state_dict_pre_hook_private
    register_load_state_dict_post_hook = _state.register_load_state_dict_post_hook

    # ---------------------------------------------------------------------------------- repr
    def extra_repr(self) -> str:
        """The text inside this module's parentheses (its constructor arguments); override it."""
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        return _state.module_repr(self)

    def __dir__(self):
        names = itertools.chain(super().__dir__(), self._parameters, self._buffers, self._modules)
        return sorted(set(names))

    def __setstate__(self, state):
        self.__dict__.update(state)
        for table in _state.HOOK_TABLES + ("_backward_pre_hooks", "_backward_hooks"):  # pickled before these existed
            self.__dict__.setdefault(table, OrderedDict())
        self.__dict__.setdefault("_forward_hooks_always_called", set())


def _convert_in_place(t: Tensor, device, dtype):
    """Swap t's array for one on `device` with `dtype` (floating tensors only change dtype)."""
    data = t.data
    if device is not None:
        data = to_device_array(data, device)
    if dtype is not None and data.dtype.kind == "f" and data.dtype != dtype:
        data = data.astype(dtype)
    if data is not t.data:
        t.data = data
