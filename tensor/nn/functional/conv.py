"""Convolutions, each one matrix product: conv1d, conv2d, conv_transpose1d, conv_transpose2d.

How (im2col on a channels-first buffer): the input is copied once into a zero-padded buffer laid
out (C, N, Hp, Wr). A strided view of it, (C, kh, kw, N, Ho, Wq), holds every kernel tap for every
output position; one copy makes that the column matrix (C*kh*kw, N*Ho*Wq), and the convolution is
weight (O, C*kh*kw) @ columns: one BLAS (cuBLAS) product, batched over groups. The gradients are
two more products and col2im, which adds the column gradient back into the buffer with one strided
add per kernel tap (kh*kw adds, never a loop over pixels). On CUDA, im2col and col2im are one
kernel launch each (tensor/kernels/columns.py).

"Wide" rows: with stride 1 we let every output row run over the whole padded width (Wq = Wr
instead of Wo). A tap's view is then one contiguous run of Ho*Wr elements per image instead of Ho
runs of Wo, which makes im2col and col2im several times faster; the Wq - Wo extra outputs per row
read across the row edge, are computed and dropped (they cost (Wq - Wo) / Wo more matmul work, so
we go wide only when that is small). Their gradient is zero, so they add nothing back.

Outputs come back as (N, O, Ho, Wo) views of the (O, N, Ho, Wq) product: no copy to NCHW. Elementwise
ops keep that layout, and the next convolution reads it as cheaply as NCHW.
"""
from __future__ import annotations

import numpy as np

from ... import kernels
from ...amp import autocast_inputs
from ...autograd import Function
from ...errors import DTypeError, ShapeError
from ...tensor import Tensor

# ------------------------------------------------------------------------------------ geometry


