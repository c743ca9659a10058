"""Reproducible randomness on both devices: Generator, manual_seed, rand, randn, randint, randperm.

Each device has a default Generator; `manual_seed(s)` reseeds all of them. A Generator wraps
numpy's PCG64 (cpu) or cupy's generator (cuda), so the same seed gives the same stream per device
(cpu and cuda streams differ from each other, as in PyTorch).
"""
from __future__ import annotations

import copy
import json
import threading

import numpy as np

from . import dtypes
from .backend import Device, as_device
from .creation import _on, _shape
from .runtime import factory_device
from .tensor import _wrap


class Generator:
    """A seeded random stream for one device: Generator(device='cpu').manual_seed(0)."""

    def __init__(self, device="cpu"):
        self.device = as_device(device)
        self.manual_seed(np.random.SeedSequence().entropy % (2**63))

    def manual_seed(self, seed: int):
        seed = int(seed)
        self._seed = seed
        if self.device.type == "cpu":
            self._rng = np.random.Generator(np.random.PCG64(seed))
        else:
            cp = self.device.xp
            with cp.cuda.Device(self.device.index):
                self._rng = cp.random.default_rng(seed)
        return self

    def initial_seed(self) -> int:
        return self._seed

    @property
    def rng(self):
        return self._rng

    def __deepcopy__(self, memo):
        """An independent twin at the same point of the stream (checkpoint's preserve_rng_state, vmap's
        randomness="same"). CuPy's bit generator holds a lock, which deepcopy cannot copy: the twin gets
        its own lock and a device copy of the cuRAND states."""
        twin = copy.copy(self)  # its class and attributes (vmap's watching stand-in has more); then its stream
        if self.device.type == "cpu":
            twin._rng = copy.deepcopy(self._rng, memo)
            return twin
        cp = self.device.xp
        bits = copy.copy(self._rng.bit_generator)  # shallow: the lock and _state are replaced below
        bits.lock = threading.Lock()
        with cp.cuda.Device(self.device.index):
            bits._state = self._rng.bit_generator._state.copy()
            twin._rng = cp.random.Generator(bits)
        return twin

    def get_state(self):
        """The stream's state as a uint8 CPU Tensor, as torch's ByteTensor: checkpoints save it, scripts
        `.clone()` / `.cpu()` it and hand it back to set_state. The bytes are JSON of the seed and, on the
        cpu, numpy's PCG64 state (cupy's generators expose no portable state: set_state restarts the seed)."""
        state = {"seed": self._seed}
        if self.device.type == "cpu":
            state["bit_generator"] = self._rng.bit_generator.state
        return _wrap(np.frombuffer(json.dumps(state).encode(), dtype=np.uint8).copy())

    def set_state(self, state):
        if not isinstance(state, dict):  # a get_state() Tensor (a dict is the older form, still read)
            try:
                state = json.loads(bytes(np.asarray(state.detach().cpu().numpy(), dtype=np.uint8)))
            except (AttributeError, TypeError, ValueError) as e:
                raise TypeError(f"set_rng_state: expected the uint8 Tensor that get_rng_state() returned, got "
                                f"{type(state).__name__} ({e})") from None
        self.manual_seed(state["seed"])
        if "bit_generator" in state and self.device.type == "cpu":
            self._rng.bit_generator.state = state["bit_generator"]


_default_generators: dict[Device, Generator] = {}
# Seeds for default generators not made yet: seeding CUDA devices stays lazy (as in torch), so
# tensor.cuda.manual_seed_all makes no CUDA context on GPUs this process never draws on.
_pending_seeds: dict[Device, int] = {}


def default_generator(device="cpu") -> Generator:
    device = as_device(device)
    gen = _default_generators.get(device)
    if gen is None:
        gen = _default_generators[device] = Generator(device)
        seed = _pending_seeds.pop(device, _global_seed)
        if seed is not None:
            gen.manual_seed(seed)
    return gen


def seed_device(device, seed: int) -> None:
    """Seed one device's default generator: now if it exists, else when it is first used."""
    device = as_device(device)
    gen = _default_generators.get(device)
    if gen is None:
        _pending_seeds[device] = int(seed)
    else:
        gen.manual_seed(seed)


def device_initial_seed(device) -> int:
    """The seed of a device's default generator (a pending one counts)."""
    device = as_device(device)
    if device not in _default_generators and device in _pending_seeds:
        return _pending_seeds[device]
    return default_generator(device).initial_seed()


def fresh_seed() -> int:
    return int(np.random.SeedSequence().entropy % (2**63))


def manual_seed(seed: int):
    """Seed the default generators of every device (created lazily from this seed later)."""
    global _global_seed
    _global_seed = int(seed)
    _pending_seeds.clear()
    for gen in _default_generators.values():
        gen.manual_seed(seed)
    if Device("cpu") not in _default_generators:
        default_generator("cpu").manual_seed(seed)
    return default_generator("cpu")


