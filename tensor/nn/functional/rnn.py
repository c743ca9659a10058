"""Fused recurrent layers: one Function per layer and direction runs the whole sequence.

The input projection of every time step is one matrix product (T*B, I) @ (I, G*H) before the
loop, and in backward the input, weight and bias gradients are one product (or sum) each after the
loop; only h @ W_hh^T (forward) and dgates @ W_hh (backward through time) run per step. Gate
activations are kept per step, so backward recomputes nothing. Gate order is PyTorch's (LSTM:
i, f, g, o; GRU: r, z, n), so weights port unchanged. RNNLayer is the Elman layer (one gate, tanh or
relu). The cells (nn/rnn.py) run these same Functions over a one-step sequence.

Shapes: x (T, B, I) time-major, h0 / c0 (B, H) or None (zeros), w_ih (G*H, I), w_hh (G*H, H),
b_ih / b_hh (G*H,) or None. `reverse` runs the sequence back to front (the second direction of
a bidirectional layer); outputs stay aligned with the inputs.
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
    return xw.reshape(T, B, -1)


def _order(T, reverse):
    """Time indices in the order the recurrence visits them."""
    return list(range(T - 1, -1, -1) if reverse else range(T))


def _hidden_before_each_step(out, h0, reverse, xp):
    """(T, B, H): the state each step started from: h0 for the first visited step, else the
    output of the step visited just before."""
    start = xp.zeros_like(out[:1]) if h0 is None else h0[None]
    parts = [out[1:], start] if reverse else [start, out[:-1]]
    return xp.concatenate(parts, axis=0)


def _input_and_weight_grads(needs, w_ih, d_xw, d_hh, x, h_before):
    """Gradients of x, w_ih, w_hh, b_ih, b_hh (`needs`: whether each is wanted) from the per-step
    gate gradients, one product each.

    d_xw: gradient of the input projection (T, B, G*H); d_hh: of h @ W_hh^T + b_hh (the same
    array for LSTM, where the two are simply added)."""
    T, B, I = x.shape
    need_x, need_wih, need_whh, need_bih, need_bhh = needs
    flat_xw, flat_hh = d_xw.reshape(T * B, -1), d_hh.reshape(T * B, -1)
    grad_x = (flat_xw @ w_ih).reshape(T, B, I) if need_x else None
    grad_wih = flat_xw.T @ x.reshape(T * B, I) if need_wih else None
    grad_whh = flat_hh.T @ h_before.reshape(T * B, -1) if need_whh else None
    grad_bih = flat_xw.sum(axis=0) if need_bih else None
    grad_bhh = flat_hh.sum(axis=0) if need_bhh else None
    return grad_x, grad_wih, grad_whh, grad_bih, grad_bhh


def _combined_bias(b_ih, b_hh):
    if b_ih is None:
        return b_hh
    return b_ih if b_hh is None else b_ih + b_hh


class LSTMLayer(Function):
    """One LSTM layer over a sequence -> (output (T, B, H), h_n (B, H), c_n (B, H))."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse):
        xp = ctx.xp
        T, B, _ = x.shape
        H = w_hh.shape[1]
        acts = _project_inputs(x, w_ih, _combined_bias(b_ih, b_hh))  # pre-activations, then activations
        out = xp.empty((T, B, H), dtype=x.dtype)
        cells = xp.empty((T, B, H), dtype=x.dtype)
        h = xp.zeros((B, H), dtype=x.dtype) if h0 is None else h0
        c = xp.zeros((B, H), dtype=x.dtype) if c0 is None else c0
        for t in _order(T, reverse):
            a = acts[t]
            a += h @ w_hh.T
            g = xp.tanh(a[:, 2 * H : 3 * H])
            _sigmoid_(a, xp)
            a[:, 2 * H : 3 * H] = g
            c = a[:, H : 2 * H] * c
            c += a[:, :H] * g
            cells[t] = c
            h = out[t]
            xp.multiply(a[:, 3 * H :], xp.tanh(c), out=h)
        ctx.reverse, ctx.w_ih, ctx.H = reverse, w_ih, H
        ctx.save_for_backward(x, h0, c0, w_hh, acts, cells, out)
        return out, h.copy(), c.copy()

    @staticmethod
    def backward(ctx, grad_out, grad_h, grad_c):
        x, h0, c0, w_hh, acts, cells, out = ctx.saved_tensors
        xp, H = ctx.xp, ctx.H
        T, B, _ = x.shape
        # d(activation)/d(pre-activation) for all steps at once: sigmoid' for i, f, o; tanh' for g.
        deriv = acts * (1 - acts)
        g_all = acts[:, :, 2 * H : 3 * H]
        deriv[:, :, 2 * H : 3 * H] = 1 - g_all * g_all
        dgates = xp.empty_like(acts)
        dh, dc = grad_h.copy(), grad_c.copy()
        order = _order(T, ctx.reverse)
        for n in range(T - 1, -1, -1):
            t = order[n]
            c_prev = cells[order[n - 1]] if n else (xp.zeros_like(dc) if c0 is None else c0)
            i, f, g, o = (acts[t, :, k * H : (k + 1) * H] for k in range(4))
            dh += grad_out[t]
            tanh_c = xp.tanh(cells[t])
            d = dgates[t]
            xp.multiply(dh, tanh_c, out=d[:, 3 * H :])
            dc += dh * o * (1 - tanh_c * tanh_c)
            xp.multiply(dc, g, out=d[:, :H])
            xp.multiply(dc, c_prev, out=d[:, H : 2 * H])
            xp.multiply(dc, i, out=d[:, 2 * H : 3 * H])
            dc *= f
            d *= deriv[t]
            dh = d @ w_hh
        h_before = _hidden_before_each_step(out, h0, ctx.reverse, xp)
        needs = [ctx.needs_input_grad[k] for k in (0, 3, 4, 5, 6)]
        gx, gwih, gwhh, gbih, gbhh = _input_and_weight_grads(needs, ctx.w_ih, dgates, dgates, x, h_before)
        need_h0, need_c0 = ctx.needs_input_grad[1:3]
        return gx, (dh if need_h0 else None), (dc if need_c0 else None), gwih, gwhh, gbih, gbhh, None


