"""torch.cuda's Stream, Event and stream(): thin wrappers over CuPy's (each keeps it as `.cupy`).

    start, end = tensor.cuda.Event(enable_timing=True), tensor.cuda.Event(enable_timing=True)
    start.record(); step(); end.record(); end.synchronize()
    print(start.elapsed_time(end))                 # milliseconds

    side = tensor.cuda.Stream()
    side.wait_stream(tensor.cuda.current_stream())  # side starts after what is queued so far
    with tensor.cuda.stream(side):                  # engine ops launch on CuPy's current stream
        y = model(x)
    tensor.cuda.current_stream().wait_stream(side)
"""
from __future__ import annotations

import contextlib

from ._devices import _checked, _cupy, _index


def _raw(stream):
    """CuPy's stream from ours (or from a CuPy stream passed as is)."""
    return getattr(stream, "cupy", stream)


class Stream:
    """A CUDA stream on `device` (default: the current GPU). As in torch it does not wait for the
    default stream by itself: order work across streams with wait_stream / wait_event."""

    def __init__(self, device=None, priority: int = 0):
        cp = _cupy()
        extra = {"priority": priority} if priority else {}  # lower is more urgent, as in CUDA and torch
        with cp.cuda.Device(_checked(_index(device))):
            self.cupy = cp.cuda.Stream(non_blocking=True, **extra)

    @classmethod
    def _wrap(cls, cupy_stream) -> Stream:
        stream = cls.__new__(cls)
        stream.cupy = cupy_stream
        return stream

    @property
    def cuda_stream(self) -> int:
        """The cudaStream_t handle, as an int."""
        return self.cupy.ptr

    def wait_event(self, event: Event) -> None:
        """Work queued on this stream after this call waits for `event`."""
        self.cupy.wait_event(event.cupy)

    def wait_stream(self, stream) -> None:
        """Work queued on this stream after this call waits for all work queued on `stream` so far."""
        self.wait_event(Stream._wrap(_raw(stream)).record_event())

    def record_event(self, event: Event | None = None) -> Event:
        event = Event() if event is None else event
        event.record(self)
        return event

    def query(self) -> bool:
        """Whether all work queued on the stream has finished."""
        return bool(self.cupy.done)

    def synchronize(self) -> None:
        self.cupy.synchronize()

    def __eq__(self, other):
        return isinstance(other, Stream) and self.cupy.ptr == other.cupy.ptr

    def __hash__(self):
        return hash(self.cupy.ptr)

    def __repr__(self):
        return f"<tensor.cuda.Stream cuda_stream={self.cupy.ptr:#x}>"


class Event:
    """A marker in a stream's work, to wait on or time: elapsed_time needs enable_timing=True on both."""

    def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False):
        self.cupy = _cupy().cuda.Event(block=blocking, disable_timing=not enable_timing, interprocess=interprocess)

    def record(self, stream=None) -> None:
        """Mark the point reached by the work queued on `stream` (default: the current stream)."""
        raw = _cupy().cuda.get_current_stream() if stream is None else _raw(stream)
        self.cupy.record(raw)

    def wait(self, stream=None) -> None:
        """Make `stream` (default: the current one) wait for this event."""
        (current_stream() if stream is None else Stream._wrap(_raw(stream))).wait_event(self)

    def query(self) -> bool:
        """Whether the work before the recorded point has finished."""
        return bool(self.cupy.done)

    def synchronize(self) -> None:
        """Block the host until the recorded point is reached."""
        self.cupy.synchronize()

    def elapsed_time(self, end_event: Event) -> float:
        """Milliseconds from this event to `end_event` (both recorded, and reached)."""
        return float(_cupy().cuda.get_elapsed_time(self.cupy, end_event.cupy))


def current_stream(device=None) -> Stream:
    """The stream CuPy (so the engine) launches on now, on `device` (default: the current GPU)."""
    cp = _cupy()
    with cp.cuda.Device(_checked(_index(device))):
        return Stream._wrap(cp.cuda.get_current_stream())


def default_stream(device=None) -> Stream:
    """The legacy default (null) stream."""
    return Stream._wrap(_cupy().cuda.Stream.null)


@contextlib.contextmanager
def stream(s):
    """Make `s` the current stream inside the block (None: do nothing), as torch.cuda.stream."""
    if s is None:
        yield
        return
    with _raw(s):
        yield