class _Geometry:
    """Sizes of one 2-d convolution over an (H, W) input: padded buffer, output and column grid.

    pads = (top, bottom, left, right). `out_hw` fixes the output size (a transposed convolution's
    input size) instead of deriving it.
    """

    def __init__(self, in_hw, kernel, stride, dilation, pads, out_hw=None):
        (self.H, self.W), (self.kh, self.kw) = in_hw, kernel
        (self.sh, self.sw), (self.dh, self.dw) = stride, dilation
        self.top, bottom, self.left, right = pads
        self.Hp = self.H + self.top + bottom
        Wp = self.W + self.left + right
        if out_hw is None:
            out_hw = ((self.Hp - self.dh * (self.kh - 1) - 1) // self.sh + 1,
                      (Wp - self.dw * (self.kw - 1) - 1) // self.sw + 1)
        self.Ho, self.Wo = out_hw
        wide = Wp  # stride 1 only: a strided row is not one run anyway
        self.Wq = wide if self.sw == 1 and 3 * (wide - self.Wo) <= self.Wo else self.Wo
        self.Wr = Wp  # row pitch of the buffer
        self.image = self.Hp * self.Wr
        last = ((self.Ho - 1) * self.sh + (self.kh - 1) * self.dh) * self.Wr + (self.Wq - 1) * self.sw \
            + (self.kw - 1) * self.dw
        self.slack = max(0, last + 1 - self.image)  # wide rows of the last image read past its end

    @property
    def columns(self):
        """Output positions the column matrix holds per image (junk included)."""
        return self.Ho * self.Wq


def _as_strided(xp):
    return xp.lib.stride_tricks.as_strided


def _pad_into_buffer(x, geo, xp):
    """x (N, C, H, W) -> flat zero buffer holding it padded, channels first: (C, N, Hp, Wr) + slack."""
    N, C = x.shape[:2]
    buf = xp.zeros(C * N * geo.image + geo.slack, dtype=x.dtype)
    body = buf[: C * N * geo.image].reshape(C, N, geo.Hp, geo.Wr)
    body[:, :, geo.top : geo.top + geo.H, geo.left : geo.left + geo.W] = x.transpose(1, 0, 2, 3)
    return buf


def _tap_view(buf, geo, C, N, xp, offset=0):
    """The strided view (C, N, Ho, Wq) of `buf` that kernel tap `offset` reads for every output."""
    item = buf.itemsize
    strides = (N * geo.image * item, geo.image * item, geo.sh * geo.Wr * item, geo.sw * item)
    return _as_strided(xp)(buf[offset:], (C, N, geo.Ho, geo.Wq), strides)


def _im2col(x, geo, xp):
    """x (N, C, H, W) -> columns (C*kh*kw, N*Ho*Wq), one contiguous copy of a strided view."""
    if kernels.columns_fit(x):  # CUDA: one launch instead of a fill and two copies
        return kernels.im2col(x, geo)
    N, C = x.shape[:2]
    buf = _pad_into_buffer(x, geo, xp)
    item = buf.itemsize
    shape = (C, geo.kh, geo.kw, N, geo.Ho, geo.Wq)
    strides = (N * geo.image * item, geo.dh * geo.Wr * item, geo.dw * item, geo.image * item,
               geo.sh * geo.Wr * item, geo.sw * item)
    view = _as_strided(xp)(buf, shape, strides)
    return xp.ascontiguousarray(view).reshape(C * geo.kh * geo.kw, N * geo.columns)


def _col2im(cols, geo, C, N, xp):
    """Columns (C*kh*kw, N*Ho*Wq) -> (N, C, H, W): add each tap's slice back where it was read."""
    if kernels.columns_fit(cols):  # CUDA: one gather launch instead of a fill and kh*kw adds
        return kernels.col2im(cols, geo, C, N)
    buf = xp.zeros(C * N * geo.image + geo.slack, dtype=cols.dtype)
    taps = cols.reshape(C, geo.kh, geo.kw, N, geo.Ho, geo.Wq)
    for i in range(geo.kh):
        for j in range(geo.kw):
            view = _tap_view(buf, geo, C, N, xp, offset=i * geo.dh * geo.Wr + j * geo.dw)
            view += taps[:, i, j]
    body = buf[: C * N * geo.image].reshape(C, N, geo.Hp, geo.Wr)
    return body[:, :, geo.top : geo.top + geo.H, geo.left : geo.left + geo.W].transpose(1, 0, 2, 3)


def _to_columns(y, geo, xp):
    """An output-shaped (N, O, Ho, Wo) array as the (O, N*Ho*Wq) matrix of the column grid (junk = 0)."""
    N, O = y.shape[:2]
    moved = y.transpose(1, 0, 2, 3)
    if geo.Wq == geo.Wo:
        return xp.ascontiguousarray(moved).reshape(O, N * geo.columns)
    wide = xp.zeros((O, N, geo.Ho, geo.Wq), dtype=y.dtype)
    wide[..., : geo.Wo] = moved
    return wide.reshape(O, N * geo.columns)


def _from_columns(mat, geo, N):
    """The (O, N*Ho*Wq) product as an (N, O, Ho, Wo) view, junk columns dropped."""
    return mat.reshape(mat.shape[0], N, geo.Ho, geo.Wq)[..., : geo.Wo].transpose(1, 0, 2, 3)  # no -1: N may be 0


def _grouped(mat, groups):
    """(G*r, c) -> (G, r, c): the batch of per-group matrices one matmul multiplies."""
    return mat.reshape(groups, mat.shape[0] // groups, mat.shape[1])


def _ungrouped(mat):
    return mat.reshape(mat.shape[0] * mat.shape[1], mat.shape[2])


# ---------------------------------------------------------------------------------- Functions


class _Spec:
    """What a convolution call fixes besides its arrays: 1 or 2 spatial dims, batched or not,
    stride, padding (top, bottom, left, right), dilation, groups, output padding (transposed)."""

    def __init__(self, spatial, batched, stride, pads, dilation, groups, output_padding=(0, 0)):
        self.spatial, self.batched = spatial, batched
        self.stride, self.pads, self.dilation, self.groups = stride, pads, dilation, groups
        self.output_padding = output_padding

    def to_4d(self, x):
        """(N, C, [H,] W) or unbatched (C, [H,] W) -> (N, C, H, W)."""
        if not self.batched:
            x = x[None]
        return x[:, :, None] if self.spatial == 1 else x

    def from_4d(self, y):
        if self.spatial == 1:
            y = y[:, :, 0]
        return y if self.batched else y[0]

    def weight_4d(self, w):
        return w[:, :, None] if self.spatial == 1 else w


class ConvNd(Function):
    """y = conv(x, weight) + bias with x (N, C, H, W), weight (O, C/groups, kh, kw) -> (N, O, Ho, Wo)."""

    @staticmethod
    def forward(ctx, x, weight, bias, spec):
        xp = ctx.xp
        x4, w4 = spec.to_4d(x), spec.weight_4d(weight)
        geo = _Geometry(x4.shape[2:], w4.shape[2:], spec.stride, spec.dilation, spec.pads)
        cols = _im2col(x4, geo, xp)
        wmat = w4.reshape(w4.shape[0], -1)
        out = _ungrouped(_grouped(wmat, spec.groups) @ _grouped(cols, spec.groups))
        if bias is not None:
            out += bias[:, None]
        ctx.spec, ctx.geo, ctx.x_shape = spec, geo, x4.shape
        ctx.save_for_backward(cols if ctx.needs_input_grad[1] else None, weight)
        return spec.from_4d(_from_columns(out, geo, x4.shape[0]))

    @staticmethod
    def backward(ctx, grad):
        cols, weight = ctx.saved_tensors
        spec, geo, xp = ctx.spec, ctx.geo, ctx.xp
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        N, C = ctx.x_shape[:2]
        gmat = _to_columns(spec.to_4d(grad), geo, xp)
        grad_x = grad_w = grad_b = None
        if need_x:
            wmat = spec.weight_4d(weight).reshape(weight.shape[0], -1)
            gcols = _ungrouped(_grouped(wmat, spec.groups).transpose(0, 2, 1) @ _grouped(gmat, spec.groups))
            grad_x = spec.from_4d(_col2im(gcols, geo, C, N, xp))
        if need_w:
            grad_w = _ungrouped(_grouped(gmat, spec.groups) @ _grouped(cols, spec.groups).transpose(0, 2, 1))
            grad_w = grad_w.reshape(weight.shape)
        if need_b:
            grad_b = gmat.sum(axis=1)
        return grad_x, grad_w, grad_b, None

    @staticmethod
    def backward_graph(ctx, grad):
        from .conv_graph import conv_backward_graph  # it builds on this module's helpers

        return conv_backward_graph(ctx, grad)


class ConvTransposeNd(Function):
    """The adjoint of ConvNd: x (N, C, H, W), weight (C, O/groups, kh, kw) -> (N, O, Hout, Wout)."""

    @staticmethod
    def forward(ctx, x, weight, bias, spec):
        xp = ctx.xp
        x4, w4 = spec.to_4d(x), spec.weight_4d(weight)
        geo = _transposed_geometry(x4.shape[2:], w4.shape[2:], spec)
        C, O = x4.shape[1], w4.shape[1] * spec.groups
        xmat = _to_columns(x4, geo, xp)  # (C, N*H*Wq): x plays the convolution's output
        wmat = w4.reshape(C, -1)
        cols = _ungrouped(_grouped(wmat, spec.groups).transpose(0, 2, 1) @ _grouped(xmat, spec.groups))
        out = _col2im(cols, geo, O, x4.shape[0], xp)
        if bias is not None:
            out = out + bias[:, None, None]
        ctx.spec, ctx.geo = spec, geo
        ctx.save_for_backward(xmat if ctx.needs_input_grad[1] else None, weight)
        return spec.from_4d(out)

    @staticmethod
    def backward(ctx, grad):
        xmat, weight = ctx.saved_tensors
        spec, geo, xp = ctx.spec, ctx.geo, ctx.xp
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        g4 = spec.to_4d(grad)
        cols = _im2col(g4, geo, xp)  # (O*kh*kw, N*H*Wq)
        wmat = spec.weight_4d(weight).reshape(weight.shape[0], -1)
        grad_x = grad_w = grad_b = None
        if need_x:
            gx = _ungrouped(_grouped(wmat, spec.groups) @ _grouped(cols, spec.groups))
            grad_x = spec.from_4d(_from_columns(gx, geo, g4.shape[0]))
        if need_w:
            grad_w = _ungrouped(_grouped(xmat, spec.groups) @ _grouped(cols, spec.groups).transpose(0, 2, 1))
            grad_w = grad_w.reshape(weight.shape)
        if need_b:
            grad_b = g4.sum(axis=(0, 2, 3))
        return grad_x, grad_w, grad_b, None

    @staticmethod
    def backward_graph(ctx, grad):
        from .conv_graph import conv_transpose_backward_graph

        return conv_transpose_backward_graph(ctx, grad)


def _transposed_geometry(in_hw, kernel, spec):
    """The convolution whose adjoint this is: its input is our output, its output our input."""
    out_hw = []
    for n, k, s, d, p, op in zip(in_hw, kernel, spec.stride, spec.dilation, spec.pads[::2], spec.output_padding):
        out_hw.append((n - 1) * s - 2 * p + d * (k - 1) + op + 1)
    if min(out_hw) < 1:
        raise ShapeError(
            f"conv_transpose: output size {tuple(out_hw)} is not positive for input {tuple(in_hw)}, kernel "
            f"{tuple(kernel)}, stride {spec.stride}, padding {spec.pads[::2]}; reduce the padding"
        )
    return _Geometry(out_hw, kernel, spec.stride, spec.dilation, spec.pads, out_hw=tuple(in_hw))


# ------------------------------------------------------------------------------ user functions


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """input (N, C, L) or (C, L), weight (O, C/groups, k) -> (N, O, Lout). padding: int, 'same', 'valid'."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, spatial=1, op="conv1d")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """input (N, C, H, W) or (C, H, W), weight (O, C/groups, kh, kw) -> (N, O, Ho, Wo).

    padding: int, (ph, pw), 'valid' (0) or 'same' (output size = input size; stride 1 only)."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, spatial=2, op="conv2d")


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,  # noqa: A002
                     dilation=1):
    """input (N, C, L), weight (C, O/groups, k) -> (N, O, Lout), the adjoint of conv1d:
    Lout = (L-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 1,
                           "conv_transpose1d")


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,  # noqa: A002
                     dilation=1):
    """input (N, C, H, W), weight (C, O/groups, kh, kw) -> (N, O, Hout, Wout), the adjoint of conv2d:
    Hout = (H-1)*stride - 2*padding + dilation*(kh-1) + output_padding + 1."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 2,
                           "conv_transpose2d")


