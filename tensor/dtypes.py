"""Dtypes and PyTorch's type-promotion rules.

A raygrad dtype is a `numpy.dtype`, so it passes straight to NumPy and CuPy. Promotion follows
PyTorch, not NumPy: operands are ranked by category (bool < integer < floating); within the top
category, tensors with dimensions decide over zero-dimensional tensors, which decide over Python
scalars; a Python float meeting integer tensors gives the default float dtype (float32).
"""
from __future__ import annotations

import builtins

import numpy as np

from .errors import DTypeError

bool = np.dtype("bool")  # noqa: A001 - torch.bool
uint8 = np.dtype("uint8")
int8 = np.dtype("int8")
int16 = short = np.dtype("int16")
int32 = int = np.dtype("int32")  # noqa: A001 - torch.int
int64 = long = np.dtype("int64")
float16 = half = np.dtype("float16")
float32 = float = np.dtype("float32")  # noqa: A001 - torch.float
float64 = double = np.dtype("float64")

SUPPORTED = (bool, uint8, int8, int16, int32, int64, float16, float32, float64)
_NAMES = {d: d.name for d in SUPPORTED}

_default_float = float32


def get_default_dtype() -> np.dtype:
    return _default_float


def set_default_dtype(dtype) -> None:
    """Set the dtype of new floating tensors (float32 unless changed)."""
    global _default_float
    dtype = as_dtype(dtype)
    if dtype.kind != "f":
        raise DTypeError(f"set_default_dtype: {dtype} is not a floating dtype; use float16/32/64")
    _default_float = dtype


def as_dtype(dtype) -> np.dtype:
    """Normalise a dtype given as np.dtype, numpy type, Python type or name ('float32')."""
    if dtype is builtins.float:
        return _default_float
    if dtype is builtins.int:
        return int64
    if dtype is builtins.bool:
        return bool
    try:
        result = np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"not a dtype: {dtype!r}; use e.g. tensor.float32 or 'int64'") from None
    if result not in _NAMES:
        raise DTypeError(f"dtype {result} is not supported; supported: {', '.join(_NAMES.values())}")
    return result


def dtype_name(dtype: np.dtype) -> str:
    return "tensor." + dtype.name


def is_floating(dtype: np.dtype) -> builtins.bool:
    return dtype.kind == "f"


def category(dtype: np.dtype) -> builtins.int:
    return 0 if dtype.kind == "b" else 2 if dtype.kind == "f" else 1


def scalar_category(value) -> builtins.int:
    if isinstance(value, (builtins.bool, np.bool_)):
        return 0
    if isinstance(value, (builtins.int, np.integer)):
        return 1
    if isinstance(value, (builtins.float, np.floating)):
        return 2
    raise DTypeError(f"cannot use {type(value).__name__} {value!r} as a tensor operand")


_CATEGORY_DEFAULT = {0: bool, 1: int64}


def promote_types(a: np.dtype, b: np.dtype) -> np.dtype:
    """Two tensor dtypes: the higher category wins outright (int64 + float16 -> float16)."""
    if a == b:
        return a
    ca, cb = category(a), category(b)
    if ca != cb:
        return a if ca > cb else b
    return np.promote_types(a, b)


def result_type(*operands) -> np.dtype:
    """The dtype of an elementwise result over Tensors and Python scalars, as in torch.result_type."""
    best = [None, None, -1]  # dtype among dimensioned tensors, among 0-d tensors, top scalar category
    for op in operands:
        if isinstance(op, np.generic):
            op = op.item()  # a NumPy scalar counts as the Python number it is, as in PyTorch
        dtype = getattr(op, "dtype", None)
        if dtype is None:
            best[2] = max(best[2], scalar_category(op))
            continue
        slot = 0 if op.ndim else 1
        best[slot] = dtype if best[slot] is None else promote_types(best[slot], dtype)
    dims, zero_dims, scalar_cat = best
    result = dims
    if zero_dims is not None and (result is None or category(zero_dims) > category(result)):
        result = zero_dims
    if scalar_cat >= 0 and (result is None or scalar_cat > category(result)):
        result = _CATEGORY_DEFAULT.get(scalar_cat, _default_float)
    return result


def can_cast(from_dtype: np.dtype, to_dtype: np.dtype) -> builtins.bool:
    """PyTorch's in-place rule: the result may not move to a lower category (float -> int)."""
    return category(from_dtype) <= category(to_dtype)
