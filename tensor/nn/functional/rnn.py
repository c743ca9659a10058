"""Fused recurrent layers: one Function per layer and direction runs the whole sequence.

The input projection of every time step is one matrix product (T*B, I) @ (I, G*H) before the
loop, and in backward the input, weight and bias gradients are one product (or sum) each after the
loop; only h @ W_hh^T (forward) and dgates @ W_hh (backward through time) run per step. Gate
activations are kept per step, so backward recomputes nothing. Gate order is PyTorch's (LSTM:
i, f, g, o; GRU: r, z, n), so weights port unchanged. RNNLayer is the Elman layer (one gate, tanh or
relu). The cells (nn/rnn.py) run these same Functions over a one-step sequence.

Shapes: x (T, B, I) time-major, h0 / c0 (B, H) or None (zeros), w_ih (G*H, I), w_hh (G*H, H),
b_ih / b_hh (G*H,) or None. `reverse` runs the sequence back to front (the second direction of
a bidirectional layer); outputs stay aligned with the inputs. LSTMLayer also takes an optional
projection w_hr after batch_sizes (PyTorch's proj_size): see its docstring.

`batch_sizes` (optional, after `reverse`) runs a packed batch: x holds the sequences padded and
sorted by length, longest first, and step t updates only its first batch_sizes[t] rows. A finished
row keeps its state, so h_n holds each sequence's state after its own last element; in reverse a row
starts at its own last element from its initial state. Outputs outside the sequences are zero.
"""
from __future__ import annotations

from ...autograd import Function


def _sigmoid_(x, xp):
    """Logistic sigmoid in place, through tanh so that large inputs cannot overflow exp."""
    x *= 0.5
    xp.tanh(x, out=x)
    x += 1
    x *= 0.5
    return x


def _project_inputs(x, w_ih, bias):
    """Every time step's x @ W_ih^T + bias as one product: (T, B, G*H)."""
    T, B, I = x.shape
    xw = x.reshape(T * B, I) @ w_ih.T
    if bias is not None:
        xw += bias
    return xw.reshape(T, B, w_ih.shape[0])  # not -1: B may be 0


def _order(T, reverse):
    """Time indices in the order the recurrence visits them."""
    return list(range(T - 1, -1, -1) if reverse else range(T))


def _step_sizes(T, B, batch_sizes):
    """Rows taking part in each step: the whole batch, or a packed sequence's batch_sizes. Those are
    non-increasing over a batch sorted by length, so a step's rows are always a prefix of the batch."""
    return [B] * T if batch_sizes is None else [int(b) for b in batch_sizes]


def _states_before_each_step(states, initial, reverse, sizes, xp):
    """(T, B, H): the state each step started from: `initial` (zeros when None) for the first visited
    step, else the state of the step visited just before.

    With packed sizes a row starts where it first takes part: the forward direction at step 0, the
    reverse one at the row's own last element, so a row that joins late starts from its initial state.
    Rows outside a step stay zero: their gradients there are zero and must add nothing."""
    T, B, H = states.shape
    start = xp.zeros((B, H), dtype=states.dtype) if initial is None else initial
    if sizes == [B] * T:
        parts = [states[1:], start[None]] if reverse else [start[None], states[:-1]]
        return xp.concatenate(parts, axis=0)
    before = xp.zeros_like(states)
    previous = None
    for t in _order(T, reverse):
        b = sizes[t]
        carried = 0 if previous is None else min(sizes[previous], b)
        if carried:
            before[t, :carried] = states[previous, :carried]
        before[t, carried:b] = start[carried:b]
        previous = t
    return before


def _one_per_input(ctx, grads):
    """The gradients padded with None for the optional trailing batch_sizes argument, when given."""
    return tuple(grads) + (None,) * (len(ctx.needs_input_grad) - len(grads))


def _input_and_weight_grads(needs, w_ih, d_xw, d_hh, x, h_before):
    """Gradients of x, w_ih, w_hh, b_ih, b_hh (`needs`: whether each is wanted) from the per-step
    gate gradients, one product each.

    d_xw: gradient of the input projection (T, B, G*H); d_hh: of h @ W_hh^T + b_hh (the same
    array for LSTM, where the two are simply added)."""
    T, B, I = x.shape
    need_x, need_wih, need_whh, need_bih, need_bhh = needs
    flat_xw, flat_hh = d_xw.reshape(T * B, d_xw.shape[2]), d_hh.reshape(T * B, d_hh.shape[2])  # B may be 0
    grad_x = (flat_xw @ w_ih).reshape(T, B, I) if need_x else None
    grad_wih = flat_xw.T @ x.reshape(T * B, I) if need_wih else None
    grad_whh = flat_hh.T @ h_before.reshape(T * B, h_before.shape[2]) if need_whh else None
    grad_bih = flat_xw.sum(axis=0) if need_bih else None
    grad_bhh = flat_hh.sum(axis=0) if need_bhh else None
    return grad_x, grad_wih, grad_whh, grad_bih, grad_bhh


