"""A readable repr, close to PyTorch's: values, then device/dtype/grad only when not the default.

set_printoptions (torch.set_printoptions) changes how every Tensor prints; the options are global,
as in PyTorch. get_printoptions / printoptions live here, as in torch._tensor_str.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math

import numpy as np

from . import dtypes
from .backend import Device, to_device_array


@dataclasses.dataclass
class _PrintOptions:
    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: bool | None = None


PRINT_OPTS = _PrintOptions()
_PROFILES = {
    "default": _PrintOptions(),
    "short": _PrintOptions(precision=2, edgeitems=2),
    "full": _PrintOptions(threshold=math.inf),
}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    """How Tensors print (torch.set_printoptions): `precision` digits after the point (default 4),
    summarize with `edgeitems` (3) per end of each dimension beyond `threshold` (1000) elements, wrap at
    `linewidth` (80) characters, `sci_mode` True/False forces scientific notation on or off (None: automatic;
    like torch, every call without it resets it to None). `profile` 'default', 'short' or 'full' sets the
    first four first, then the others apply on top: set_printoptions(profile='default') restores the defaults."""
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: unknown profile {profile!r}; use one of 'default', 'short', 'full'")
        base = _PROFILES[profile]
        PRINT_OPTS.precision, PRINT_OPTS.threshold = base.precision, base.threshold
        PRINT_OPTS.edgeitems, PRINT_OPTS.linewidth = base.edgeitems, base.linewidth
    for name, value in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                        ("linewidth", linewidth)):
        if value is not None:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or value != value:
                raise ValueError(f"set_printoptions: {name} must be a non-negative number, got {value!r}")
            setattr(PRINT_OPTS, name, value)
    PRINT_OPTS.sci_mode = None if sci_mode is None else bool(sci_mode)


def get_printoptions() -> dict:
    """The current options, as keyword arguments for set_printoptions (torch._tensor_str.get_printoptions)."""
    return dataclasses.asdict(PRINT_OPTS)


@contextlib.contextmanager
def printoptions(**kwargs):
    """Print with other options inside the block (torch._tensor_str.printoptions)."""
    old = get_printoptions()
    set_printoptions(**kwargs)
    try:
        yield
    finally:
        set_printoptions(**old)


def _format_values(values) -> str:
    opts = PRINT_OPTS
    kwargs = dict(separator=", ", precision=int(opts.precision), edgeitems=int(opts.edgeitems), prefix="tensor(",
                  floatmode="maxprec", max_line_width=int(opts.linewidth),
                  threshold=opts.threshold if math.isinf(opts.threshold) else int(opts.threshold))
    if opts.sci_mode is False:
        kwargs["suppress_small"] = True
    elif opts.sci_mode and values.dtype.kind == "f":
        pad = " " if values.size and bool((values < 0).any()) else ""  # keep columns aligned beside a minus sign
        kwargs["formatter"] = {"float_kind": lambda x: ("" if x < 0 else pad) + np.format_float_scientific(
            x, precision=int(opts.precision), unique=False)}
    return np.array2string(values, **kwargs)


def tensor_repr(t) -> str:
    values = to_device_array(t.data, Device("cpu"))
    body = _format_values(values)
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