def _conv(x, weight, bias, stride, padding, dilation, groups, spatial, op):
    x, weight, bias = autocast_inputs(x, weight, bias)  # float16 on CUDA inside tensor.amp.autocast
    batched = _check_operands(op, x, weight, bias, spatial, groups, in_dim=1, transposed=False)
    stride, dilation = _pair(stride, spatial, op, "stride"), _pair(dilation, spatial, op, "dilation")
    kernel = (1,) * (2 - spatial) + tuple(weight.shape[2:])
    pads = _pads(padding, kernel, stride, dilation, spatial, op)
    in_hw = (1,) * (2 - spatial) + tuple(x.shape[-spatial:])
    for n, k, d, (a, b), name in zip(in_hw, kernel, dilation, (pads[:2], pads[2:]), ("height", "width")):
        if n + a + b < d * (k - 1) + 1:
            raise ShapeError(
                f"{op}: padded input {name} {n + a + b} is smaller than the dilated kernel {d * (k - 1) + 1} "
                f"(input {tuple(x.shape)}, weight {tuple(weight.shape)}); pad the input or use a smaller kernel"
            )
    spec = _Spec(spatial, batched, stride, pads, dilation, groups)
    return ConvNd.apply(x, weight, bias, spec)


def _conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation, spatial, op):
    x, weight, bias = autocast_inputs(x, weight, bias)  # float16 on CUDA inside tensor.amp.autocast
    batched = _check_operands(op, x, weight, bias, spatial, groups, in_dim=0, transposed=True)
    stride, dilation = _pair(stride, spatial, op, "stride"), _pair(dilation, spatial, op, "dilation")
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding={padding!r} is not supported for transposed convolutions; give integers")
    pad_hw = _pair(padding, spatial, op, "padding", minimum=0)
    out_pad = _pair(output_padding, spatial, op, "output_padding", minimum=0)
    for op_, s, d in zip(out_pad, stride, dilation):
        if op_ >= s and op_ >= d:
            raise ValueError(
                f"{op}: output_padding {out_pad} must be smaller than either stride {stride} or dilation "
                f"{dilation}"
            )
    spec = _Spec(spatial, batched, stride, (pad_hw[0], pad_hw[0], pad_hw[1], pad_hw[1]), dilation, groups, out_pad)
    return ConvTransposeNd.apply(x, weight, bias, spec)


