"""A background thread that runs ahead of the consumer, through a bounded queue.

Nothing here may hang: every blocking call polls a stop flag, close() joins the thread with a
timeout, and an exception in the thread comes out of the consumer's next() instead of vanishing.
"""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Callable, Iterator

_ITEM, _DONE, _FAILED = "item", "done", "failed"
_POLL_S = 0.05  # how often blocked calls look at the stop flag; bounds shutdown latency
_NOTE = "(raised in raygrad's data prefetch thread)"


class Prefetcher:
    """Iterates `produce()` on a daemon thread, `depth` items ahead of the consumer.

    Iterate it like the iterator it wraps. close() (also called when the items run out or fail)
    stops the thread, discards buffered items and joins it for up to `join_timeout_s` seconds.
    """

    def __init__(self, produce: Callable[[], Iterator], depth: int, *, name: str = "raygrad-data-prefetch",
                 join_timeout_s: float = 10.0):
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"prefetch depth must be an int >= 1, got {depth!r}")
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._join_timeout_s = join_timeout_s
        self._thread = threading.Thread(target=self._run, args=(produce,), name=name, daemon=True)
        self._thread.start()

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        kind, value = self._get()
        if kind == _ITEM:
            return value
        self.close()
        if kind == _FAILED:
            if _NOTE not in getattr(value, "__notes__", ()):
                value.add_note(_NOTE)
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stop the thread and wait for it; safe to call more than once, from any thread."""
        self._finished = True
        self._stop.set()
        self._drain()
        if self._thread is not threading.current_thread():
            self._thread.join(self._join_timeout_s)
            if self._thread.is_alive():
                warnings.warn(
                    f"data prefetch thread still busy {self._join_timeout_s}s after close() (a slow read or "
                    f"transform); it is a daemon and stops after its current item",
                    RuntimeWarning, stacklevel=2,
                )

    # producer side

    def _run(self, produce: Callable[[], Iterator]) -> None:
        items = None
        try:
            items = produce()
            for item in items:
                if not self._put((_ITEM, item)):
                    return
            self._put((_DONE, None))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, who re-raises it
            self._put((_FAILED, error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # run the generator's cleanup (closing files) on this thread, now

    def _put(self, entry) -> bool:
        """Queue an entry, waiting for room; False if closed meanwhile."""
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    # consumer side

    def _get(self):
        while True:
            try:
                return self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self._finished = True
                    raise RuntimeError("the data prefetch thread ended without a result or an error") from None

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return
