"""Module forward and full backward hooks: their registration and the hooked call path.

Kept apart from module.py, which attaches these functions as Module methods, so each file stays
about one concept. Module.__call__ keeps the no-hook fast path (straight to forward) and comes here
only when a hook table is non-empty; the backward-hook node itself lives in _backward_hooks.py.
"""
from __future__ import annotations

import warnings

from ..tensor import _Handle
from . import _backward_hooks


def call_with_hooks(self, args, kwargs):
    with_kwargs = self._hooks_with_kwargs
    for key, hook in list(self._forward_pre_hooks.items()):
        if key in with_kwargs:
            result = hook(self, args, kwargs)
            if result is not None:
                args, kwargs = result
        else:
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
    backward_hook = None
    if self._backward_hooks or self._backward_pre_hooks:
        backward_hook = _backward_hooks.BackwardHook(self)
        args = backward_hook.setup_inputs(args)
    output, called = None, set()
    try:
        output = self.forward(*args, **kwargs)
        for key, hook in list(self._forward_hooks.items()):
            called.add(key)
            result = hook(self, args, kwargs, output) if key in with_kwargs else hook(self, args, output)
            if result is not None:
                output = result
    except Exception:
        self._run_always_called_hooks(args, kwargs, output, called)
        raise
    if backward_hook is not None:
        output = backward_hook.setup_outputs(output)
    return output


def run_always_called_hooks(self, args, kwargs, output, called):
    """After forward (or a hook) raised: the always_call hooks that have not run yet, errors silenced."""
    for key, hook in list(self._forward_hooks.items()):
        if key in self._forward_hooks_always_called and key not in called:
            try:
                hook(self, args, kwargs, output) if key in self._hooks_with_kwargs else hook(self, args, output)
            except Exception as error:  # noqa: BLE001 - the forward's own error is the one to raise
                warnings.warn(f"forward hook with always_call=True raised {error!r} while handling an error "
                              "raised in forward; that error is raised", stacklevel=3)


def register_forward_pre_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False):
    """Call `hook(module, args) -> None | new args` before forward; returns a handle with remove().

    with_kwargs=True: `hook(module, args, kwargs) -> None | (new args, new kwargs)`.
    prepend=True runs it before the hooks already registered.
    """
    return self._add_hook(self._forward_pre_hooks, hook, prepend, with_kwargs)


def register_forward_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False,
                          always_call: bool = False):
    """Call `hook(module, args, output) -> None | new output` after forward; returns a handle.

    with_kwargs=True: `hook(module, args, kwargs, output)`. always_call=True: also when forward
    raises (with output None), e.g. to pop a context a pre-hook pushed.
    """
    handle = self._add_hook(self._forward_hooks, hook, prepend, with_kwargs)
    if always_call:
        self._forward_hooks_always_called.add(handle.id)
    return handle


def register_full_backward_pre_hook(self, hook, prepend: bool = False):
    """Call `hook(module, grad_output) -> None | new grad_output` when the gradients of this module's
    outputs are computed (a tuple, one entry per output, None where no gradient flows); returns a handle."""
    return self._add_hook(self._backward_pre_hooks, hook, prepend, False)


def register_full_backward_hook(self, hook, prepend: bool = False):
    """Call `hook(module, grad_input, grad_output) -> None | new grad_input` when the gradients of this
    module's positional inputs are computed (one entry per argument, None for non-Tensors); returns a handle.
    Inputs must not be modified in place inside forward, as in PyTorch."""
    return self._add_hook(self._backward_hooks, hook, prepend, False)


def register_backward_hook(self, hook):
    """PyTorch's deprecated module backward hook, run as the full one (register_full_backward_hook):
    grad_input holds the gradients of the module's inputs. PyTorch's old hook gives those of the last
    operation inside forward instead (for Linear, its bias, input and transposed weight), which scripts
    rarely rely on: they register it to log or rescale gradients."""
    return self._add_hook(self._backward_hooks, hook, False, False)


def add_hook(self, table, hook, prepend, with_kwargs):
    handle = _Handle(table, hook)
    if prepend:
        table.move_to_end(handle.id, last=False)
    if with_kwargs:
        self._hooks_with_kwargs.add(handle.id)  # handle ids are unique across all tables
    return handle
