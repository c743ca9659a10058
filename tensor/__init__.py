"""raygrad's tensor engine: a PyTorch-like dynamic graph on NumPy (cpu) and CuPy (cuda).

    import tensor
    x = tensor.randn(3, 4, requires_grad=True)
    (x @ x.T).sum().backward()
"""
import math as _math

from . import dtypes
from .backend import Device, Device as device
from .dtypes import (
    bool, double, float, float16, float32, float64, get_default_dtype, half, int, int8, int16, int32, int64,
    long, set_default_dtype, short, uint8,
)
from .errors import AutogradError, DeviceError, DTypeError, SerializationError, ShapeError, TensorError
from .tensor import Size, Tensor
from . import autograd
from .autograd import Function, enable_grad, is_grad_enabled, no_grad, set_grad_enabled


class inference_mode(set_grad_enabled):
    """torch.inference_mode: here the same as no_grad (`with inference_mode():`, `@inference_mode()` or bare
    `@inference_mode`); inference_mode(False) leaves grad mode on. raygrad has no separate inference tensors."""

    def __new__(cls, mode=True):
        if callable(mode):  # used bare as a decorator: @inference_mode
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        super().__init__(not mode)
from .creation import (
    arange, as_tensor, empty, empty_like, eye, from_dlpack, from_numpy, full, full_like, linspace, logspace, ones,
    ones_like, tensor, tril_indices, triu_indices, zeros, zeros_like,
)
from .random import (
    Generator, get_rng_state, initial_seed, manual_seed, rand, rand_like, randint, randint_like, randn,
    randn_like, randperm, seed, set_rng_state,
)
from . import cuda, methods

# Free functions (tensor.exp, tensor.cat, ...); names already bound above (the dtypes float, int, bool...)
# keep their meaning, as in torch.
globals().update({k: v for k, v in methods.functions.items() if k not in globals()})
is_tensor = lambda obj: isinstance(obj, Tensor)  # noqa: E731

from . import nn, optim  # noqa: E402  (after the methods: layers call them)
from . import amp  # noqa: E402
from . import utils  # noqa: E402
from . import distributions  # noqa: E402
from . import linalg  # noqa: E402
from . import special  # noqa: E402 - torch.special's names
from . import func  # noqa: E402
from .serialization import load, save  # noqa: E402
from .printing import set_printoptions  # noqa: E402
from .anomaly import is_anomaly_check_nan_enabled, is_anomaly_enabled  # noqa: E402
from .amp import autocast  # noqa: E402
from .compiler import compile  # noqa: E402,A001 - torch.compile (a passthrough: see compiler.py)
from . import jit  # noqa: E402 - torch.jit's names for eager code (Final, is_scripting, ignore, ...)
from .ops.convert import (  # noqa: E402 - torch.channels_last & co.: layouts in memory, see memory_format
    channels_last, channels_last_3d, contiguous_format, memory_format, preserve_format,
)
from .foreach import *  # noqa: E402,F403 - torch._foreach_add_, _foreach_lerp_, ...
from .runtime import (  # noqa: E402
    are_deterministic_algorithms_enabled, asarray, can_cast, empty_strided, frombuffer, get_default_device,
    get_float32_matmul_precision, get_num_threads, is_deterministic_algorithms_warn_only_enabled, promote_types,
    result_type, set_default_device, set_float32_matmul_precision, set_num_threads, typename,
    use_deterministic_algorithms,
)
from . import testing  # noqa: E402 - torch.testing.assert_close, make_tensor
from . import accelerator, backends  # noqa: E402 - torch.accelerator, torch.backends (flags)
from .func import vmap  # noqa: E402 - torch.vmap
from .windows import (  # noqa: E402
    bartlett_window, blackman_window, hamming_window, hann_window, kaiser_window,
)

# torch's constants, and the nn.functional ops that torch also exports at the top with the same signature
# (torch.conv2d, torch.pixel_shuffle, ...; not the losses, batch_norm or embedding, whose torch.* forms differ).
e, pi, inf, nan, newaxis = _math.e, _math.pi, _math.inf, _math.nan, None
globals().update({name: getattr(nn.functional, name) for name in (
    "adaptive_avg_pool1d adaptive_max_pool1d alpha_dropout avg_pool1d bilinear celu channel_shuffle conv1d conv2d "
    "conv3d conv_transpose1d conv_transpose2d conv_transpose3d cosine_similarity dropout feature_alpha_dropout "
    "group_norm hardshrink layer_norm max_pool1d max_pool2d max_pool3d pairwise_distance pdist pixel_shuffle "
    "pixel_unshuffle prelu rms_norm selu threshold").split()})

__version__ = "0.1.0"


def __getattr__(name):
    """tensor.multiprocessing on first use: Python's multiprocessing costs ~15 ms to import."""
    if name == "multiprocessing":
        import importlib

        return importlib.import_module(".multiprocessing", __name__)
    raise AttributeError(f"module 'tensor' has no attribute {name!r}")
