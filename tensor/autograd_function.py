"""tensor.autograd.function: PyTorch's module of that name (Function, once_differentiable).

A Function's backward already works on raw arrays and records no graph, so every custom Function is
once differentiable: backward with create_graph=True refuses it unless it defines backward_graph.
`once_differentiable` is therefore the identity, kept so that PyTorch code decorating its backward ports.
"""
from __future__ import annotations

import functools

from .autograd import Function

__all__ = ["Function", "once_differentiable"]


def once_differentiable(backward):
    """Mark a Function's backward as not differentiable again (PyTorch's decorator; a no-op here)."""

    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        return backward(ctx, *grads)

    return wrapper
