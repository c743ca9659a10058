"""Run configuration as validated dataclasses, named after Ray Train's.

    ScalingConfig(num_workers=2, use_gpu=False)
    RunConfig(name="digits", storage_path="runs", max_epochs=10,
              checkpoint_config=CheckpointConfig(num_to_keep=2, score_metric="accuracy", score_mode="max"),
              failure_config=FailureConfig(max_failures=3))

Every field is checked when the object is built; a wrong value raises ConfigError naming the field,
the value and what would be accepted.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import InitVar, dataclass, field

from .errors import ConfigError

PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


def _check_int(owner, name, value, minimum, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{owner}.{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ConfigError(f"{owner}.{name} must be >= {minimum}, got {value}")


def _check_number(owner, name, value, minimum, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{owner}.{name} must be a number, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ConfigError(f"{owner}.{name} must be >= {minimum}, got {value}")


@dataclass
class ScalingConfig:
    """How many workers, and what each one gets.

    num_workers=0 trains in the driver process without Ray (debuggers and profilers work);
    num_workers >= 1 starts that many Ray actors, one per GPU when use_gpu.
    """

    num_workers: int = 0
    use_gpu: bool = False
    cpus_per_worker: float = 1
    gpus_per_worker: float = 1
    placement_strategy: str = "PACK"

    def __post_init__(self):
        _check_int("ScalingConfig", "num_workers", self.num_workers, 0)
        if not isinstance(self.use_gpu, bool):
            raise ConfigError(f"ScalingConfig.use_gpu must be true or false, got {self.use_gpu!r}")
        _check_number("ScalingConfig", "cpus_per_worker", self.cpus_per_worker, 0)
        _check_number("ScalingConfig", "gpus_per_worker", self.gpus_per_worker, 0)
        if self.use_gpu and self.gpus_per_worker == 0:
            raise ConfigError("ScalingConfig: use_gpu=True needs gpus_per_worker > 0")
        if self.use_gpu and self.num_workers == 0:
            raise ConfigError("ScalingConfig: use_gpu=True needs num_workers >= 1 (in-process runs use the driver's device)")
        if self.placement_strategy not in PLACEMENT_STRATEGIES:
            raise ConfigError(
                f"ScalingConfig.placement_strategy must be one of {', '.join(PLACEMENT_STRATEGIES)}, "
                f"got {self.placement_strategy!r}"
            )

    @property
    def distributed(self) -> bool:
        return self.num_workers >= 1


@dataclass
class CheckpointConfig:
    """When to checkpoint and which to keep: the best `num_to_keep` by score_metric, plus the latest.

    With neither every_n_epochs nor every_n_steps set, a checkpoint is written after every epoch.
    checkpoint_score_attribute / checkpoint_score_order are Ray Train's names of score_metric /
    score_mode, accepted so that ported scripts run.
    """

    every_n_epochs: int | None = None
    every_n_steps: int | None = None
    num_to_keep: int | None = 2
    score_metric: str | None = None
    score_mode: str = "max"
    checkpoint_score_attribute: InitVar[str | None] = None
    checkpoint_score_order: InitVar[str | None] = None

    def __post_init__(self, checkpoint_score_attribute=None, checkpoint_score_order=None):
        self.score_metric = _alias("score_metric", self.score_metric, None, "checkpoint_score_attribute",
                                   checkpoint_score_attribute)
        self.score_mode = _alias("score_mode", self.score_mode, "max", "checkpoint_score_order",
                                 checkpoint_score_order)
        _check_int("CheckpointConfig", "every_n_epochs", self.every_n_epochs, 1, allow_none=True)
        _check_int("CheckpointConfig", "every_n_steps", self.every_n_steps, 1, allow_none=True)
        if self.every_n_epochs is None and self.every_n_steps is None:
            self.every_n_epochs = 1
        _check_int("CheckpointConfig", "num_to_keep", self.num_to_keep, 1, allow_none=True)
        if self.score_mode not in ("max", "min"):
            raise ConfigError(f"CheckpointConfig.score_mode must be 'max' or 'min', got {self.score_mode!r}")
        if self.score_metric is not None and not isinstance(self.score_metric, str):
            raise ConfigError(f"CheckpointConfig.score_metric must be a metric name, got {self.score_metric!r}")


def _alias(name, value, default, ray_name, ray_value):
    """The value of a field that may also be given under Ray Train's name for it."""
    if ray_value is None:
        return value
    if value != default and value != ray_value:
        raise ConfigError(f"CheckpointConfig: {name}={value!r} and {ray_name}={ray_value!r} are the same setting "
                          f"({ray_name} is Ray Train's name for it); give one of them")
    return ray_value


@dataclass
class FailureConfig:
    """How many times a failed worker group is restarted from the latest checkpoint (-1: forever)."""

    max_failures: int = 0

    def __post_init__(self):
        _check_int("FailureConfig", "max_failures", self.max_failures, -1)


@dataclass
class RunConfig:
    """Where a run writes (storage_path/name), how long it trains, and its checkpoint/failure policy."""

    name: str | None = None
    storage_path: str = "runs"
    max_epochs: int | None = None
    max_steps: int | None = None
    log_every: int = 10
    seed: int = 0
    verbose: int = 1
    checkpoint_config: CheckpointConfig = field(default_factory=CheckpointConfig)
    failure_config: FailureConfig = field(default_factory=FailureConfig)

    def __post_init__(self):
        if self.name is not None and (not isinstance(self.name, str) or not self.name or os.sep in self.name):
            raise ConfigError(f"RunConfig.name must be a non-empty name without '{os.sep}', got {self.name!r}")
        if not isinstance(self.storage_path, (str, os.PathLike)):
            raise ConfigError(f"RunConfig.storage_path must be a path, got {self.storage_path!r}")
        _check_int("RunConfig", "max_epochs", self.max_epochs, 1, allow_none=True)
        _check_int("RunConfig", "max_steps", self.max_steps, 1, allow_none=True)
        if self.max_epochs is None and self.max_steps is None:
            self.max_epochs = 1
        _check_int("RunConfig", "log_every", self.log_every, 1)
        _check_int("RunConfig", "seed", self.seed, 0)
        _check_int("RunConfig", "verbose", self.verbose, 0)
        if not isinstance(self.checkpoint_config, CheckpointConfig):
            raise ConfigError(f"RunConfig.checkpoint_config must be a CheckpointConfig, got {self.checkpoint_config!r}")
        if not isinstance(self.failure_config, FailureConfig):
            raise ConfigError(f"RunConfig.failure_config must be a FailureConfig, got {self.failure_config!r}")

    @property
    def run_path(self) -> str:
        return os.path.join(os.fspath(self.storage_path), self.name or "run")


def to_dict(config) -> dict:
    """A plain dict of a config dataclass (nested ones included), for logs and checkpoints."""
    return dataclasses.asdict(config)
