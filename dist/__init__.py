"""raygrad's distribution layer on Ray: worker groups, the job coordinator, communicators, DDP.

Names are loaded on first use, so that ``import dist`` (or ``dist.errors``) does not import Ray.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "WorkerGroup": "dist.worker_group",
    "RankInfo": "dist.worker_group",
    "Coordinator": "dist.coordinator",
    "get_context": "dist.env",
    "WorkerContext": "dist.env",
    "init_communicator": "dist.comm",
    "get_communicator": "dist.comm",
    "Communicator": "dist.comm",
    "Work": "dist.comm",
    "DistributedDataParallel": "dist.ddp",
    "DistError": "dist.errors",
    "WorkerGroupError": "dist.errors",
    "CollectiveError": "dist.errors",
    "CollectiveTimeout": "dist.errors",
    "CollectiveAborted": "dist.errors",
    "PlacementTimeout": "dist.errors",
    "WorkerDied": "dist.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dist' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
