"""Which GPU, and what it is: availability, the current device, its name, properties and free
memory; and seeding each GPU's default generator (tensor/random.py holds the generators)."""
from __future__ import annotations

from ..backend import Device, as_device, cuda_device_count, cuda_is_available, cupy_module
from ..errors import DeviceError
from ..random import default_generator, device_initial_seed, fresh_seed, seed_device


def is_available() -> bool:
    return cuda_is_available()


def device_count() -> int:
    return cuda_device_count()


def _cupy():
    """CuPy, once it is known to see a GPU; otherwise one clear DeviceError."""
    cp = cupy_module()  # a DeviceError naming the install fix when CuPy is missing
    if cuda_device_count() == 0:
        raise DeviceError("tensor.cuda: CuPy imports but sees no CUDA device; check the NVIDIA driver "
                          "(nvidia-smi) and CUDA_VISIBLE_DEVICES")
    return cp


def _index(device) -> int:
    """A device index from None (the current one), an int, 'cuda[:N]' or a Device."""
    if device is None:
        return cupy_module().cuda.Device().id
    if isinstance(device, int):
        return device
    device = as_device(device)
    if device.type != "cuda":
        raise ValueError(f"tensor.cuda: expected a CUDA device, got {device}")
    return device.index


def _checked(index: int) -> int:
    count = cuda_device_count()
    if not 0 <= index < count:
        raise DeviceError(f"tensor.cuda: device {index} requested but {count} CUDA device(s) are visible "
                          f"(valid: 0..{count - 1})")
    return index


def current_device() -> int:
    return _cupy().cuda.Device().id


def set_device(device) -> None:
    """Make `device` (an index, 'cuda:N' or a Device) the current GPU of this thread; a negative
    index does nothing, as in torch."""
    index = _index(device)
    if index >= 0:
        _cupy().cuda.Device(_checked(index)).use()


class device:  # noqa: N801 - torch's name
    """`with tensor.cuda.device(1):` makes GPU 1 current inside the block; None or -1 does nothing."""

    def __init__(self, device):
        self.idx = -1 if device is None else _index(device)
        self._scope = None

    def __enter__(self):
        if self.idx >= 0:
            self._scope = _cupy().cuda.Device(_checked(self.idx))
            self._scope.__enter__()
        return self

    def __exit__(self, *exc):
        if self._scope is not None:
            self._scope.__exit__(*exc)
            self._scope = None
        return False


def synchronize(device=None):
    """Wait for all work queued on the device."""
    cupy_module().cuda.Device(_index(device)).synchronize()


class _CudaDeviceProperties:
    """torch's fields: name, total_memory (bytes), major, minor, multi_processor_count."""

    def __init__(self, props: dict):
        props = {k.decode() if isinstance(k, bytes) else k: v for k, v in props.items()}
        name = props["name"]
        self.name = name.split(b"\0")[0].decode() if isinstance(name, bytes) else str(name)
        self.total_memory = int(props["totalGlobalMem"])
        self.major, self.minor = int(props["major"]), int(props["minor"])
        self.multi_processor_count = int(props["multiProcessorCount"])

    def __repr__(self):
        return (f"_CudaDeviceProperties(name='{self.name}', major={self.major}, minor={self.minor}, "
                f"total_memory={self.total_memory // 2**20}MB, multi_processor_count={self.multi_processor_count})")


def get_device_properties(device=None) -> _CudaDeviceProperties:
    cp = _cupy()
    return _CudaDeviceProperties(cp.cuda.runtime.getDeviceProperties(_checked(_index(device))))


def get_device_name(device=None) -> str:
    return get_device_properties(device).name


def get_device_capability(device=None) -> tuple[int, int]:
    """(major, minor) compute capability: (9, 0) on an H100."""
    props = get_device_properties(device)
    return props.major, props.minor


def mem_get_info(device=None) -> tuple[int, int]:
    """(free, total) bytes of the device's memory, from the driver (other processes' use included)."""
    cp = _cupy()
    with cp.cuda.Device(_checked(_index(device))):
        free, total = cp.cuda.runtime.memGetInfo()
    return int(free), int(total)


# ---------------------------------------------------------------------------------------- seeds
# As in torch these do nothing without CUDA, so one script seeds on any machine; the seed is kept
# until the generator is first used, which makes no CUDA context on GPUs that are never drawn on.


def manual_seed(seed: int) -> None:
    """Seed the current GPU's default generator."""
    seed = int(seed)
    if is_available():
        seed_device(Device("cuda", current_device()), seed)


def manual_seed_all(seed: int) -> None:
    """Seed every visible GPU's default generator."""
    seed = int(seed)
    for index in range(device_count()):
        seed_device(Device("cuda", index), seed)


def seed() -> None:
    """Seed the current GPU's default generator from fresh entropy."""
    manual_seed(fresh_seed())


def seed_all() -> None:
    """Seed every visible GPU's default generator with one fresh seed."""
    manual_seed_all(fresh_seed())


def initial_seed() -> int:
    """The current GPU's seed (a DeviceError without CUDA, as torch raises)."""
    return device_initial_seed(Device("cuda", current_device()))


def _rng_device(device) -> Device:
    """get/set_rng_state's device: None and a bare 'cuda' mean the current GPU, as in torch (not GPU 0)."""
    if device is None or (isinstance(device, str) and device == "cuda"):
        index = current_device() if cuda_device_count() else 0  # without CUDA: _checked's clear error
    else:
        index = _index(device)
    return Device("cuda", _checked(index))


def get_rng_state(device="cuda"):
    """The state of a GPU's default generator, a uint8 Tensor as in torch, holding its seed (CuPy's
    generators expose no portable state, so set_rng_state restarts the stream from that seed rather
    than continuing it mid-way)."""
    return default_generator(_rng_device(device)).get_state()


def set_rng_state(state, device="cuda") -> None:
    default_generator(_rng_device(device)).set_state(state)


def get_rng_state_all() -> list:
    """One state per visible GPU ([] without CUDA, as in torch)."""
    return [get_rng_state(index) for index in range(device_count())]


def set_rng_state_all(states) -> None:
    for index, state in enumerate(states):
        set_rng_state(state, index)
