"""A readable repr, close to PyTorch's: values, then device/dtype/grad only when not the default."""
from __future__ import annotations

import numpy as np

from . import dtypes
from .backend import Device, to_device_array


def tensor_repr(t) -> str:
    values = to_device_array(t.data, Device("cpu"))
    body = np.array2string(
        values, separator=", ", precision=4, threshold=1000, edgeitems=3, prefix="tensor(", floatmode="maxprec"
    )
    extras = []
    if t.device.type != "cpu":
        extras.append(f"device='{t.device}'")
    default = {"f": dtypes.get_default_dtype(), "i": dtypes.int64, "b": dtypes.bool}.get(values.dtype.kind)
    if values.dtype != default or values.size == 0:
        extras.append(f"dtype={dtypes.dtype_name(values.dtype)}")
    if values.size == 0 and values.ndim != 1:
        extras.append(f"size={tuple(values.shape)}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn=<{type(t.grad_fn).__name__}>")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"
