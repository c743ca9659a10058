"""Shared-memory files for the CPU communicator, and the control block that the ranks of a node share.

We map files in /dev/shm ourselves instead of using multiprocessing.shared_memory: on Python < 3.13
that module registers every segment an attaching process opens with its resource tracker, which then
unlinks (or warns about) segments it does not own when that process exits.

Every file is unlinked as soon as all ranks of the node have mapped it, so a killed rank leaks nothing:
the memory goes back to the system when the last mapping goes away.
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile

import numpy as np

LINE_WORDS = 8  # int64 words per 64-byte cache line


def shm_dir(planned_bytes: int = 0) -> str:
    """Where shared-memory files live: /dev/shm (RAM), unless it is missing or too small to hold
    ``planned_bytes`` four times over (Docker gives containers 64 MB by default), then the temp directory
    (a file in the page cache: slower, but it works). Every rank of a node decides alike: the answer
    depends on the size of /dev/shm, not on what is free at the moment."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        stats = os.statvfs("/dev/shm")
        if stats.f_blocks * stats.f_frsize >= 4 * planned_bytes:
            return "/dev/shm"
    return tempfile.gettempdir()


class SharedFile:
    """A file mapped read-write into this process; ``array`` is a uint8 view of all of it."""

    def __init__(self, path: str, nbytes: int | None = None):
        """Create ``path`` with ``nbytes`` (fully allocated) if ``nbytes`` is given, else attach to it."""
        create = nbytes is not None
        fd = os.open(path, os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0), 0o600)
        try:
            if create:
                _allocate(fd, path, nbytes)
            size = os.fstat(fd).st_size
            self._mmap = mmap.mmap(fd, size)
        except BaseException:
            if create:
                os.unlink(path)
            raise
        finally:
            os.close(fd)
        self.path, self.nbytes, self._owned = path, size, create
        self.array = np.frombuffer(self._mmap, dtype=np.uint8)

    def unlink(self) -> None:
        """Remove the file's name (the creator does it once every rank mapped it); the mapping stays valid."""
        if self._owned:
            self._owned = False
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def close(self) -> None:
        """Unlink if still ours and unmap (views still held elsewhere keep the mapping alive until dropped)."""
        self.unlink()
        self.array = None
        try:
            self._mmap.close()
        except BufferError:  # someone still holds a numpy view: the mapping goes when that view goes
            pass


def _allocate(fd: int, path: str, nbytes: int) -> None:
    """Reserve the pages now: on a full tmpfs a sparse file would kill the process with SIGBUS later."""
    try:
        os.posix_fallocate(fd, 0, max(1, nbytes))
    except OSError as exc:
        free = shutil.disk_usage(os.path.dirname(path)).free
        raise OSError(exc.errno, f"cannot allocate {nbytes} bytes of shared memory in {os.path.dirname(path)} "
                                 f"({free} bytes free): give the machine or container more shared memory "
                                 "(docker run --shm-size=...) or lower max_buffer_bytes") from exc


class ControlBlock:
    """The words the ranks of one node synchronise on, one cache line per writer so they never share one.

    Layout (int64 lines): line 0: [abort flag, rank that aborted + 1]; line 1: the doorbell (its first
    32 bits, see dist.comm.doorbell); then per local rank two lines: A: its progress counters (see
    dist.comm.sync), B: two operation descriptors (op, dtype, count, arg) used alternately.
    """

    def __init__(self, file: SharedFile, size: int):
        words = file.array.view(np.int64).reshape(-1, LINE_WORDS)
        self.file = file
        self.abort = words[0]
        self.doorbell_word = words[1].view(np.int32)[:1]
        per_rank = words[2:2 + 2 * size].reshape(size, 2, LINE_WORDS)
        self.progress = per_rank[:, 0, :4]  # (size, 4): progress[:, c].min() checks every rank at once
        self.descriptors = per_rank[:, 1, :]  # (size, 8): two descriptors of 4 words each

    @staticmethod
    def nbytes(size: int) -> int:
        return (2 + 2 * size) * LINE_WORDS * 8
