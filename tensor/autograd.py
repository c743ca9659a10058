"""Reverse-mode autodiff: Function (one op = one node), grad mode, and the backward engine.

A Function's `forward(ctx, *args)` and `backward(ctx, *grads)` work on raw arrays (numpy or
cupy; `ctx.xp` is the module), never on Tensors. `Function.apply` unwraps Tensor arguments,
runs forward, wraps the outputs and, when grad is on and an input requires it, links the node
into the graph. The node *is* the ctx: it holds its saved arrays and the edges to its inputs'
nodes, so the graph points only from outputs down to inputs and a dropped loss frees it all.

Backward functions must never modify the incoming gradient arrays in place: the engine may hand
the same array to several consumers.
"""
from __future__ import annotations

import functools
import itertools
import threading
import weakref

import numpy as np

from .errors import AutogradError, DeviceError
from .tensor import Tensor, _wrap

# ---------------------------------------------------------------------------------------- grad mode


class _GradMode(threading.local):
    enabled = True


_mode = _GradMode()


def is_grad_enabled() -> bool:
    return _mode.enabled


class set_grad_enabled:
    """Context manager and decorator that turns graph recording on or off (per thread)."""

    def __init__(self, mode: bool = True):
        self.mode = bool(mode)
        self.prev = _mode.enabled
        _mode.enabled = self.mode  # like torch: calling it as a function sets the mode at once

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _mode.enabled = self.prev

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(self.mode):
                return fn(*args, **kwargs)

        _mode.enabled = self.prev  # decorating must not change the mode
        return wrapper


class no_grad(set_grad_enabled):
    """`with no_grad():` / `@no_grad()`: ops inside record no graph."""

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    def __init__(self):
        super().__init__(True)


# ----------------------------------------------------------------------------------------- Function

_sequence = itertools.count()


class Function:
    """One differentiable operation. Subclass it and write `forward` and `backward` as staticmethods.

    forward(ctx, *args) -> array or tuple of arrays      (Tensor args arrive as raw arrays)
    backward(ctx, *grads) -> one gradient (array or None) per forward argument

    On ctx: `save_for_backward(*arrays)` / `saved_tensors`, `needs_input_grad` (a bool per
    argument), `mark_non_differentiable(*outputs)`, `xp` (numpy or cupy), and any attribute you set.
    """

    # Defaults, overridden per instance only when used, to keep apply cheap.
    _saved = ()
    _saved_versions = None
    _released = False
    _non_diff = None
    _tensor_hooks = None
    view_of = None  # set to an argument index on ops whose output is a view of that argument
    xp = np

    def __init__(self):
        self.needs_input_grad = ()

    forward = None
    backward = None

    # -- ctx API
    def save_for_backward(self, *arrays):
        self._saved = arrays

    @property
    def saved_tensors(self):
        if self._released:
            raise AutogradError(
                f"{type(self).__name__}: trying to backward through the graph a second time (its saved "
                "arrays were freed after the first backward); pass retain_graph=True to the first backward"
            )
        versions = self._saved_versions
        if versions:
            for index, (counter, version) in versions.items():
                if counter[0] != version:
                    raise AutogradError(
                        f"{type(self).__name__}: saved tensor {index} was modified by an in-place operation "
                        f"(version {counter[0]}, expected {version}); clone() it before changing it in place"
                    )
        return self._saved

    def mark_non_differentiable(self, *arrays):
        self._non_diff = {id(a) for a in arrays}

    @property
    def name(self):
        return type(self).__name__

    def __repr__(self):
        return f"<{type(self).__name__}>"

    # -- apply
    @classmethod
    def apply(cls, *args):
        ctx = _new(cls)
        arrays = []
        needs = []
        first = None
        any_needed = False
        track = _mode.enabled
        for arg in args:
            if isinstance(arg, Tensor):
                data = arg.data
                if first is None:
                    first = data
                elif type(data) is not type(first) or (type(data) is not np.ndarray and data.device != first.device):
                    _raise_mixed_devices(cls, args)
                need = track and arg._requires_grad
                any_needed = any_needed or need
                arrays.append(data)
                needs.append(need)
            else:
                arrays.append(arg)
                needs.append(False)
        ctx.needs_input_grad = needs
        if first is not None and type(first) is not np.ndarray:
            from .backend import array_module

            ctx.xp = array_module(first)
        raw = cls.forward(ctx, *arrays)
        if not any_needed:
            wrapped = tuple(_wrap(r) for r in raw) if type(raw) is tuple else _wrap(raw)
            if ctx.view_of is not None:  # a view shares its base's versions even when nothing is recorded
                _mark_views(args[ctx.view_of], wrapped if type(wrapped) is tuple else (wrapped,))
            return wrapped
        ctx.next_functions = [_edge(arg) if need else None for arg, need in zip(args, needs)]
        ctx.sequence_nr = next(_sequence)
        if type(raw) is tuple:
            return _link_outputs(ctx, args, raw)
        out = _wrap(raw)
        raw = out.data
        ctx.output_meta = ((raw.shape, raw.dtype),)
        if raw.dtype.kind == "f" and (ctx._non_diff is None or id(raw) not in ctx._non_diff):
            out._requires_grad = True
            out.grad_fn = ctx
        if ctx.view_of is not None:
            _mark_views(args[ctx.view_of], (out,))
        if ctx._saved:
            _record_versions(ctx, args, (out,))
        return out