def _check_operands(op, x, weight, bias, spatial, groups, in_dim, transposed):
    """Validate shapes and dtypes; return whether the input carries a batch dimension."""
    if not isinstance(x, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{op}: input and weight must be Tensors, got {type(x).__name__} and {type(weight).__name__}")
    if x.ndim not in (spatial + 1, spatial + 2):
        raise ShapeError(
            f"{op}: expected a {spatial + 2}-d (batched) or {spatial + 1}-d (unbatched) input, got shape "
            f"{tuple(x.shape)}"
        )
    if weight.ndim != spatial + 2:
        raise ShapeError(f"{op}: expected a {spatial + 2}-d weight, got shape {tuple(weight.shape)}")
    if not isinstance(groups, int) or not 0 < groups <= weight.shape[0] or weight.shape[0] % groups:
        if weight.shape[0] == 0:
            channels = "input channels" if transposed else "output channels"
            raise ShapeError(f"{op}: weight of shape {tuple(weight.shape)} has 0 {channels} (dim 0); PyTorch needs at "
                             "least one")
        raise ValueError(f"{op}: groups={groups} must be a positive int dividing weight.shape[0]={weight.shape[0]}")
    channels = x.shape[-spatial - 1]
    expected = weight.shape[0] if transposed else weight.shape[1] * groups
    if channels != expected:
        raise ShapeError(
            f"{op}: input has {channels} channels but weight {tuple(weight.shape)} with groups={groups} expects "
            f"{expected}"
        )
    out_channels = weight.shape[1] * groups if transposed else weight.shape[0]
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ShapeError(f"{op}: bias shape {tuple(bias.shape)} should be ({out_channels},), one per output channel")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != x.dtype:
            raise DTypeError(f"{op}: input dtype {x.dtype} and {name} dtype {t.dtype} differ; cast one with .to()")
    if x.dtype.kind != "f":
        raise DTypeError(f"{op}: needs floating-point tensors, got {x.dtype}; convert with .float()")
    return x.ndim == spatial + 2


def _pair(value, spatial, op, name, minimum=1):
    """An int or a tuple of `spatial` ints -> (h, w), with h = 1 (or 0 for paddings) for 1-d ops."""
    values = (value,) * spatial if isinstance(value, int) else tuple(value)
    if len(values) != spatial or not all(isinstance(v, (int, np.integer)) and v >= minimum for v in values):
        raise ValueError(f"{op}: {name} must be an int >= {minimum} or {spatial} of them, got {value!r}")
    return (minimum,) * (2 - spatial) + tuple(int(v) for v in values)


def _pads(padding, kernel, stride, dilation, spatial, op):
    """(top, bottom, left, right) from an int, a tuple, 'valid' or 'same' (extra on bottom/right, as torch)."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError(f"{op}: padding='same' is not supported for strided convolutions (stride {stride})")
        pads = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding={padding!r}: use an int, a tuple of ints, 'same' or 'valid'")
    ph, pw = _pair(padding, spatial, op, "padding", minimum=0)
    return (ph, ph, pw, pw)
