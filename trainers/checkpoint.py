"""Checkpoints: one pickle-free, checksummed file per checkpoint, written atomically, the best N kept.

Layout under a run's folder:

    checkpoints/checkpoint_000000120.safetensors   model, optimizer, scheduler, RNG, data progress...
    checkpoints/index.json                         step, epoch and metrics of each kept checkpoint

`tensor.save` writes each file through a temporary file, fsync and rename, with a SHA-256 checksum
inside, so a crash never leaves a half-written checkpoint and a truncated or altered one is
detected on load; then `latest()` falls back to the one before it.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field

import tensor
from tensor.errors import SerializationError

from .config import CheckpointConfig
from .errors import CheckpointError

log = logging.getLogger("raygrad.checkpoint")

INDEX = "index.json"


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