def seed() -> int:
    s = fresh_seed()
    manual_seed(s)
    return s


def initial_seed() -> int:
    return default_generator("cpu").initial_seed()


def get_rng_state():
    return default_generator("cpu").get_state()


def set_rng_state(state):
    default_generator("cpu").set_state(state)


def rng_for(device, generator=None):
    """The raw NumPy/CuPy generator that draws for `device`: `generator`'s, else the device's default."""
    return _generator(generator, device).rng


def _generator(generator, device):
    device = factory_device(device)
    if generator is not None:
        if generator.device != device:
            raise ValueError(f"generator is for {generator.device} but the tensor is created on {device}")
        return generator
    gen = _default_generators.get(device)
    return gen if gen is not None else default_generator(device)


_global_seed = None


def _float_dtype(dtype):
    dtype = dtypes.as_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()
    if dtype.kind != "f":
        raise dtypes.DTypeError(f"this random function makes floating tensors; got dtype {dtype}")
    return dtype


def _make(array_fn, device, requires_grad):
    device = factory_device(device)
    with _on(device):
        t = _wrap(array_fn())
    return t.requires_grad_(True) if requires_grad else t


def rand(*sizes, size=None, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform on [0, 1)."""
    gen, dtype, shape = _generator(generator, device), _float_dtype(dtype), _shape(sizes, size, "rand")
    sample_dtype = dtype if dtype.itemsize >= 4 else np.float32
    return _make(lambda: gen.rng.random(shape, dtype=sample_dtype).astype(dtype, copy=False), device, requires_grad)


def randn(*sizes, size=None, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal."""
    gen, dtype, shape = _generator(generator, device), _float_dtype(dtype), _shape(sizes, size, "randn")
    sample_dtype = dtype if dtype.itemsize >= 4 else np.float32
    return _make(
        lambda: gen.rng.standard_normal(shape, dtype=sample_dtype).astype(dtype, copy=False), device, requires_grad
    )


def randint(low, high=None, size=(), generator=None, dtype=None, device=None):
    """Integers in [low, high); `randint(high, size)` starts at 0. int64 unless dtype says otherwise."""
    if isinstance(high, (tuple, list)) and size == ():  # PyTorch's two-argument form randint(high, size)
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
    gen = _generator(generator, device)
    dtype = dtypes.as_dtype(dtype) if dtype is not None else dtypes.int64
    shape = _shape((size,)) if isinstance(size, (tuple, list)) else (int(size),)
    return _make(lambda: gen.rng.integers(low, high, size=shape).astype(dtype, copy=False), device, False)


def randperm(n, generator=None, dtype=None, device=None):
    """A random permutation of 0..n-1."""
    gen = _generator(generator, device)
    dtype = dtypes.as_dtype(dtype) if dtype is not None else dtypes.int64
    if gen.device.type == "cpu":
        return _make(lambda: gen.rng.permutation(int(n)).astype(dtype, copy=False), device, False)
    # cupy's Generator has no permutation(): sorting uniform keys gives a uniform permutation.
    return _make(lambda: gen.rng.random(int(n)).argsort().astype(dtype, copy=False), device, False)


def rand_like(t, generator=None, dtype=None, device=None, requires_grad=False):
    return rand(t.shape, generator=generator, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


def randn_like(t, generator=None, dtype=None, device=None, requires_grad=False):
    return randn(t.shape, generator=generator, dtype=dtype or t.dtype, device=device or t.device,
                 requires_grad=requires_grad)


def randint_like(t, low, high=None, generator=None, dtype=None, device=None):
    return randint(low, high, t.shape, generator=generator, dtype=dtype or t.dtype, device=device or t.device)


def bernoulli_mask(shape, p_keep, dtype, device, generator=None):
    """A raw array of 1/0 with P(1) = p_keep: the mask dropout draws (used by nn)."""
    gen = _generator(generator, device)
    return (gen.rng.random(shape, dtype=np.float32) < p_keep).astype(dtype)


def sample_uniform(shape, low, high, dtype, device, generator=None):
    """A raw array of U(low, high) draws in `dtype` (drawn in float32/64, the generators' dtypes)."""
    rng = _generator(generator, device).rng
    sample_dtype = dtype if dtype in (np.float32, np.float64) else np.float32
    with _on(factory_device(device)):
        return (rng.random(tuple(shape), dtype=sample_dtype) * (high - low) + low).astype(dtype, copy=False)


def sample_normal(shape, mean, std, dtype, device, generator=None):
    """A raw array of N(mean, std^2) draws in `dtype`."""
    rng = _generator(generator, device).rng
    sample_dtype = dtype if dtype in (np.float32, np.float64) else np.float32
    with _on(factory_device(device)):
        return (rng.standard_normal(tuple(shape), dtype=sample_dtype) * std + mean).astype(dtype, copy=False)
