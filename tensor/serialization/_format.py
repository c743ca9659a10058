"""The file format's constants and the helpers that both directions use (see __init__'s docstring)."""
from __future__ import annotations

import os

import numpy as np

from ..errors import SerializationError

DTYPE_CODES = {np.dtype(name): code for name, code in [
    ("float64", "F64"), ("float32", "F32"), ("float16", "F16"), ("int64", "I64"), ("int32", "I32"),
    ("int16", "I16"), ("int8", "I8"), ("uint8", "U8"), ("bool", "BOOL"),
    # the unsigned widths safetensors names: np.random.get_state()'s MT19937 key is uint32
    ("uint16", "U16"), ("uint32", "U32"), ("uint64", "U64")]}
CODE_DTYPES = {code: dtype.newbyteorder("<") for dtype, code in DTYPE_CODES.items()}
FORMAT = "raygrad"
VERSION = "1"
STRUCTURE = "raygrad.structure"
CHECKSUM = "raygrad.sha256"
PLACEHOLDER = "0" * 64  # the checksum covers the header with this in the digest's place
MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit
MAX_DEPTH = 64


def as_path(path, op):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"tensor.{op}: expected a file path (str or os.PathLike) or a binary file object, "
                        f"got {type(path).__name__}")
    return os.fspath(path)


def is_stream(f, method):
    """A file object (io.BytesIO, an open file) rather than a path: torch.save and torch.load take both."""
    return not isinstance(f, (str, os.PathLike)) and callable(getattr(f, method, None))


def bad(path, reason):
    return SerializationError(f"tensor.load: {path!r} is not a valid raygrad/safetensors file: {reason}")
