"""The convolutions' backward as Tensor ops, for create_graph=True (a gradient penalty on a
convolutional critic, as in WGAN-GP, differentiates through it; a generator's path-length penalty
through the transposed ones).

ConvNd saves the im2col columns, not its input; `derived_in_graph` puts the columns back in the
graph as the output of an Im2Col node linked to the input (ConvTransposeNd: its input as columns,
a ToColumns node). The gradients are then the same products as the array backwards, on Tensors,
with Im2Col and Col2Im (each the other's adjoint) as recorded ops.
"""
from __future__ import annotations

from ...autograd import Function
from ...creation import zeros
from ...graph_backward import derived_in_graph, saved_in_graph
from ...ops.join import cat
from .conv import _col2im, _from_columns, _grouped, _im2col, _ungrouped


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


class ToColumns(Function):
    """The node behind ConvTransposeNd's saved x as columns (C, N*H*Wq): its gradient drops the junk
    columns and comes back in x's layout."""

    @staticmethod
    def backward(ctx, grad):
        return ctx.spec.from_4d(_from_columns(grad, ctx.geo, ctx.batch))


def conv_transpose_backward_graph(ctx, grad):
    """ConvTransposeNd.backward on Tensors."""
    xmat_array, _ = ctx.saved_tensors
    weight = saved_in_graph(ctx)[1]
    spec, geo = ctx.spec, ctx.geo
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    g4 = spec.to_4d(grad)
    batch = g4.shape[0]
    cols = Im2Col.apply(grad, spec, geo)  # (O*kh*kw, N*H*Wq)
    wmat = spec.weight_4d(weight).reshape(weight.shape[0], -1)
    grad_x = grad_w = grad_b = None
    if need_x:
        gx = _ungrouped(_grouped(wmat, spec.groups) @ _grouped(cols, spec.groups))
        grad_x = spec.from_4d(_output_of_columns(gx, geo, batch))
    if need_w:
        xmat = derived_in_graph(ctx, xmat_array, 0, ToColumns, spec=spec, geo=geo, batch=batch)
        grad_w = _ungrouped(_grouped(xmat, spec.groups) @ _grouped(cols, spec.groups).mT).reshape(weight.shape)
    if need_b:
        grad_b = g4.sum((0, 2, 3))
    return grad_x, grad_w, grad_b, None


def _output_of_columns(mat, geo, batch):
    """conv._from_columns on a Tensor: (O, N*Ho*Wq) -> (N, O, Ho, Wo), junk columns dropped."""
    return mat.reshape(mat.shape[0], batch, geo.Ho, geo.Wq)[..., : geo.Wo].permute(1, 0, 2, 3)
