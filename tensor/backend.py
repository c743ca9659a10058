"""Devices and their array modules: NumPy on 'cpu', CuPy on 'cuda[:N]'.

CuPy is optional and imported only when a CUDA device is first asked for, so `import tensor`
stays fast and works on machines without CuPy or a GPU.
"""
from __future__ import annotations

import numpy as np

from .errors import DeviceError

_cupy = None
_cupy_error: Exception | None = None


def cupy_module():
    """Return the cupy module, importing it on first use; raise DeviceError if it is unusable."""
    global _cupy, _cupy_error
    if _cupy is None and _cupy_error is None:
        try:
            import cupy

            _cupy = cupy
        except Exception as exc:  # ImportError, or a broken CUDA install raising at import
            _cupy_error = exc
    if _cupy is None:
        raise DeviceError(
            f"CUDA was requested but CuPy cannot be imported ({_cupy_error!r}); "
            "install raygrad with its CUDA extra: pip install 'raygrad[cuda12]' (or [cuda13])"
        )
    return _cupy


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    return cuda_device_count() > 0


def cuda_device_count() -> int:
    try:
        return cupy_module().cuda.runtime.getDeviceCount()
    except Exception:
        return 0


class Device:
    """A place where arrays live: Device('cpu'), Device('cuda'), Device('cuda:1')."""

    __slots__ = ("type", "index")

    def __init__(self, spec: str | Device = "cpu", index: int | None = None):
        if isinstance(spec, Device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise DeviceError(f"device must be a string like 'cpu' or 'cuda:0', got {spec!r}")
        kind, _, num = spec.partition(":")
        if kind not in ("cpu", "cuda"):
            raise DeviceError(f"unknown device {spec!r}: expected 'cpu', 'cuda' or 'cuda:N'")
        if num:
            if not num.isdigit():
                raise DeviceError(f"bad device index in {spec!r}: expected 'cuda:N' with N >= 0")
            index = int(num)
        if kind == "cpu":
            index = None
        elif index is None:
            index = 0
        self.type, self.index = kind, index

    @property
    def xp(self):
        """The array module (numpy or cupy) for this device."""
        if self.type == "cpu":
            return np
        cp = cupy_module()
        count = cuda_device_count()
        if self.index >= count:
            raise DeviceError(f"device {self} requested but only {count} CUDA device(s) are visible")
        return cp

    def __eq__(self, other):
        if isinstance(other, str):
            other = Device(other)
        return isinstance(other, Device) and self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}'" + ("" if self.index is None else f", index={self.index}") + ")"


CPU = Device("cpu")
_cuda_devices: dict[int, Device] = {}


def as_device(device) -> Device:
    """Normalise None / str / Device to a Device (None means cpu)."""
    if device is None:
        return CPU
    if isinstance(device, Device):
        return device
    return Device(device)


def device_of(array) -> Device:
    """The Device an array lives on (numpy -> cpu, cupy -> cuda:N)."""
    if isinstance(array, np.ndarray):
        return CPU
    index = array.device.id
    dev = _cuda_devices.get(index)
    if dev is None:
        dev = _cuda_devices[index] = Device("cuda", index)
    return dev


def array_module(array):
    """numpy for numpy arrays and scalars, cupy for cupy arrays."""
    if isinstance(array, (np.ndarray, np.generic)) or _cupy is None:
        return np
    return _cupy if isinstance(array, _cupy.ndarray) else np


def to_device_array(array, device: Device):
    """Copy `array` to `device` (a no-op when it is already there)."""
    if device.type == "cpu":
        if isinstance(array, (np.ndarray, np.generic)):
            return np.asarray(array)
        return array.get()
    cp = device.xp
    with cp.cuda.Device(device.index):
        return cp.asarray(array)
