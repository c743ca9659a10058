"""skip_init: build a module without running its parameter initialization."""
from __future__ import annotations

import inspect

from ..init import _skip_init
from ..module import Module


def skip_init(module_cls, *args, **kwargs):
    """module_cls(*args, **kwargs) with every nn.init fill skipped: its parameters and buffers are left
    uninitialized (whatever empty() gave), to be filled by the caller, e.g. from a checkpoint.

    As in PyTorch the class must accept a `device` argument; PyTorch builds the module on the 'meta'
    device and then allocates it on `device`, here the fills are skipped while it is built there."""
    if not (isinstance(module_cls, type) and issubclass(module_cls, Module)):
        raise RuntimeError(f"Expected a Module; got {module_cls}")
    if "device" not in inspect.signature(module_cls).parameters:
        raise RuntimeError("Module must support a 'device' arg to skip initialization")
    kwargs.setdefault("device", "cpu")
    with _skip_init():
        return module_cls(*args, **kwargs)
