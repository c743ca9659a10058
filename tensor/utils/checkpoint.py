"""Activation checkpointing (torch.utils.checkpoint.checkpoint): trade compute for memory.

    from tensor.utils.checkpoint import checkpoint
    y = checkpoint(block, x)           # block's activations are not kept for backward

Forward runs `fn` under no_grad, so none of its intermediate arrays are saved; backward runs it
again with grad enabled on the saved inputs and backpropagates through that fresh graph: the
inputs' gradients flow on to the outer graph, and the parameters `fn` uses accumulate theirs in
`.grad` directly (PyTorch's reentrant variant). With `preserve_rng_state` (the default) the second
run draws the same random numbers as the first (the same dropout masks), by running it on a copy
of each default generator taken before the first.

With `use_reentrant=False` and no input that requires grad (a frozen embedding feeding LoRA blocks),
the parameters `fn` uses still get their gradients, as in PyTorch's non-reentrant variant: the first
run records its graph just long enough to find those parameters, which become extra inputs of the
checkpoint node so that its output joins the graph.

Not for use inside DistributedDataParallel: the inner backward would fire DDP's gradient hooks
(and its end-of-backward callback) for the block's parameters before the outer backward is done.
"""
from __future__ import annotations

import contextlib
import copy
import warnings

from .. import random as _random
from ..autograd import AccumulateGrad, Function, enable_grad, is_grad_enabled, no_grad
from ..engine import backward as _backward
from ..errors import AutogradError
from ..tensor import Tensor, _wrap


def checkpoint(function, *args, preserve_rng_state=True, use_reentrant=None, **kwargs):
    """function(*args, **kwargs), recomputed in backward instead of storing its activations.

    `args` may mix Tensors and other values; `kwargs` are passed as they are (Tensors in kwargs get
    no gradient, as in PyTorch's reentrant checkpoint). Returns what `function` returns: a Tensor
    or a tuple of Tensors. `use_reentrant=False` differs only where no input requires grad (see the
    module docstring); otherwise both variants run the reentrant way."""
    if not callable(function):
        raise TypeError(f"checkpoint: function must be callable, got {type(function).__name__}")
    plan = _Plan(function, args, kwargs, preserve_rng_state)
    tensors = [a for a in args if isinstance(a, Tensor)]
    if is_grad_enabled() and not any(t.requires_grad for t in tensors):
        if use_reentrant is False:
            return _through_parameters(plan, tensors)
        warnings.warn("checkpoint: none of the inputs requires grad, so the output has no graph and the "
                      "function's parameters get no gradient; make an input require grad, or call the "
                      "function directly", stacklevel=2)
    return _Checkpoint.apply(plan, *tensors)


def _through_parameters(plan, tensors):
    """Run the function once with its graph recorded, to find the leaves requiring grad that it
    uses; then drop that graph (one block's activations at a time, as in backward) and give the
    leaves to the checkpoint node as extra inputs. Without such leaves nothing needs a graph."""
    out = plan.call(tensors)
    outputs = _as_outputs(out)
    leaves = _leaves(outputs)
    if not leaves:
        return out
    plan.single = isinstance(out, Tensor)
    plan.ready = tuple(o.data for o in outputs)
    plan.n_tensors = len(tensors)
    return _Checkpoint.apply(plan, *tensors, *leaves)


def _leaves(outputs):
    """The Tensors requiring grad in which the graphs of `outputs` end, each once."""
    found = {id(o): o for o in outputs if o.requires_grad and o.grad_fn is None}
    stack, seen = [o.grad_fn for o in outputs if o.grad_fn is not None], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, AccumulateGrad):
            found.setdefault(id(node.variable), node.variable)
        else:
            stack.extend(edge[0] for edge in node.next_functions if edge is not None)
    return list(found.values())


class _Plan:
    """What backward needs to run the function again: the function, where the Tensors sit among
    the arguments, and the random generators as they were before the first run."""

    def __init__(self, function, args, kwargs, preserve_rng_state):
        self.function, self.args, self.kwargs = function, args, kwargs
        self.generators = _snapshot_generators() if preserve_rng_state else None
        self.single = None
        self.ready = None  # outputs already computed by _through_parameters
        self.n_tensors = None  # the function's Tensor arguments; the rest are leaves it uses

    def call(self, tensors):
        it = iter(tensors)
        args = [next(it) if isinstance(a, Tensor) else a for a in self.args]
        return self.function(*args, **self.kwargs)


class _Checkpoint(Function):
    @staticmethod
    def forward(ctx, plan, *arrays):
        arrays = arrays[:plan.n_tensors]
        if plan.ready is not None:
            raw, plan.ready = plan.ready, None
        else:
            with no_grad():
                out = plan.call([_wrap(a) for a in arrays])
            raw = tuple(t.data for t in _as_outputs(out))
            plan.single = isinstance(out, Tensor)
        ctx.plan = plan
        ctx.save_for_backward(*arrays)
        return raw[0] if plan.single else raw

    @staticmethod
    def backward(ctx, *grads):
        plan, arrays = ctx.plan, ctx.saved_tensors
        extra = len(ctx.needs_input_grad) - 1 - len(arrays)  # the leaves: their grads are accumulated below
        needs = ctx.needs_input_grad[1:1 + len(arrays)]
        inputs = []
        for array, need in zip(arrays, needs):
            t = _wrap(array)
            t.requires_grad_(need)
            inputs.append(t)
        with enable_grad(), _generators(plan.generators):
            outputs = _as_outputs(plan.call(inputs))
        roots = [(o, g) for o, g in zip(outputs, grads) if g is not None and o.requires_grad]
        if roots:
            _backward([o for o, _ in roots], [_wrap(g) for _, g in roots])
        grads = [t.grad.data if (need and t.grad is not None) else None for t, need in zip(inputs, needs)]
        return (None, *grads, *[None] * extra)


def _as_outputs(out):
    outputs = (out,) if isinstance(out, Tensor) else out
    if not isinstance(outputs, tuple) or not outputs or not all(isinstance(o, Tensor) for o in outputs):
        raise AutogradError(f"checkpoint: the function must return a Tensor or a tuple of Tensors, got "
                            f"{type(out).__name__}")
    return outputs


def _snapshot_generators():
    """Copies of the default generators that exist now (a device's first use creates its own)."""
    try:
        return {device: copy.deepcopy(gen) for device, gen in _random._default_generators.items()}
    except Exception as exc:  # a generator that cannot be copied: say so rather than replay other masks
        raise AutogradError(f"checkpoint: could not save the random generators' state ({exc!r}); pass "
                            "preserve_rng_state=False if the function draws no random numbers") from None


@contextlib.contextmanager
def _generators(snapshot):
    """Run with copies of `snapshot` as the default generators, then put the current ones back."""
    if snapshot is None:
        yield
        return
    saved = dict(_random._default_generators)
    _random._default_generators.update({device: copy.deepcopy(gen) for device, gen in snapshot.items()})
    try:
        yield
    finally:
        _random._default_generators.clear()
        _random._default_generators.update(saved)
