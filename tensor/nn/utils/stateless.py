"""functional_call: run a module with some of its parameters and buffers replaced, for one call.

The given tensors take the named entries' places for the duration of the call (gradients flow to
them, not to the module's own tensors) and the module is restored afterwards, even on error. Names
are dotted state-dict names ("0.weight", "bn.running_mean"). With tie_weights, a tensor registered
under several names (shared weights) is replaced under all of them when any one is given. An
in-place update of a replaced buffer (batch-norm statistics) lands in the given tensor, as in PyTorch.
"""
from __future__ import annotations

import contextlib

from ...tensor import Tensor

__all__ = ["functional_call"]

_MISSING = object()


def _untie(module, values):
    """values with each tied tensor's other names filled in; refuses different values for one tensor."""
    names_of = {}
    for name, tensor in list(module.named_parameters(remove_duplicate=False)) + list(
            module.named_buffers(remove_duplicate=False)):
        names_of.setdefault(id(tensor), set()).add(name)
    tied = {name: names for names in names_of.values() if len(names) > 1 for name in names}
    untied = dict(values)
    for given in [name for name in values if name in tied]:
        group = tied[given]
        if len({id(values[name]) for name in group if name in values}) > 1:
            raise ValueError(f"functional_call got multiple values for keys {sorted(group)}, which are tied. "
                             "Consider using tie_weights=False")
        for name in group:
            untied[name] = values[given]
    return untied


def _check_keys(module, values):
    expected = {name for name, _ in module.named_parameters(remove_duplicate=False)}
    expected |= {name for name, _ in module.named_buffers(remove_duplicate=False)}
    missing = sorted(expected - set(values))
    unexpected = sorted(set(values) - expected)
    errors = []
    if unexpected:
        errors.append(f"Unexpected key(s): {', '.join(map(repr, unexpected))}.")
    if missing:
        errors.append(f"Missing key(s): {', '.join(map(repr, missing))}.")
    if errors:
        raise RuntimeError(f"Error(s) in reparametrizing for {module._get_name()}:\n\t" + "\n\t".join(errors))


def _swap(module, dotted, value):
    """Put value in place of module's entry `dotted`; return what was there (_MISSING if nothing)."""
    prefix, _, name = dotted.rpartition(".")
    owner = module.get_submodule(prefix)
    if value is not _MISSING and value is not None and not isinstance(value, Tensor):
        raise TypeError(f"functional_call: the value for {dotted!r} must be a Tensor, got {type(value).__name__}")
    for table in (owner._parameters, owner._buffers):
        if name in table:
            old = table[name]
            if value is _MISSING:
                del table[name]
            else:
                table[name] = value  # straight into the table: a plain Tensor may stand in for a Parameter
            return old
    old = owner.__dict__.get(name, _MISSING)
    if value is _MISSING:
        owner.__dict__.pop(name, None)
    else:
        object.__setattr__(owner, name, value)
    return old


@contextlib.contextmanager
def _reparametrize_module(module, values, tie_weights=False, strict=False):
    given = values
    values = _untie(module, values) if tie_weights else values
    if strict:
        _check_keys(module, values)
    originals = {}
    try:
        for name, value in values.items():
            originals[name] = _swap(module, name, value)
        yield
    finally:
        current = {name: _swap(module, name, value) for name, value in reversed(list(originals.items()))}
        # a forward that assigned a new tensor to an entry hands it back through the caller's dict
        given.update({name: current[name] for name in given if current.get(name, _MISSING) is not _MISSING})


def functional_call(module, parameters_and_buffers, args=None, kwargs=None, *, tie_weights: bool = True,
                    strict: bool = False):
    """module(*args, **kwargs) with the named parameters and buffers replaced by the given tensors.

    parameters_and_buffers: a dict {dotted name: Tensor}, or a tuple of such dicts (merged; a name in two
    of them is an error). args: one argument or a tuple of them. strict=True requires exactly the module's
    parameter and buffer names."""
    if isinstance(parameters_and_buffers, (list, tuple)):
        merged = {}
        for part in parameters_and_buffers:
            repeated = sorted(set(merged) & set(part))
            if repeated:
                raise ValueError(f"functional_call: {', '.join(map(repr, repeated))} appeared in multiple "
                                 "dictionaries; each name must be given once")
            merged.update(part)
        parameters_and_buffers = merged
    if not isinstance(parameters_and_buffers, dict):
        raise TypeError("functional_call: parameters_and_buffers must be a dict of name -> Tensor (or a tuple of "
                        f"them), got {type(parameters_and_buffers).__name__}")
    kwargs = {} if kwargs is None else kwargs
    args = () if args is None else (args if isinstance(args, tuple) else (args,))
    with _reparametrize_module(module, parameters_and_buffers, tie_weights=tie_weights, strict=strict):
        return module(*args, **kwargs)
