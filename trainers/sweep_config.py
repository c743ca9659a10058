"""SWEEP.yaml: a sweep in one file, run with `raygrad sweep SWEEP.yaml`.

    job: ../vision/digits.yaml            # the job YAML, relative to this file
    metric: accuracy
    mode: max
    num_samples: 2                        # samples of the space (grids are tried num_samples times each)
    search: random                        # random | grid | optuna
    scheduler: {type: asha, grace_period: 1, max_t: 6}    # or median / pbt / fifo, with their options
    max_concurrent: 2                     # trials at a time
    workers_per_trial: 0                  # Ray workers per trial; 0: each trial trains in its own process
    name: digits-sweep                    # the sweep's folder is storage_path/name
    storage_path: runs                    # default: the job's run.storage_path
    set: {epochs: 6}                      # job keys fixed for every trial (applied before the space)
    space:
      optimizer.lr: {loguniform: [1.0e-4, 1.0e-2]}
      model.kwargs.channels: {grid: [16, 32]}

Unknown keys are errors that suggest the nearest valid key. `load_sweep` returns the keyword
arguments of trainers.sweep().
"""
from __future__ import annotations

import difflib
import os

import yaml

from .errors import ConfigError
from .job import read_yaml_mapping

REQUIRED = ("job", "space", "metric")
OPTIONAL = ("mode", "num_samples", "search", "scheduler", "max_concurrent", "workers_per_trial", "name",
            "storage_path", "set")


def load_sweep(path, overrides=()) -> dict:
    """sweep() keyword arguments from a SWEEP.yaml; `overrides` (key=value job overrides) come after its `set`."""
    path = os.fspath(path)
    raw = read_yaml_mapping(path, "sweep", f"sweep keys ({', '.join(REQUIRED)}, ...)")
    for key in raw:
        if key not in REQUIRED + OPTIONAL:
            close = difflib.get_close_matches(str(key), REQUIRED + OPTIONAL, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(REQUIRED + OPTIONAL)}"
            raise ConfigError(f"{path}: unknown key '{key}'; {hint}")
    missing = [key for key in REQUIRED if raw.get(key) is None]
    if missing:
        raise ConfigError(f"{path} is missing {', '.join(missing)} (e.g. job: job.yaml, metric: accuracy, "
                          "space: {optimizer.lr: {loguniform: [1.0e-4, 1.0e-2]}})")
    kwargs = {key: raw[key] for key in OPTIONAL if key in raw and key != "set"}
    job = raw["job"]
    if not isinstance(job, str):
        raise ConfigError(f"{path}: job must be the path of a job YAML, got {job!r}")
    kwargs["job"] = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), job))
    kwargs["space"], kwargs["metric"] = raw["space"], raw["metric"]
    kwargs["overrides"] = _set_overrides(path, raw.get("set")) + list(overrides)
    return kwargs


def _set_overrides(path: str, fixed) -> list[str]:
    """The `set` mapping as `key=value` overrides (values written back as YAML, so types survive)."""
    if fixed is None:
        return []
    if not isinstance(fixed, dict):
        raise ConfigError(f"{path}: set must map job keys to values (e.g. set: {{epochs: 5}}), got {fixed!r}")
    return [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
            for key, value in fixed.items()]
