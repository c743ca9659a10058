"""Volumetric convolutions, each one matrix product: conv3d and conv_transpose3d.

The 2-d recipe of conv.py one dimension up. The input is copied once into a zero-padded buffer laid
out channels first, (C, N, Dp, Hp, Wp) (no copy at all without padding: the view reads x in place).
One strided view of it, (C, kd, kh, kw, N, Do, Ho, Wo), holds every kernel tap for every output
position; one copy makes that the column matrix (C*kd*kh*kw, N*Do*Ho*Wo) and the convolution is
weight (O, C*kd*kh*kw) @ columns, batched over groups. The gradients are two more products and
col2im, which adds each tap's slice of the column gradient back where it was read: kd*kh*kw strided
adds, never a loop over voxels or channels. A transposed convolution is the adjoint: col2im of the
product in forward, im2col of the gradient in backward.

Outputs come back as (N, O, Do, Ho, Wo) views of the (O, N, Do, Ho, Wo) product, as in conv.py.
"""
from __future__ import annotations

import itertools

from ...amp import autocast_inputs
from ...autograd import Function
from ...errors import ShapeError
from ...tensor import Tensor
from .conv import _check_operands, _grouped, _pair, _ungrouped

# ------------------------------------------------------------------------------------ geometry


class _Geometry3d:
    """Sizes of one 3-d convolution over a (D, H, W) input. pads: (front, back, top, bottom, left,
    right). `out` fixes the output size (a transposed convolution's input size) instead of deriving it."""

    def __init__(self, size, kernel, stride, dilation, pads, out=None):
        self.size, self.kernel, self.stride, self.dilation = tuple(size), tuple(kernel), stride, dilation
        self.low = pads[0::2]
        self.padded = tuple(n + a + b for n, a, b in zip(size, pads[0::2], pads[1::2]))
        if out is None:
            out = tuple((p - d * (k - 1) - 1) // s + 1
                        for p, k, s, d in zip(self.padded, kernel, stride, dilation))
        self.out = tuple(out)

    @property
    def taps(self):
        return self.kernel[0] * self.kernel[1] * self.kernel[2]

    @property
    def columns(self):
        """Output positions per image."""
        return self.out[0] * self.out[1] * self.out[2]

    def interior(self):
        """The slices of the padded buffer's spatial dims that hold the input."""
        return tuple(slice(a, a + n) for a, n in zip(self.low, self.size))

    def tap(self, axis, i):
        """The slice of the padded buffer along `axis` that kernel tap i reads for every output."""
        start = i * self.dilation[axis]
        return slice(start, start + (self.out[axis] - 1) * self.stride[axis] + 1, self.stride[axis])


def _im2col(x, geo, xp):
    """x (N, C, D, H, W) -> columns (C*kd*kh*kw, N*Do*Ho*Wo), one copy of a strided view."""
    N, C = x.shape[:2]
    if geo.padded == geo.size:
        src, (sN, sC, sD, sH, sW) = x, x.strides  # nothing to pad: read x where it is
    else:
        src = xp.zeros((C, N) + geo.padded, dtype=x.dtype)
        src[(slice(None), slice(None)) + geo.interior()] = x.transpose(1, 0, 2, 3, 4)
        sC, sN, sD, sH, sW = src.strides
    (dd, dh, dw), (td, th, tw) = geo.dilation, geo.stride
    shape = (C, *geo.kernel, N, *geo.out)
    strides = (sC, dd * sD, dh * sH, dw * sW, sN, td * sD, th * sH, tw * sW)
    view = xp.lib.stride_tricks.as_strided(src, shape, strides)
    return xp.ascontiguousarray(view).reshape(C * geo.taps, N * geo.columns)


def _col2im(cols, geo, C, N, xp):
    """Columns (C*kd*kh*kw, N*Do*Ho*Wo) -> (N, C, D, H, W): each tap's slice added back where it was read."""
    buf = xp.zeros((C, N) + geo.padded, dtype=cols.dtype)
    taps = cols.reshape(C, *geo.kernel, N, *geo.out)
    for a, b, c in itertools.product(*(range(k) for k in geo.kernel)):
        buf[:, :, geo.tap(0, a), geo.tap(1, b), geo.tap(2, c)] += taps[:, a, b, c]
    return buf[(slice(None), slice(None)) + geo.interior()].transpose(1, 0, 2, 3, 4)


def _to_columns(y, xp):
    """(N, O, Do, Ho, Wo) -> the (O, N*Do*Ho*Wo) matrix of the column grid."""
    return xp.ascontiguousarray(y.transpose(1, 0, 2, 3, 4)).reshape(y.shape[1], -1)


