"""Module state dicts (PyTorch's key names and load semantics) and the Module repr tree.

Kept apart from module.py, which attaches these functions as Module methods, so each file stays
about one concept. Keys are dotted paths: "0.weight", "encoder.layers.1.bias", "bn.running_mean".
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple

from ..autograd import no_grad
from ..backend import to_device_array
from ..creation import _to_array
from ..tensor import Tensor, _Handle


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What load_state_dict returns: the keys it could not fill and the keys it did not use."""

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


# ------------------------------------------------------------------------------------------ hooks

# The hook tables every Module has (PyTorch's attribute names, which some libraries read directly).
HOOK_TABLES = ("_state_dict_pre_hooks", "_state_dict_hooks", "_load_state_dict_pre_hooks",
               "_load_state_dict_post_hooks")


def register_state_dict_pre_hook(self, hook):
    """Call `hook(module, prefix, keep_vars)` before this module writes its state dict entries."""
    return _Handle(self._state_dict_pre_hooks, hook)


def register_state_dict_post_hook(self, hook):
    """Call `hook(module, state_dict, prefix, local_metadata) -> None` after this module (and its children)
    wrote their entries; the hook may edit state_dict in place."""
    return _Handle(self._state_dict_hooks, _PublicHook(hook))


def register_state_dict_hook(self, hook):
    """PyTorch's private form of register_state_dict_post_hook: a dict returned by the hook replaces the
    state dict (only at the module state_dict() was called on)."""
    return _Handle(self._state_dict_hooks, hook)


def register_load_state_dict_pre_hook(self, hook):
    """Call `hook(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
    error_msgs)` before this module loads its entries (rename old checkpoint keys here)."""
    return register_load_state_dict_pre_hook_private(self, hook, with_module=True)


def register_load_state_dict_pre_hook_private(self, hook, with_module=False):
    """PyTorch's `_register_load_state_dict_pre_hook`: the hook gets the module first only if with_module."""
    return _Handle(self._load_state_dict_pre_hooks, (hook, with_module))


def register_load_state_dict_post_hook(self, hook):
    """Call `hook(module, incompatible_keys) -> None` after this module and its children loaded; the hook may
    edit incompatible_keys.missing_keys / .unexpected_keys in place (strict=True sees the result)."""
    return _Handle(self._load_state_dict_post_hooks, hook)


class _PublicHook:
    """A state_dict post-hook registered through the public API, which must return None."""

    def __init__(self, hook):
        self.hook = hook

    def __call__(self, *args):
        if self.hook(*args) is not None:
            raise RuntimeError("state_dict post-hook must return None; edit the state_dict in place")


# ------------------------------------------------------------------------------------ state_dict


def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False):
    """An ordered dict of every parameter and persistent buffer, keyed by dotted name.

    Values are detached tensors sharing memory with the module (keep_vars=True gives the
    Parameters themselves), so copy or save them before training on.
    """
    if destination is None:
        destination = OrderedDict()
        destination._metadata = OrderedDict()
    local_metadata = {"version": self._version}
    metadata = getattr(destination, "_metadata", None)
    if metadata is not None:
        metadata[prefix[:-1]] = local_metadata
    for hook in self._state_dict_pre_hooks.values():
        hook(self, prefix, keep_vars)
    self._save_to_state_dict(destination, prefix, keep_vars)
    for name, child in self._modules.items():
        if child is not None:
            child.state_dict(destination=destination, prefix=f"{prefix}{name}.", keep_vars=keep_vars)
    for hook in self._state_dict_hooks.values():
        result = hook(self, destination, prefix, local_metadata)
        if result is not None:  # only a private-API hook may return (the public one raises above)
            destination = result
    return destination


def save_to_state_dict(self, destination, prefix, keep_vars):
    """Write this module's own (not its children's) parameters and persistent buffers, and its extra state."""
    for name, value in _local_state(self):
        destination[prefix + name] = value if keep_vars else value.detach()
    if type(self).get_extra_state is not get_extra_state:
        destination[prefix + EXTRA_STATE_KEY] = self.get_extra_state()


EXTRA_STATE_KEY = "_extra_state"


def get_extra_state(self):
    """Override (with set_extra_state) to keep any picklable value under `<prefix>_extra_state` in the state dict."""
    raise RuntimeError(f"{type(self).__name__}.get_extra_state() is not implemented; override it together "
                       "with set_extra_state() to store extra state in the state_dict")


def set_extra_state(self, state):
    """Override (with get_extra_state) to restore what get_extra_state returned, on load_state_dict."""
    raise RuntimeError(f"{type(self).__name__}.set_extra_state() is not implemented, but the state_dict has "
                       f"{EXTRA_STATE_KEY!r} for it; override it together with get_extra_state()")


def _local_state(module):
    for name, param in module._parameters.items():
        if param is not None:
            yield name, param
    for name, buf in module._buffers.items():
        if buf is not None and name not in module._non_persistent_buffers_set:
            yield name, buf


# ------------------------------------------------------------------------------- load_state_dict


