"""The convolution's backward as Tensor ops, for create_graph=True (a gradient penalty on a
convolutional critic, as in WGAN-GP, differentiates through it).

ConvNd saves the im2col columns, not its input; `derived_in_graph` puts the columns back in the
graph as the output of an Im2Col node linked to the input. The gradients are then the same two
products as ConvNd.backward, on Tensors, with Col2Im (im2col's adjoint) for the input gradient.
"""
from __future__ import annotations

from ...autograd import Function
from ...creation import zeros
from ...graph_backward import derived_in_graph, saved_in_graph
from ...ops.join import cat
from .conv import _col2im, _grouped, _im2col, _ungrouped


class Im2Col(Function):
    """x -> the column matrix (C*kh*kw, N*Ho*Wq) of a convolution geometry; adjoint of Col2Im."""

    arguments = 3

    @staticmethod
    def forward(ctx, x, spec, geo):
        ctx.spec, ctx.geo, ctx.channels_batch = spec, geo, spec.to_4d(x).shape[1::-1]
        return _im2col(spec.to_4d(x), geo, ctx.xp)

    @staticmethod
    def backward(ctx, grad):
        C, N = ctx.channels_batch
        return ctx.spec.from_4d(_col2im(grad, ctx.geo, C, N, ctx.xp)), None, None

    @staticmethod
    def backward_graph(ctx, grad):
        C, N = ctx.channels_batch
        return Col2Im.apply(grad, ctx.spec, ctx.geo, C, N), None, None


class Col2Im(Function):
    """Columns -> an input-shaped array, each column added back where im2col read it."""

    @staticmethod
    def forward(ctx, cols, spec, geo, C, N):
        ctx.spec, ctx.geo = spec, geo
        return spec.from_4d(_col2im(cols, geo, C, N, ctx.xp))

    @staticmethod
    def backward(ctx, grad):
        return _im2col(ctx.spec.to_4d(grad), ctx.geo, ctx.xp), None, None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        return Im2Col.apply(grad, ctx.spec, ctx.geo), None, None, None, None


def conv_backward_graph(ctx, grad):
    """ConvNd.backward on Tensors."""
    cols_array, _ = ctx.saved_tensors
    weight = saved_in_graph(ctx)[1]
    spec, geo = ctx.spec, ctx.geo
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    N, C = ctx.x_shape[:2]
    gmat = _columns_of_output(spec.to_4d(grad), geo)
    grad_x = grad_w = grad_b = None
    if need_x:
        wmat = spec.weight_4d(weight).reshape(weight.shape[0], -1)
        gcols = _ungrouped(_grouped(wmat, spec.groups).mT @ _grouped(gmat, spec.groups))
        grad_x = Col2Im.apply(gcols, spec, geo, C, N)
    if need_w:
        cols = derived_in_graph(ctx, cols_array, 0, Im2Col, spec=spec, geo=geo, channels_batch=(C, N))
        grad_w = _ungrouped(_grouped(gmat, spec.groups) @ _grouped(cols, spec.groups).mT).reshape(weight.shape)
    if need_b:
        grad_b = gmat.sum(1)
    return grad_x, grad_w, grad_b, None


def _columns_of_output(y, geo):
    """conv._to_columns on a Tensor: (N, O, Ho, Wo) -> (O, N*Ho*Wq), zeros in the junk columns."""
    N, O = y.shape[:2]
    moved = y.permute(1, 0, 2, 3)
    if geo.Wq != geo.Wo:
        moved = cat([moved, zeros((O, N, geo.Ho, geo.Wq - geo.Wo), dtype=y.dtype, device=y.device)], 3)
    return moved.reshape(O, N * geo.columns)
