"""tensor.load: the header parsed as JSON and checked (sizes, tiling, checksum) before any tensor is
built, then the structure rebuilt and each tensor placed where map_location says. Nothing is unpickled."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import struct

import numpy as np

from ..backend import CPU, Device, as_device, to_device_array
from ..errors import DeviceError, SerializationError
from ..tensor import Tensor, _wrap
from ._format import CHECKSUM, CODE_DTYPES, FORMAT, MAX_DEPTH, MAX_HEADER, PLACEHOLDER, STRUCTURE, VERSION, \
    as_path, bad, is_stream


def load(path, map_location=None, weights_only=True):
    """Read what `save` wrote (or any safetensors file, as a flat dict of tensors) from a path or a binary
    file object.

    map_location: None (each tensor back on the device it was saved from), a device ('cpu',
    'cuda:0', a Device), a dict from saved device to device ({'cuda:0': 'cpu'}), or a callable
    `(tensor_on_cpu, saved_device: str) -> Tensor | device`. `weights_only` is accepted for
    PyTorch compatibility: these files only ever hold data, so there is nothing else to allow.
    """
    if is_stream(path, "read"):
        file, path = path, getattr(path, "name", f"<{type(path).__name__}>")  # the name, for messages
        header_bytes, data = _read_stream(file, path)
    else:
        path = as_path(path, "load")
        header_bytes, data = _read(path)
    header = _parse_json(header_bytes, path, "header")
    if not isinstance(header, dict):
        raise bad(path, f"the header is a JSON {type(header).__name__}, not an object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad(path, "__metadata__ must map strings to strings")
    entries = _check_entries(header, len(data), path)
    ours = metadata.get("format") == FORMAT or any(key.startswith("raygrad.") for key in metadata)
    if ours:
        _verify_checksum(metadata, header_bytes, data, path)
    tensors = {name: _array_at(data, entry, name, path) for name, entry in entries.items()}
    place = _placer(map_location)
    if not ours:
        return {name: place(_wrap(array), "cpu") for name, array in tensors.items()}
    structure = _parse_json(metadata[STRUCTURE].encode(), path, "structure")
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
        raise bad(name, f"it is {size} bytes long, too short to hold a header")
    (header_size,) = struct.unpack("<Q", prefix)
    if header_size > size - 8:
        raise bad(name, _foreign_format(prefix) or f"the header claims {header_size} bytes but only {size - 8} "
                                                    "follow (a truncated file, or not a safetensors file)")
    if header_size > MAX_HEADER:
        raise bad(name, f"the header claims {header_size} bytes, more than the {MAX_HEADER} allowed")
    header = file.read(header_size)
    if not header.startswith(b"{"):
        raise bad(name, _foreign_format(prefix) or "the header does not start with '{'")
    data = np.empty(size - 8 - header_size, np.uint8)  # one read, into aligned memory that tensors can view
    if file.readinto(memoryview(data)) != data.size:
        raise bad(name, "the file changed size while being read")
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
        raise bad(path, f"the {what} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise bad(path, f"the {what} nests too deeply") from None
    except ValueError as exc:
        raise bad(path, f"the {what} is not valid JSON ({exc})") from None


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
            raise bad(path, f"tensor {name!r} must have exactly 'dtype', 'shape' and 'data_offsets'")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in CODE_DTYPES:
            raise bad(path, f"tensor {name!r} has dtype {dtype!r}; supported: {', '.join(CODE_DTYPES)}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise bad(path, f"tensor {name!r} has shape {shape!r}; dimensions must be integers >= 0")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
            raise bad(path, f"tensor {name!r} has data_offsets {offsets!r}; expected [begin, end], integers >= 0")
        begin, end = offsets
        expected = CODE_DTYPES[dtype].itemsize * int(np.prod(shape, dtype=object))
        if end - begin != expected:
            raise bad(path, f"tensor {name!r} has data_offsets {offsets} ({end - begin} bytes), but its "
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
            raise bad(path, f"tensor {name!r} (bytes {begin}-{end}) overlaps tensor {previous!r}")
        if begin > position:
            raise bad(path, f"bytes {position}-{begin} of the data belong to no tensor")
        position, previous = end, name
    if position > data_size:
        raise bad(path, f"tensor {previous!r} ends at byte {position} of the data, but the file holds only "
                         f"{data_size} bytes of data: it is truncated")
    if position < data_size:
        raise bad(path, f"{data_size - position} bytes after the last tensor belong to no tensor")


def _verify_checksum(metadata, header_bytes, data, path):
    for key in (STRUCTURE, CHECKSUM):
        if key not in metadata:
            raise bad(path, f"its metadata lacks {key!r} (altered, or written by an incompatible tool)")
    if metadata.get("raygrad.version") != VERSION:
        raise bad(path, f"it was written in raygrad format version {metadata.get('raygrad.version')!r}; this "
                         f"raygrad reads version {VERSION}")
    stored = metadata[CHECKSUM]
    field = f'"{CHECKSUM}":"{stored}"'.encode()
    if len(stored) != 64 or header_bytes.count(field) != 1:
        raise bad(path, "its checksum field is malformed")
    digest = hashlib.sha256(header_bytes.replace(field, f'"{CHECKSUM}":"{PLACEHOLDER}"'.encode()))
    digest.update(memoryview(data))
    if digest.hexdigest() != stored:
        raise SerializationError(
            f"tensor.load: {path!r} fails its SHA-256 checksum: the file was truncated, altered or damaged after it "
            "was written; restore it from a copy (or an earlier checkpoint)"
        )


def _array_at(data, entry, name, path):
    """The entry's tensor as a view of the data (a copy where alignment or byte order demand it)."""
    code, shape, begin, end = entry
    dtype = CODE_DTYPES[code]
    raw = data[begin:end]
    if raw.ctypes.data % dtype.itemsize:
        raw = raw.copy()  # unaligned (files from other writers): a fresh buffer is aligned
    array = raw.view(dtype).reshape(shape)
    if code == "BOOL" and array.size and raw.max() > 1:
        raise bad(path, f"bool tensor {name!r} holds bytes other than 0 and 1")
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


class _Decoder:
    """Rebuild the saved object from its JSON structure and the file's arrays."""

    def __init__(self, arrays, place, path):
        self.arrays, self.place, self.path = arrays, place, path
        self.built = {}  # (tag, name) -> object: a tensor saved once comes back as one object

    def decode(self, node, depth):
        if depth > MAX_DEPTH:
            raise bad(self.path, f"its structure nests more than {MAX_DEPTH} levels")
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
        raise bad(self.path, f"its structure holds an unknown node with keys {sorted(node)[:5]}")

    def _key(self, pair):
        if not isinstance(pair, list) or len(pair) != 2 or isinstance(pair[0], (list, dict)):
            raise bad(self.path, "its structure holds a malformed dict entry")
        return pair[0]

    def _array(self, name):
        if not isinstance(name, str) or name not in self.arrays:
            raise bad(self.path, f"its structure refers to a tensor {name!r} that the file does not hold")
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
