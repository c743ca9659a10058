"""torch.testing for tests written against PyTorch: assert_close and make_tensor.

    tensor.testing.assert_close(model(x), expected)          # dtype-aware default tolerances
    x = tensor.testing.make_tensor((3, 4), dtype=tensor.float32, device="cpu", low=-1, high=1)

assert_close compares Tensors, NumPy arrays and numbers, and sequences and mappings of them item by
item, with PyTorch's default tolerances per dtype and its failure messages (mismatched elements,
greatest absolute and relative differences and where). A Tensor is compared with a Tensor, a number
with a number; shapes, dtypes (check_dtype) and devices (check_device) must match first.
"""
from __future__ import annotations

import collections.abc
import numbers

import numpy as np

from .creation import _on, _xp_and_dtype
from .random import rng_for
from .tensor import Tensor, _wrap

__all__ = ["assert_close", "make_tensor"]

# (rtol, atol) by dtype, as torch.testing: exact for integers and bools
_TOLERANCES = {np.dtype(np.float16): (1e-3, 1e-5), np.dtype(np.float32): (1.3e-6, 1e-5),
               np.dtype(np.float64): (1e-7, 1e-7)}


def assert_close(actual, expected, *, allow_subclasses=True, rtol=None, atol=None, equal_nan=False,
                 check_device=True, check_dtype=True, check_layout=True, check_stride=False, msg=None):
    """Raise AssertionError unless |actual - expected| <= atol + rtol * |expected| everywhere (NaN equal
    to NaN only with equal_nan); give rtol and atol together or neither."""
    if (rtol is None) != (atol is None):
        raise ValueError(f"assert_close: give both rtol and atol or neither, got rtol={rtol!r}, atol={atol!r}")
    _compare(actual, expected, (), dict(rtol=rtol, atol=atol, equal_nan=equal_nan, check_device=check_device,
                                        check_dtype=check_dtype, check_stride=check_stride, msg=msg))


def _compare(actual, expected, where, options):
    if isinstance(expected, collections.abc.Mapping) and isinstance(actual, collections.abc.Mapping):
        if set(actual) != set(expected):
            _fail(f"The keys of the mappings do not match: {sorted(map(str, actual))} != "
                  f"{sorted(map(str, expected))}.", where, options)
        for key in expected:
            _compare(actual[key], expected[key], where + (repr(key),), options)
    elif _is_sequence(expected) and _is_sequence(actual):
        if len(actual) != len(expected):
            _fail(f"The length of the sequences mismatch: {len(actual)} != {len(expected)}", where, options)
        for i, (a, e) in enumerate(zip(actual, expected)):
            _compare(a, e, where + (str(i),), options)
    elif isinstance(expected, (Tensor, np.ndarray)) and isinstance(actual, (Tensor, np.ndarray)):
        _compare_arrays(actual, expected, where, options)
    elif _is_number(expected) and _is_number(actual):
        _compare_numbers(actual, expected, where, options)
    else:
        _fail(f"No comparison of {type(actual).__name__} with {type(expected).__name__}: compare Tensors with "
              "Tensors, numbers with numbers, and sequences or mappings of them", where, options)


def _is_sequence(value):
    return isinstance(value, collections.abc.Sequence) and not isinstance(value, (str, bytes))


def _is_number(value):
    return isinstance(value, (numbers.Number, np.generic))


def _as_host(value):
    if isinstance(value, Tensor):
        return value.detach().cpu().data, str(value.device)
    return value, "cpu"


def _compare_arrays(actual, expected, where, options):
    (a, a_device), (e, e_device) = _as_host(actual), _as_host(expected)
    for attribute, mine, theirs, checked in (("shape", a.shape, e.shape, True),
                                             ("device", a_device, e_device, options["check_device"]),
                                             ("dtype", a.dtype, e.dtype, options["check_dtype"]),
                                             ("stride", a.strides, e.strides, options["check_stride"])):
        if checked and mine != theirs:
            _fail(f"The values for attribute '{attribute}' do not match: {mine} != {theirs}.", where, options)
    rtol, atol = _tolerances(options, a.dtype, e.dtype)
    exact = rtol == 0 and atol == 0
    common = np.promote_types(a.dtype, e.dtype) if a.dtype != e.dtype else a.dtype
    if common.kind in "biu":
        common = np.dtype(np.float64)  # differences of ints, without wrap-around
    a, e = a.astype(common), e.astype(common)
    with np.errstate(invalid="ignore", over="ignore"):
        difference = np.abs(a - e)
        close = (a == e) | (difference <= atol + rtol * np.abs(e))
        if options["equal_nan"]:
            close |= np.isnan(a) & np.isnan(e)
    if close.all():
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = difference / np.abs(e)
    lines = [f"Tensor-likes are not {'equal' if exact else 'close'}!", "",
             f"Mismatched elements: {int((~close).sum())} / {close.size} ({100.0 * (~close).mean():.1f}%)",
             _greatest("absolute", difference, atol, exact), _greatest("relative", relative, rtol, exact)]
    _fail("\n".join(lines), where, options)


