"""Checkpoints: one pickle-free, checksummed file per checkpoint, written atomically, the best N kept.

Layout under a run's folder:

    checkpoints/checkpoint_000000120.safetensors   model, optimizer, scheduler, RNG, data progress...
    checkpoints/index.json                         step, epoch and metrics of each kept checkpoint

A checkpoint holds either the dict given to report(checkpoint={...}) or, for scripts ported from
Ray Train, the files of a folder given as report(checkpoint=Checkpoint.from_directory(folder)):
they are packed into the same file (under the reserved key) and come back with as_directory().

`tensor.save` writes each file through a temporary file, fsync and rename, with a SHA-256 checksum
inside, so a crash never leaves a half-written checkpoint and a truncated or altered one is
detected on load; then `latest()` falls back to the one before it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field

import numpy as np

import tensor
from tensor.errors import SerializationError

from .config import CheckpointConfig
from .errors import CheckpointError

log = logging.getLogger("raygrad.checkpoint")

INDEX = "index.json"
RESERVED_KEY = "_raygrad"  # the framework's part of a checkpoint: data progress, RNG states, packed files
METADATA_FILE = ".metadata.json"  # Ray Train's name for a checkpoint folder's metadata


@dataclass
class Checkpoint:
    """A checkpoint file and what was reported with it."""

    path: str
    step: int = 0
    epoch: int = 0
    metrics: dict = field(default_factory=dict)

    def load(self, map_location=None) -> dict:
        """The saved state (a nested dict of tensors and plain values); raises SerializationError if damaged."""
        return tensor.load(self.path, map_location=map_location)

    @classmethod
    def from_path(cls, path) -> Checkpoint:
        """A checkpoint file, or a run folder (its latest valid checkpoint)."""
        path = os.fspath(path)
        if os.path.isdir(path):
            folder = path if os.path.exists(os.path.join(path, INDEX)) else os.path.join(path, "checkpoints")
            found = CheckpointManager(folder).latest()
            if found is None:
                raise CheckpointError(f"no valid checkpoint under {path}")
            return found[0]
        if not os.path.exists(path):
            raise CheckpointError(f"checkpoint {path} does not exist")
        return cls(path)

    # ------------------------------------------------------------- folders, as Ray Train's Checkpoint
    @classmethod
    def from_directory(cls, path) -> Checkpoint:
        """A folder of files to report: report(metrics, checkpoint=Checkpoint.from_directory(folder)).

        Rank 0's report packs the folder's files into the run's checkpoint file at once, so the
        folder may be a TemporaryDirectory removed right after (empty subfolders are not kept)."""
        path = os.path.abspath(os.fspath(path))  # ranks and the driver may run in other working folders
        if not os.path.isdir(path):
            raise CheckpointError(f"Checkpoint.from_directory: {path} is not a folder; give the folder the "
                                  "checkpoint files were written to")
        return cls(path)

    @property
    def is_directory(self) -> bool:
        """True while this is a folder (from_directory), False for a checkpoint file of a run."""
        return os.path.isdir(self.path)

    @contextlib.contextmanager
    def as_directory(self):
        """The checkpoint's files in a folder, for the `with` block: the folder itself for a from_directory
        checkpoint, else a temporary folder unpacked from the file and removed afterwards."""
        if self.is_directory:
            yield self.path
            return
        folder = tempfile.mkdtemp(prefix="raygrad-checkpoint-")
        try:
            yield self.to_directory(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def to_directory(self, path=None) -> str:
        """Write the checkpoint's files into folder `path` (created if needed; default: a new temporary
        folder that the caller removes) and return the folder."""
        folder = tempfile.mkdtemp(prefix="raygrad-checkpoint-") if path is None else os.fspath(path)
        os.makedirs(folder, exist_ok=True)
        if self.is_directory:
            shutil.copytree(self.path, folder, dirs_exist_ok=True)
            return folder
        for name, data in self._files().items():
            target = os.path.join(folder, *name.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(data.tobytes())
        return folder

    def get_metadata(self) -> dict:
        """The dict stored with set_metadata ({} if none)."""
        if self.is_directory:
            metadata = os.path.join(self.path, METADATA_FILE)
            if not os.path.exists(metadata):
                return {}
            with open(metadata) as f:
                return json.load(f)
        data = self._files().get(METADATA_FILE)
        return {} if data is None else json.loads(data.tobytes().decode())

    def set_metadata(self, metadata: dict) -> None:
        """Store `metadata` (JSON-serialisable) with a from_directory checkpoint, replacing what was there."""
        if not self.is_directory:
            raise CheckpointError(f"checkpoint {self.path} is already written, and checkpoint files are never "
                                  "changed (they are checksummed); set metadata on Checkpoint.from_directory(...) "
                                  "before report()")
        atomic_write_text(os.path.join(self.path, METADATA_FILE), json.dumps(metadata))

    def update_metadata(self, metadata: dict) -> None:
        """set_metadata({**get_metadata(), **metadata})."""
        self.set_metadata({**self.get_metadata(), **metadata})

    def _files(self) -> dict:
        files = (self.load().get(RESERVED_KEY) or {}).get("files")
        if files is None:
            raise CheckpointError(f"checkpoint {self.path} holds the dict given to report(checkpoint={{...}}), not "
                                  "a folder's files; read it with .load()")
        return files


def pack_directory(folder: str) -> dict:
    """Every file under `folder`, as relative path ('/'-separated) -> its bytes as a uint8 array."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder).replace(os.sep, "/")] = np.frombuffer(f.read(), np.uint8)
    return files


