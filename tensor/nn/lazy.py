"""Lazy modules: layers whose input size is read from their first input (PyTorch's LazyModuleMixin).

Until that first call the weights are UninitializedParameters: Parameters holding an empty array
that only records the device and dtype to create them with (so model.to(...) and model.double()
before the first call work as in PyTorch). A forward pre-hook infers the shapes, materialises and
initialises the parameters, removes itself and turns the module into its plain class
(LazyLinear -> Linear), so the hook costs nothing afterwards. Loading a state dict into a module
still uninitialised materialises its parameters to the stored shapes first. Buffers whose shape
depends on the input (a lazy BatchNorm's running statistics, lazy_norm.py) are UninitializedBuffers
and follow the same rules.
"""
from __future__ import annotations

import itertools

from ..autograd import no_grad
from ..creation import empty
from ..errors import ShapeError
from ..tensor import Tensor
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .linear import Linear
from .parameter import Buffer, Parameter


class _Uninitialized:
    """What UninitializedParameter and UninitializedBuffer share: an empty array that only records the
    device and dtype to create the real one with, and no shape until `materialize(shape)`."""

    cls_to_become = None

    def materialize(self, shape, device=None, dtype=None):
        """Give it storage of `shape` (on its recorded device and dtype unless given) and become its
        plain class; the values are uninitialised until the module's reset_parameters() fills them."""
        device = self.device if device is None else device
        dtype = self.dtype if dtype is None else dtype
        self.data = empty(tuple(shape), device=device, dtype=dtype).data
        self.__class__ = self.cls_to_become

    @property
    def shape(self):
        raise RuntimeError(
            f"Can't access the shape of an uninitialized parameter or buffer ({type(self).__name__}). Call the "
            "lazy module once on an input (a dummy batch) to initialize it before reading shapes, or load a "
            "state dict with its values into the module."
        )

    def __repr__(self):
        return f"<{type(self).__name__}>"

    def __reduce_ex__(self, protocol):
        return type(self), self._init_args()

    def __deepcopy__(self, memo):
        if id(self) not in memo:
            memo[id(self)] = type(self)(*self._init_args())
        return memo[id(self)]


class UninitializedParameter(_Uninitialized, Parameter):
    """A Parameter whose shape is not known yet; `materialize(shape)` makes it a plain Parameter."""

    cls_to_become = Parameter

    def __init__(self, requires_grad=True, device=None, dtype=None):
        super().__init__(empty(0, device=device, dtype=dtype), requires_grad)

    def _init_args(self):
        return self.requires_grad, str(self.device), self.dtype


class UninitializedBuffer(_Uninitialized, Buffer):
    """A buffer whose shape is not known yet (a lazy BatchNorm's running_mean); `materialize(shape)`
    makes it a plain Tensor. persistent=False keeps it out of the state dict, as for Buffer."""

    cls_to_become = Tensor

    def __init__(self, requires_grad=False, device=None, dtype=None, persistent=True):
        super().__init__(empty(0, device=device, dtype=dtype), persistent)
        if requires_grad:
            self.requires_grad_(True)

    def _init_args(self):
        return self.requires_grad, str(self.device), self.dtype, self.persistent


def is_lazy(value) -> bool:
    """Is `value` a parameter or buffer that has not been materialised yet?"""
    return isinstance(value, _Uninitialized)


