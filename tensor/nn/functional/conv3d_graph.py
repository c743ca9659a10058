"""conv3d's and conv_transpose3d's backward as Tensor ops, for create_graph=True (a gradient penalty
through a volumetric critic). As conv_graph.py: the saved columns come back into the graph as the
output of an Im2Col3d node linked to the input, and im2col / col2im are recorded ops, each the
other's adjoint; the gradients are then the same products as the array backwards."""
from __future__ import annotations

from ...autograd import Function
from ...graph_backward import derived_in_graph, saved_in_graph
from .conv import _grouped, _ungrouped
from .conv3d import _col2im, _im2col


class Im2Col3d(Function):
    """x (N, C, D, H, W) -> the column matrix (C*kd*kh*kw, N*Do*Ho*Wo) of a geometry; adjoint of Col2Im3d."""

    arguments = 2

    @staticmethod
    def forward(ctx, x, geo):
        ctx.geo, ctx.channels_batch = geo, x.shape[1::-1]
        return _im2col(x, geo, ctx.xp)

    @staticmethod
    def backward(ctx, grad):
        C, N = ctx.channels_batch
        return _col2im(grad, ctx.geo, C, N, ctx.xp), None

    @staticmethod
    def backward_graph(ctx, grad):
        C, N = ctx.channels_batch
        return Col2Im3d.apply(grad, ctx.geo, C, N), None


class Col2Im3d(Function):
    """Columns -> an (N, C, D, H, W) array, each column added back where im2col read it."""

    @staticmethod
    def forward(ctx, cols, geo, C, N):
        ctx.geo = geo
        return _col2im(cols, geo, C, N, ctx.xp)

    @staticmethod
    def backward(ctx, grad):
        return _im2col(grad, ctx.geo, ctx.xp), None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        return Im2Col3d.apply(grad, ctx.geo), None, None, None


class ToColumns3d(Function):
    """The node behind ConvTranspose3d's saved x as columns (C, N*D*H*W)."""

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.channels, ctx.batch, *ctx.size).transpose(1, 0, 2, 3, 4)


def _matrix(y):
    """(N, O, Do, Ho, Wo) Tensor -> (O, N*Do*Ho*Wo)."""
    return y.permute(1, 0, 2, 3, 4).reshape(y.shape[1], -1)


def _unmatrix(mat, N, size):
    return mat.reshape(mat.shape[0], N, *size).permute(1, 0, 2, 3, 4)


def conv3d_backward_graph(ctx, grad):
    """Conv3d.backward on Tensors."""
    cols_array, _ = ctx.saved_tensors
    weight = saved_in_graph(ctx)[1]
    geo, groups = ctx.geo, ctx.groups
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    N, C = ctx.x_shape[:2]
    gmat = _matrix(grad)
    grad_x = grad_w = grad_b = None
    if need_x:
        wmat = weight.reshape(weight.shape[0], -1)
        grad_x = Col2Im3d.apply(_ungrouped(_grouped(wmat, groups).mT @ _grouped(gmat, groups)), geo, C, N)
    if need_w:
        cols = derived_in_graph(ctx, cols_array, 0, Im2Col3d, geo=geo, channels_batch=(C, N))
        grad_w = _ungrouped(_grouped(gmat, groups) @ _grouped(cols, groups).mT).reshape(weight.shape)
    if need_b:
        grad_b = gmat.sum(1)
    return grad_x, grad_w, grad_b, None, None


def conv_transpose3d_backward_graph(ctx, grad):
    """ConvTranspose3d.backward on Tensors."""
    xmat_array, _ = ctx.saved_tensors
    weight = saved_in_graph(ctx)[1]
    geo, groups = ctx.geo, ctx.groups
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    N = grad.shape[0]
    cols = Im2Col3d.apply(grad, geo)  # (O*kd*kh*kw, N*D*H*W)
    wmat = weight.reshape(weight.shape[0], -1)
    grad_x = grad_w = grad_b = None
    if need_x:
        grad_x = _unmatrix(_ungrouped(_grouped(wmat, groups) @ _grouped(cols, groups)), N, geo.out)
    if need_w:
        xmat = derived_in_graph(ctx, xmat_array, 0, ToColumns3d, channels=weight.shape[0], batch=N, size=geo.out)
        grad_w = _ungrouped(_grouped(xmat, groups) @ _grouped(cols, groups).mT).reshape(weight.shape)
    if need_b:
        grad_b = grad.sum((0, 2, 3, 4))
    return grad_x, grad_w, grad_b, None, None