def atomic_write_text(path: str, text: str) -> None:
    """Write text so that readers see the old file or the new one, never a part."""
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class CheckpointManager:
    """Writes, lists, prunes and finds the checkpoints of one run (used on rank 0 / the driver)."""

    def __init__(self, folder: str, config: CheckpointConfig | None = None):
        self.folder = os.fspath(folder)
        self.config = config or CheckpointConfig()
        self.entries = self._read_index()

    # ---------------------------------------------------------------------------------- writing
    def save(self, state: dict, step: int, epoch: int, metrics: dict | None = None) -> Checkpoint:
        os.makedirs(self.folder, exist_ok=True)
        path = os.path.join(self.folder, f"checkpoint_{step:09d}.safetensors")
        tensor.save(state, path)
        entry = Checkpoint(path, step, epoch, _plain(metrics or {}))
        self.entries = [e for e in self.entries if e.path != path] + [entry]
        self._prune()
        self._write_index()
        return entry

    def _prune(self):
        keep = self._to_keep()
        for entry in self.entries:
            if entry.path not in keep and os.path.exists(entry.path):
                os.unlink(entry.path)
        self.entries = [e for e in self.entries if e.path in keep]

    def _to_keep(self) -> set:
        n = self.config.num_to_keep
        if n is None or not self.entries:
            return {e.path for e in self.entries}
        by_step = sorted(self.entries, key=lambda e: e.step)
        keep = {by_step[-1].path}  # the latest always survives: it is where a restart resumes
        metric = self.config.score_metric
        if metric is None:
            keep.update(e.path for e in by_step[-n:])
        else:
            scored = [e for e in self.entries if _is_number(e.metrics.get(metric))]
            scored.sort(key=lambda e: e.metrics[metric], reverse=self.config.score_mode == "max")
            keep.update(e.path for e in scored[:n])
        return keep

    # ---------------------------------------------------------------------------------- reading
    def latest(self, map_location=None):
        """(Checkpoint, state) of the newest checkpoint that loads intact, or None if there is none."""
        for entry in sorted(self.entries, key=lambda e: e.step, reverse=True):
            try:
                return entry, entry.load(map_location)
            except (SerializationError, OSError) as exc:
                log.warning("checkpoint %s is unusable (%s); trying the one before it", entry.path, exc)
        return None

    def best(self) -> Checkpoint | None:
        metric = self.config.score_metric
        scored = [e for e in self.entries if metric and _is_number(e.metrics.get(metric))]
        if not scored:
            return max(self.entries, key=lambda e: e.step, default=None)
        pick = max if self.config.score_mode == "max" else min
        return pick(scored, key=lambda e: e.metrics[metric])

    # ------------------------------------------------------------------------------------ index
    def _read_index(self) -> list[Checkpoint]:
        path = os.path.join(self.folder, INDEX)
        if os.path.exists(path):
            try:
                with open(path) as f:
                    entries = [Checkpoint(**e) for e in json.load(f)["checkpoints"]]
                return [e for e in entries if os.path.exists(e.path)]
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("checkpoint index %s is unreadable (%s); scanning the folder instead", path, exc)
        return self._scan()

    def _scan(self) -> list[Checkpoint]:
        if not os.path.isdir(self.folder):
            return []
        entries = []
        for name in sorted(os.listdir(self.folder)):
            if name.startswith("checkpoint_") and name.endswith(".safetensors"):
                step = int(name[len("checkpoint_"):-len(".safetensors")])
                entries.append(Checkpoint(os.path.join(self.folder, name), step))
        return entries

    def _write_index(self):
        payload = {"checkpoints": [asdict(e) for e in sorted(self.entries, key=lambda e: e.step)]}
        atomic_write_text(os.path.join(self.folder, INDEX), json.dumps(payload, indent=1))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _plain(metrics: dict) -> dict:
    """Metrics as JSON-safe numbers and strings."""
    out = {}
    for key, value in metrics.items():
        if hasattr(value, "item"):
            value = value.item()
        out[str(key)] = value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
    return out
