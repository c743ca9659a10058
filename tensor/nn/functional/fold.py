"""unfold (im2col) and fold (col2im): sliding local blocks of a batch of images, and their sum back.

Each is one Function whose backward is the other: unfold copies every kernel tap of every block
position into a column, so its gradient adds each column entry back where it was read (fold); fold
adds columns into an image, so its gradient reads them out again (unfold). Both reuse the
convolution's strided im2col/col2im (tensor/nn/functional/conv.py; one kernel launch each on
CUDA), whose column grid may carry "wide" junk positions per row: we drop those on the way out
and give them zeros on the way in.
"""
from __future__ import annotations

from ...autograd import Function
from ...errors import ShapeError
from ...graph_backward import linear_backward_graph
from ._zero_size import refuse_empty_dims
from .conv import _col2im, _from_columns, _Geometry, _im2col, _to_columns


class _Blocks:
    """What a fold/unfold call fixes: kernel, dilation, padding, stride (pairs), image size (H, W)."""

    def __init__(self, image_hw, kernel, dilation, padding, stride):
        self.image_hw, self.kernel = image_hw, kernel
        pads = (padding[0], padding[0], padding[1], padding[1])
        self.geo = _Geometry(image_hw, kernel, stride, dilation, pads)

    @property
    def grid(self):
        """Block positions along (H, W)."""
        return self.geo.Ho, self.geo.Wo

    def columns_to_blocks(self, cols, batch):
        """im2col's (C*kh*kw, N*Ho*Wq) -> (N, C*kh*kw, L) with L = Ho * Wo block positions."""
        blocks = _from_columns(cols, self.geo, batch)  # (N, C*kh*kw, Ho, Wo) view
        return blocks.reshape(batch, blocks.shape[1], blocks.shape[2] * blocks.shape[3])  # no -1: batch may be 0

    def blocks_to_columns(self, blocks, xp):
        """(N, C*kh*kw, L) -> the (C*kh*kw, N*Ho*Wq) matrix col2im reads, junk positions zero."""
        return _to_columns(blocks.reshape(blocks.shape[0], blocks.shape[1], *self.grid), self.geo, xp)


class Unfold(Function):
    """x (N, C, H, W) -> blocks (N, C*kh*kw, L)."""

    @staticmethod
    def forward(ctx, x, blocks):
        ctx.blocks, ctx.channels = blocks, x.shape[1]
        return blocks.columns_to_blocks(_im2col(x, blocks.geo, ctx.xp), x.shape[0])

    @staticmethod
    def backward(ctx, grad):
        blocks = ctx.blocks
        cols = blocks.blocks_to_columns(grad, ctx.xp)
        return _col2im(cols, blocks.geo, ctx.channels, grad.shape[0], ctx.xp), None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, (ctx.blocks,))


class Fold(Function):
    """blocks (N, C*kh*kw, L) -> x (N, C, H, W), overlapping entries summed."""

    @staticmethod
    def forward(ctx, cols, blocks):
        ctx.blocks = blocks
        channels = cols.shape[1] // (blocks.kernel[0] * blocks.kernel[1])
        return _col2im(blocks.blocks_to_columns(cols, ctx.xp), blocks.geo, channels, cols.shape[0], ctx.xp)

    @staticmethod
    def backward(ctx, grad):
        blocks = ctx.blocks
        return blocks.columns_to_blocks(_im2col(grad, blocks.geo, ctx.xp), grad.shape[0]), None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, (ctx.blocks,))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding blocks of (N, C, H, W) or unbatched (C, H, W) -> (N, C*kh*kw, L) or (C*kh*kw, L).

    Column l holds the block at position l of the (Ho, Wo) grid, channel-major then kernel row-major,
    as PyTorch's; L = Ho * Wo with Ho = (H + 2*ph - dh*(kh - 1) - 1) // sh + 1 (W alike).
    """
    kernel, dilation, padding, stride = _arguments("unfold", kernel_size, dilation, padding, stride)
    if input.dim() not in (3, 4):
        raise ShapeError(f"unfold: input must be (N, C, H, W) or unbatched (C, H, W), got shape "
                         f"{tuple(input.shape)}")
    if not input.data.size:
        refuse_empty_dims("unfold", input, input.dim() - 3)
    batched = input.dim() == 4
    x = input if batched else input.unsqueeze(0)
    blocks = _Blocks(tuple(x.shape[2:]), kernel, dilation, padding, stride)
    if min(blocks.grid) < 1:
        raise ShapeError(f"unfold: kernel {kernel} with dilation {dilation} does not fit input {tuple(x.shape[2:])} "
                         f"padded by {padding}; use a smaller kernel or more padding")
    out = Unfold.apply(x, blocks)
    return out if batched else out.squeeze(0)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Sum blocks (N, C*kh*kw, L) or unbatched (C*kh*kw, L) into (N, C, *output_size): unfold's adjoint."""
    image_hw = _pair(output_size, "fold", "output_size", minimum=1)
    kernel, dilation, padding, stride = _arguments("fold", kernel_size, dilation, padding, stride)
    if input.dim() not in (2, 3):
        raise ShapeError(f"fold: input must be (N, C*kh*kw, L) or unbatched (C*kh*kw, L), got shape "
                         f"{tuple(input.shape)}")
    if not input.data.size:
        refuse_empty_dims("fold", input, input.dim() - 2)
    batched = input.dim() == 3
    cols = input if batched else input.unsqueeze(0)
    taps = kernel[0] * kernel[1]
    if cols.shape[1] % taps:
        raise ShapeError(f"fold: dim 1 of input shape {tuple(input.shape)} must be divisible by the kernel's "
                         f"{kernel[0]}*{kernel[1]} = {taps} taps (it is channels * kh * kw)")
    blocks = _Blocks(image_hw, kernel, dilation, padding, stride)
    expected = blocks.grid[0] * blocks.grid[1]
    if min(blocks.grid) < 1 or cols.shape[2] != expected:
        raise ShapeError(f"fold: output_size {image_hw}, kernel {kernel}, dilation {dilation}, padding {padding}, "
                         f"stride {stride} give {max(expected, 0)} blocks ({blocks.grid[0]} x {blocks.grid[1]}), "
                         f"but input shape {tuple(input.shape)} has {cols.shape[2]}; make them agree")
    out = Fold.apply(cols, blocks)
    return out if batched else out.squeeze(0)


def _arguments(op, kernel_size, dilation, padding, stride):
    return (_pair(kernel_size, op, "kernel_size", 1), _pair(dilation, op, "dilation", 1),
            _pair(padding, op, "padding", 0), _pair(stride, op, "stride", 1))


def _pair(value, op, name, minimum):
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= minimum for v in pair):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints >= {minimum}, got {value!r}")
    return pair
