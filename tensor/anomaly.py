"""Anomaly detection (torch.autograd.detect_anomaly): forward tracebacks on nodes, NaN checks in backward.

Zero cost when off. Function.apply and the engine's _call_backward carry no check at all: turning
the mode on swaps in instrumented versions of both (the originals run inside them), and turning it
off puts the very same original objects back. The mode is process-wide, as in PyTorch (not per
thread): a swap is visible to every thread, and a lock keeps the swap and the flags consistent.

When on, every node that apply links into the graph gets `_anomaly_trace`: the Python stack of the
forward call that made it, without the frames inside this package (the user's line comes last).
In backward, a node whose gradients contain NaN raises AutogradError (a RuntimeError) naming the
node and showing that trace; any other error raised in a node's backward gets the trace as a note.
"""
from __future__ import annotations

import functools
import os
import sys
import threading
import traceback
import warnings

from . import engine
from .backend import array_module
from .autograd import Function
from .errors import AutogradError
from .tensor import Tensor

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_lock = threading.Lock()
_enabled = False
_check_nan = True
_plain_apply = None  # the originals, kept while the instrumented versions are installed
_plain_call_backward = None


def is_anomaly_enabled() -> bool:
    return _enabled


def is_anomaly_check_nan_enabled() -> bool:
    return _check_nan


def _set_anomaly_enabled(mode: bool, check_nan: bool = True):
    """torch.set_anomaly_enabled: set both flags and (un)install the instrumented paths to match."""
    global _enabled, _check_nan, _plain_apply, _plain_call_backward
    with _lock:
        _enabled, _check_nan = bool(mode), bool(check_nan)
        if _enabled and _plain_apply is None:
            _plain_apply = Function.__dict__["apply"]
            _plain_call_backward = engine._call_backward
            Function.apply = classmethod(_recording_apply(_plain_apply.__func__))
            engine._call_backward = _checked_call_backward(_plain_call_backward)
        elif not _enabled and _plain_apply is not None:
            Function.apply = _plain_apply
            engine._call_backward = _plain_call_backward
            _plain_apply = _plain_call_backward = None


class set_detect_anomaly:
    """Turn anomaly detection on or off at once; as a context manager, the previous mode comes back on exit.

        tensor.autograd.set_detect_anomaly(True)          # on from here
        with tensor.autograd.set_detect_anomaly(False):   # off inside, restored after
            ...
    """

    def __init__(self, mode: bool, check_nan: bool = True):
        self.prev, self.prev_check_nan = _enabled, _check_nan
        _set_anomaly_enabled(mode, check_nan)

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        _set_anomaly_enabled(self.prev, self.prev_check_nan)


class detect_anomaly:
    """Context manager and decorator that turns anomaly detection on inside (`with detect_anomaly():`,
    `@detect_anomaly()`). Slow: for debugging only, as PyTorch warns."""

    def __init__(self, check_nan: bool = True):
        self.check_nan = check_nan
        self.prev, self.prev_check_nan = _enabled, _check_nan
        warnings.warn("Anomaly Detection has been enabled. This mode will increase the runtime and should only be "
                      "enabled for debugging.", stacklevel=2)

    def __enter__(self):
        self.prev, self.prev_check_nan = _enabled, _check_nan  # as of entry: one object may be reused
        _set_anomaly_enabled(True, self.check_nan)

    def __exit__(self, *exc):
        _set_anomaly_enabled(self.prev, self.prev_check_nan)

    def __call__(self, fn):
        check_nan = self.check_nan

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = _enabled, _check_nan
            _set_anomaly_enabled(True, check_nan)
            try:
                return fn(*args, **kwargs)
            finally:
                _set_anomaly_enabled(*prev)

        return wrapper


# ------------------------------------------------------------------------------- instrumented paths


def _recording_apply(plain_apply):
    """apply that also stamps the forward stack on the node it links (the original is passed in, so a
    thread that turns the mode off meanwhile cannot pull it from under a call in flight)."""

    def apply(cls, *args):
        out = plain_apply(cls, *args)
        trace = None
        for t in out if type(out) is tuple else (out,):
            node = t.grad_fn if isinstance(t, Tensor) else None
            if node is not None and getattr(node, "_anomaly_trace", None) is None:
                if trace is None:
                    trace = _user_stack()
                node._anomaly_trace = trace
        return out

    return apply


def _user_stack():
    """The caller's stack, oldest first, up to the last frame outside this package."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    return traceback.extract_stack(frame) if frame is not None else traceback.extract_stack()


def _checked_call_backward(plain_call_backward):
    def call_backward(node, grads, retain_graph, graph):
        try:
            result = plain_call_backward(node, grads, retain_graph, graph)
        except Exception as error:
            _attach_trace(error, node)
            raise
        if _check_nan:
            _raise_on_nan(node, result)
        return result

    return call_backward


def _raise_on_nan(node, grads):
    for index, g in enumerate(grads):
        if g is not None and _has_nan(g.data if isinstance(g, Tensor) else g):
            raise AutogradError(
                f"Function '{type(node).__name__}' returned nan values in its {index}th output (the gradient for "
                f"its input {index}).\n{_describe_trace(node)}\nLook at that forward call: its backward is not "
                "defined at these inputs (e.g. sqrt or log at 0, 0/0); keep its inputs away from such points "
                "(clamp, add an eps) or mask them before the op"
            )


def _has_nan(array):
    return array.dtype.kind in "fc" and bool(array_module(array).isnan(array).any())


def _describe_trace(node):
    trace = getattr(node, "_anomaly_trace", None)
    if trace is None:
        return (f"{type(node).__name__} has no forward traceback: it was made while anomaly detection was off; "
                "turn it on before the forward pass")
    return "Traceback of forward call that caused the error:\n" + "".join(traceback.format_list(trace)).rstrip()


def _attach_trace(error, node):
    text = f"Error detected in {type(node).__name__}. {_describe_trace(node)}"
    if hasattr(error, "add_note"):  # Python 3.11+
        error.add_note(text)
    else:
        warnings.warn(text, stacklevel=2)
