"""tensor.save: the object's structure as JSON metadata, its arrays in file order, written whole or not at all."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import struct

import numpy as np

from ..backend import CPU, to_device_array
from ..errors import SerializationError
from ..tensor import Tensor
from ._format import CHECKSUM, DTYPE_CODES, FORMAT, MAX_DEPTH, PLACEHOLDER, STRUCTURE, VERSION, as_path, is_stream


def save(obj, path) -> None:
    """Write `obj` (nested dicts/lists/tuples of Tensors, numpy arrays, numbers, strings, bools, None) to `path`.

    The file appears whole or not at all: it is written to a temporary file in the same folder,
    flushed to disk, then renamed over `path`. `path` may also be a binary file object (io.BytesIO,
    open(..., "wb")), as torch.save takes: the bytes are written at its position, without the rename.
    """
    stream = is_stream(path, "write")
    if not stream:
        path = as_path(path, "save")
    tensors = _TensorTable()
    structure = _encode(obj, tensors, (), 0)
    entries, arrays = tensors.layout()
    metadata = {"format": FORMAT, "raygrad.version": VERSION,
                STRUCTURE: json.dumps(structure, separators=(",", ":"), ensure_ascii=False),
                CHECKSUM: PLACEHOLDER}
    header = json.dumps({"__metadata__": metadata, **entries}, separators=(",", ":"), ensure_ascii=False).encode()
    header += b" " * (-(8 + len(header)) % 8)
    if stream:
        _write_stream(path, header, arrays)
    else:
        _write_atomically(path, header, arrays)


def _encode(obj, tensors, where, depth):
    """`obj` as JSON: containers tagged ({"$dict": [[key, value], ...]}, {"$tuple": [...]}), tensors by name."""
    if depth > MAX_DEPTH:
        raise SerializationError(f"tensor.save: nesting deeper than {MAX_DEPTH} levels at {_where(where)} "
                                 "(a container that contains itself?)")
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()  # a numpy scalar: stored as the Python number it equals
    if isinstance(obj, Tensor):
        node = {"$tensor": tensors.add(obj, obj.data, where)}
        if obj.device != CPU:
            node["device"] = str(obj.device)
        if obj.requires_grad:
            node["requires_grad"] = True
        return node
    if isinstance(obj, np.ndarray):
        return {"$ndarray": tensors.add(obj, obj, where)}
    if isinstance(obj, dict):
        return {"$dict": [[_encode_key(k, where), _encode(v, tensors, (*where, k), depth + 1)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, tensors, (*where, i), depth + 1) for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else {"$tuple": items}
    raise SerializationError(
        f"tensor.save: can't store a {type(obj).__name__} at {_where(where)}; files hold Tensors, numpy arrays, "
        "numbers, strings, bools, None and dicts/lists/tuples of them (no arbitrary objects: nothing is pickled)"
    )


def _encode_key(key, where):
    if key is None or isinstance(key, (bool, int, float, str)):
        return key
    if isinstance(key, np.generic):
        return key.item()
    raise SerializationError(f"tensor.save: dict key {key!r} ({type(key).__name__}) at {_where(where)} is not a "
                             "str, number, bool or None")


def _where(where):
    return "the top level" if not where else "[" + "][".join(repr(k) for k in where) + "]"


class _TensorTable:
    """The tensors met while encoding, each named once after its place in the structure."""

    def __init__(self):
        self.names = {}  # id(object) -> name, so a tensor that appears twice is stored once
        self.arrays = {}  # name -> host array
        self._keep = []  # the objects themselves, so their ids stay unique while saving

    def add(self, obj, array, where):
        name = self.names.get(id(obj))
        if name is None:
            name = self._unique(".".join(str(k) for k in where) or "tensor")
            self.names[id(obj)] = name
            self.arrays[name] = _host_array(array)
            self._keep.append(obj)
        return name

    def _unique(self, name):
        candidate, number = name, 1
        while candidate in self.arrays or candidate == "__metadata__":
            number += 1
            candidate = f"{name}#{number}"
        return candidate

    def layout(self):
        """Header entries and arrays in file order: larger items first (as safetensors does), so each is aligned."""
        order = sorted(self.arrays, key=lambda name: (-self.arrays[name].dtype.itemsize, name))
        entries, offset = {}, 0
        for name in order:
            array = self.arrays[name]
            entries[name] = {"dtype": DTYPE_CODES[array.dtype.newbyteorder("=")], "shape": list(array.shape),
                             "data_offsets": [offset, offset + array.nbytes]}
            offset += array.nbytes
        return entries, [self.arrays[name] for name in order]


def _host_array(array):
    host = to_device_array(array, CPU)
    if not host.flags.c_contiguous:
        host = host.copy(order="C")  # (not np.ascontiguousarray: it turns 0-d arrays into 1-d ones)
    if host.dtype.newbyteorder("=") not in DTYPE_CODES:
        raise SerializationError(f"tensor.save: arrays of dtype {host.dtype} can't be stored; "
                                 f"supported: {', '.join(str(d) for d in DTYPE_CODES)}")
    return host.astype(host.dtype.newbyteorder("<"), copy=False)  # a no-op on little-endian machines


def _write_atomically(path, header, arrays):
    folder = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            _write_stream(file, header, arrays)
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _sync_folder(folder)


def _write_stream(file, header, arrays):
    """The file's bytes, to any binary file object (it need not seek): the checksum is computed first
    and written into the header's slot, then the header and the arrays follow."""
    digest = hashlib.sha256(header)
    for array in arrays:
        digest.update(_bytes_of(array))
    slot = f'"{CHECKSUM}":"{PLACEHOLDER}"'.encode()
    header = header.replace(slot, f'"{CHECKSUM}":"{digest.hexdigest()}"'.encode(), 1)
    file.write(struct.pack("<Q", len(header)))
    file.write(header)
    for array in arrays:
        file.write(_bytes_of(array))
    if callable(getattr(file, "flush", None)):
        file.flush()


def _bytes_of(array):
    return memoryview(array.reshape(-1).view(np.uint8))  # no copy, no giant bytes object


def _sync_folder(folder):
    """Make the rename itself durable (POSIX); not every platform can open a folder to sync it."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
