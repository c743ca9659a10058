"""default_collate and default_convert, as in torch.utils.data.

default_collate turns a list of samples into a batch: Tensors and NumPy arrays stack on a new first
dim, Python floats become a float64 tensor and ints an int64 one, strings stay as the batch held them
(a list, or a tuple inside a collated tuple or list field, as in PyTorch), and tuples,
lists, named tuples and dicts are collated field by field (a tuple of fields comes back a list, as
in PyTorch). default_convert (what a DataLoader with batch_size=None applies to each sample) only
turns NumPy arrays and scalars into Tensors.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Mapping, MutableMapping, MutableSequence, Sequence

import numpy as np

from ...errors import ShapeError
from ...tensor import Tensor

# NumPy dtypes that hold strings or Python objects: left as they are, never made into tensors.
_STR_OR_OBJECT = re.compile(r"[SaUO]")


def default_collate(samples):
    """Stack a list of samples into a batch (see the module docstring for the rules)."""
    from ... import as_tensor, stack

    first = samples[0]
    if isinstance(first, Tensor):
        _same_shapes(samples, [tuple(s.shape) for s in samples])
        return stack(samples)
    if isinstance(first, np.ndarray):
        if _STR_OR_OBJECT.search(first.dtype.str):
            raise TypeError(f"default_collate: cannot batch NumPy arrays of dtype {first.dtype}; pass collate_fn=")
        _same_shapes(samples, [np.shape(s) for s in samples])
        return as_tensor(np.stack(samples))
    if isinstance(first, (np.bool_, np.number)):
        return as_tensor(np.asarray(samples))
    if isinstance(first, float):
        return as_tensor(np.asarray(samples, dtype=np.float64))
    if isinstance(first, int):  # bool too: a list of bools becomes a bool tensor
        return as_tensor(np.asarray(samples))
    if isinstance(first, (str, bytes)):
        return samples
    if isinstance(first, Mapping):
        return _rebuild_mapping(first, {key: default_collate([s[key] for s in samples]) for key in first})
    if isinstance(first, tuple) and hasattr(first, "_fields"):  # a named tuple keeps its type
        return type(first)(*(default_collate(field) for field in zip(*samples)))
    if isinstance(first, Sequence):
        sizes = [len(s) for s in samples]
        if len(set(sizes)) != 1:
            raise RuntimeError(f"default_collate: every sample must have the same number of fields, got sizes "
                               f"{sizes}; pad them or pass collate_fn=")
        fields = [default_collate(field) for field in zip(*samples)]  # tuples, as PyTorch passes them
        return fields if isinstance(first, tuple) else _rebuild_sequence(first, fields)
    raise TypeError(f"default_collate: cannot batch samples of type {type(first).__name__}; it batches tensors, "
                    "NumPy arrays, numbers, strings, and tuples/lists/dicts of them: pass collate_fn=")


def default_convert(data):
    """NumPy arrays and scalars in `data` (searched through dicts, tuples and lists) become Tensors;
    everything else is left as it is. A tuple comes back a list, as in PyTorch."""
    from ... import as_tensor

    if isinstance(data, Tensor):
        return data
    if isinstance(data, (np.ndarray, np.bool_, np.number)):
        return data if _STR_OR_OBJECT.search(data.dtype.str) else as_tensor(np.asarray(data))
    if isinstance(data, Mapping):
        return _rebuild_mapping(data, {key: default_convert(data[key]) for key in data})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        return _rebuild_sequence(data, [default_convert(d) for d in data])
    return data


def _same_shapes(samples, shapes):
    if len(set(shapes)) != 1:
        kind = type(samples[0]).__name__
        raise ShapeError(f"default_collate: cannot stack {kind}s of different shapes {sorted(set(shapes))}; "
                         "make the samples one shape (crop or pad) or pass collate_fn=")


def _rebuild_mapping(like, values):
    """A mapping of `like`'s type holding `values` (a plain dict where that type cannot be rebuilt)."""
    try:
        if isinstance(like, MutableMapping):
            clone = copy.copy(like)
            clone.update(values)
            return clone
        return type(like)(values)
    except TypeError:
        return values


def _rebuild_sequence(like, values):
    try:
        if isinstance(like, MutableSequence):
            clone = copy.copy(like)
            clone[:] = values
            return clone
        return type(like)(values)
    except TypeError:
        return values