_new = object.__new__


def _link_outputs(ctx, args, raw):
    """Record the outputs of a multi-output node: each points back at ctx with its output number."""
    wrapped = tuple(_wrap(r) for r in raw)
    ctx.output_meta = [(t.data.shape, t.data.dtype) for t in wrapped]
    non_diff = ctx._non_diff
    for nr, t in enumerate(wrapped):
        if t.data.dtype.kind == "f" and (non_diff is None or id(t.data) not in non_diff):
            t._requires_grad = True
            t.grad_fn = ctx
            t._output_nr = nr
    if ctx.view_of is not None:
        _mark_views(args[ctx.view_of], wrapped)
    if ctx._saved:
        _record_versions(ctx, args, wrapped)
    return wrapped


def _mark_views(base, views):
    """Make `views` share `base`'s version counter, so in-place changes through either are seen."""
    counter = base._version_counter()
    root = base if base._base is None else base._base
    for t in views:
        t._version_box = counter
        t._base = root


def _edge(tensor):
    fn = tensor.grad_fn
    if fn is not None:
        return fn, tensor._output_nr
    return grad_accumulator(tensor), 0


def grad_accumulator(leaf):
    """The leaf's AccumulateGrad node, shared by every graph alive that uses the leaf.

    The leaf holds it weakly (the node holds the leaf strongly), so no cycle keeps either alive.
    """
    ref = leaf._acc_ref
    acc = ref() if ref is not None else None
    if acc is None:
        acc = AccumulateGrad(leaf)
        leaf._acc_ref = weakref.ref(acc)
    return acc


def _record_versions(ctx, args, outputs):
    """Remember the version of each saved input/output so in-place changes are caught at backward."""
    owners = {id(t.data): t for t in args if isinstance(t, Tensor)}
    for t in outputs:
        owners[id(t.data)] = t
    versions = {}
    for index, saved in enumerate(ctx._saved):
        owner = owners.get(id(saved))
        if owner is not None:
            counter = owner._version_box
            if counter is None:
                counter = owner._version_box = [0]
            versions[index] = (counter, counter[0])
    ctx._saved_versions = versions


def _raise_mixed_devices(cls, args):
    devices = [str(a.device) for a in args if isinstance(a, Tensor)]
    raise DeviceError(
        f"{cls.__name__.removesuffix('Backward')}: operands are on different devices ({', '.join(devices)}); "
        "move them to one device with .to(device) first"
    )


class AccumulateGrad:
    """The node at a leaf: adds the incoming gradient into `variable.grad`."""

    __slots__ = ("variable", "__weakref__")
    sequence_nr = float("inf")  # like PyTorch: a ready leaf runs first, so grad hooks (DDP) fire early
    next_functions = ()
    _tensor_hooks = None

    def __init__(self, variable: Tensor):
        self.variable = variable

    @property
    def output_meta(self):
        return [(self.variable.data.shape, self.variable.data.dtype)]

    def __repr__(self):
        return "<AccumulateGrad>"


def _accumulate(variable: Tensor, grad, owned: bool):
    """Add `grad` into variable.grad. `owned` says the engine may keep `grad` itself without a copy."""
    if grad.dtype != variable.dtype:
        grad = grad.astype(variable.dtype)
        owned = True
    current = variable._grad
    if current is None:
        if not owned or grad.base is not None:
            grad = grad.copy()
        variable._grad = _wrap(grad)
    else:
        current.data += grad
    hooks = variable._post_acc_hooks
    if hooks:
        for hook in list(hooks.values()):
            hook(variable)


# ------------------------------------------------------------------------------------------- engine

from .engine import backward, grad, queue_callback  # noqa: E402  (the engine needs Function/AccumulateGrad above)
from .gradcheck import gradcheck  # noqa: E402

__all__ = [
    "Function",
    "backward",
    "grad",
    "gradcheck",
    "queue_callback",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
]
