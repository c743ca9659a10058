"""scaled_dot_product_attention as one fused Function: scores, mask, softmax, dropout and the
value product forward, and their gradients in one backward with the softmax derivative inline.

Fused because the chain of primitives would keep five (..., L, S) intermediates alive for
backward and make as many passes over them; here the probabilities are the only one saved, and
every step after the first product works in place on one scores array.
"""
from __future__ import annotations

import math

import numpy as np

from ... import kernels
from ...autograd import Function
from ...errors import DTypeError, ShapeError
from ...random import bernoulli_mask
from ...tensor import Tensor
from ...ops._util import sum_to

_causal_cache = {}


def _causal_block(L, S, like, xp):
    """(L, S) bool, True above the diagonal: the future positions a causal query must not see
    (cached per size and device)."""
    key = (L, S, xp.__name__, str(getattr(like, "device", "cpu")))
    block = _causal_cache.get(key)
    if block is None:
        block = _causal_cache[key] = xp.triu(xp.ones((L, S), dtype=bool), 1)
    return block


def _block(scores, blocked, xp):
    """scores = -inf where `blocked` (bool, broadcasting to scores), in place.

    On NumPy float32/float64 by adding an array of 0 and -inf the size of `blocked`: copyto(where=)
    with a broadcast mask is 3-5x slower than the addition on attention-sized scores (32 x 4 x 64 x
    64: 0.42 against 0.13 ms for the causal block, 0.68 against 0.15 ms for a key padding mask). The
    one difference: a NaN or +inf score at a blocked position gives NaN, not -inf, so its row comes
    out NaN where PyTorch's would not; in float32/float64 that needs a NaN or inf in the inputs (a
    padded key holding NaN, say), and the NaN shows it. In float16 a score from finite inputs can
    overflow to +inf, so float16 keeps copyto; so does a mask nearly as large as the scores, where
    np.where costs what the addition saves.
    """
    if xp is np and scores.dtype.char in "fd" and blocked.size * 4 <= scores.size:
        scores += np.where(blocked, scores.dtype.type(-np.inf), scores.dtype.type(0))
    else:
        xp.copyto(scores, -xp.inf, where=blocked)


class ScaledDotProductAttention(Function):
    """softmax(q @ k^T * scale + mask) @ v over the last two dims, batch dims broadcasting.

    q (..., L, E), k (..., S, E), v (..., S, Ev) -> (..., L, Ev); with `return_weights` also the
    attention probabilities (..., L, S) after dropout (what MultiheadAttention returns).
    mask: None, bool (True = may attend) or float (added to the scores), broadcasting to (..., L, S).
    keep: None or the dropout mask, already scaled by 1 / (1 - p).
    """

    @staticmethod
    def forward(ctx, q, k, v, mask, keep, scale, causal, return_weights):
        xp = ctx.xp
        # Heads split off a projection arrive as strided views; batched BLAS runs faster on
        # contiguous operands than the copies cost (and backward reuses them).
        k, v = xp.ascontiguousarray(k), xp.ascontiguousarray(v)
        scores = (q * scale) @ k.swapaxes(-1, -2)  # scaling q is cheaper than scaling the scores
        if causal:
            _block(scores, _causal_block(scores.shape[-2], scores.shape[-1], scores, xp), xp)
        if mask is not None:
            if mask.dtype == bool:
                _block(scores, ~mask, xp)
            else:
                scores += mask
        # The fused row kernel (CUDA) gives 0 to a -inf score but NaN to a row of them: it takes
        # the causal mask, which always leaves the diagonal, and no user mask, which might not.
        fused = mask is None and kernels.fits_rows(xp, scores, scores.ndim - 1)
        probs = kernels.softmax_forward(scores) if fused else _softmax_in_place(scores, xp, masked=causal or
                                                                                mask is not None)
        dropped = probs * keep if keep is not None else probs
        out = dropped @ v
        ctx.scale, ctx.fused = scale, fused
        ctx.float_mask_shape = mask.shape if mask is not None and mask.dtype != bool else None
        ctx.save_for_backward(q, k, v, probs, keep)
        if return_weights:
            return out, dropped
        return out

    @staticmethod
    def backward(ctx, grad, grad_weights=None):
        q, k, v, probs, keep = ctx.saved_tensors
        need_q, need_k, need_v, need_mask = ctx.needs_input_grad[:4]
        scale, xp = ctx.scale, ctx.xp
        q, grad = xp.ascontiguousarray(q), xp.ascontiguousarray(grad)
        dropped = probs * keep if keep is not None else probs
        grad_v = sum_to(dropped.swapaxes(-1, -2) @ grad, v.shape) if need_v else None
        grad_dropped = grad @ v.swapaxes(-1, -2)
        if grad_weights is not None:
            grad_dropped += grad_weights
        if keep is not None:
            grad_dropped *= keep
        grad_scores = kernels.softmax_backward(probs, grad_dropped) if ctx.fused else _softmax_backward(probs,
                                                                                                       grad_dropped)
        grad_q = sum_to((grad_scores @ k) * scale, q.shape) if need_q else None
        grad_k = sum_to((grad_scores.swapaxes(-1, -2) @ q) * scale, k.shape) if need_k else None
        grad_mask = sum_to(grad_scores, ctx.float_mask_shape) if need_mask and ctx.float_mask_shape else None
        return grad_q, grad_k, grad_v, grad_mask, None, None, None, None

    @staticmethod
    def backward_graph(ctx, grad, grad_weights=None):
        from .attention_graph import attention_backward_graph  # it builds on this module's helpers

        return attention_backward_graph(ctx, grad, grad_weights)


