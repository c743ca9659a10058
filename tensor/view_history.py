"""How a view stays in the graph when the storage it shares changes in place.

A view's node is made when the view is. An in-place change to its storage (through the base or any
view of it) gives the base a newer history, and the view's node must follow: Function.apply and
backward() call refresh_view for a view whose version counter moved since its node was made;
replay_view re-applies a view's chain of view ops to a raw array (in-place ops on views use it).
"""
from __future__ import annotations

from .autograd import _mode, _new
from .tensor import Tensor


def refresh_view(view):
    """Give `view` a node made from its parent's current history.

    A view's node is made when the view is. An in-place change to the storage it shares with its
    base (through the base or through any view of it, the view itself included) gives the base, or
    the view's parent, a newer history; the view's old node would send gradients to the history from
    before the change. Function.apply and backward() call this for a view whose version counter
    moved since its node was made: the view op runs again on the (refreshed) parent, and the view
    takes that node. Its data is untouched: it already shows the change.
    """
    cls, args, view_of, nr = view._view_src
    parent = args[view_of]
    if parent._view_src is not None and parent._view_version != parent._version_box[0]:
        refresh_view(parent)
    previous = _mode.enabled
    _mode.enabled = True
    try:
        fresh = cls.apply(*args)
    finally:
        _mode.enabled = previous
    if nr is not None:
        fresh = fresh[nr]
    view._view_version = view._version_box[0]
    view._take_new_node(fresh.grad_fn, fresh._output_nr, fresh._requires_grad)


def replay_view(view, array, xp):
    """The view of `array` that `view` is of its root base: the chain of view ops from the root,
    run on raw arrays. `array` must be laid out as the root's data is, so that each op is a view."""
    chain = []
    node = view
    while node._view_src is not None:
        chain.append(node._view_src)
        _, args, view_of, _ = node._view_src
        node = args[view_of]
    for cls, args, view_of, nr in reversed(chain):
        ctx = _new(cls)
        ctx.xp = xp
        raw = [array if i == view_of else (a.data if isinstance(a, Tensor) else a) for i, a in enumerate(args)]
        array = cls.forward(ctx, *raw)
        if nr is not None:
            array = array[nr]
    return array


def _mark_view(base, view):
    """Make `view` share `base`'s version counter, so in-place changes through either are seen."""
    counter = base._version_box
    if counter is None:
        counter = base._version_box = [0]
    view._version_box = counter
    view._base = base if base._base is None else base._base
