"""The normalisations' backward (layer_norm, group_norm, batch_norm, rms_norm) as Tensor ops, for
create_graph=True (a gradient penalty on a critic with layer norm differentiates through it).

On NumPy they save xhat and rstd, not their input; `derived_in_graph` puts both back in the graph
as the outputs of nodes linked to the input, whose backwards are the exact Jacobians:
    d xhat: the normalisation backward, rstd * (g - mean(g) - xhat * mean(g * xhat))
    d rstd: rstd = (var + eps)^-1/2, so d rstd / d x = -rstd^2 * xhat / n
(CUDA's fused layer_norm saves x itself: there both are recomputed from x with Tensor ops.) The
gradients are then the normalisation backward written with Tensor ops on those Tensors.
"""
from __future__ import annotations

from ...autograd import Function
from ...graph_backward import derived_in_graph, saved_in_graph
from ...tensor import _wrap
from .normalization import _normalization_backward, _size


class Standardized(Function):
    """The node behind a saved xhat: input x (of shape `x_shape`) -> (x - mean) * rstd over `axes`,
    or with centered=False (rms_norm) x * rstd, rstd then being 1 / rms."""

    arguments = 1
    centered = True

    @staticmethod
    def backward(ctx, grad):
        if ctx.centered:
            return _normalization_backward(grad, ctx.xhat, ctx.rstd, ctx.axes).reshape(ctx.x_shape)
        projection = (grad * ctx.xhat).mean(axis=ctx.axes, keepdims=True)
        return ((grad - ctx.xhat * projection) * ctx.rstd).reshape(ctx.x_shape)


class InverseStd(Function):
    """The node behind a saved rstd: input x -> (var(x) + eps)^-1/2 over `axes` (kept as size 1);
    the same derivative holds for rms_norm's (mean(x^2) + eps)^-1/2, with its own xhat."""

    arguments = 1

    @staticmethod
    def backward(ctx, grad):
        count = _size(ctx.xhat.shape[a] for a in ctx.axes)
        return (ctx.xhat * (grad * (ctx.rstd * ctx.rstd) * (-1.0 / count))).reshape(ctx.x_shape)


def layer_norm_backward_graph(ctx, grad):
    axes = ctx.axes
    if ctx.fused:
        x, _, _, weight = saved_in_graph(ctx)
        xhat, rstd = _standardized(x, axes, ctx.eps)
    else:
        xhat, rstd, weight = _statistics_in_graph(ctx, grad, axes)
    leading = tuple(range(grad.ndim - len(axes)))
    grads = _gradients(ctx, grad, xhat, rstd, weight, axes, tuple(grad.shape[grad.ndim - len(axes):]), leading)
    return grads + (None, None)


def group_norm_backward_graph(ctx, grad):
    xhat, rstd, weight = _statistics_in_graph(ctx, grad, (2,))
    _, param_shape = ctx.shapes
    grad_x, grad_weight, grad_bias = _gradients(ctx, grad, xhat, rstd, weight, (2,), param_shape,
                                                (0,) + tuple(range(2, grad.ndim)), first_param=2)
    return grad_x, None, grad_weight, grad_bias, None


def _statistics_in_graph(ctx, grad, axes, centered=True):
    """(xhat, rstd, weight) as Tensors in the graph, from what forward saved: (xhat, rstd, weight)."""
    xhat, rstd, _ = ctx.saved_tensors
    weight = saved_in_graph(ctx)[2]
    node = dict(xhat=xhat, rstd=rstd, axes=axes, x_shape=tuple(grad.shape))
    return (derived_in_graph(ctx, xhat, 0, Standardized, centered=centered, **node),
            derived_in_graph(ctx, rstd, 0, InverseStd, **node), weight)


def _standardized(x, axes, eps):
    centered = x - x.mean(axes, keepdim=True)
    rstd = ((centered * centered).mean(axes, keepdim=True) + eps).rsqrt()
    return centered * rstd, rstd


def _gradients(ctx, grad, xhat, rstd, weight, axes, param_shape, reduce_axes, first_param=1, training=True,
               centered=True):
    """(grad x, grad weight, grad bias) where needed; xhat in the shape the normalisation works in
    (group_norm's (N, G, -1)), grad in x's shape, weight a Tensor or None. training=False: the
    statistics are constants (batch_norm in eval mode), so xhat's Jacobian is just rstd;
    centered=False: no mean was subtracted (rms_norm)."""
    needs = ctx.needs_input_grad
    x_shape = tuple(grad.shape)
    grad_x = grad_weight = grad_bias = None
    if needs[0]:
        gxhat = (grad * weight.reshape(param_shape) if weight is not None else grad).reshape(tuple(xhat.shape))
        result = gxhat
        if training:
            if centered:
                result = result - gxhat.mean(axes, keepdim=True)
            result = result - xhat * (gxhat * xhat).mean(axes, keepdim=True)
        grad_x = (result * rstd).reshape(x_shape)
    if needs[first_param] and weight is not None:
        grad_weight = (grad * xhat.reshape(x_shape)).sum(reduce_axes).reshape(tuple(weight.shape))
    if len(needs) > first_param + 1 and needs[first_param + 1]:
        grad_bias = grad.sum(reduce_axes)
    return grad_x, grad_weight, grad_bias


class Scaled(Function):
    """The node behind batch_norm's xhat in eval mode: input x -> (x - running mean) * rstd."""

    arguments = 1

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.rstd


def rms_norm_backward_graph(ctx, grad):
    axes = ctx.axes
    xhat, rrms, weight = _statistics_in_graph(ctx, grad, axes, centered=False)
    leading = tuple(range(grad.ndim - len(axes)))
    grad_x, grad_weight, _ = _gradients(ctx, grad, xhat, rrms, weight, axes,
                                        tuple(grad.shape[grad.ndim - len(axes):]), leading, centered=False)
    return grad_x, grad_weight, None, None


def batch_norm_backward_graph(ctx, grad):
    axes, shape, training = ctx.args
    if training:
        xhat, rstd, weight = _statistics_in_graph(ctx, grad, axes)
    else:  # running statistics: rstd is a constant, xhat is x scaled by it
        xhat_array, rstd_array, _ = ctx.saved_tensors
        xhat = derived_in_graph(ctx, xhat_array, 0, Scaled, rstd=rstd_array)
        rstd, weight = _wrap(rstd_array), saved_in_graph(ctx)[2]
    grad_x, grad_weight, grad_bias = _gradients(ctx, grad, xhat, rstd, weight, axes, shape, axes, first_param=3,
                                                training=training)
    return grad_x, None, None, grad_weight, grad_bias, None, None, None
