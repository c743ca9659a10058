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
from ._read import add_safe_globals, clear_safe_globals, get_safe_globals, load, safe_globals
from ._write import save

__all__ = ["add_safe_globals", "clear_safe_globals", "get_safe_globals", "load", "safe_globals", "save"]
