"""tensor.save / tensor.load: pickle-free files in the safetensors layout.

    tensor.save({"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 3}, "ckpt.safetensors")
    state = tensor.load("ckpt.safetensors", map_location="cpu")

A file is exactly a safetensors file, so any safetensors reader opens it:

    8 bytes   N, the header length (little-endian unsigned)
    N bytes   a UTF-8 JSON object: {tensor name: {"dtype", "shape", "data_offsets": [begin, end]},
              "__metadata__": {str: str}}, padded with spaces so the data starts at a multiple of 8
    the rest  the tensors' raw little-endian bytes, largest items first so every tensor is aligned

Everything that is not a tensor goes into the metadata as JSON strings: the nesting of dicts,
lists and tuples with the numbers, strings, bools and None in it (`raygrad.structure`), and a
SHA-256 of the header and data (`raygrad.sha256`) so a truncated or altered file is refused.
Reading never executes or unpickles anything: the header is parsed as JSON and checked before a
single tensor is built. A plain safetensors file written by another tool loads as a flat dict.

The checksum guards against corruption, not against someone who rewrites it: it is no signature.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import struct

import numpy as np

from .backend import CPU, Device, as_device, to_device_array
from .errors import DeviceError, SerializationError
from .tensor import Tensor, _wrap

_DTYPE_CODES = {np.dtype(name): code for name, code in [
    ("float64", "F64"), ("float32", "F32"), ("float16", "F16"), ("int64", "I64"), ("int32", "I32"),
    ("int16", "I16"), ("int8", "I8"), ("uint8", "U8"), ("bool", "BOOL"),
    # the unsigned widths safetensors names: np.random.get_state()'s MT19937 key is uint32
    ("uint16", "U16"), ("uint32", "U32"), ("uint64", "U64")]}
_CODE_DTYPES = {code: dtype.newbyteorder("<") for dtype, code in _DTYPE_CODES.items()}
_FORMAT = "raygrad"
_VERSION = "1"
_STRUCTURE = "raygrad.structure"
_CHECKSUM = "raygrad.sha256"
_PLACEHOLDER = "0" * 64  # the checksum covers the header with this in the digest's place
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit
_MAX_DEPTH = 64


# ================================================================================================ save


def save(obj, path) -> None:
    """Write `obj` (nested dicts/lists/tuples of Tensors, numpy arrays, numbers, strings, bools, None) to `path`.

    The file appears whole or not at all: it is written to a temporary file in the same folder,
    flushed to disk, then renamed over `path`. `path` may also be a binary file object (io.BytesIO,
    open(..., "wb")), as torch.save takes: the bytes are written at its position, without the rename.
    """
    stream = _is_stream(path, "write")
    if not stream:
        path = _as_path(path, "save")
    tensors = _TensorTable()
    structure = _encode(obj, tensors, (), 0)
    entries, arrays = tensors.layout()
    metadata = {"format": _FORMAT, "raygrad.version": _VERSION,
                _STRUCTURE: json.dumps(structure, separators=(",", ":"), ensure_ascii=False),
                _CHECKSUM: _PLACEHOLDER}
    header = json.dumps({"__metadata__": metadata, **entries}, separators=(",", ":"), ensure_ascii=False).encode()
    header += b" " * (-(8 + len(header)) % 8)
    if stream:
        _write_stream(path, header, arrays)
    else:
        _write_atomically(path, header, arrays)


def _as_path(path, op):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"tensor.{op}: expected a file path (str or os.PathLike) or a binary file object, "
                        f"got {type(path).__name__}")
    return os.fspath(path)


def _is_stream(f, method):
    """A file object (io.BytesIO, an open file) rather than a path: torch.save and torch.load take both."""
    return not isinstance(f, (str, os.PathLike)) and callable(getattr(f, method, None))


def _encode(obj, tensors, where, depth):
    """`obj` as JSON: containers tagged ({"$dict": [[key, value], ...]}, {"$tuple": [...]}), tensors by name."""
    if depth > _MAX_DEPTH:
        raise SerializationError(f"tensor.save: nesting deeper than {_MAX_DEPTH} levels at {_where(where)} "
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
            entries[name] = {"dtype": _DTYPE_CODES[array.dtype.newbyteorder("=")], "shape": list(array.shape),
                             "data_offsets": [offset, offset + array.nbytes]}
            offset += array.nbytes
        return entries, [self.arrays[name] for name in order]


def _host_array(array):
    host = to_device_array(array, CPU)
    if not host.flags.c_contiguous:
        host = host.copy(order="C")  # (not np.ascontiguousarray: it turns 0-d arrays into 1-d ones)
    if host.dtype.newbyteorder("=") not in _DTYPE_CODES:
        raise SerializationError(f"tensor.save: arrays of dtype {host.dtype} can't be stored; "
                                 f"supported: {', '.join(str(d) for d in _DTYPE_CODES)}")
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
    slot = f'"{_CHECKSUM}":"{_PLACEHOLDER}"'.encode()
    header = header.replace(slot, f'"{_CHECKSUM}":"{digest.hexdigest()}"'.encode(), 1)
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


# ================================================================================================ load


def load(path, map_location=None, weights_only=True):
    """Read what `save` wrote (or any safetensors file, as a flat dict of tensors) from a path or a binary
    file object.

    map_location: None (each tensor back on the device it was saved from), a device ('cpu',
    'cuda:0', a Device), a dict from saved device to device ({'cuda:0': 'cpu'}), or a callable
    `(tensor_on_cpu, saved_device: str) -> Tensor | device`. `weights_only` is accepted for
    PyTorch compatibility: these files only ever hold data, so there is nothing else to allow.
    """
    if _is_stream(path, "read"):
        file, path = path, getattr(path, "name", f"<{type(path).__name__}>")  # the name, for messages
        header_bytes, data = _read_stream(file, path)
    else:
        path = _as_path(path, "load")
        header_bytes, data = _read(path)
    header = _parse_json(header_bytes, path, "header")
    if not isinstance(header, dict):
        raise _bad(path, f"the header is a JSON {type(header).__name__}, not an object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _bad(path, "__metadata__ must map strings to strings")
    entries = _check_entries(header, len(data), path)
    ours = metadata.get("format") == _FORMAT or any(key.startswith("raygrad.") for key in metadata)
    if ours:
        _verify_checksum(metadata, header_bytes, data, path)
    tensors = {name: _array_at(data, entry, name, path) for name, entry in entries.items()}
    place = _placer(map_location)
    if not ours:
        return {name: place(_wrap(array), "cpu") for name, array in tensors.items()}
    structure = _parse_json(metadata[_STRUCTURE].encode(), path, "structure")
    return _Decoder(tensors, place, path).decode(structure, 0)


# torch.load(weights_only=True) unpickles only allow-listed globals, and its error tells scripts to
# allow more (numpy arrays, a config class) with these. raygrad's files never hold pickled objects, so
# there is nothing to allow: the list is only kept, so that ported code runs and can read it back.
_safe_globals = []


def add_safe_globals(safe_globals) -> None:
    """torch.serialization.add_safe_globals: accepted and recorded; tensor.load unpickles nothing."""
    _safe_globals.extend(safe_globals)


def get_safe_globals() -> list:
    return list(_safe_globals)


def clear_safe_globals() -> None:
    _safe_globals.clear()


@contextlib.contextmanager
def safe_globals(safe_globals):
    """torch.serialization.safe_globals: `with safe_globals([...]): load(...)`, the list kept for the block."""
    saved = list(_safe_globals)
    add_safe_globals(safe_globals)
    try:
        yield
    finally:
        _safe_globals[:] = saved


def _bad(path, reason):
    return SerializationError(f"tensor.load: {path!r} is not a valid raygrad/safetensors file: {reason}")


def _read(path):
    """(header bytes, data as one writable uint8 array), after checking the sizes add up."""
    with open(path, "rb") as file:
        return _read_parts(file, os.fstat(file.fileno()).st_size, path)


def _read_stream(file, name):
    """_read for a file object, read from its position to its end."""
    raw = file.read()
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise TypeError(f"tensor.load: {name} gave {type(raw).__name__}, not bytes: open it in binary mode ('rb')")
    return _read_parts(io.BytesIO(raw), len(raw), name)


def _read_parts(file, size, name):
    prefix = file.read(8)
    if len(prefix) < 8:
        raise _bad(name, f"it is {size} bytes long, too short to hold a header")
    (header_size,) = struct.unpack("<Q", prefix)
    if header_size > size - 8:
        raise _bad(name, _foreign_format(prefix) or f"the header claims {header_size} bytes but only {size - 8} "
                                                    "follow (a truncated file, or not a safetensors file)")
    if header_size > _MAX_HEADER:
        raise _bad(name, f"the header claims {header_size} bytes, more than the {_MAX_HEADER} allowed")
    header = file.read(header_size)
    if not header.startswith(b"{"):
        raise _bad(name, _foreign_format(prefix) or "the header does not start with '{'")
    data = np.empty(size - 8 - header_size, np.uint8)  # one read, into aligned memory that tensors can view
    if file.readinto(memoryview(data)) != data.size:
        raise _bad(name, "the file changed size while being read")
    return header, data


def _foreign_format(prefix):
    """A hint naming the format of a file that is not safetensors, when its first bytes give it away."""
    advice = "; raygrad never unpickles (that would run code from the file): convert it in PyTorch with " \
             "safetensors.torch.save_file(state_dict, path)"
    if prefix[:4] == b"PK\x03\x04":
        return "it is a zip archive (PyTorch's torch.save format?)" + advice
    if prefix[:1] == b"\x80" and 2 <= prefix[1] <= 5:
        return "it is a Python pickle" + advice
    return ""


def _parse_json(raw, path, what):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(path, f"the {what} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise _bad(path, f"the {what} nests too deeply") from None
    except ValueError as exc:
        raise _bad(path, f"the {what} is not valid JSON ({exc})") from None


def _no_duplicates(pairs):
    result = dict(pairs)
    if len(result) != len(pairs):
        seen = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f"duplicate key {duplicate!r}")
    return result


def _check_entries(header, data_size, path):
    """Validate every tensor entry; their byte ranges must tile the data exactly, in any order."""
    entries, ranges = {}, []
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise _bad(path, f"tensor {name!r} must have exactly 'dtype', 'shape' and 'data_offsets'")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _CODE_DTYPES:
            raise _bad(path, f"tensor {name!r} has dtype {dtype!r}; supported: {', '.join(_CODE_DTYPES)}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise _bad(path, f"tensor {name!r} has shape {shape!r}; dimensions must be integers >= 0")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
            raise _bad(path, f"tensor {name!r} has data_offsets {offsets!r}; expected [begin, end], integers >= 0")
        begin, end = offsets
        expected = _CODE_DTYPES[dtype].itemsize * int(np.prod(shape, dtype=object))
        if end - begin != expected:
            raise _bad(path, f"tensor {name!r} has data_offsets {offsets} ({end - begin} bytes), but its "
                             f"shape {shape} of {dtype} needs {expected}")
        entries[name] = (dtype, tuple(shape), begin, end)
        ranges.append((begin, end, name))
    _check_tiling(sorted(ranges), data_size, path)
    return entries


def _is_count(value):
    return type(value) is int and value >= 0


def _check_tiling(ranges, data_size, path):
    position, previous = 0, None
    for begin, end, name in ranges:
        if begin < position:
            raise _bad(path, f"tensor {name!r} (bytes {begin}-{end}) overlaps tensor {previous!r}")
        if begin > position:
            raise _bad(path, f"bytes {position}-{begin} of the data belong to no tensor")
        position, previous = end, name
    if position > data_size:
        raise _bad(path, f"tensor {previous!r} ends at byte {position} of the data, but the file holds only "
                         f"{data_size} bytes of data: it is truncated")
    if position < data_size:
        raise _bad(path, f"{data_size - position} bytes after the last tensor belong to no tensor")


def _verify_checksum(metadata, header_bytes, data, path):
    for key in (_STRUCTURE, _CHECKSUM):
        if key not in metadata:
            raise _bad(path, f"its metadata lacks {key!r} (altered, or written by an incompatible tool)")
    if metadata.get("raygrad.version") != _VERSION:
        raise _bad(path, f"it was written in raygrad format version {metadata.get('raygrad.version')!r}; this "
                         f"raygrad reads version {_VERSION}")
    stored = metadata[_CHECKSUM]
    field = f'"{_CHECKSUM}":"{stored}"'.encode()
    if len(stored) != 64 or header_bytes.count(field) != 1:
        raise _bad(path, "its checksum field is malformed")
    digest = hashlib.sha256(header_bytes.replace(field, f'"{_CHECKSUM}":"{_PLACEHOLDER}"'.encode()))
    digest.update(memoryview(data))
    if digest.hexdigest() != stored:
        raise SerializationError(
            f"tensor.load: {path!r} fails its SHA-256 checksum: the file was truncated, altered or damaged after it "
            "was written; restore it from a copy (or an earlier checkpoint)"
        )


def _array_at(data, entry, name, path):
    """The entry's tensor as a view of the data (a copy where alignment or byte order demand it)."""
    code, shape, begin, end = entry
    dtype = _CODE_DTYPES[code]
    raw = data[begin:end]
    if raw.ctypes.data % dtype.itemsize:
        raw = raw.copy()  # unaligned (files from other writers): a fresh buffer is aligned
    array = raw.view(dtype).reshape(shape)
    if code == "BOOL" and array.size and raw.max() > 1:
        raise _bad(path, f"bool tensor {name!r} holds bytes other than 0 and 1")
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