def _softmax_backward(probs, grad):
    """dS = P * (dP - sum(dP * P, -1)), overwriting `grad` (dP)."""
    row = (grad * probs).sum(axis=-1, keepdims=True)
    grad -= row
    grad *= probs
    return grad


def _softmax_in_place(scores, xp, masked):
    """Softmax over the last dim, overwriting `scores`. Rows with every score masked give zeros
    (PyTorch's SDPA does the same) instead of 0/0."""
    # copyto(where=...) rather than boolean-index assignment: CuPy's `a[mask] = v` counts the mask
    # on the host first, a device synchronisation per call.
    try:
        top = scores.max(axis=-1, keepdims=True)
    except ValueError:  # no keys (S = 0): NumPy and CuPy have no max of nothing; the empty rows are done
        if scores.size:
            raise
        return scores
    if masked:
        xp.copyto(top, 0, where=top == -xp.inf)
    scores -= top
    xp.exp(scores, out=scores)
    total = scores.sum(axis=-1, keepdims=True)
    if masked:
        xp.copyto(total, 1, where=total == 0)
    scores /= total
    return scores


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """softmax(query @ key^T * scale + mask) @ value, as torch.nn.functional.scaled_dot_product_attention.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev). scale defaults to
    1/sqrt(E). attn_mask: bool (True = take part in attention) or float (added to the scores),
    broadcastable to (..., L, S). is_causal masks the future (query i sees keys 0..i); it excludes
    attn_mask. dropout_p drops attention probabilities (pass 0.0 in evaluation, as with PyTorch).
    """
    out, _ = attention(query, key, value, attn_mask, dropout_p, is_causal, scale, need_weights=False,
                       enable_gqa=enable_gqa)
    return out


def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, need_weights=False,
              enable_gqa=False):
    """scaled_dot_product_attention returning (output, weights or None): the weights are the
    attention probabilities after dropout, (..., L, S), when need_weights."""
    _check(query, key, value, attn_mask, dropout_p, is_causal)
    if enable_gqa:
        key, value = _repeat_kv_heads(query, key, value)
    if scale is None:
        try:
            scale = 1.0 / math.sqrt(query.shape[-1])
        except ZeroDivisionError:  # E = 0, as PyTorch: inf, and the scores are empty sums (zeros)
            scale = math.inf
    else:
        scale = float(scale)
    keep = None
    if dropout_p > 0.0:
        shape = _broadcast_batch(query.shape[:-2], key.shape[:-2]) + (query.shape[-2], key.shape[-2])
        keep = bernoulli_mask(shape, 1.0 - dropout_p, query.dtype, query.device)
        keep *= 1.0 / (1.0 - dropout_p)
    result = ScaledDotProductAttention.apply(query, key, value, attn_mask, keep, scale, bool(is_causal),
                                             bool(need_weights))
    return result if need_weights else (result, None)


def _broadcast_batch(a, b):
    return tuple(np.broadcast_shapes(tuple(a), tuple(b)))


def _repeat_kv_heads(query, key, value):
    """Grouped-query attention: repeat each key/value head for its group of query heads."""
    heads, kv_heads = query.shape[-3], key.shape[-3]
    if heads % kv_heads:
        raise ShapeError(
            f"scaled_dot_product_attention: {heads} query heads are not a multiple of {kv_heads} key heads"
        )
    repeat = heads // kv_heads
    key = key.unsqueeze(-3).expand(*key.shape[:-2], repeat, *key.shape[-2:]).flatten(-4, -3)
    value = value.unsqueeze(-3).expand(*value.shape[:-2], repeat, *value.shape[-2:]).flatten(-4, -3)
    return key, value


def _check(query, key, value, attn_mask, dropout_p, is_causal):
    op = "scaled_dot_product_attention"
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise ShapeError(f"{op}: {name} needs at least 2 dims (..., length, features), got {tuple(t.shape)}")
        if t.dtype != query.dtype or t.dtype.kind != "f":
            raise DTypeError(
                f"{op}: query, key and value must share one floating dtype, got {query.dtype}, {key.dtype}, "
                f"{value.dtype}"
            )
    if query.shape[-1] != key.shape[-1]:
        raise ShapeError(f"{op}: query features {query.shape[-1]} and key features {key.shape[-1]} differ")
    if key.shape[-2] != value.shape[-2]:
        raise ShapeError(f"{op}: key length {key.shape[-2]} and value length {value.shape[-2]} differ")
    if attn_mask is not None:
        if is_causal:
            raise ValueError(f"{op}: pass either attn_mask or is_causal=True, not both (fold causality into the mask)")
        if not isinstance(attn_mask, Tensor):
            raise TypeError(f"{op}: attn_mask must be a Tensor, got {type(attn_mask).__name__}")
        if attn_mask.dtype != bool and attn_mask.dtype != query.dtype:
            raise DTypeError(f"{op}: attn_mask must be bool or {query.dtype} like query, got {attn_mask.dtype}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{op}: dropout_p must be in [0, 1), got {dropout_p}")
