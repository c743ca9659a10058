"""dropout: zero each element with probability p in training and scale the rest by 1 / (1 - p).

One Function that saves the (already scaled) mask, so backward is a single multiply. The mask
comes from the engine's default Generator for the input's device, so `tensor.manual_seed`
makes it reproducible. On CUDA, FusedDropout draws the same uniforms and makes the mask and the
product in one kernel, keeping a 1-byte mask (tensor/kernels/dropout.py).
"""
from __future__ import annotations

from ... import dtypes, kernels
from ...autograd import Function
from ...random import bernoulli_mask, rand


class Dropout(Function):
    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None


class FusedDropout(Function):
    @staticmethod
    def forward(ctx, x, uniforms, p):
        out, keep = kernels.dropout_forward(x, uniforms, p)
        ctx.save_for_backward(keep)
        ctx.p = p
        return out

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return kernels.dropout_backward(grad, keep, ctx.p), None, None


def dropout(input, p=0.5, training=True, inplace=False, generator=None):
    """Identity when not training or p == 0; zeros when p == 1. `inplace` is accepted, not used."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p must be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    if kernels.dropout_fits(input.data):
        # the same float32 uniforms bernoulli_mask compares, from the same generator
        uniforms = rand(tuple(input.shape), generator=generator, dtype=dtypes.float32, device=input.device)
        return FusedDropout.apply(input, uniforms.data, p)
    mask = bernoulli_mask(tuple(input.shape), 1.0 - p, input.dtype, input.device, generator)
    mask *= 1.0 / (1.0 - p)  # fold the rescaling into the mask: one multiply each way
    return Dropout.apply(input, mask)
