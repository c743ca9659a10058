"""Module backward hooks (register_full_backward_hook / register_full_backward_pre_hook), PyTorch's way.

When a module with backward hooks runs, its tensor inputs and its tensor outputs each pass through
one identity node (_HookNode). In backward the output node sees d(loss)/d(outputs) first: it runs the
pre-hooks (which may replace those gradients) and keeps them; the input node then sees
d(loss)/d(inputs) and runs the hooks as hook(module, grad_input, grad_output), which may replace
grad_input. Positions that are not Tensors (flags, None) appear as None in both tuples.
"""
from __future__ import annotations

import warnings

from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor, _wrap


class _HookNode(Function):
    """Identity on tensors; its backward hands the incoming gradients to `state.on_grads`."""

    @staticmethod
    def forward(ctx, state, *arrays):
        ctx.state = state
        if state.is_output:
            ctx.set_materialize_grads(False)  # an unused output's gradient stays None, as in PyTorch
        return arrays

    @staticmethod
    def backward(ctx, *grads):
        wrapped = [None if g is None else _wrap(g) for g in grads]
        result = ctx.state.on_grads(wrapped)
        return (None, *(None if g is None else (g.data if isinstance(g, Tensor) else g) for g in result))

    @staticmethod
    def backward_graph(ctx, *grads):
        return (None, *ctx.state.on_grads(list(grads)))


class BackwardHook:
    """The hook state of one module call: links the output node's gradients to the input node's."""

    def __init__(self, module):
        self.module = module
        self.grad_outputs = None
        self.input_index = None  # positions of the tensor inputs, None when none requires grad
        self.n_inputs = 0
        self.output_index = None
        self.n_outputs = 0

    def setup_inputs(self, args):
        self.n_inputs = len(args)
        args, self.input_index = self._wrap_tensors(args, _InputSide(self))
        return args

    def setup_outputs(self, output):
        is_tuple = isinstance(output, tuple)
        outputs = output if is_tuple else (output,)
        self.n_outputs = len(outputs)
        outputs, self.output_index = self._wrap_tensors(outputs, _OutputSide(self))
        return outputs if is_tuple else outputs[0]

    @staticmethod
    def _wrap_tensors(values, side):
        index = [i for i, v in enumerate(values) if isinstance(v, Tensor)]
        if not (is_grad_enabled() and any(values[i].requires_grad for i in index)):
            return values, None
        new = _HookNode.apply(side, *(values[i] for i in index))
        values = list(values)
        for i, t in zip(index, new):
            if not values[i].requires_grad:  # it passes through, but no gradient flows to it
                t.grad_fn, t._requires_grad = None, False
            values[i] = t
        return tuple(values), index

    def _pack(self, index, grads, size):
        packed = [None] * size
        for i, g in zip(index, grads):
            packed[i] = g
        return tuple(packed)

    def _run_hooks(self, grad_input):
        for hook in list(self.module._backward_hooks.values()):
            result = hook(self.module, grad_input, self.grad_outputs)
            if result is None:
                continue
            if len(result) != len(grad_input):
                raise RuntimeError(f"backward hook of {type(self.module).__name__} returned {len(result)} "
                                   f"grad_input entries, expected {len(grad_input)} (one per forward argument)")
            grad_input = tuple(result)
        return grad_input


class _OutputSide:
    is_output = True

    def __init__(self, owner):
        self.owner = owner

    def on_grads(self, grads):
        owner = self.owner
        owner.grad_outputs = owner._pack(owner.output_index, grads, owner.n_outputs)
        for hook in list(owner.module._backward_pre_hooks.values()):
            result = hook(owner.module, owner.grad_outputs)
            if result is None:
                continue
            if len(result) != owner.n_outputs:
                raise RuntimeError(f"backward pre-hook of {type(owner.module).__name__} returned {len(result)} "
                                   f"grad_output entries, expected {owner.n_outputs} (one per output)")
            owner.grad_outputs = tuple(result)
        grad_outputs = owner.grad_outputs
        if owner.input_index is None:  # no input requires grad: the hooks fire here, with grad_input all None
            warnings.warn("full backward hook fires on the module's outputs' gradients, since no input requires grad",
                          stacklevel=2)
            result = owner._run_hooks((None,) * owner.n_inputs)
            if any(g is not None for g in result):
                raise RuntimeError("a backward hook of a module whose inputs do not require grad must return None "
                                   "(or None for every gradient)")
            owner.grad_outputs = None
        return [grad_outputs[i] for i in owner.output_index]


class _InputSide:
    is_output = False

    def __init__(self, owner):
        self.owner = owner

    def on_grads(self, grads):
        owner = self.owner
        if owner.grad_outputs is None:  # the outputs' gradients never came through this call
            return grads
        grad_input = owner._run_hooks(owner._pack(owner.input_index, grads, owner.n_inputs))
        owner.grad_outputs = None
        return [grad_input[i] for i in owner.input_index]