class LazyModuleMixin:
    """Put first among a lazy module's bases; the module defines initialize_parameters(*inputs) and
    names its plain class in cls_to_become."""

    cls_to_become = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._initialize_hook = self.register_forward_pre_hook(self._infer_parameters, with_kwargs=True)

    def register_buffer(self, name, tensor, persistent=True):
        # Module.register_buffer keeps a plain Tensor; an UninitializedBuffer must stay itself until
        # materialised (with its own persistent flag, as when assigned).
        if not isinstance(tensor, UninitializedBuffer):
            return super().register_buffer(name, tensor, persistent)
        super().register_buffer(name, None, persistent)
        self._buffers[name] = tensor

    def has_uninitialized_params(self) -> bool:
        return any(is_lazy(v) for v in itertools.chain(self._parameters.values(), self._buffers.values()))

    def initialize_parameters(self, *args, **kwargs):
        raise NotImplementedError(f"initialize_parameters is not implemented for {type(self).__name__}")

    def _infer_parameters(self, module, args, kwargs):
        module.initialize_parameters(*args, **kwargs)
        if module.has_uninitialized_params():
            raise RuntimeError(f"{module._get_name()}: initialize_parameters left parameters uninitialized")
        module._initialize_hook.remove()
        del module._initialize_hook
        if module.cls_to_become is not None:
            module.__class__ = module.cls_to_become

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        # An uninitialized parameter is saved as itself (there are no values to detach), as in PyTorch.
        for name, value in itertools.chain(self._parameters.items(), self._buffers.items()):
            if value is None or (name in self._buffers and name in self._non_persistent_buffers_set):
                continue
            destination[prefix + name] = value if keep_vars or is_lazy(value) else value.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # Materialise to the stored shapes, then load as usual. A stored uninitialized parameter into an
        # uninitialized one has nothing to copy: it is set aside, neither loaded nor missing.
        skipped = set()
        for name, value in itertools.chain(self._parameters.items(), self._buffers.items()):
            key = prefix + name
            if not is_lazy(value) or key not in state_dict:
                continue
            source = state_dict[key]
            if is_lazy(source):
                skipped.add(key)
                del state_dict[key]
            else:
                with no_grad():
                    value.materialize(tuple(source.shape))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        missing_keys[:] = [key for key in missing_keys if key not in skipped]


def _first_input(module, args, kwargs):
    input = args[0] if args else kwargs.get("input")  # noqa: A001
    if not isinstance(input, Tensor):
        raise TypeError(f"{module._get_name()}: the first call must pass a Tensor input to infer the parameter "
                        f"shapes from, got {type(input).__name__}")
    return input


# ---------------------------------------------------------------------------------------- linear


