"""The backward engine: walks the graph from the roots in reverse topological order.

No recursion (a 100,000-op chain is fine): dependencies are counted with an explicit stack, then
nodes run from a heap keyed on creation order, newest first, as soon as every consumer of their
outputs has sent its gradient. Each node's saved arrays are released right after it runs.
`queue_callback(fn)` (from a hook) runs fn once the current backward has finished.
With create_graph=True the same walk runs on Tensor gradients with each node's backward_graph, so the
backward is itself recorded (graph_backward.py).
"""
from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import warnings

from .autograd import AccumulateGrad, _accumulate, enable_grad
from .errors import AutogradError, ShapeError
from .tensor import Tensor, _wrap
from .view_history import refresh_view


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate d(tensors)/d(leaf) into every leaf's `.grad` (torch.autograd.backward).

    create_graph=True records the backward pass itself (see graph_backward.py): the gradients get a
    history and can be differentiated again; retain_graph then defaults to True, as in PyTorch.
    """
    retain_graph = create_graph if retain_graph is None else bool(retain_graph)
    roots = _roots(tensors, grad_tensors, create_graph)
    inputs = None if inputs is None else _as_tuple(inputs)  # once: a generator is read only once
    with _callback_scope():
        capture = None if inputs is None else _capture_keys(inputs)
        grads = _run(roots, retain_graph, capture, create_graph)
        if inputs is None:
            return
        for t, g in zip(inputs, grads):
            if g is None:
                continue
            if create_graph:
                _accumulate_graph(t, g, set())
            else:
                _accumulate(t, g, owned=False)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True,
         allow_unused=None, materialize_grads=False):
    """Return d(outputs)/d(inputs) as a tuple of Tensors, leaving every `.grad` untouched.

    With create_graph=True the results have a history of their own (higher-order gradients).
    An input the outputs do not depend on raises, or gives None with allow_unused=True, or zeros with
    materialize_grads=True. `only_inputs` is PyTorch's deprecated flag, accepted and ignored as there
    (older scripts, e.g. gradient penalties, still pass it).
    """
    if not only_inputs:
        warnings.warn("grad: only_inputs is deprecated and ignored (gradients go to `inputs` only); use "
                      "tensor.autograd.backward to accumulate into other leaves", FutureWarning, stacklevel=2)
    if allow_unused is None:
        allow_unused = materialize_grads
    elif materialize_grads and not allow_unused:
        raise ValueError("grad: materialize_grads=True needs allow_unused=True (or leave allow_unused out)")
    retain_graph = create_graph if retain_graph is None else bool(retain_graph)
    inputs = _as_tuple(inputs)
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise AutogradError(f"grad: input {i} does not require grad; call requires_grad_() on it first")
    roots = _roots(outputs, grad_outputs, create_graph)
    with _callback_scope():
        grads = _run(roots, retain_graph, _capture_keys(inputs), create_graph)
    result = []
    for i, g in enumerate(grads):
        if g is None and not allow_unused:
            raise AutogradError(
                f"grad: input {i} (shape {tuple(inputs[i].shape)}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        if g is None and materialize_grads:
            g = inputs[i].new_zeros(inputs[i].shape)  # on the input's GPU, not whichever is current
        result.append(g if g is None or isinstance(g, Tensor) else _wrap(g))
    return tuple(result)


# --------------------------------------------------------------------- end-of-backward callbacks


class _CallbackQueues(threading.local):
    stack: list  # one list of callbacks per backward running on this thread (a hook may start another)

    def __init__(self):
        self.stack = []


_queues = _CallbackQueues()


def queue_callback(callback):
    """Run `callback()` once the backward running on this thread has finished walking the graph.

    Only valid during backward (from a hook); callbacks run in the order queued, only if the walk
    succeeded, and an exception from one propagates out of backward(). DDP uses this to wait for its
    gradient all-reduces before backward() returns (PyTorch's engine queue_callback).
    """
    if not _queues.stack:
        raise AutogradError("queue_callback: no backward is running on this thread; call it from a hook "
                            "that fires during backward()")
    _queues.stack[-1].append(callback)


@contextlib.contextmanager
def _callback_scope():
    queue = []
    _queues.stack.append(queue)
    try:
        yield
        while queue:  # a callback may queue another one
            queue.pop(0)()
    finally:
        _queues.stack.pop()


def _as_tuple(x):
    """One Tensor, or any iterable of them (list, generator, `dict.values()`), as a tuple (as in torch)."""
    if isinstance(x, Tensor):
        return (x,)
    try:
        return tuple(x)
    except TypeError:
        raise TypeError(f"expected a Tensor or a sequence of Tensors, got {type(x).__name__}") from None


def _roots(tensors, grad_tensors, create_graph=False):
    """(node, output number, gradient, owned) per root; for create_graph the gradient is a Tensor
    (one the caller passed keeps its own history)."""
    tensors = _as_tuple(tensors)
    grads = _as_tuple(grad_tensors) if grad_tensors is not None else (None,) * len(tensors)
    if len(grads) != len(tensors):
        raise AutogradError(f"backward: got {len(tensors)} tensors but {len(grads)} gradients")
    roots = []
    for i, (t, g) in enumerate(zip(tensors, grads)):
        if isinstance(t, Tensor) and t._view_src is not None and t._view_version != t._version_box[0]:
            refresh_view(t)  # a view whose storage changed in place since its node was made
        if not t.requires_grad:
            raise AutogradError(
                f"backward: tensor {i} does not require grad and has no grad_fn; set requires_grad=True on "
                "the leaves it was computed from (and do not compute it under no_grad)"
            )
        if g is None:
            if t.numel() != 1:
                raise AutogradError(
                    f"backward: grad can be created implicitly only for scalar outputs, got shape "
                    f"{tuple(t.shape)}; pass gradient= a tensor of that shape"
                )
            g = t.xp.ones(t.shape, dtype=t.dtype)
            owned = True
        else:
            # Borrowed, not copied (a copy of a large gradient costs as much as an elementwise op):
            # backward functions never write into incoming gradients, and a leaf that would keep
            # this very array as its .grad copies it first (_run counts it as handed out already).
            g = g.data if isinstance(g, Tensor) else t.xp.asarray(g, dtype=t.dtype)
            owned = False
            if g.shape != t.data.shape:
                raise ShapeError(f"backward: gradient shape {g.shape} does not match tensor shape {t.data.shape}")
        node = t.grad_fn if t.grad_fn is not None else t._grad_accumulator()
        if create_graph:
            g = grads[i] if isinstance(grads[i], Tensor) else _wrap(g)
        roots.append((node, t._output_nr, g, owned))
    return roots


def _capture_keys(inputs):
    """Map each input to the (node, output number) whose incoming gradient is d/d(input)."""
    keys = {}
    for i, t in enumerate(_as_tuple(inputs)):
        node = t.grad_fn if t.grad_fn is not None else t._grad_accumulator()
        keys[(node, t._output_nr)] = i
    return keys


def _dependencies(roots):
    """How many edges point at each node reachable from the roots."""
    deps = {}
    seen = set(roots)
    stack = list(seen)
    while stack:
        for edge in stack.pop().next_functions:
            if edge is None:
                continue
            nxt = edge[0]
            deps[nxt] = deps.get(nxt, 0) + 1
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return deps


def _needed(roots, targets):
    """The nodes from which a target node can be reached, targets included: the only ones that
    autograd.grad (or backward(inputs=...)) must run. Iterative post-order, like _dependencies."""
    needed, done = set(), set()
    stack = [(node, False) for node in roots]
    while stack:
        node, children_done = stack.pop()
        if node in done:
            continue
        if not children_done:
            stack.append((node, True))
            stack.extend((edge[0], False) for edge in node.next_functions if edge is not None and edge[0] not in done)
            continue
        done.add(node)
        if node in targets or _feeds(node, needed):
            needed.add(node)
    return needed


def _feeds(node, needed):
    for edge in node.next_functions:
        if edge is not None and edge[0] in needed:
            return True
    return False


def _run(roots, retain_graph, capture, create_graph=False):
    """Walk the graph from the roots; returns the captured gradients (autograd.grad) or None.
    create_graph: gradients are Tensors and each node runs its backward_graph (graph_backward.py)."""
    if create_graph:
        with enable_grad():
            return _walk(roots, retain_graph, capture, graph=True)
    return _walk(roots, retain_graph, capture, graph=False)


def _walk(roots, retain_graph, capture, graph):
    buffers = {}
    handed_to_leaves = set()  # ids of gradient arrays a leaf may not keep without copying
    for node, nr, g, owned in roots:
        _add_grad(buffers, node, nr, g)
        if not owned:
            handed_to_leaves.add(id(g))
    deps = _dependencies(list(buffers))
    # With inputs to capture, only the nodes on a path to them run (PyTorch prunes the same way):
    # a gradient penalty's grad(D(x), x) skips the weights' backward, and a grad() started inside a
    # backward_graph stops at its inputs instead of walking the graph they came from.
    needed = None if capture is None else _needed(list(buffers), {node for node, _ in capture})
    tie = itertools.count()
    ready = [(-node.sequence_nr, next(tie), node) for node in buffers if deps.get(node, 0) == 0]
    heapq.heapify(ready)
    captured = [None] * len(capture) if capture else None
    while ready:
        node = heapq.heappop(ready)[2]
        grads = buffers.pop(node, None)
        if grads is not None and node._tensor_hooks:
            _run_tensor_hooks(node, grads, graph)
        if capture and grads is not None:
            for nr, g in enumerate(grads):
                slot = capture.get((node, nr))
                if slot is not None:
                    captured[slot] = g
        if isinstance(node, AccumulateGrad):
            if capture is None and grads is not None and grads[0] is not None:
                _accumulate_leaf(node.variable, grads[0], handed_to_leaves, graph)
            continue
        if needed is not None and not _feeds(node, needed):
            continue  # nothing asked for lies below this node
        input_grads = _call_backward(node, grads, retain_graph, graph)
        for edge, g in zip(node.next_functions, input_grads):
            if edge is None:
                continue
            nxt, nr = edge
            if g is not None:
                _check_grad_shape(node, nxt, nr, g)
                _add_grad(buffers, nxt, nr, g)
            deps[nxt] -= 1
            if deps[nxt] == 0:
                heapq.heappush(ready, (-nxt.sequence_nr, next(tie), nxt))
    return captured


def _add_grad(buffers, node, nr, g):
    slots = buffers.get(node)
    if slots is None:
        slots = buffers[node] = [None] * len(node.output_meta)
    # Out of place: the existing array (or Tensor) may be shared with another consumer.
    slots[nr] = g if slots[nr] is None else slots[nr] + g


def _call_backward(node, grads, retain_graph, graph):
    """The node's backward on array gradients, or (graph) its backward_graph on Tensor gradients."""
    count = len(node.next_functions)
    if grads is None:  # no consumer sent a gradient: nothing flows further down
        return (None,) * count
    method = "backward_graph" if graph else "backward"
    backward = getattr(type(node), method)
    if graph and backward is None:
        raise AutogradError(
            f"backward with create_graph=True reached {type(node).__name__}, which has no backward that records "
            "a graph, so higher-order gradients cannot flow through it (README.md lists the ops that have one); "
            "for your own Function, define backward_graph(ctx, *grads) with Tensor ops"
        )
    for g in grads:  # a plain loop: cheaper than any() over a generator for the usual one output
        if g is None:
            if not node._materialize_grads:
                break
            # Zeros for unused float outputs, as PyTorch does; integer outputs (indices) stay None.
            xp = node.xp
            grads = [
                (_wrap(xp.zeros(shape, dtype)) if graph else xp.zeros(shape, dtype)) if g is None and dtype.kind == "f"
                else g
                for g, (shape, dtype) in zip(grads, node.output_meta)
            ]
            break
    result = backward(node, *grads)
    if not isinstance(result, tuple):
        result = (result,)
    if len(result) != count:
        # PyTorch drops surplus trailing Nones (a backward written for forward's optional arguments)
        if len(result) > count and all(g is None for g in result[count:]):
            result = result[:count]
        else:
            raise AutogradError(
                f"{type(node).__name__}.{method} returned {len(result)} gradients but forward took {count} "
                "arguments; return one gradient (or None) per argument"
            )
    if not retain_graph and node._saved:
        node._saved = ()
        node._released = True
    return result


def _check_grad_shape(node, nxt, nr, g):
    expected = nxt.output_meta[nr][0]
    if g.shape != expected:
        raise ShapeError(
            f"{type(node).__name__}.backward returned a gradient of shape {g.shape} for an input of shape "
            f"{expected}; reduce broadcast dimensions with sum_to(grad, shape)"
        )


def _accumulate_leaf(variable, g, handed, graph):
    g = _apply_hooks((variable._hooks or {}).values(), g, graph)
    if graph:
        _accumulate_graph(variable, g, handed)
        return
    # The same array can reach two leaves (x + y passes one gradient to both): keep it only once.
    owned = id(g) not in handed
    handed.add(id(g))
    _accumulate(variable, g, owned)


def _accumulate_graph(variable, g, handed):
    """variable.grad, out of place, keeping g's history (PyTorch's create_graph accumulation)."""
    if g.dtype != variable.dtype:
        g = g.to(variable.dtype)
    if id(g) in handed:  # one gradient reaching two leaves (x + y): each keeps its own
        g = g.clone()
    handed.add(id(g))
    current = variable._grad
    variable._grad = g if current is None else current + g
    for hook in list((variable._post_acc_hooks or {}).values()):
        hook(variable)


def _run_tensor_hooks(node, grads, graph):
    for nr, hooks in node._tensor_hooks.items():
        if grads[nr] is not None:
            grads[nr] = _apply_hooks(hooks.values(), grads[nr], graph)


def _apply_hooks(hooks, g, graph):
    """g through each hook in turn; a hook sees a Tensor and may return a replacement (Tensor or array).
    On the array path g is a raw array; with create_graph it is a Tensor with a history."""
    for hook in list(hooks):
        result = hook(g if graph else _wrap(g))
        if result is not None:
            if graph:
                g = result if isinstance(result, Tensor) else _wrap(result)
            else:
                g = result.data if isinstance(result, Tensor) else result
    return g
