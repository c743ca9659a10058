"""Transform levels: which tensors a transform call may keep a graph to.

A transform (grad, vjp, jacrev...) differentiates func at copies of its inputs, leaves of its own. Its
results keep a graph only when something outside can differentiate through them: an input or closed-
over tensor that requires grad, or the copy of an enclosing transform that is still running (so that
grad(grad(f)) and grad over a closure compose). Each call is a Level, active while it runs, and tags
its copies with itself, so that no later or enclosing call mistakes them for such a tensor.
"""
from __future__ import annotations

import threading

from ..autograd import AccumulateGrad, is_grad_enabled
from ..tensor import Tensor
from .pytree import tree_map


class _Active(threading.local):
    def __init__(self):
        self.levels = []  # the transform calls running on this thread, outermost first


_active = _Active()


class Level:
    """One transform call: its own leaves are tagged with it, so that a transform that encloses it, or
    one that runs after it, does not mistake them for tensors outside that need a graph."""

    def __enter__(self):
        self.outer = is_grad_enabled()  # the caller's grad mode: only then is a graph to the outside wanted
        _active.levels.append(self)
        return self

    def __exit__(self, *exc):
        _active.levels.remove(self)
        return False

    def own(self, leaf):
        leaf._func_level = self
        return leaf


def keep(tree, level):
    """tree with each Tensor detached unless its graph reaches a tensor outside the transform."""
    def one(t):
        if not isinstance(t, Tensor) or reaches_outside([t], level):
            return t
        return t.detach()

    return tree_map(one, tree)


def reaches_outside(tensors, level):
    """Whether something outside this transform call can differentiate through `tensors`: their graph
    reaches a leaf that requires grad and is not a transform's own copy (an original input, a parameter
    closed over), or is the copy of an enclosing transform that is still running."""
    if not level.outer:
        return False

    def outside(node):
        if not isinstance(node, AccumulateGrad):
            return False
        owner = getattr(node.variable, "_func_level", None)
        return owner is None or (owner is not level and owner in _active.levels)

    return _search(tensors, outside)


def depends_on(tensor, leaves):
    """Whether `tensor`'s graph reaches any of `leaves` (jvp's strict check)."""
    targets = {id(t.grad_fn if t.grad_fn is not None else t._grad_accumulator()) for t in leaves}
    return _search([tensor], lambda node: id(node) in targets)


def _search(tensors, hit):
    """Depth-first over the graph below `tensors` (no recursion); True as soon as hit(node) is."""
    stack = [t.grad_fn if t.grad_fn is not None else t._grad_accumulator()
             for t in tensors if isinstance(t, Tensor) and t.requires_grad]
    seen = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if hit(node):
            return True
        stack.extend(edge[0] for edge in node.next_functions if edge is not None)
    return False
