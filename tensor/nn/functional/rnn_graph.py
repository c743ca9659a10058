"""The recurrent layers' backward as Tensor ops, for create_graph=True (meta-learning or a gradient
penalty through an LSTM, GRU or Elman layer).

The fused layers keep gate activations, not a graph. Here the layer runs again, step by step, with
Tensor ops on its inputs as graph Tensors, and that recomputed sequence is differentiated with
create_graph=True: the same numbers as the fused backward, now with a history. autograd.grad stops
at the layer's inputs (the engine runs only the nodes on a path to them).
"""
from __future__ import annotations

from ...creation import zeros
from ...engine import grad as autograd_grad
from ...graph_backward import input_in_graph
from ...ops.join import cat, stack
from .linear import linear
from .rnn import _order


def recurrent_backward_graph(ctx, grads, inputs, cell, state_sizes):
    """The layer's input gradients on Tensors. inputs: (forward argument index, raw array or None)
    for each Tensor argument in forward order: x, one initial state per entry of `state_sizes` (its
    feature count), then the weights (w_ih, w_hh, b_ih, b_hh, and LSTM's w_hr when projected);
    cell(x_t, state, *weights) -> (output, state)."""
    tensors = [input_in_graph(ctx, index, array) for index, array in inputs]
    outputs = _unroll(ctx, tensors, cell, state_sizes)
    wanted = [(i, t) for i, ((index, _), t) in enumerate(zip(inputs, tensors))
              if t is not None and ctx.needs_input_grad[index] and t.requires_grad]
    results = [None] * len(ctx.needs_input_grad)
    if wanted:
        found = autograd_grad(outputs, [t for _, t in wanted], list(grads), create_graph=True, allow_unused=True)
        for (i, _), g in zip(wanted, found):
            results[inputs[i][0]] = g
    return tuple(results)


def _unroll(ctx, tensors, cell, state_sizes):
    """(output (T, B, H), final state...) from x, the initial states and the weights, as the fused
    forward."""
    x, *rest = tensors
    count = len(state_sizes)
    states, weights = rest[:count], rest[count:]
    T, B = x.shape[:2]
    states = [zeros((B, size), dtype=x.dtype, device=x.device) if s is None else s
              for s, size in zip(states, state_sizes)]
    outputs = [None] * T
    for t in _order(T, ctx.reverse):
        b = ctx.sizes[t]
        h_t, new = cell(x[t, :b], [s[:b] for s in states], *weights)
        if b < B:  # packed: finished rows keep their state and output zeros
            outputs[t] = cat([h_t, zeros((B - b, h_t.shape[1]), dtype=x.dtype, device=x.device)], 0)
            states = [cat([n, s[b:]], 0) for n, s in zip(new, states)]
        else:
            outputs[t], states = h_t, new
    return (stack(outputs), *states)


def lstm_cell(x, state, w_ih, w_hh, b_ih, b_hh, w_hr=None):
    h, c = state
    i, f, g, o = (linear(x, w_ih, b_ih) + linear(h, w_hh, b_hh)).chunk(4, 1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    h = o.sigmoid() * c.tanh()
    if w_hr is not None:
        h = linear(h, w_hr)
    return h, [h, c]


def gru_cell(x, state, w_ih, w_hh, b_ih, b_hh):
    (h,) = state
    x_r, x_z, x_n = linear(x, w_ih, b_ih).chunk(3, 1)
    h_r, h_z, h_n = linear(h, w_hh, b_hh).chunk(3, 1)
    r, z = (x_r + h_r).sigmoid(), (x_z + h_z).sigmoid()
    n = (x_n + r * h_n).tanh()
    h = n + z * (h - n)
    return h, [h]


def elman_cell(relu):
    def cell(x, state, w_ih, w_hh, b_ih, b_hh):
        (h,) = state
        pre = linear(x, w_ih, b_ih) + linear(h, w_hh, b_hh)
        h = pre.relu() if relu else pre.tanh()
        return h, [h]

    return cell
