"""nn.init: fill a tensor in place from a distribution (PyTorch's names, arguments and formulas).

Every function writes into the tensor's existing array (no graph is recorded, the version counter
moves) and draws from the engine's default Generator for the tensor's device, so
`tensor.manual_seed(s)` makes model initialisation reproducible. Pass `generator=` to use another.
"""
from __future__ import annotations

import contextlib
import math
import threading
import warnings

import numpy as np

from ..random import _generator
from ..tensor import Tensor

# ------------------------------------------------------------------------------------- helpers


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended scale of a layer's weights for the nonlinearity that follows it."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
    if nonlinearity in linear or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(
        f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; use one of linear, conv*, sigmoid, tanh, "
        "relu, leaky_relu, selu"
    )


def _calculate_fan_in_and_fan_out(tensor: Tensor):
    """(fan_in, fan_out) of a weight shaped (out, in, *kernel): in * kernel and out * kernel."""
    if tensor.dim() < 2:
        raise ValueError(
            f"fan in and fan out need a tensor with at least 2 dimensions, got shape {tuple(tensor.shape)}"
        )
    receptive = 1
    for n in tensor.shape[2:]:
        receptive *= n
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


class _Skipping(threading.local):
    active = False


_skipping = _Skipping()


@contextlib.contextmanager
def _skip_init():
    """Within it every fill is a no-op that draws nothing: nn.utils.skip_init builds modules this way
    (PyTorch builds them on the 'meta' device instead), leaving their tensors uninitialized."""
    previous, _skipping.active = _skipping.active, True
    try:
        yield
    finally:
        _skipping.active = previous


def _sample(tensor, generator, draw):
    """`draw(rng, shape, dtype)` gives a raw array; sample in float32/64 (the generators' dtypes)."""
    if _skipping.active:
        return None
    rng = _generator(generator, tensor.device).rng
    dtype = tensor.dtype if tensor.dtype in (np.float32, np.float64) else np.float32
    return draw(rng, tuple(tensor.shape), dtype)


def _fill(tensor, values):
    """Write values into tensor's array (the in-place, no-graph write every init function ends with)."""
    if _skipping.active:
        return tensor
    tensor.data[...] = values
    tensor._bump_version()
    return tensor


# ------------------------------------------------------------------------------- distributions


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill with U(a, b)."""
    return _fill(tensor, _sample(tensor, generator, lambda rng, s, d: rng.random(s, dtype=d) * (b - a) + a))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill with N(mean, std^2)."""
    return _fill(tensor, _sample(tensor, generator, lambda rng, s, d: rng.standard_normal(s, dtype=d) * std + mean))


def trunc_normal_(tensor: Tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None) -> Tensor:
    """Fill with N(mean, std^2) truncated to [a, b] (a and b are absolute bounds, as in PyTorch).

    Out-of-range draws are redrawn (rounds, not a Python loop over elements); after 100 rounds
    any rare leftovers are clipped.
    """
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("trunc_normal_: mean is more than 2 std from [a, b]; the values may be incorrect", stacklevel=2)

    def draw(rng, shape, dtype):
        values = rng.standard_normal(shape, dtype=dtype) * std + mean
        for _ in range(100):
            outside = (values < a) | (values > b)
            count = int(outside.sum())
            if count == 0:
                break
            values[outside] = rng.standard_normal((count,), dtype=dtype) * std + mean
        return values.clip(a, b)

    return _fill(tensor, _sample(tensor, generator, draw))


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, val)


def zeros_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 1)


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D tensor with the identity (ones on the diagonal)."""
    if tensor.dim() != 2:
        raise ValueError(f"eye_ needs a 2-D tensor, got shape {tuple(tensor.shape)}")
    if not _skipping.active:
        _fill(tensor, 0)
        tensor.xp.fill_diagonal(tensor.data, 1)
    return tensor


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """The identity convolution: a 3-, 4- or 5-d weight (out, in, *kernel) that, per group, passes input
    channel d to output channel d at the kernel's centre (zeros elsewhere)."""
    if tensor.dim() not in (3, 4, 5):
        raise ValueError(f"dirac_: only tensors with 3, 4, or 5 dimensions are supported, got shape "
                         f"{tuple(tensor.shape)}")
    if groups < 1 or tensor.shape[0] % groups:
        raise ValueError(f"dirac_: dim 0 ({tensor.shape[0]}) must be divisible by groups ({groups})")
    if _skipping.active:
        return tensor
    per_group = tensor.shape[0] // groups
    channels = np.arange(min(per_group, tensor.shape[1]))
    rows = (np.arange(groups)[:, None] * per_group + channels).reshape(-1)
    centre = tuple(np.full(rows.size, n // 2) for n in tensor.shape[2:])
    _fill(tensor, 0)
    xp = tensor.xp
    tensor.data[tuple(xp.asarray(i) for i in (rows, np.tile(channels, groups)) + centre)] = 1
    return tensor


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01, generator=None) -> Tensor:
    """A 2-d tensor drawn from N(0, std^2) with ceil(sparsity * rows) entries of every column zeroed,
    at rows drawn without replacement (Martens, 2010)."""
    if tensor.dim() != 2:
        raise ValueError(f"sparse_: only tensors with 2 dimensions are supported, got shape {tuple(tensor.shape)}")
    if not 0 <= sparsity <= 1:
        raise ValueError(f"sparse_: sparsity is the fraction of each column set to zero, in [0, 1]; got {sparsity}")
    rows, cols = tensor.shape
    zeros = math.ceil(sparsity * rows)

    def draw(rng, shape, dtype):
        values = rng.standard_normal(shape, dtype=dtype) * std
        # each column's rows in a random order (argsort of uniform keys: cupy has no permutation per column)
        order = rng.random(shape, dtype=dtype).argsort(axis=0)[:zeros]
        values[order, tensor.xp.arange(cols)[None, :]] = 0
        return values

    return _fill(tensor, _sample(tensor, generator, draw))


# ------------------------------------------------------------------------------ scaled schemes


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def _kaiming_std(tensor, a, mode, nonlinearity):
    if 0 in tensor.shape:
        warnings.warn("initializing a zero-element tensor is a no-op", stacklevel=3)
        return None
    return calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator=None) -> Tensor:
    """U(-bound, bound) with bound = gain * sqrt(3 / fan) (He et al., 2015)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator=None) -> Tensor:
    """N(0, std^2) with std = gain / sqrt(fan)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """A (semi-)orthogonal matrix over the tensor flattened to (shape[0], rest), times gain."""
    if tensor.dim() < 2:
        raise ValueError(f"orthogonal_ needs a tensor with at least 2 dimensions, got shape {tuple(tensor.shape)}")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    xp = tensor.xp

    def draw(rng, shape, dtype):
        flat = rng.standard_normal((rows, cols), dtype=dtype)
        if rows < cols:
            flat = flat.T
        q, r = xp.linalg.qr(flat)
        q *= xp.sign(xp.diagonal(r))  # makes the factorisation unique, so q is uniformly distributed
        if rows < cols:
            q = q.T
        return (q * gain).reshape(shape)

    return _fill(tensor, _sample(tensor, generator, draw))


__all__ = [
    "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_", "eye_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "dirac_", "sparse_",
]