class LazyLinear(LazyModuleMixin, Linear):
    """Linear whose in_features is input.shape[-1] at the first call; it is a Linear afterwards."""

    cls_to_become = Linear

    def __init__(self, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__(0, 0, False)
        self.weight = UninitializedParameter(device=device, dtype=dtype)
        self.out_features = out_features
        if bias:
            self.bias = UninitializedParameter(device=device, dtype=dtype)

    def reset_parameters(self):
        if not self.has_uninitialized_params() and self.in_features != 0:
            super().reset_parameters()

    def initialize_parameters(self, *args, **kwargs):
        input = _first_input(self, args, kwargs)  # noqa: A001
        if input.dim() == 0:
            raise ShapeError("LazyLinear: cannot infer in_features from a 0-d input; give it shape (*, in_features)")
        if self.has_uninitialized_params():
            with no_grad():
                self.in_features = input.shape[-1]
                self.weight.materialize((self.out_features, self.in_features))
                if self.bias is not None:
                    self.bias.materialize((self.out_features,))
                self.reset_parameters()
        if self.in_features == 0:  # materialised by load_state_dict: the loaded weight fixes in_features
            if input.shape[-1] != self.weight.shape[-1]:
                raise ShapeError(f"LazyLinear: input has {input.shape[-1]} features but the loaded weight "
                                 f"{tuple(self.weight.shape)} expects {self.weight.shape[-1]}")
            self.in_features = input.shape[-1]


# ----------------------------------------------------------------------------------- convolution


class _LazyConvMixin(LazyModuleMixin):
    """in_channels is the input's channel dim (dim 1 of a batched input, dim 0 of an unbatched one)."""

    def _make_lazy(self, out_channels, bias, device, dtype):
        if out_channels % self.groups:
            raise ValueError(f"{type(self).__name__}: out_channels {out_channels} must be divisible by groups "
                             f"{self.groups}")
        self.weight = UninitializedParameter(device=device, dtype=dtype)
        self.out_channels = out_channels
        if bias:
            self.bias = UninitializedParameter(device=device, dtype=dtype)

    def reset_parameters(self):
        if not self.has_uninitialized_params() and self.in_channels != 0:
            super().reset_parameters()

    def initialize_parameters(self, *args, **kwargs):
        channels = self._in_channels(_first_input(self, args, kwargs))
        if self.has_uninitialized_params():
            if channels % self.groups:
                raise ValueError(f"{type(self).__name__}: the input's {channels} channels must be divisible by "
                                 f"groups {self.groups}")
            self.in_channels = channels
            per_group = (channels, self.out_channels // self.groups) if self._transposed else \
                (self.out_channels, channels // self.groups)
            with no_grad():
                self.weight.materialize(per_group + tuple(self.kernel_size))
                if self.bias is not None:
                    self.bias.materialize((self.out_channels,))
                self.reset_parameters()
        elif self.in_channels == 0:  # materialised by load_state_dict
            self.in_channels = channels

    def _in_channels(self, input):
        n = self._spatial
        if input.dim() not in (n + 1, n + 2):
            raise ShapeError(f"{type(self).__name__}: expected a {n + 1}-d (unbatched) or {n + 2}-d (batched) input, "
                             f"got shape {tuple(input.shape)}")
        return input.shape[1] if input.dim() == n + 2 else input.shape[0]


# The Lazy* convolutions' constructors: torch's signatures without in_channels (it comes from the first input).
# super(_LazyConvMixin, self) is the class's own conv (after LazyModuleMixin), as super() in each class was.
def _lazy_conv_init(self, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                    padding_mode="zeros", device=None, dtype=None):
    super(_LazyConvMixin, self).__init__(0, 0, kernel_size, stride, padding, dilation, groups, False, padding_mode)
    self._make_lazy(out_channels, bias, device, dtype)


def _lazy_conv_transpose_init(self, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                              bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
    super(_LazyConvMixin, self).__init__(0, 0, kernel_size, stride, padding, output_padding, groups, False, dilation,
                                         padding_mode)
    self._make_lazy(out_channels, bias, device, dtype)


class LazyConv1d(_LazyConvMixin, Conv1d):
    """Conv1d whose in_channels comes from the first input; it is a Conv1d afterwards."""

    cls_to_become = Conv1d
    __init__ = _lazy_conv_init


class LazyConv2d(_LazyConvMixin, Conv2d):
    """Conv2d whose in_channels comes from the first input; it is a Conv2d afterwards."""

    cls_to_become = Conv2d
    __init__ = _lazy_conv_init


class LazyConvTranspose1d(_LazyConvMixin, ConvTranspose1d):
    """ConvTranspose1d whose in_channels comes from the first input; a ConvTranspose1d afterwards."""

    cls_to_become = ConvTranspose1d
    __init__ = _lazy_conv_transpose_init


class LazyConvTranspose2d(_LazyConvMixin, ConvTranspose2d):
    """ConvTranspose2d whose in_channels comes from the first input; a ConvTranspose2d afterwards."""

    cls_to_become = ConvTranspose2d
    __init__ = _lazy_conv_transpose_init


class LazyConv3d(_LazyConvMixin, Conv3d):
    """Conv3d whose in_channels comes from the first input; it is a Conv3d afterwards."""

    cls_to_become = Conv3d
    __init__ = _lazy_conv_init


class LazyConvTranspose3d(_LazyConvMixin, ConvTranspose3d):
    """ConvTranspose3d whose in_channels comes from the first input; a ConvTranspose3d afterwards."""

    cls_to_become = ConvTranspose3d
    __init__ = _lazy_conv_transpose_init