def _combined_bias(b_ih, b_hh):
    if b_ih is None:
        return b_hh
    return b_ih if b_hh is None else b_ih + b_hh


def _initial_state(given, shape, dtype, packed, xp):
    """The state the recurrence starts from. A packed run writes rows of it in place, so it must own
    its array and never write into the caller's."""
    if given is None:
        return xp.zeros(shape, dtype=dtype)
    return given.copy() if packed else given


class LSTMLayer(Function):
    """One LSTM layer over a sequence -> (output (T, B, P), h_n (B, P), c_n (B, H)).

    w_hr (P, H), optional and last (PyTorch's proj_size): the state h is the cell output
    o * tanh(c) projected, h_t = (o * tanh(c_t)) @ W_hr^T, so h0, h_n, the output and w_hh's columns
    have P features while c keeps H. Without it P = H and h is the cell output itself."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse, batch_sizes=None, w_hr=None):
        xp = ctx.xp
        T, B, _ = x.shape
        H = w_hh.shape[0] // 4
        P = H if w_hr is None else w_hr.shape[0]
        sizes, packed = _step_sizes(T, B, batch_sizes), batch_sizes is not None
        fill = xp.zeros if packed else xp.empty
        acts = _project_inputs(x, w_ih, _combined_bias(b_ih, b_hh))  # pre-activations, then activations
        out, cells = fill((2, T, B, H), dtype=x.dtype)  # out: the cell outputs o * tanh(c)
        projected = None if w_hr is None else fill((T, B, P), dtype=x.dtype)
        h, c = _initial_state(h0, (B, P), x.dtype, packed, xp), _initial_state(c0, (B, H), x.dtype, packed, xp)
        for t in _order(T, reverse):
            b = sizes[t]
            a = acts[t, :b]
            a += h[:b] @ w_hh.T
            g = xp.tanh(a[:, 2 * H : 3 * H])
            _sigmoid_(a, xp)
            a[:, 2 * H : 3 * H] = g
            c_t, h_t = cells[t, :b], out[t, :b]
            xp.multiply(a[:, H : 2 * H], c[:b], out=c_t)
            c_t += a[:, :H] * g
            xp.multiply(a[:, 3 * H :], xp.tanh(c_t), out=h_t)
            if projected is not None:
                h_t = xp.matmul(h_t, w_hr.T, out=projected[t, :b])
            if packed:  # rows past this step keep their state: they have finished, or not begun
                h[:b], c[:b] = h_t, c_t
            else:  # the step's output is the new state: no copy
                h, c = h_t, c_t
        ctx.reverse, ctx.w_ih, ctx.H, ctx.sizes = reverse, w_ih, H, sizes
        ctx.biases = b_ih, b_hh  # for backward_graph, which runs the layer again
        ctx.save_for_backward(x, h0, c0, w_hh, acts, cells, out, w_hr, projected)
        return (out if projected is None else projected), h.copy(), c.copy()

    @staticmethod
    def backward(ctx, grad_out, grad_h, grad_c):
        x, h0, c0, w_hh, acts, cells, out, w_hr, projected = ctx.saved_tensors
        xp, H, sizes = ctx.xp, ctx.H, ctx.sizes
        # d(activation)/d(pre-activation) for all steps at once: sigmoid' for i, f, o; tanh' for g.
        deriv = acts * (1 - acts)
        g_all = acts[:, :, 2 * H : 3 * H]
        deriv[:, :, 2 * H : 3 * H] = 1 - g_all * g_all
        dgates = xp.zeros_like(acts)  # rows outside a step keep zero: they add nothing to the weights
        d_projected = None if w_hr is None else xp.zeros_like(projected)
        dh, dc = grad_h.copy(), grad_c.copy()
        c_before = _states_before_each_step(cells, c0, ctx.reverse, sizes, xp)
        for t in reversed(_order(x.shape[0], ctx.reverse)):
            b = sizes[t]
            i, f, g, o = (acts[t, :b, k * H : (k + 1) * H] for k in range(4))
            dh_t, dc_t = dh[:b], dc[:b]
            dh_t += grad_out[t, :b]
            if w_hr is not None:  # back through the projection to the cell output
                d_projected[t, :b] = dh_t
                dh_t = dh_t @ w_hr
            tanh_c = xp.tanh(cells[t, :b])
            d = dgates[t, :b]
            xp.multiply(dh_t, tanh_c, out=d[:, 3 * H :])
            dc_t += dh_t * o * (1 - tanh_c * tanh_c)
            xp.multiply(dc_t, g, out=d[:, :H])
            xp.multiply(dc_t, c_before[t, :b], out=d[:, H : 2 * H])
            xp.multiply(dc_t, i, out=d[:, 2 * H : 3 * H])
            dc_t *= f
            d *= deriv[t, :b]
            dh[:b] = d @ w_hh
        h_before = _states_before_each_step(out if w_hr is None else projected, h0, ctx.reverse, sizes, xp)
        needs = [ctx.needs_input_grad[k] for k in (0, 3, 4, 5, 6)]
        gx, gwih, gwhh, gbih, gbhh = _input_and_weight_grads(needs, ctx.w_ih, dgates, dgates, x, h_before)
        need_h0, need_c0 = ctx.needs_input_grad[1:3]
        grads = gx, (dh if need_h0 else None), (dc if need_c0 else None), gwih, gwhh, gbih, gbhh, None
        if w_hr is not None and ctx.needs_input_grad[9]:
            T, B, P = projected.shape
            grads += None, d_projected.reshape(T * B, P).T @ out.reshape(T * B, H)
        return _one_per_input(ctx, grads)

    @staticmethod
    def backward_graph(ctx, *grads):
        from .rnn_graph import lstm_cell, recurrent_backward_graph  # it builds on this module

        x, h0, c0, w_hh = ctx.saved_tensors[:4]
        w_hr = ctx.saved_tensors[7]
        inputs = [(0, x), (1, h0), (2, c0), (3, ctx.w_ih), (4, w_hh), (5, ctx.biases[0]), (6, ctx.biases[1])]
        if w_hr is not None:
            inputs.append((9, w_hr))
        sizes = (w_hh.shape[1], ctx.H)  # h has w_hh's columns (proj_size when projected), c has H
        return recurrent_backward_graph(ctx, grads, inputs, lstm_cell, sizes)


class GRULayer(Function):
    """One GRU layer over a sequence -> (output (T, B, H), h_n (B, H)).

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z likewise, n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),
    h' = (1 - z) * n + z * h: b_hn sits inside the reset product, so b_hh is kept apart from b_ih."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, reverse, batch_sizes=None):
        xp = ctx.xp
        T, B, _ = x.shape
        H = w_hh.shape[1]
        sizes, packed = _step_sizes(T, B, batch_sizes), batch_sizes is not None
        acts = _project_inputs(x, w_ih, b_ih)  # becomes r, z, n per step
        hidden_n = xp.empty((T, B, H), dtype=x.dtype)  # W_hn h + b_hn, needed by backward
        out = (xp.zeros if packed else xp.empty)((T, B, H), dtype=x.dtype)
        h = _initial_state(h0, (B, H), x.dtype, packed, xp)
        for t in _order(T, reverse):
            b = sizes[t]
            a = acts[t, :b]
            hh = h[:b] @ w_hh.T
            if b_hh is not None:
                hh += b_hh
            rz = a[:, : 2 * H]
            rz += hh[:, : 2 * H]
            _sigmoid_(rz, xp)
            hidden_n[t, :b] = hh[:, 2 * H :]
            n = a[:, 2 * H :]
            n += a[:, :H] * hh[:, 2 * H :]
            xp.tanh(n, out=n)
            z = a[:, H : 2 * H]
            h_new = out[t, :b]
            xp.subtract(h[:b], n, out=h_new)  # h' = n + z * (h - n)
            h_new *= z
            h_new += n
            if packed:  # rows past this step keep their state
                h[:b] = h_new
            else:
                h = h_new
        ctx.reverse, ctx.w_ih, ctx.H, ctx.sizes = reverse, w_ih, H, sizes
        ctx.biases = b_ih, b_hh
        ctx.save_for_backward(x, h0, w_hh, acts, hidden_n, out)
        return out, h.copy()

    @staticmethod
    def backward(ctx, grad_out, grad_h):
        x, h0, w_hh, acts, hidden_n, out = ctx.saved_tensors
        xp, H, sizes = ctx.xp, ctx.H, ctx.sizes
        h_before = _states_before_each_step(out, h0, ctx.reverse, sizes, xp)
        d_xw, d_hh = xp.zeros((2,) + acts.shape, dtype=acts.dtype)
        dh = grad_h.copy()
        for t in reversed(_order(x.shape[0], ctx.reverse)):
            b = sizes[t]
            r, z, n = (acts[t, :b, k * H : (k + 1) * H] for k in range(3))
            dh_t = dh[:b]
            dh_t += grad_out[t, :b]
            d_n = dh_t * (1 - z) * (1 - n * n)  # through tanh
            d_z = dh_t * (h_before[t, :b] - n) * z * (1 - z)  # through sigmoid
            d_r = d_n * hidden_n[t, :b] * r * (1 - r)
            dx, dhh = d_xw[t, :b], d_hh[t, :b]
            dx[:, :H], dx[:, H : 2 * H], dx[:, 2 * H :] = d_r, d_z, d_n
            dhh[:, : 2 * H] = dx[:, : 2 * H]
            xp.multiply(d_n, r, out=dhh[:, 2 * H :])
            dh_prev = dh_t * z
            dh_prev += dhh @ w_hh
            dh[:b] = dh_prev
        needs = [ctx.needs_input_grad[k] for k in (0, 2, 3, 4, 5)]
        gx, gwih, gwhh, gbih, gbhh = _input_and_weight_grads(needs, ctx.w_ih, d_xw, d_hh, x, h_before)
        grads = gx, (dh if ctx.needs_input_grad[1] else None), gwih, gwhh, gbih, gbhh, None
        return _one_per_input(ctx, grads)

    @staticmethod
    def backward_graph(ctx, *grads):
        from .rnn_graph import gru_cell, recurrent_backward_graph

        x, h0, w_hh = ctx.saved_tensors[:3]
        inputs = [(0, x), (1, h0), (2, ctx.w_ih), (3, w_hh), (4, ctx.biases[0]), (5, ctx.biases[1])]
        return recurrent_backward_graph(ctx, grads, inputs, gru_cell, (w_hh.shape[1],))


