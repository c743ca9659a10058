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

from .errors import AutogradError, DeviceError, broadcast_error
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
    or PyTorch 2's split: forward(*args) without ctx, and setup_context(ctx, inputs, output)

    On ctx: `save_for_backward(*arrays)` / `saved_tensors`, `needs_input_grad` (a bool per
    argument), `mark_non_differentiable(*outputs)`, `set_materialize_grads(False)` (None instead of
    zeros for outputs that got no gradient), `xp` (numpy or cupy), and any attribute you set.
    """

    # Defaults, overridden per instance only when used, to keep apply cheap.
    _saved = ()
    _saved_versions = None
    _released = False
    _non_diff = None
    _tensor_hooks = None
    _materialize_grads = True
    view_of = None  # set to an argument index on ops whose output is a view of that argument
    xp = np

    def __init__(self):
        self.needs_input_grad = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Done once per class, so apply (the per-op hot path) calls forward(ctx, *arrays) either way.
        if "forward" in cls.__dict__ and cls.setup_context is not None:
            cls.forward = staticmethod(_with_setup_context(cls.forward, cls.setup_context))

    forward = None
    backward = None
    # PyTorch 2's alternative: forward(*args) without ctx, plus setup_context(ctx, inputs, output) that
    # saves what backward needs; __init_subclass__ folds the pair into one forward(ctx, *args).
    setup_context = None
    # Optional: backward_graph(ctx, *grads) -> input gradients, written with Tensor ops on Tensor
    # grads (and graph_backward.saved_in_graph(ctx)), so that create_graph=True can differentiate
    # through this op again. Ops without it refuse create_graph with a clear error.
    backward_graph = None

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
            for index, (counter, version, _) in versions.items():
                if counter[0] != version:
                    raise AutogradError(
                        f"{type(self).__name__}: saved tensor {index} was modified by an in-place operation "
                        f"(version {counter[0]}, expected {version}); clone() it before changing it in place"
                    )
        return self._saved

    def mark_non_differentiable(self, *arrays):
        self._non_diff = {id(a) for a in arrays}

    def set_materialize_grads(self, value: bool):
        """False: backward gets None (not zeros) for an output that received no gradient."""
        self._materialize_grads = bool(value)

    def name(self):
        """The node's name, a method as PyTorch's grad_fn.name()."""
        return type(self).__name__

    def __repr__(self):
        return f"<{type(self).__name__}>"

    # -- apply
    @classmethod
    def apply(cls, *args):
        # The hot path of every op: one pass over the arguments that unwraps them, checks devices,
        # and builds the graph edges as it goes; helpers are inlined where a call would cost more
        # than the work it does.
        ctx = _new(cls)
        arrays = []
        needs = []
        edges = []
        any_needed = False
        first = None
        track = _mode.enabled
        for arg in args:
            if isinstance(arg, Tensor):
                if track and arg._view_src is not None and arg._view_version != arg._version_box[0]:
                    refresh_view(arg)  # its storage changed in place since its node was made
                data = arg.data
                if first is None:
                    first = data
                elif type(data) is not type(first) or (type(data) is not np.ndarray and data.device != first.device):
                    return cls.apply(*_cpu_scalars_to_device(cls, args))
                arrays.append(data)
                if track and arg._requires_grad:
                    any_needed = True
                    needs.append(True)
                    fn = arg.grad_fn
                    if fn is not None:
                        edges.append((fn, arg._output_nr))
                        continue
                    # grad_accumulator(arg), inlined: a leaf's node is looked up or made on every use.
                    ref = arg._acc_ref
                    fn = ref() if ref is not None else None
                    if fn is None:
                        fn = _new(AccumulateGrad)
                        fn.variable = arg
                        arg._acc_ref = _weakref(fn)
                    edges.append((fn, 0))
                    continue
            else:
                arrays.append(arg)
            needs.append(False)
            edges.append(None)
        ctx.needs_input_grad = needs
        if first is not None and type(first) is not np.ndarray:
            from .backend import array_module

            ctx.xp = array_module(first)
        try:
            raw = cls.forward(ctx, *arrays)
        except ValueError as error:  # (free when nothing is raised: only a failing op pays for this)
            raise broadcast_error(cls.__name__.removesuffix("Backward").lower(), arrays, error) from None
        if type(raw) is tuple:
            return _link_outputs(ctx, args, arrays, raw, edges if any_needed else None, track)
        if type(raw) is not np.ndarray:
            raw = _raw_output(ctx, raw)  # a NumPy scalar, a CuPy array, or a Tensor from a custom forward
        out = _new(Tensor)  # _wrap, inlined
        out.data = raw
        # Set on the instance although the class holds the same default: the next op that takes `out`
        # reads it, and CPython 3.11 reads an instance attribute 4x faster than a class default.
        out._view_src = None
        if any_needed:
            ctx.next_functions = edges
            ctx.sequence_nr = next(_sequence)
            dtype = raw.dtype
            ctx.output_meta = ((raw.shape, dtype),)
            if dtype.kind == "f" and (ctx._non_diff is None or id(raw) not in ctx._non_diff):
                out._requires_grad = True
                out.grad_fn = ctx
                out._output_nr = 0  # (read with grad_fn by the next op: see _view_src above)
            saved = ctx._saved
            if saved:
                if len(saved) == 1 and saved[0] is raw:  # exp, tanh, relu...: only the fresh output
                    box = out._version_box = [0]
                    ctx._saved_versions = {0: (box, 0, -1)}
                else:
                    _record_versions(ctx, args, arrays, (out,), (raw,))
        view_of = ctx.view_of
        if view_of is not None:  # a view shares its base's versions even when nothing is recorded
            base = args[view_of]  # _mark_view, inlined
            counter = base._version_box
            if counter is None:
                counter = base._version_box = [0]
            out._version_box = counter
            out._base = base if base._base is None else base._base
            if track:  # a view made under no_grad stays out of the graph for good, as in PyTorch
                out._view_src = (cls, args, view_of, None)  # how to make it again: see refresh_view
                out._view_version = counter[0]
        return out


_new = object.__new__
_weakref = weakref.ref


def _with_setup_context(forward, setup_context):
    """forward(ctx, *args) made of a ctx-less forward(*args) and setup_context(ctx, inputs, output)."""

    def forward_with_ctx(ctx, *args):
        output = forward(*args)
        setup_context(ctx, args, output)
        return output

    return functools.wraps(forward)(forward_with_ctx)


def _link_outputs(ctx, args, arrays, raw, edges, track):
    """Wrap the outputs of a multi-output node and, when `edges` (some input needs a gradient),
    record them: each points back at ctx with its output number."""
    wrapped = tuple(_wrap(r.data if isinstance(r, Tensor) else r) for r in raw)  # (see _raw_output)
    if edges is not None:
        ctx.next_functions = edges
        ctx.sequence_nr = next(_sequence)
        ctx.output_meta = [(t.data.shape, t.data.dtype) for t in wrapped]
        non_diff = ctx._non_diff
        for nr, t in enumerate(wrapped):
            if t.data.dtype.kind == "f" and (non_diff is None or id(t.data) not in non_diff):
                t._requires_grad = True
                t.grad_fn = ctx
                t._output_nr = nr
        if ctx._saved:
            _record_versions(ctx, args, arrays, wrapped, raw)
    view_of = ctx.view_of
    if view_of is not None:
        base = args[view_of]
        for nr, t in enumerate(wrapped):
            _mark_view(base, t)
            if track:
                t._view_src = (type(ctx), args, view_of, nr)
                t._view_version = t._version_box[0]
    return wrapped


def grad_accumulator(leaf):
    """The leaf's AccumulateGrad node, shared by every graph alive that uses the leaf.

    The leaf holds it weakly (the node holds the leaf strongly), so no cycle keeps either alive.
    """
    ref = leaf._acc_ref
    acc = ref() if ref is not None else None
    if acc is None:
        acc = AccumulateGrad(leaf)
        leaf._acc_ref = _weakref(acc)
    return acc


def _raw_output(ctx, raw):
    """forward's result as an array: a NumPy scalar (ufuncs return scalars for 0-d results) becomes a
    0-d array, in ctx's saved arrays too; a Tensor (a custom forward that built its result with
    tensor.zeros_like, say) gives its array. CuPy arrays pass as they are."""
    if isinstance(raw, np.generic):
        array = np.asarray(raw)
        if ctx._saved:
            ctx._saved = tuple(array if saved is raw else saved for saved in ctx._saved)
        return array
    if isinstance(raw, Tensor):
        return raw.data
    return raw


def _record_versions(ctx, args, arrays, outputs, raws):
    """Remember the version of each saved input/output so in-place changes are caught at backward,
    and whose it is (argument j as j, output k as -1 - k), so that create_graph can put it back in
    the graph (tensor/graph_backward.py).

    Saved arrays are matched by identity against the raw outputs first, then the raw arguments
    (`arrays`, as forward got them); arrays made inside forward have no Tensor and need no check.
    Plain loops with hand-kept counters: this runs on every op that saves an input, and they cost
    a small mul 8% fewer instructions than enumerate and `.data` lookups did.
    """
    versions = {}
    index = -1
    for array in ctx._saved:
        index += 1
        if array is None:
            continue
        tag = 0
        for data in raws:
            tag -= 1
            if data is array:
                owner = outputs[-1 - tag]
                break
        else:
            tag = -1
            for data in arrays:
                tag += 1
                if data is array and isinstance(args[tag], Tensor):
                    owner = args[tag]
                    break
            else:
                continue
        counter = owner._version_box
        if counter is None:
            counter = owner._version_box = [0]
        versions[index] = (counter, counter[0], tag)
    ctx._saved_versions = versions


def _cpu_scalars_to_device(cls, args):
    """args with their 0-d CPU tensors moved to the one GPU the others are on: PyTorch lets a 0-d CPU
    tensor (`torch.tensor(0.5)`, a distribution's default parameter) join a CUDA op as a scalar would,
    and its gradient flows back to the CPU. Any other mix of devices is refused."""
    tensors = [a for a in args if isinstance(a, Tensor)]
    others = {a.device for a in tensors if not (a.device.type == "cpu" and a.ndim == 0)}
    if len(others) != 1 or next(iter(others)).type == "cpu":
        raise DeviceError(
            f"{cls.__name__.removesuffix('Backward')}: operands are on different devices "
            f"({', '.join(str(a.device) for a in tensors)}); move them to one device with .to(device) first"
        )
    device = others.pop()
    return [a.to(device) if isinstance(a, Tensor) and a.device != device else a for a in args]


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

from .view_history import _mark_view, refresh_view  # noqa: E402  (they need _mode and _new above)
from .engine import backward, grad, queue_callback  # noqa: E402  (the engine needs Function/AccumulateGrad above)
from .gradcheck import gradcheck, gradgradcheck  # noqa: E402
from .graph_backward import saved_in_graph  # noqa: E402
from . import autograd_functional as functional  # noqa: E402, F401  (tensor.autograd.functional.jacobian, ...)
from . import autograd_function as function  # noqa: E402, F401  (tensor.autograd.function.once_differentiable)
from .autograd_variable import Variable  # noqa: E402  (PyTorch's legacy wrapper: returns a Tensor)
from .anomaly import (  # noqa: E402  (it swaps Function.apply and the engine's _call_backward)
    detect_anomaly, is_anomaly_check_nan_enabled, is_anomaly_enabled, set_detect_anomaly,
)

__all__ = [
    "Function",
    "Variable",
    "backward",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "saved_in_graph",
    "queue_callback",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "detect_anomaly",
    "set_detect_anomaly",
    "is_anomaly_enabled",
    "is_anomaly_check_nan_enabled",
]
