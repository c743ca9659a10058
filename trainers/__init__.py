"""raygrad's user-facing layer: configs, Trainer, sessions, checkpoints, sweeps and the CLI.

    from trainers import Trainer, train_loop, ScalingConfig, RunConfig, CheckpointConfig, FailureConfig
    from trainers import session       # report, get_context, get_dataset_shard, prepare_model, ...
    from trainers import report, get_context, get_checkpoint, get_dataset_shard   # as ray.train's
    from trainers import sweep         # hyperparameter sweeps on Ray Tune

Names are loaded on first use, so `import trainers.config` (the CLI's --help) stays light.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Trainer": "trainers.trainer",
    "train_loop": "trainers.runner",
    "Result": "trainers.runner",
    "sweep": "trainers.sweep_run",
    "SweepResult": "trainers.sweep_run",
    "ScalingConfig": "trainers.config",
    "RunConfig": "trainers.config",
    "CheckpointConfig": "trainers.config",
    "FailureConfig": "trainers.config",
    "Checkpoint": "trainers.checkpoint",
    "CheckpointManager": "trainers.checkpoint",
    "TrainContext": "trainers.session",
    "report": "trainers.session",
    "get_context": "trainers.session",
    "get_checkpoint": "trainers.session",
    "get_dataset_shard": "trainers.session",
    "ConfigError": "trainers.errors",
    "CheckpointError": "trainers.errors",
    "SessionError": "trainers.errors",
    "TrainingFailedError": "trainers.errors",
    "TrainingInterrupted": "trainers.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trainers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
