"""Conv1d/2d/3d and ConvTranspose1d/2d/3d with PyTorch's arguments, parameter names and
default initialisation (kaiming_uniform_(a=sqrt(5)) weights, bias uniform in +-1/sqrt(fan_in))."""
from __future__ import annotations

import math

from ..creation import empty
from ..ops.layout import pad as _pad
from . import init
from .functional import conv as F
from .functional.conv3d import conv3d, conv_transpose3d
from .module import Module
from .parameter import Parameter

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _tuple(value, n, name, owner):
    values = (value,) * n if isinstance(value, int) else tuple(value)
    if len(values) != n or not all(isinstance(v, int) for v in values):
        raise ValueError(f"{owner}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    return values


class _ConvNd(Module):
    """Shared by every convolution module: arguments, parameters, initialisation, repr."""

    _spatial = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", output_padding=0, device=None, dtype=None):
        super().__init__()
        name, n = type(self).__name__, self._spatial
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{name}: in_channels {in_channels} and out_channels {out_channels} must both be divisible by "
                f"groups {groups}"
            )
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode {padding_mode!r} must be one of {_PADDING_MODES}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _tuple(kernel_size, n, "kernel_size", name)
        self.stride = _tuple(stride, n, "stride", name)
        self.dilation = _tuple(dilation, n, "dilation", name)
        self.output_padding = _tuple(output_padding, n, "output_padding", name)
        if isinstance(padding, str):
            if padding not in ("same", "valid") or self._transposed:
                raise ValueError(f"{name}: padding {padding!r} must be 'same', 'valid' or ints")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided convolutions (stride {stride})")
            self.padding = padding
        else:
            self.padding = _tuple(padding, n, "padding", name)
        self.padding_mode = padding_mode
        shape = (in_channels, out_channels // groups) if self._transposed else (out_channels, in_channels // groups)
        self.weight = Parameter(empty(*shape, *self.kernel_size, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def _explicit_padding(self, input):
        """For padding_mode != 'zeros': pad the input with F.pad and convolve without padding."""
        if self.padding == "valid":
            return input, 0
        widths = [w for pair in reversed(self._padding_pairs()) for w in pair]  # F.pad lists the last dim first
        return _pad(input, widths, mode=self.padding_mode), 0

    def _padding_pairs(self):
        if self.padding == "same":
            totals = [d * (k - 1) for k, d in zip(self.kernel_size, self.dilation)]
            return [(t // 2, t - t // 2) for t in totals]
        return [(p, p) for p in self.padding]

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._spatial:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._spatial:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._spatial:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    _function = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)

    def forward(self, input):
        return self._conv_forward(input, self.weight, self.bias)

    def _conv_forward(self, input, weight, bias):
        """The convolution with these weights, as torch's modules compute it: quantised and reparametrised
        layers (LSQ's QuanConv2d, weight standardisation) subclass Conv2d and call it with their own."""
        padding = self.padding
        if self.padding_mode != "zeros":
            input, padding = self._explicit_padding(input)
        return type(self)._function(input, weight, bias, self.stride, padding, self.dilation, self.groups)


class Conv1d(_Conv):
    """(N, C_in, L) -> (N, C_out, L_out); weight (C_out, C_in/groups, k)."""

    _spatial = 1
    _function = staticmethod(F.conv1d)


class Conv2d(_Conv):
    """(N, C_in, H, W) -> (N, C_out, H_out, W_out); weight (C_out, C_in/groups, kh, kw).
    H_out = floor((H + 2*padding - dilation*(kh-1) - 1) / stride) + 1."""

    _spatial = 2
    _function = staticmethod(F.conv2d)


class Conv3d(_Conv):
    """(N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out); weight (C_out, C_in/groups, kd, kh, kw).
    D_out = floor((D + 2*padding - dilation*(kd-1) - 1) / stride) + 1."""

    _spatial = 3
    _function = staticmethod(conv3d)


class _ConvTranspose(_ConvNd):
    _transposed = True
    _function = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        if padding_mode != "zeros":
            raise ValueError(f"{type(self).__name__}: only padding_mode='zeros' is supported, got {padding_mode!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, device=device, dtype=dtype)

    def forward(self, input, output_size=None):
        output_padding = self.output_padding if output_size is None else self._output_padding(input, output_size)
        return type(self)._function(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                    self.groups, self.dilation)

    def _output_padding(self, input, output_size):
        """The output_padding that makes the output `output_size` (its last dims), or a clear error."""
        n = self._spatial
        sizes = tuple(output_size)[-n:]
        result = []
        for size, length, k, s, p, d in zip(sizes, input.shape[-n:], self.kernel_size, self.stride, self.padding,
                                           self.dilation):
            smallest = (length - 1) * s - 2 * p + d * (k - 1) + 1
            if not smallest <= size < smallest + s:
                raise ValueError(
                    f"{type(self).__name__}: requested output size {tuple(sizes)} is out of range: each dim must be "
                    f"in [{smallest}, {smallest + s - 1}] for input {tuple(input.shape)} and stride {self.stride}"
                )
            result.append(size - smallest)
        return tuple(result)


class ConvTranspose1d(_ConvTranspose):
    """(N, C_in, L) -> (N, C_out, L_out), the adjoint of Conv1d; weight (C_in, C_out/groups, k)."""

    _spatial = 1
    _function = staticmethod(F.conv_transpose1d)


class ConvTranspose2d(_ConvTranspose):
    """(N, C_in, H, W) -> (N, C_out, H_out, W_out), the adjoint of Conv2d; weight (C_in, C_out/groups, kh, kw).
    H_out = (H-1)*stride - 2*padding + dilation*(kh-1) + output_padding + 1."""

    _spatial = 2
    _function = staticmethod(F.conv_transpose2d)


class ConvTranspose3d(_ConvTranspose):
    """(N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out), the adjoint of Conv3d; weight
    (C_in, C_out/groups, kd, kh, kw). D_out = (D-1)*stride - 2*padding + dilation*(kd-1) + output_padding + 1."""

    _spatial = 3
    _function = staticmethod(conv_transpose3d)
