"""torch.accelerator: the current accelerator, which for raygrad is CUDA (through CuPy) or none.

    device = tensor.accelerator.current_accelerator().type if tensor.accelerator.is_available() else "cpu"
"""
from __future__ import annotations

from . import cuda
from .backend import Device


def is_available() -> bool:
    return cuda.is_available()


def current_accelerator(check_available: bool = False):
    """Device('cuda') when a GPU is usable, else None."""
    return Device("cuda") if cuda.is_available() else None


def device_count() -> int:
    return cuda.device_count() if cuda.is_available() else 0


def current_device_index() -> int:
    return cuda.current_device()


def set_device_index(device) -> None:
    cuda.set_device(device)


def synchronize(device=None) -> None:
    cuda.synchronize(device)
