"""create_graph=True: a backward pass that is itself recorded, for higher-order gradients.

The engine (engine.py) runs each node's `backward` on raw arrays: fast, and nothing is recorded.
With create_graph=True the same walk runs on Tensor gradients and calls each node's
`backward_graph(ctx, *grads)` instead, which computes its input gradients with Tensor ops under
grad mode, so they come out with a history of their own (gradient penalties, Hessian-vector
products, MAML). This module holds what ops need to write a backward_graph.

`backward_graph` needs the node's saved arrays as Tensors wired into the graph, as PyTorch's
SavedVariable unpacks them: `saved_in_graph(ctx)` gives a saved input back with the input's history
(a leaf as the leaf itself), a saved output as this node's output, anything else as a constant.

An op without `backward_graph` raises AutogradError naming it when a create_graph walk reaches it
(engine._call_backward). User Functions opt in by defining `backward_graph` (see Function).
"""
from __future__ import annotations

import numpy as np

from .autograd import AccumulateGrad, Function, _sequence
from .tensor import _wrap


def saved_copy_in_graph(ctx, index, input_index):
    """Saved array `index`, which forward took from input `input_index` as is or as a contiguous
    copy, as a Tensor in the graph (a copy's gradient is the input's: a Clone node links them)."""
    array = ctx.saved_tensors[index]
    owner = (ctx._saved_versions or {}).get(index)
    if owner is not None:
        return _as_graph_tensor(ctx, array, owner)
    from .ops.convert import Clone

    return derived_in_graph(ctx, array, input_index, Clone)


def saved_in_graph(ctx) -> tuple:
    """ctx's saved arrays as Tensors in the graph (None stays None); for use in `backward_graph`."""
    arrays = ctx.saved_tensors  # refuses a released graph or a saved tensor changed in place
    owners = ctx._saved_versions or {}
    return tuple(None if array is None else _as_graph_tensor(ctx, array, owners.get(index))
                 for index, array in enumerate(arrays))


def input_in_graph(ctx, index, array):
    """Argument `index` of ctx's forward (its raw `array`, kept by the op) as a Tensor in the graph."""
    if array is None:
        return None
    return _as_graph_tensor(ctx, array, (None, None, index))


def _as_graph_tensor(ctx, array, owner):
    if owner is None:  # made inside forward: a constant (the op's backward_graph must make sure it is one)
        if isinstance(array, (bool, int, float, complex, np.generic)):
            return array  # a scalar operand stays a scalar
        return _wrap(array)
    tag = owner[2]
    edge = (ctx, -1 - tag) if tag < 0 else ctx.next_functions[tag]
    if edge is None:
        return _wrap(array)  # an argument that needs no gradient
    node, nr = edge
    if isinstance(node, AccumulateGrad) and node.variable.data is array:
        return node.variable
    t = _wrap(array)
    t._requires_grad, t.grad_fn, t._output_nr = True, node, nr
    return t


def derived_in_graph(ctx, array, input_index, node_cls, **attributes):
    """A saved array that forward computed from its inputs (convolution columns, a copy, attention
    probabilities, ...) as a Tensor in the graph: its node is a fresh `node_cls` (with `attributes`
    set, as its forward would) linked to those inputs, whose backward maps the array's gradient to
    theirs. input_index: one input's index, or a tuple of them, in the order node_cls.backward
    returns their gradients (`node_cls.arguments`, default 1, counts its forward's arguments, those
    inputs first). The inputs themselves need not be saved, which is why the op saved the array."""
    indices = input_index if isinstance(input_index, tuple) else (input_index,)
    edges = [ctx.next_functions[i] for i in indices]
    t = _wrap(array)
    if all(edge is None for edge in edges):
        return t
    extra = getattr(node_cls, "arguments", 1) - len(indices)
    node = node_cls.__new__(node_cls)
    node.needs_input_grad = tuple(edge is not None for edge in edges) + (False,) * extra
    node.next_functions = edges + [None] * extra
    node.sequence_nr = next(_sequence)
    node.output_meta = ((array.shape, array.dtype),)
    node.xp = ctx.xp
    for name, value in attributes.items():
        setattr(node, name, value)
    t._requires_grad, t.grad_fn = True, node
    return t


class SavedVjp(Function):
    """A Function whose gradient formula `vjp(ctx, grad, *saved)` is written with operators (and
    sum_to) only, so it runs on arrays and on Tensors alike: backward calls it with the saved
    arrays, backward_graph with them as Tensors in the graph. Subclasses give forward and vjp."""

    @staticmethod
    def backward(ctx, grad):
        return ctx.vjp(ctx, grad, *ctx.saved_tensors)

    @staticmethod
    def backward_graph(ctx, grad):
        return ctx.vjp(ctx, grad, *saved_in_graph(ctx))


class LinearBackward(Function):
    """The backward of an op that is linear in one input with its other arguments fixed (average
    pooling, padding, gather, embedding, ...) as an op of its own: forward runs the op's backward on
    the gradient; its own backward runs the op's forward, the adjoint of the adjoint being the op.

    forward_args: the op's other arguments, in order; position: where the linear input goes."""

    @staticmethod
    def forward(ctx, grad, node, forward_args, position=0):
        ctx.node, ctx.forward_args, ctx.position = node, forward_args, position
        return type(node).backward(node, grad)[position]

    @staticmethod
    def backward(ctx, gg):
        op = type(ctx.node)
        fresh = op.__new__(op)
        fresh.xp, fresh.needs_input_grad = ctx.xp, (False,) * (1 + len(ctx.forward_args))
        return op.forward(fresh, *LinearBackward._arguments(ctx, gg)), None, None, None

    @staticmethod
    def backward_graph(ctx, gg):
        return type(ctx.node).apply(*LinearBackward._arguments(ctx, gg)), None, None, None

    @staticmethod
    def _arguments(ctx, gg):
        args = list(ctx.forward_args)
        args.insert(ctx.position, gg)
        return args


def linear_backward_graph(ctx, grad, forward_args, position=0):
    """backward_graph for an op linear in input `position`: that input's gradient, None for the rest."""
    grads = [None] * (len(forward_args) + 1)
    grads[position] = LinearBackward.apply(grad, ctx, tuple(forward_args), position)
    return tuple(grads)