def _from_columns(mat, geo, N):
    """The (O, N*Do*Ho*Wo) product as an (N, O, Do, Ho, Wo) view."""
    return mat.reshape(mat.shape[0], N, *geo.out).transpose(1, 0, 2, 3, 4)  # no -1: N may be 0


# ---------------------------------------------------------------------------------- Functions


class Conv3d(Function):
    """y = conv(x, weight) + bias: x (N, C, D, H, W), weight (O, C/groups, kd, kh, kw) -> (N, O, Do, Ho, Wo)."""

    @staticmethod
    def forward(ctx, x, weight, bias, geo, groups):
        xp = ctx.xp
        cols = _im2col(x, geo, xp)
        wmat = weight.reshape(weight.shape[0], -1)
        out = _ungrouped(_grouped(wmat, groups) @ _grouped(cols, groups))
        if bias is not None:
            out += bias[:, None]
        ctx.geo, ctx.groups, ctx.x_shape = geo, groups, x.shape
        ctx.save_for_backward(cols if ctx.needs_input_grad[1] else None, weight)
        return _from_columns(out, geo, x.shape[0])

    @staticmethod
    def backward(ctx, grad):
        cols, weight = ctx.saved_tensors
        geo, groups, xp = ctx.geo, ctx.groups, ctx.xp
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        N, C = ctx.x_shape[:2]
        gmat = _to_columns(grad, xp)
        grad_x = grad_w = grad_b = None
        if need_x:
            wmat = weight.reshape(weight.shape[0], -1)
            gcols = _ungrouped(_grouped(wmat, groups).transpose(0, 2, 1) @ _grouped(gmat, groups))
            grad_x = _col2im(gcols, geo, C, N, xp)
        if need_w:
            grad_w = _ungrouped(_grouped(gmat, groups) @ _grouped(cols, groups).transpose(0, 2, 1))
            grad_w = grad_w.reshape(weight.shape)
        if need_b:
            grad_b = gmat.sum(axis=1)
        return grad_x, grad_w, grad_b, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        from .conv3d_graph import conv3d_backward_graph  # it builds on this module's helpers

        return conv3d_backward_graph(ctx, grad)


class ConvTranspose3d(Function):
    """The adjoint of Conv3d: x (N, C, D, H, W), weight (C, O/groups, kd, kh, kw) -> (N, O, Dout, Hout, Wout).
    geo is the convolution it is the adjoint of: its input is our output, its output our input."""

    @staticmethod
    def forward(ctx, x, weight, bias, geo, groups):
        xp = ctx.xp
        N, C = x.shape[:2]
        O = weight.shape[1] * groups
        xmat = _to_columns(x, xp)  # (C, N*D*H*W): x plays the convolution's output
        wmat = weight.reshape(C, -1)
        cols = _ungrouped(_grouped(wmat, groups).transpose(0, 2, 1) @ _grouped(xmat, groups))
        out = _col2im(cols, geo, O, N, xp)
        if bias is not None:
            out = out + bias[:, None, None, None]
        ctx.geo, ctx.groups = geo, groups
        ctx.save_for_backward(xmat if ctx.needs_input_grad[1] else None, weight)
        return out

    @staticmethod
    def backward(ctx, grad):
        xmat, weight = ctx.saved_tensors
        geo, groups, xp = ctx.geo, ctx.groups, ctx.xp
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        cols = _im2col(grad, geo, xp)  # (O*kd*kh*kw, N*D*H*W)
        wmat = weight.reshape(weight.shape[0], -1)
        grad_x = grad_w = grad_b = None
        if need_x:
            gx = _ungrouped(_grouped(wmat, groups) @ _grouped(cols, groups))
            grad_x = _from_columns(gx, geo, grad.shape[0])
        if need_w:
            grad_w = _ungrouped(_grouped(xmat, groups) @ _grouped(cols, groups).transpose(0, 2, 1))
            grad_w = grad_w.reshape(weight.shape)
        if need_b:
            grad_b = grad.sum(axis=(0, 2, 3, 4))
        return grad_x, grad_w, grad_b, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        from .conv3d_graph import conv_transpose3d_backward_graph

        return conv_transpose3d_backward_graph(ctx, grad)


