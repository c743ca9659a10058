"""scaled_dot_product_attention's backward as Tensor ops, for create_graph=True (a gradient penalty
on a transformer critic, meta-learning through attention).

The op saves q, k, v (k and v maybe as contiguous copies) and the attention probabilities, not
the mask or the scores. The probabilities re-enter the graph as the output of an AttentionProbs
node linked to q, k and a float mask, whose backward is the softmax-then-product derivative; the
gradients are then ScaledDotProductAttention.backward written with Tensor ops.
"""
from __future__ import annotations

from ...autograd import Function
from ...graph_backward import derived_in_graph, saved_copy_in_graph
from ...ops._util import sum_to
from ...tensor import _wrap
from .attention import _softmax_backward


class AttentionProbs(Function):
    """The node behind saved probabilities P = softmax(q k^T * scale + mask): d P -> (d q, d k, d mask)."""

    arguments = 3

    @staticmethod
    def backward(ctx, grad):
        grad_scores = _softmax_backward(ctx.probs, grad.copy())  # it overwrites its gradient
        need_q, need_k, need_mask = ctx.needs_input_grad
        grad_q = sum_to((grad_scores @ ctx.k) * ctx.scale, ctx.q.shape) if need_q else None
        grad_k = sum_to((grad_scores.swapaxes(-1, -2) @ ctx.q) * ctx.scale, ctx.k.shape) if need_k else None
        grad_mask = sum_to(grad_scores, ctx.float_mask_shape) if need_mask and ctx.float_mask_shape else None
        return grad_q, grad_k, grad_mask


def attention_backward_graph(ctx, grad, grad_weights=None):
    q_array, k_array, _, probs_array, keep = ctx.saved_tensors
    q, k, v = (saved_copy_in_graph(ctx, i, i) for i in range(3))
    need_q, need_k, need_v, need_mask = ctx.needs_input_grad[:4]
    scale = ctx.scale
    probs = derived_in_graph(ctx, probs_array, (0, 1, 3), AttentionProbs, q=q_array, k=k_array, probs=probs_array,
                             scale=scale, float_mask_shape=ctx.float_mask_shape)
    keep = None if keep is None else _wrap(keep)
    dropped = probs * keep if keep is not None else probs
    grad_v = sum_to(dropped.mT @ grad, tuple(v.shape)) if need_v else None
    grad_dropped = grad @ v.mT
    if grad_weights is not None:
        grad_dropped = grad_dropped + grad_weights
    if keep is not None:
        grad_dropped = grad_dropped * keep
    grad_scores = probs * (grad_dropped - (grad_dropped * probs).sum(-1, keepdim=True))
    grad_q = sum_to((grad_scores @ k) * scale, tuple(q.shape)) if need_q else None
    grad_k = sum_to((grad_scores.mT @ q) * scale, tuple(k.shape)) if need_k else None
    grad_mask = sum_to(grad_scores, ctx.float_mask_shape) if need_mask and ctx.float_mask_shape else None
    return grad_q, grad_k, grad_v, grad_mask, None, None, None, None