class GRULayer(Function):
    """One GRU layer over a sequence -> (output (T, B, H), h_n (B, H)).

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z likewise, n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),
    h' = (1 - z) * n + z * h: b_hn sits inside the reset product, so b_hh is kept apart from b_ih."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, reverse):
        xp = ctx.xp
        T, B, _ = x.shape
        H = w_hh.shape[1]
        acts = _project_inputs(x, w_ih, b_ih)  # becomes r, z, n per step
        hidden_n = xp.empty((T, B, H), dtype=x.dtype)  # W_hn h + b_hn, needed by backward
        out = xp.empty((T, B, H), dtype=x.dtype)
        h = xp.zeros((B, H), dtype=x.dtype) if h0 is None else h0
        for t in _order(T, reverse):
            a = acts[t]
            hh = h @ w_hh.T
            if b_hh is not None:
                hh += b_hh
            rz = a[:, : 2 * H]
            rz += hh[:, : 2 * H]
            _sigmoid_(rz, xp)
            hidden_n[t] = hh[:, 2 * H :]
            n = a[:, 2 * H :]
            n += a[:, :H] * hh[:, 2 * H :]
            xp.tanh(n, out=n)
            z = a[:, H : 2 * H]
            h_new = out[t]
            xp.subtract(h, n, out=h_new)  # h' = n + z * (h - n)
            h_new *= z
            h_new += n
            h = h_new
        ctx.reverse, ctx.w_ih, ctx.H = reverse, w_ih, H
        ctx.save_for_backward(x, h0, w_hh, acts, hidden_n, out)
        return out, h.copy()

    @staticmethod
    def backward(ctx, grad_out, grad_h):
        x, h0, w_hh, acts, hidden_n, out = ctx.saved_tensors
        xp, H = ctx.xp, ctx.H
        T, B, _ = x.shape
        h_before = _hidden_before_each_step(out, h0, ctx.reverse, xp)
        d_xw = xp.empty_like(acts)
        d_hh = xp.empty_like(acts)
        dh = grad_h.copy()
        order = _order(T, ctx.reverse)
        for n_step in range(T - 1, -1, -1):
            t = order[n_step]
            r, z, n = (acts[t, :, k * H : (k + 1) * H] for k in range(3))
            dh += grad_out[t]
            d_n = dh * (1 - z) * (1 - n * n)  # through tanh
            d_z = dh * (h_before[t] - n) * z * (1 - z)  # through sigmoid
            d_r = d_n * hidden_n[t] * r * (1 - r)
            dx, dhh = d_xw[t], d_hh[t]
            dx[:, :H], dx[:, H : 2 * H], dx[:, 2 * H :] = d_r, d_z, d_n
            dhh[:, : 2 * H] = dx[:, : 2 * H]
            xp.multiply(d_n, r, out=dhh[:, 2 * H :])
            dh = dh * z
            dh += dhh @ w_hh
        needs = [ctx.needs_input_grad[k] for k in (0, 2, 3, 4, 5)]
        gx, gwih, gwhh, gbih, gbhh = _input_and_weight_grads(needs, ctx.w_ih, d_xw, d_hh, x, h_before)
        return gx, (dh if ctx.needs_input_grad[1] else None), gwih, gwhh, gbih, gbhh, None



class RNNLayer(Function):
    """One Elman layer over a sequence -> (output (T, B, H), h_n (B, H)).

    h' = act(W_ih x + b_ih + W_hh h + b_hh), act tanh, or relu when `relu` is true."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, reverse, relu):
        xp = ctx.xp
        T, B, _ = x.shape
        H = w_hh.shape[1]
        out = _project_inputs(x, w_ih, _combined_bias(b_ih, b_hh))  # pre-activations, then the states
        h = xp.zeros((B, H), dtype=x.dtype) if h0 is None else h0
        for t in _order(T, reverse):
            a = out[t]
            a += h @ w_hh.T
            if relu:
                xp.maximum(a, 0, out=a)
            else:
                xp.tanh(a, out=a)
            h = a
        ctx.reverse, ctx.relu, ctx.w_ih = reverse, relu, w_ih
        ctx.save_for_backward(x, h0, w_hh, out)
        return out, h.copy()

    @staticmethod
    def backward(ctx, grad_out, grad_h):
        x, h0, w_hh, out = ctx.saved_tensors
        xp = ctx.xp
        # d(activation)/d(pre-activation) from the outputs alone: relu' = [h > 0], tanh' = 1 - h^2.
        deriv = (out > 0).astype(out.dtype) if ctx.relu else 1 - out * out
        d_pre = xp.empty_like(out)
        dh = grad_h.copy()
        for t in reversed(_order(x.shape[0], ctx.reverse)):
            dh += grad_out[t]
            xp.multiply(dh, deriv[t], out=d_pre[t])
            dh = d_pre[t] @ w_hh
        h_before = _hidden_before_each_step(out, h0, ctx.reverse, xp)
        needs = [ctx.needs_input_grad[k] for k in (0, 2, 3, 4, 5)]
        gx, gwih, gwhh, gbih, gbhh = _input_and_weight_grads(needs, ctx.w_ih, d_pre, d_pre, x, h_before)
        return gx, (dh if ctx.needs_input_grad[1] else None), gwih, gwhh, gbih, gbhh, None, None