def _greatest(kind, values, allowed, exact):
    flat = np.nan_to_num(values.reshape(-1), nan=np.inf)
    at = np.unravel_index(int(np.argmax(flat)), values.shape)
    value = values[at] if values.ndim else values
    limit = "" if exact else f" (up to {allowed} allowed)"
    return f"Greatest {kind} difference: {value} at index {tuple(int(i) for i in at)}{limit}"


def _compare_numbers(actual, expected, where, options):
    if options["check_dtype"] and type(actual) is not type(expected) and not (
            isinstance(actual, np.generic) or isinstance(expected, np.generic)):
        _fail(f"The values for attribute 'dtype' do not match: {type(actual).__name__} != "
              f"{type(expected).__name__}.", where, options)
    rtol, atol = (options["rtol"], options["atol"]) if options["rtol"] is not None else (
        (1e-7, 1e-7) if isinstance(actual, float) or isinstance(expected, float) else (0.0, 0.0))
    if options["equal_nan"] and np.isnan(actual) and np.isnan(expected):
        return
    difference = abs(actual - expected)
    if actual == expected or difference <= atol + rtol * abs(expected):
        return
    relative = difference / abs(expected) if expected else float("inf")
    _fail(f"Scalars are not close!\n\nExpected {expected} but got {actual}.\nAbsolute difference: {difference} "
          f"(up to {atol} allowed)\nRelative difference: {relative} (up to {rtol} allowed)", where, options)


def _tolerances(options, *array_dtypes):
    if options["rtol"] is not None:
        return options["rtol"], options["atol"]
    found = [_TOLERANCES.get(np.dtype(d), (0.0, 0.0)) for d in array_dtypes]
    return max(t[0] for t in found), max(t[1] for t in found)


def _fail(message, where, options):
    if where:
        message += "\n\nThe failure occurred for item " + "".join(f"[{w}]" for w in where)
    custom = options["msg"]
    raise AssertionError(custom(message) if callable(custom) else custom or message)


def make_tensor(*shape, dtype, device, low=None, high=None, requires_grad=False, noncontiguous=False,
                exclude_zero=False, memory_format=None):
    """A tensor of `shape` with values drawn uniformly from [low, high) (defaults: -9..9 for floats and
    signed ints, 0..10 for unsigned; bools are random), as torch.testing.make_tensor."""
    size = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    xp, dtype, dev = _xp_and_dtype(device, dtype)
    rng = rng_for(dev)  # the device's generator, as torch draws from its own (tensor.manual_seed reproduces it)
    low = (0 if dtype.kind == "u" else -9) if low is None else low
    high = (10 if dtype.kind == "u" else 9) if high is None else high
    if low >= high and dtype.kind != "b":
        raise ValueError(f"make_tensor: low ({low}) must be less than high ({high})")
    with _on(dev):  # drawn where the tensor lives: no host round trip
        if dtype.kind == "b":
            values = xp.asarray(rng.integers(0, 2, size)).astype(bool)
        elif dtype.kind in "iu":
            values = xp.asarray(rng.integers(int(np.ceil(low)), int(np.ceil(high)), size, dtype=np.int64)).astype(dtype)
        else:
            values = xp.asarray(rng.uniform(low, high, size)).astype(dtype)
        if exclude_zero:
            values[values == 0] = 1 if dtype.kind != "f" else np.finfo(dtype).tiny
        if noncontiguous and values.size > 1:
            values = xp.repeat(values, 2, axis=-1)[..., ::2]
        out = _wrap(values)
    if memory_format is not None:
        out = out.contiguous(memory_format=memory_format)
    return out.requires_grad_(True) if requires_grad else out