# ------------------------------------------------------------------------------ user functions


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """input (N, C, D, H, W) or (C, D, H, W), weight (O, C/groups, kd, kh, kw) -> (N, O, Do, Ho, Wo),
    Do = floor((D + 2*padding - dilation*(kd-1) - 1) / stride) + 1.
    padding: int, (pd, ph, pw), 'valid' (0) or 'same' (output size = input size; stride 1 only)."""
    op = "conv3d"
    input, weight, bias = autocast_inputs(input, weight, bias)  # float16 on CUDA inside tensor.amp.autocast
    batched = _check_3d(op, input, weight, bias, groups, transposed=False)
    stride, dilation = _triple(stride, op, "stride"), _triple(dilation, op, "dilation")
    pads = _pads(padding, weight.shape[2:], stride, dilation, op)
    x = input if batched else input.unsqueeze(0)
    for n, k, d, a, b, name in zip(x.shape[2:], weight.shape[2:], dilation, pads[0::2], pads[1::2],
                                   ("depth", "height", "width")):
        if n + a + b < d * (k - 1) + 1:
            raise ShapeError(
                f"{op}: padded input {name} {n + a + b} is smaller than the dilated kernel {d * (k - 1) + 1} "
                f"(input {tuple(input.shape)}, weight {tuple(weight.shape)}); pad the input or use a smaller kernel"
            )
    geo = _Geometry3d(x.shape[2:], weight.shape[2:], stride, dilation, pads)
    out = Conv3d.apply(x, weight, bias, geo, groups)
    return out if batched else out.squeeze(0)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,  # noqa: A002
                     dilation=1):
    """input (N, C, D, H, W) or (C, D, H, W), weight (C, O/groups, kd, kh, kw) -> (N, O, Dout, Hout, Wout),
    the adjoint of conv3d: Dout = (D-1)*stride - 2*padding + dilation*(kd-1) + output_padding + 1."""
    op = "conv_transpose3d"
    input, weight, bias = autocast_inputs(input, weight, bias)
    batched = _check_3d(op, input, weight, bias, groups, transposed=True)
    stride, dilation = _triple(stride, op, "stride"), _triple(dilation, op, "dilation")
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding={padding!r} is not supported for transposed convolutions; give integers")
    pad = _triple(padding, op, "padding", minimum=0)
    out_pad = _triple(output_padding, op, "output_padding", minimum=0)
    if any(o >= s and o >= d for o, s, d in zip(out_pad, stride, dilation)):
        raise ValueError(
            f"{op}: output_padding {out_pad} must be smaller than either stride {stride} or dilation {dilation}"
        )
    x = input if batched else input.unsqueeze(0)
    size, kernel = tuple(x.shape[2:]), tuple(weight.shape[2:])
    out = tuple((n - 1) * s - 2 * p + d * (k - 1) + o + 1
                for n, k, s, d, p, o in zip(size, kernel, stride, dilation, pad, out_pad))
    if min(out) < 1:
        raise ShapeError(
            f"{op}: output size {out} is not positive for input {size}, kernel {kernel}, stride {stride}, "
            f"padding {pad}; reduce the padding"
        )
    geo = _Geometry3d(out, kernel, stride, dilation, tuple(p for p in pad for _ in range(2)), out=size)
    y = ConvTranspose3d.apply(x, weight, bias, geo, groups)
    return y if batched else y.squeeze(0)


def _check_3d(op, x, weight, bias, groups, transposed):
    """Validate shapes and dtypes; return whether the input carries a batch dimension."""
    if isinstance(x, Tensor) and x.ndim not in (4, 5):
        raise ShapeError(
            f"{op}: expected a 5-d (N, C, D, H, W) or 4-d unbatched (C, D, H, W) input, got shape {tuple(x.shape)}"
        )
    return _check_operands(op, x, weight, bias, 3, groups, in_dim=0 if transposed else 1, transposed=transposed)


def _triple(value, op, name, minimum=1):
    """An int or a tuple of 3 ints -> (d, h, w), each >= minimum."""
    return _pair(value, 3, op, name, minimum)


def _pads(padding, kernel, stride, dilation, op):
    """(front, back, top, bottom, left, right) from an int, a triple, 'valid' or 'same' (the odd
    extra on the back/bottom/right, as torch)."""
    if padding == "valid":
        return (0,) * 6
    if padding == "same":
        if stride != (1, 1, 1):
            raise ValueError(f"{op}: padding='same' is not supported for strided convolutions (stride {stride})")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple(p for t in totals for p in (t // 2, t - t // 2))
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding={padding!r}: use an int, a tuple of 3 ints, 'same' or 'valid'")
    return tuple(p for p in _triple(padding, op, "padding", minimum=0) for _ in range(2))