def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
    """Copy values from `state_dict` into the parameters and buffers, in place.

    Values may be Tensors, NumPy/CuPy arrays or any DLPack tensor (a PyTorch state dict loads
    as is); each is cast to the target's dtype and moved to its device. Wrongly shaped values
    always raise; with strict=True missing or unexpected keys raise too, and with strict=False
    they are returned as (missing_keys, unexpected_keys). assign=True takes the given arrays
    as the new values instead of copying into the existing ones.
    """
    if not hasattr(state_dict, "keys"):
        raise TypeError(f"load_state_dict expects a dict of tensors, got {type(state_dict).__name__}")
    metadata = getattr(state_dict, "_metadata", None)
    state_dict = OrderedDict(state_dict)  # a module's _load_from_state_dict may edit its copy
    if metadata is not None:
        state_dict._metadata = metadata
    missing, unexpected, errors = [], [], []

    def load(module, prefix):
        local_metadata = {} if metadata is None else metadata.get(prefix[:-1], {})
        if assign:
            local_metadata = dict(local_metadata, assign_to_params_buffers=True)
        module._load_from_state_dict(state_dict, prefix, local_metadata, True, missing, unexpected, errors)
        for name, child in module._modules.items():
            if child is not None:
                load(child, f"{prefix}{name}.")
        if module._load_state_dict_post_hooks:
            missing[:], unexpected[:] = _unique(missing), _unique(unexpected)
            incompatible = _IncompatibleKeys(missing, unexpected)
            for hook in module._load_state_dict_post_hooks.values():
                if hook(module, incompatible) is not None:
                    raise AssertionError("a load_state_dict post-hook must return None; edit "
                                       "incompatible_keys.missing_keys / .unexpected_keys in place")

    load(self, "")
    missing, unexpected = _unique(missing), _unique(unexpected)
    if strict:
        if unexpected:
            errors.insert(0, "Unexpected key(s) in state_dict: " + _quoted(unexpected) + ".")
        if missing:
            errors.insert(0, "Missing key(s) in state_dict: " + _quoted(missing) + ".")
        if missing or unexpected:
            errors.append("Pass strict=False to load the matching keys and get the others back.")
    if errors:
        raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
    return _IncompatibleKeys(missing, unexpected)


def load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
    """Fill this module's own entries from `state_dict` (PyTorch's signature, for overriding)."""
    for hook, with_module in self._load_state_dict_pre_hooks.values():
        args = (state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        hook(self, *args) if with_module else hook(*args)
    assign = local_metadata.get("assign_to_params_buffers", False)
    local = dict(_local_state(self))
    for name, target in local.items():
        key = prefix + name
        if key not in state_dict:
            missing_keys.append(key)
            continue
        source = _as_array(state_dict[key], key, error_msgs)
        if source is None:
            continue
        if tuple(source.shape) != tuple(target.shape):
            error_msgs.append(
                f"size mismatch for {key}: copying a param with shape {tuple(source.shape)} from checkpoint, "
                f"the shape in current model is {tuple(target.shape)}."
            )
            continue
        _copy_into(target, source, assign)
    extra_key = prefix + EXTRA_STATE_KEY
    if type(self).set_extra_state is not set_extra_state:
        if extra_key in state_dict:
            self.set_extra_state(state_dict[extra_key])
        elif strict:
            missing_keys.append(extra_key)
    elif strict and extra_key in state_dict:
        unexpected_keys.append(extra_key)
    if strict:
        for key in state_dict:
            if not key.startswith(prefix) or key == extra_key:
                continue
            rest = key[len(prefix):]
            if rest.split(".", 1)[0] not in self._modules and rest not in local:
                unexpected_keys.append(key)


def _as_array(value, key, error_msgs):
    if isinstance(value, Tensor):
        return value.data
    try:
        return _to_array(value, copy=False)
    except Exception:  # noqa: BLE001 - any unreadable value becomes one line of the error report
        error_msgs.append(
            f"while copying the parameter named {key!r}: expected a Tensor or array from the checkpoint, "
            f"got {type(value).__name__}"
        )
        return None


def _copy_into(target: Tensor, source, assign: bool):
    """Copy `source` into target's array (cast and moved to it), or adopt it when assign=True."""
    with no_grad():
        if assign:
            target.data = to_device_array(source, target.device)
        else:
            moved = to_device_array(source, target.device)
            target.data[...] = moved if moved.dtype == target.dtype else moved.astype(target.dtype)
        target._bump_version()


def _unique(keys):
    return list(dict.fromkeys(keys))


def _quoted(keys):
    return ", ".join(f'"{k}"' for k in keys)


# ------------------------------------------------------------------------------------------ repr


def module_repr(module) -> str:
    """PyTorch's tree, plus a parameter count under a module that has submodules."""
    text = _tree(module)
    if not any(True for _ in module.children()):
        return text
    total = module.num_parameters()
    trainable = module.num_parameters(only_trainable=True)
    return f"{text}\nTotal parameters: {total:,} (trainable: {trainable:,})"


def _tree(module) -> str:
    from .module import Module

    if type(module).__repr__ is not Module.__repr__:  # a class with its own repr keeps it
        return repr(module)
    extra = module.extra_repr()
    extra_lines = extra.split("\n") if extra else []
    child_lines = [
        f"({name}): {'None' if child is None else _indent(_tree(child), 2)}" for name, child in module._modules.items()
    ]
    lines = extra_lines + child_lines
    body = ""
    if len(extra_lines) == 1 and not child_lines:
        body = extra_lines[0]
    elif lines:
        body = "\n  " + "\n  ".join(lines) + "\n"
    return f"{module._get_name()}({body})"


def _indent(text, spaces):
    first, *rest = text.split("\n")
    return "\n".join([first] + [" " * spaces + line for line in rest])


