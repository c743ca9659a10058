"""gradcheck: compare autograd's gradients with central finite differences (in float64).

The outputs are folded into one scalar L = sum_i <v_i, out_i> with fixed random weights v_i, so
one backward pass gives dL/d(input) for every input, and 2 forward passes per input element give
the same numerically: a full check of the vector-Jacobian product that backward computes.

gradgradcheck does the same for second derivatives: it gradchecks the function that returns the
first derivatives (computed with create_graph=True), as torch.autograd.gradgradcheck does.
"""
from __future__ import annotations

import numpy as np

from .autograd import Function, enable_grad, no_grad
from .creation import as_tensor
from .errors import AutogradError
from .tensor import Tensor


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0):
    """True if fn's analytical and numerical gradients agree for every input that requires grad."""
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise AutogradError("gradcheck: no input requires grad; pass tensors created with requires_grad=True")
    for t in checked:
        if t.dtype != np.float64:
            raise AutogradError(f"gradcheck: inputs must be float64 for finite differences to be exact, got {t.dtype}")
    weights = _output_weights(fn, inputs, seed)

    def scalar_loss():
        outs = [o for o, w in zip(_as_tuple(fn(*inputs)), weights) if w is not None]
        return _WeightedSum.apply([w for w in weights if w is not None], *outs)

    for t in checked:
        t.grad = None
    loss = scalar_loss()
    if loss.requires_grad:  # otherwise no output depends on an input: every gradient is zero
        loss.backward()
    for index, t in enumerate(checked):
        analytical = _host(t.grad.data) if t.grad is not None else np.zeros(t.shape)
        numerical = _numerical_grad(scalar_loss, t, eps)
        if not np.allclose(analytical, numerical, atol=atol, rtol=rtol):
            worst = np.unravel_index(np.argmax(np.abs(analytical - numerical)), analytical.shape)
            message = (
                f"gradcheck: gradient of input {index} (shape {tuple(t.shape)}) differs: at {worst} analytical "
                f"{analytical[worst]:.6g} vs numerical {numerical[worst]:.6g} (max abs diff "
                f"{np.max(np.abs(analytical - numerical)):.3g})"
            )
            if raise_exception:
                raise AutogradError(message)
            return False
        t.grad = None
    return True


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0):
    """True if fn's second derivatives (backward with create_graph=True, then backward again) agree
    with finite differences of its first derivatives, for every input that requires grad."""
    from .engine import grad

    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    weights = _output_weights(fn, inputs, seed + 1)

    def first_derivatives(*args):
        with enable_grad():  # also while gradcheck perturbs the inputs under no_grad
            pairs = [(o, w) for o, w in zip(_as_tuple(fn(*args)), weights) if w is not None and o.requires_grad]
            if not pairs:
                return tuple(Tensor(np.zeros(t.shape), dtype=t.dtype, device=t.device) for t in checked)
            grads = grad([o for o, _ in pairs], checked, [as_tensor(w, device=o.device) for o, w in pairs],
                         create_graph=True, allow_unused=True)
        return tuple(Tensor(np.zeros(t.shape), dtype=t.dtype, device=t.device) if g is None else g
                     for g, t in zip(grads, checked))

    return gradcheck(first_derivatives, inputs, eps, atol, rtol, raise_exception, seed)


class _WeightedSum(Function):
    """sum_i <w_i, out_i> as one node, so gradcheck needs no other op."""

    @staticmethod
    def forward(ctx, weights, *outs):
        ctx.weights = weights
        return sum((o * w).sum() for o, w in zip(outs, weights))

    @staticmethod
    def backward(ctx, grad):
        return (None,) + tuple(grad * w for w in ctx.weights)


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _host(array):
    return array if isinstance(array, np.ndarray) else array.get()


def _output_weights(fn, inputs, seed):
    rng = np.random.default_rng(seed)
    with no_grad():
        outs = _as_tuple(fn(*inputs))
    weights = []
    for o in outs:
        if isinstance(o, Tensor) and o.dtype.kind == "f":
            w = rng.standard_normal(o.shape)
            weights.append(Tensor(w, dtype=o.dtype, device=o.device).data)
        else:
            weights.append(None)
    return weights


def _numerical_grad(scalar_loss, t, eps):
    grad = np.zeros(t.shape)
    data = t.data  # perturbed in place, element by element, and restored
    with no_grad():
        for index in np.ndindex(*t.shape):
            original = data[index].item()
            data[index] = original + eps
            plus = scalar_loss().item()
            data[index] = original - eps
            minus = scalar_loss().item()
            data[index] = original
            grad[index] = (plus - minus) / (2 * eps)
    return grad
