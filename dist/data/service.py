"""DataService: the plans and progress of every dataset of a job, by name.

The coordinator actor hosts one (see coordination.py); an in-process loader makes its own. Its
public methods are the coordinator's data methods, with the same names and arguments, so a loader
talks to either the same way. Only small things pass through it: a dataset's descriptor (row
counts per unit, a fingerprint, a split description), plans (row-id ranges) and batch counts.
"""

from __future__ import annotations

import threading

import numpy as np

from .errors import DataStateError
from .planner import PlanConfig, RankPlan
from .progress import DataProgress
from .splits import select_rows

STATE_VERSION = 1


class DataService:
    def __init__(self):
        self._progress: dict[str, DataProgress] = {}
        self._descriptors: dict[str, dict] = {}
        self._saved: dict[str, dict] = {}  # loaded state of datasets not registered yet
        self._lock = threading.RLock()  # the coordinator may serve calls from several threads

    def data_register(self, name: str, descriptor: dict) -> dict:
        """Make dataset `name` known (idempotent: every rank may call it with the same descriptor).

        descriptor: {"fingerprint": str, "unit_rows": [int, ...], "split": dict | None}, as made by
        Dataset.descriptor(). Raises DataStateError if `name` is registered with different data.
        Returns {"num_rows": rows the dataset serves, "num_units": units}.
        """
        _check_descriptor(name, descriptor)
        with self._lock:
            known = self._descriptors.get(name)
            if known is not None and known["fingerprint"] != descriptor["fingerprint"]:
                raise DataStateError(
                    f"dataset name {name!r} is already registered for other data (fingerprint "
                    f"{known['fingerprint']}, now {descriptor['fingerprint']}); give each loader its own name="
                )
            if known is None:
                rows = select_rows(np.asarray(descriptor["unit_rows"], np.int64), descriptor.get("split"))
                progress = DataProgress(descriptor["unit_rows"], rows)
                saved = self._saved.pop(name, None)
                if saved is not None:
                    _load_dataset_state(name, descriptor["fingerprint"], progress, saved)
                self._progress[name], self._descriptors[name] = progress, dict(descriptor)
            progress = self._progress[name]
            return {"num_rows": progress.selection.num_rows, "num_units": len(descriptor["unit_rows"])}

    def data_plan(self, name: str, epoch: int, rank: int, world_size: int, config: dict) -> RankPlan:
        """Rank `rank`'s plan for `epoch` (see DataProgress.plan). config: PlanConfig.to_dict()."""
        plan_config = config if isinstance(config, PlanConfig) else PlanConfig.from_dict(config)
        with self._lock:
            return self._get(name).plan(epoch, rank, world_size, plan_config)

    def data_report(self, name: str, epoch: int, generation: int, rank: int, batches: int,
                    token: str | None = None) -> bool:
        """Record that `rank` consumed its first `batches` batches of (epoch, generation); token is
        the RankPlan's. False when a restart sealed the generation (a late report, ignored)."""
        with self._lock:
            return self._get(name).report(epoch, generation, rank, batches, token)

    def data_resume_epoch(self, name: str) -> int:
        """The epoch a (re)started training loop should begin with for dataset `name`."""
        with self._lock:
            progress = self._progress.get(name)
            if progress is not None:
                return progress.resume_epoch()
            saved = self._saved.get(name)
            if saved is None:
                return 0
            epochs = [int(epoch) for epoch in saved.get("epochs", {})]
            return min(epochs) if epochs else 0  # approximate until the dataset registers

    def data_state(self) -> dict:
        """All datasets' progress as a small JSON-serialisable dict, for checkpoints."""
        with self._lock:
            datasets = {
                name: {"fingerprint": self._descriptors[name]["fingerprint"], **progress.state()}
                for name, progress in self._progress.items()
            }
            return {"version": STATE_VERSION, "datasets": {**self._saved, **datasets}}

    def load_data_state(self, state: dict | None) -> None:
        """Restore progress saved by data_state() (None forgets all progress: a fresh start).

        Every generation in the state counts as interrupted: the next plan requests re-plan each
        epoch's unconsumed rows, on whatever world size then asks. Datasets not in the state start over.
        """
        datasets = _check_state(state)
        with self._lock:
            for name, progress in list(self._progress.items()):
                fresh = DataProgress(self._descriptors[name]["unit_rows"], progress.selection)
                if name in datasets:
                    _load_dataset_state(name, self._descriptors[name]["fingerprint"], fresh, datasets[name])
                self._progress[name] = fresh
            self._saved = {name: saved for name, saved in datasets.items() if name not in self._progress}

    def _get(self, name: str) -> DataProgress:
        progress = self._progress.get(name)
        if progress is None:
            known = ", ".join(sorted(self._progress)) or "none"
            raise DataStateError(f"dataset {name!r} is not registered (registered: {known}); call data_register first")
        return progress


def _check_descriptor(name, descriptor) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"dataset name must be a non-empty string, got {name!r}")
    if not isinstance(descriptor, dict) or not {"fingerprint", "unit_rows"} <= set(descriptor):
        raise ValueError(
            f"dataset descriptor needs 'fingerprint' and 'unit_rows' (see Dataset.descriptor()), "
            f"got {descriptor!r:.200}")


def _check_state(state) -> dict:
    if state is None:
        return {}
    if not isinstance(state, dict) or not isinstance(state.get("datasets"), dict):
        raise DataStateError(f"data state must be a dict from data_state(), with a 'datasets' dict; got {state!r:.200}")
    if state.get("version") != STATE_VERSION:
        raise DataStateError(
            f"data state version {state.get('version')!r} is not supported (this raygrad writes {STATE_VERSION})")
    return state["datasets"]


def _load_dataset_state(name: str, fingerprint: str, progress: DataProgress, saved: dict) -> None:
    if saved.get("fingerprint") != fingerprint:
        raise DataStateError(
            f"saved progress of dataset {name!r} was recorded on other data (fingerprint {saved.get('fingerprint')}, "
            f"now {fingerprint}): files, row groups or the split changed; resume with the original data, or "
            f"load_data_state(None) to start the epochs over"
        )
    progress.load_state(saved)