class RNNLayer(Function):
    """One Elman layer over a sequence -> (output (T, B, H), h_n (B, H)).

    h' = act(W_ih x + b_ih + W_hh h + b_hh), act tanh, or relu when `relu` is true."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, reverse, relu, batch_sizes=None):
        xp = ctx.xp
        T, B, _ = x.shape
        H = w_hh.shape[1]
        sizes, packed = _step_sizes(T, B, batch_sizes), batch_sizes is not None
        out = _project_inputs(x, w_ih, _combined_bias(b_ih, b_hh))  # pre-activations, then the states
        h = _initial_state(h0, (B, H), x.dtype, packed, xp)
        for t in _order(T, reverse):
            b = sizes[t]
            out[t, b:] = 0  # rows outside the step: no state there
            a = out[t, :b]
            a += h[:b] @ w_hh.T
            if relu:
                xp.maximum(a, 0, out=a)
            else:
                xp.tanh(a, out=a)
            if packed:
                h[:b] = a
            else:
                h = a
        ctx.reverse, ctx.relu, ctx.w_ih, ctx.sizes = reverse, relu, w_ih, sizes
        ctx.biases = b_ih, b_hh
        ctx.save_for_backward(x, h0, w_hh, out)
        return out, h.copy()

    @staticmethod
    def backward(ctx, grad_out, grad_h):
        x, h0, w_hh, out = ctx.saved_tensors
        xp, sizes = ctx.xp, ctx.sizes
        # d(activation)/d(pre-activation) from the outputs alone: relu' = [h > 0], tanh' = 1 - h^2.
        deriv = (out > 0).astype(out.dtype) if ctx.relu else 1 - out * out
        d_pre = xp.zeros_like(out)
        dh = grad_h.copy()
        for t in reversed(_order(x.shape[0], ctx.reverse)):
            b = sizes[t]
            dh_t = dh[:b]
            dh_t += grad_out[t, :b]
            xp.multiply(dh_t, deriv[t, :b], out=d_pre[t, :b])
            dh[:b] = d_pre[t, :b] @ w_hh
        h_before = _states_before_each_step(out, h0, ctx.reverse, sizes, xp)
        needs = [ctx.needs_input_grad[k] for k in (0, 2, 3, 4, 5)]
        gx, gwih, gwhh, gbih, gbhh = _input_and_weight_grads(needs, ctx.w_ih, d_pre, d_pre, x, h_before)
        grads = gx, (dh if ctx.needs_input_grad[1] else None), gwih, gwhh, gbih, gbhh, None, None
        return _one_per_input(ctx, grads)

    @staticmethod
    def backward_graph(ctx, *grads):
        from .rnn_graph import elman_cell, recurrent_backward_graph

        x, h0, w_hh = ctx.saved_tensors[:3]
        inputs = [(0, x), (1, h0), (2, ctx.w_ih), (3, w_hh), (4, ctx.biases[0]), (5, ctx.biases[1])]
        return recurrent_backward_graph(ctx, grads, inputs, elman_cell(ctx.relu), (w_hh.shape[1],))
