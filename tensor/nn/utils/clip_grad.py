"""Gradient clipping: clip_grad_norm_ (returns the total norm) and clip_grad_value_.

Both work in place on each parameter's .grad array. The norm is accumulated per gradient with
one BLAS dot for the 2-norm and combined on the first gradient's device; on CUDA nothing syncs
with the host unless error_if_nonfinite asks for a check.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ...backend import to_device_array
from ...errors import ShapeError
from ...tensor import Tensor, _wrap


def _gradients(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def _vector_norm(xp, array, norm_type):
    """The norm_type-norm of all of `array`'s elements (float32 at least); numpy may give a scalar."""
    if array.dtype.itemsize < 4:
        array = array.astype(np.float32)  # float16 sums would overflow or lose precision
    flat = array.reshape(-1)
    if norm_type == 2.0:
        return xp.sqrt(xp.vdot(flat, flat))
    if norm_type in (math.inf, -math.inf):
        if not flat.size:
            _refuse_empty_extreme_norm(array, norm_type)
        return xp.abs(flat).max() if norm_type > 0 else xp.abs(flat).min()
    if norm_type == 0.0:
        return xp.asarray(xp.count_nonzero(flat), dtype=flat.dtype)
    if norm_type == 1.0:
        return xp.abs(flat).sum()
    return (xp.abs(flat) ** norm_type).sum() ** (1.0 / norm_type)


def _refuse_empty_extreme_norm(array, norm_type):
    """The max or min of no values is undefined: PyTorch raises for an empty gradient here, and so do we."""
    raise ShapeError(f"cannot compute the {norm_type} norm of an empty tensor (shape {tuple(array.shape)}): max and "
                     "min have no identity. Leave empty tensors (zero-size parameters) out, or use norm_type=2")


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None) -> Tensor:
    """The norm of all the tensors' elements taken together (the norm of their norms), a 0-d Tensor."""
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    tensors = [t for t in tensors if t is not None]
    norm_type = float(norm_type)
    if not tensors:
        return _wrap(np.zeros((), np.float32))
    first = tensors[0]
    xp, device = first.xp, first.device
    norms = [to_device_array(t.xp.asarray(_vector_norm(t.xp, t.data, norm_type)), device) for t in tensors]
    total = xp.asarray(_vector_norm(xp, xp.stack(norms), norm_type)).astype(first.dtype, copy=False)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite ({float(total)}), "
            "so it cannot be clipped. To disable this error and scale the gradients by the non-finite norm anyway, "
            "set `error_if_nonfinite=False`"
        )
    return _wrap(total)


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None) -> None:
    """Scale every gradient by min(1, max_norm / (total_norm + 1e-6)), in place."""
    grads = _gradients(parameters)
    if not grads:
        return
    xp = grads[0].xp
    total = total_norm.data if isinstance(total_norm, Tensor) else total_norm
    coefficient = xp.minimum(float(max_norm) / (total + 1e-6), 1.0)  # a 0-d array: on cuda, no host sync
    if xp is np and coefficient >= 1.0:
        return  # on the CPU, skip the pass over memory when nothing changes
    for grad in grads:
        grad.data *= to_device_array(xp.asarray(coefficient), grad.device).astype(grad.dtype)
        grad._bump_version()


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None) -> Tensor:
    """Rescale gradients in place so their total norm is at most max_norm; returns the norm before clipping.

    norm_type may be inf (the largest absolute value). With error_if_nonfinite=True a nan or inf
    total norm raises RuntimeError instead of scaling the gradients by it.
    """
    parameters = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    total = get_total_norm(_gradients(parameters), norm_type, error_if_nonfinite)
    clip_grads_with_norm_(parameters, max_norm, total)
    return total


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None) -> Tensor:
    """Deprecated alias of clip_grad_norm_ (PyTorch warns with a FutureWarning, and so does this)."""
    warnings.warn("`tensor.nn.utils.clip_grad_norm` is now deprecated in favor of `tensor.nn.utils.clip_grad_norm_`.",
                  FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters, clip_value, foreach=None) -> None:
    """Clamp every gradient element into [-clip_value, clip_value], in place."""
    clip_value = float(clip_value)
    for grad in _gradients(parameters):
        grad.xp.clip(grad.data, -clip_value, clip_value, out=grad.data)
        grad._bump_version()
