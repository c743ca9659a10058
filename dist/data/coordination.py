"""The coordinator's data methods: dataset registration, epoch plans, progress, checkpointable state.

dist.coordinator.Coordinator mixes DataCoordinatorMixin in, so these run inside the one coordinator
actor of a job. All the logic lives in DataService (plain Python, tested without Ray); the mixin
only hosts one and forwards to it. The state is kept in attributes prefixed `_data_`.
"""

from __future__ import annotations

import threading

from .planner import RankPlan
from .service import DataService

# The coordinator is a threaded actor: two first data calls could race to create the service.
_LAZY_INIT_LOCK = threading.Lock()


class DataCoordinatorMixin:
    """Methods mixed into dist.coordinator.Coordinator.

    The Coordinator's __init__ should call self._init_data_state(); if it does not, the first data
    call does. Ranks reach these through their loader (dist.data.ShardedLoader); trainers call
    data_state() when they checkpoint and load_data_state() when they restore.
    """

    def _init_data_state(self) -> None:
        self._data_service = DataService()

    def _data(self) -> DataService:
        if getattr(self, "_data_service", None) is None:
            with _LAZY_INIT_LOCK:
                if getattr(self, "_data_service", None) is None:
                    self._init_data_state()
        return self._data_service

    def data_register(self, name: str, descriptor: dict) -> dict:
        """See DataService.data_register."""
        return self._data().data_register(name, descriptor)

    def data_plan(self, name: str, epoch: int, rank: int, world_size: int, config: dict) -> RankPlan:
        """See DataService.data_plan."""
        return self._data().data_plan(name, epoch, rank, world_size, config)

    def data_report(self, name: str, epoch: int, generation: int, rank: int, batches: int,
                    token: str | None = None) -> bool:
        """See DataService.data_report."""
        return self._data().data_report(name, epoch, generation, rank, batches, token)

    def data_resume_epoch(self, name: str) -> int:
        """See DataService.data_resume_epoch."""
        return self._data().data_resume_epoch(name)

    def data_state(self) -> dict:
        """The data progress of every dataset, JSON-serialisable; store it in checkpoints."""
        return self._data().data_state()

    def load_data_state(self, state: dict | None) -> None:
        """Restore progress from a checkpoint's data_state() (None: start the epochs over)."""
        self._data().load_data_state(state)
