"""dropout (and dropout1d / dropout2d / dropout3d / alpha_dropout /
feature_alpha_dropout): zero each element with probability p in training
and scale the rest by 1 / (1 - p).

One Function that saves the (already scaled) mask, so backward is a single multiply. The mask
comes from the engine's default Generator for the input's device, so `tensor.manual_seed`
makes it reproducible. On CUDA, FusedDropout draws the same uniforms and makes the mask and the
product in one kernel, keeping a 1-byte mask (tensor/kernels/dropout.py).
"""
from __future__ import annotations

import warnings

from ... import dtypes, kernels
from ...autograd import Function
from ...graph_backward import saved_in_graph
from ...random import bernoulli_mask, rand
from ...tensor import _wrap


class Dropout(Function):
    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None

    @staticmethod
    def backward_graph(ctx, grad):
        (mask,) = saved_in_graph(ctx)  # drawn before the op: a constant
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

    @staticmethod
    def backward_graph(ctx, grad):
        (keep,) = saved_in_graph(ctx)
        return grad * keep.to(grad.dtype) * (1.0 / (1.0 - ctx.p)), None, None


def dropout(input, p=0.5, training=True, inplace=False, generator=None):
    """Identity when not training or p == 0; zeros when p == 1. `inplace` is accepted, not used."""
    _check_p("dropout", p)
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


# ------------------------------------------------------------------------- channel (feature) dropout


def _check_p(op, p):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: probability p must be between 0 and 1, got {p}")


def _channel_dropout(input, p, generator):
    """Zero whole channels: one mask entry per (N, C), broadcast over the trailing dims."""
    mask_shape = tuple(input.shape[:2]) + (1,) * (input.dim() - 2)
    mask = bernoulli_mask(mask_shape, 1.0 - p, input.dtype, input.device, generator)
    mask *= 1.0 / (1.0 - p)
    return Dropout.apply(input, mask)


def _feature_dropout(op, input, p, training, batched_dims, generator):
    _check_p(op, p)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    if input.dim() == batched_dims - 1:  # unbatched (C, ...): drop along dim 0
        return _channel_dropout(input.unsqueeze(0), p, generator).squeeze(0)
    return _channel_dropout(input, p, generator)


def dropout1d(input, p=0.5, training=True, inplace=False, generator=None):
    """Zero each channel of an (N, C, L) or (C, L) input with probability p, scale the rest by 1 / (1 - p)."""
    if input.dim() not in (2, 3):
        raise ValueError(f"dropout1d: expected a 3-d (N, C, L) or 2-d (C, L) input, got shape {tuple(input.shape)}; "
                         "use dropout2d for (N, C, H, W)")
    return _feature_dropout("dropout1d", input, p, training, 3, generator)


def dropout2d(input, p=0.5, training=True, inplace=False, generator=None):
    """Zero each channel of an (N, C, H, W) or (C, H, W) input with probability p, scale the rest by
    1 / (1 - p). A 3-d input is read as (N, C, L), as PyTorch still does (with the same warning)."""
    if input.dim() not in (3, 4):
        raise ValueError(f"dropout2d: expected a 4-d (N, C, H, W) or 3-d input, got shape {tuple(input.shape)}; "
                         "use dropout1d for (N, C, L) or dropout for elementwise dropout")
    if input.dim() == 3:
        warnings.warn("dropout2d: received a 3-d input; treating it as (N, C, L) with channel-wise dropout, as "
                      "PyTorch does. Use dropout1d for that.", stacklevel=2)
        return _feature_dropout("dropout2d", input, p, training, 3, generator)
    return _feature_dropout("dropout2d", input, p, training, 4, generator)


def dropout3d(input, p=0.5, training=True, inplace=False, generator=None):
    """Zero each channel of an (N, C, D, H, W) or (C, D, H, W) input with probability p, scale the rest by
    1 / (1 - p). Other ranks are read as unbatched (channels first), as PyTorch still does (with the same
    warning)."""
    if input.dim() not in (4, 5):
        warnings.warn(f"dropout3d: received a {input.dim()}-d input; expected a 5-d (N, C, D, H, W) or 4-d "
                      "(C, D, H, W) one. Treating dim 0 as channels, as PyTorch does; use dropout for "
                      "elementwise dropout.", stacklevel=2)
    batched_dims = 5 if input.dim() == 5 else input.dim() + 1
    return _feature_dropout("dropout3d", input, p, training, batched_dims, generator)


# ------------------------------------------------------------------------- alpha dropout (for SELU nets)

# -SELU's negative saturation value, scale * alpha: dropped units are set to it, then everything is
# rescaled so that zero mean and unit variance survive (Klambauer et al., 2017).
_ALPHA_PRIME = 1.7580993408473766


def alpha_dropout(input, p=0.5, training=False, inplace=False, generator=None):
    """Drop elements to SELU's saturation value with probability p, then an affine map a * x + b that
    keeps zero mean / unit variance. Identity when not training (PyTorch's default here is False)."""
    return _alpha_dropout("alpha_dropout", input, p, training, None, generator)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False, generator=None):
    """alpha_dropout with one keep/drop draw per channel: (N, C, *) drops whole (n, c) maps, as
    PyTorch's FeatureAlphaDropout does for SELU convolutional nets."""
    return _alpha_dropout("feature_alpha_dropout", input, p, training, 2, generator)


def _alpha_dropout(op, input, p, training, feature_dims, generator):
    """feature_dims: None draws per element, 2 draws per (N, C) and broadcasts over the rest."""
    _check_p(op, p)
    if not training or p == 0.0 or input.numel() == 0:
        return input
    if p == 1.0:
        return input * 0.0
    shape = tuple(input.shape)
    if feature_dims is not None:
        if input.dim() < feature_dims:
            raise ValueError(f"{op}: needs an input with at least 2 dims (N, C, ...), got shape {shape}; "
                             "use alpha_dropout for elementwise dropout")
        shape = shape[:feature_dims] + (1,) * (input.dim() - feature_dims)
    keep = bernoulli_mask(shape, 1.0 - p, input.dtype, input.device, generator)
    a = ((_ALPHA_PRIME ** 2 * p + 1.0) * (1.0 - p)) ** -0.5
    # kept: a * x + a * alpha' * p; dropped: a * alpha' * (p - 1), both folded into one scale and shift
    shift = (keep - 1.0) * (_ALPHA_PRIME * a) + _ALPHA_PRIME * a * p
    keep *= a
    return Dropout.apply(input, keep) + _wrap(shift)
