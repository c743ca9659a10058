"""Prefix every line a rank prints with its rank, so the driver's console says who is speaking.

Ray already forwards each actor's output line by line with "(_RankWorker pid=...)"; this adds
"[rank N]" in front of the text, and keeps partial lines until they are complete so two ranks'
halves of a line never interleave.
"""
from __future__ import annotations

import contextlib
import io
import sys
import threading


class RankPrefixedStream(io.TextIOBase):
    """A text stream that writes whole lines, each prefixed, to `target`."""

    def __init__(self, target, prefix: str):
        super().__init__()
        self.target, self.prefix = target, prefix
        self._partial = ""
        self._lock = threading.Lock()  # loader threads may print too

    def write(self, text: str) -> int:
        with self._lock:
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
            if lines:
                self.target.write("".join(f"{self.prefix}{line}\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self.target.flush()

    def close_partial(self) -> None:
        """Write a final line that never got its newline."""
        with self._lock:
            if self._partial:
                self.target.write(f"{self.prefix}{self._partial}\n")
                self._partial = ""
            self.target.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self):
        return getattr(self.target, "encoding", "utf-8")


@contextlib.contextmanager
def prefixed_output(rank: int):
    """Inside: sys.stdout and sys.stderr lines start with "[rank N] "."""
    saved = sys.stdout, sys.stderr
    streams = [RankPrefixedStream(stream, f"[rank {rank}] ") for stream in saved]
    sys.stdout, sys.stderr = streams
    try:
        yield
    finally:
        for stream in streams:
            stream.close_partial()
        sys.stdout, sys.stderr = saved