class _Decoder:
    """Rebuild the saved object from its JSON structure and the file's arrays."""

    def __init__(self, arrays, place, path):
        self.arrays, self.place, self.path = arrays, place, path
        self.built = {}  # (tag, name) -> object: a tensor saved once comes back as one object

    def decode(self, node, depth):
        if depth > _MAX_DEPTH:
            raise _bad(self.path, f"its structure nests more than {_MAX_DEPTH} levels")
        if isinstance(node, list):
            return [self.decode(item, depth + 1) for item in node]
        if not isinstance(node, dict):
            return node
        if "$dict" in node and len(node) == 1 and isinstance(node["$dict"], list):
            return {self._key(pair): self.decode(pair[1], depth + 1) for pair in node["$dict"]}
        if "$tuple" in node and len(node) == 1 and isinstance(node["$tuple"], list):
            return tuple(self.decode(item, depth + 1) for item in node["$tuple"])
        if "$tensor" in node and set(node) <= {"$tensor", "device", "requires_grad"}:
            return self._tensor(node)
        if "$ndarray" in node and len(node) == 1:
            return self._array(node["$ndarray"])
        raise _bad(self.path, f"its structure holds an unknown node with keys {sorted(node)[:5]}")

    def _key(self, pair):
        if not isinstance(pair, list) or len(pair) != 2 or isinstance(pair[0], (list, dict)):
            raise _bad(self.path, "its structure holds a malformed dict entry")
        return pair[0]

    def _array(self, name):
        if not isinstance(name, str) or name not in self.arrays:
            raise _bad(self.path, f"its structure refers to a tensor {name!r} that the file does not hold")
        return self.arrays[name]

    def _tensor(self, node):
        key = ("tensor", node["$tensor"])
        if key not in self.built:
            saved_device = node.get("device", "cpu")
            t = self.place(_wrap(self._array(node["$tensor"])), saved_device)
            if node.get("requires_grad") and t.dtype.kind == "f":
                t.requires_grad_(True)
            self.built[key] = t
        return self.built[key]


def _placer(map_location):
    """A function (tensor on cpu, saved device name) -> tensor where map_location says it belongs."""
    if map_location is None:
        return lambda t, saved: _move(t, saved)
    if isinstance(map_location, (str, Device)):
        target = as_device(map_location)
        return lambda t, saved: _move(t, target)
    if isinstance(map_location, dict):
        table = {str(as_device(k)): v for k, v in map_location.items()}
        return lambda t, saved: _move(t, table.get(saved, saved))
    if callable(map_location):
        def place(t, saved):
            result = map_location(t, saved)
            return result if isinstance(result, Tensor) else _move(t, result)

        return place
    raise TypeError(f"tensor.load: map_location must be None, a device, a dict or a callable, "
                    f"got {type(map_location).__name__}")


def _move(t, device):
    if not isinstance(device, (str, Device)):
        raise TypeError(f"tensor.load: map_location gave {device!r}, not a device or a Tensor")
    device = as_device(device)
    if device == CPU:
        return t
    try:
        return _wrap(to_device_array(t.data, device))
    except DeviceError as exc:
        raise DeviceError(f"tensor.load: can't place tensors on {device} here ({exc}); pass map_location='cpu' "
                          "to load them onto the CPU") from None
