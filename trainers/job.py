"""Job YAML: one file that says what to train, on what data, how, and where.

    name: digits
    model: {class: examples.vision.model:DigitsCNN, kwargs: {channels: 32}}
    data:
      train: examples/vision/data/digits_train.parquet
      eval: examples/vision/data/digits_test.parquet
      features: image
      target: label
      batch_size: 64
    optimizer: {name: AdamW, lr: 0.002}
    loss: cross_entropy
    metrics: [accuracy]
    epochs: 15
    scaling: {num_workers: 2}

The schema below is the single source of truth: unknown keys are errors that suggest the nearest
valid key, and each value is checked against its type. `--set a.b=value` overrides any key.
"""
from __future__ import annotations

import copy
import difflib
import os

import yaml

from .errors import ConfigError

# key -> (accepted types, default); a nested dict is a section. kwargs/scheduler mappings are free-form.
SCHEMA = {
    "name": (str, None),
    # The folder relative paths (model file, data, transform) start from; default: the YAML's own folder.
    # `raygrad train` records it in the job.yaml it keeps beside a run.
    "base_dir": ((str, type(None)), None),
    "model": {
        "class": (str, None),
        "kwargs": (dict, {}),
    },
    "data": {
        "train": ((str, dict), None),
        "eval": ((str, dict, type(None)), None),
        "eval_fraction": ((int, float, type(None)), None),
        "features": ((str, list), None),
        "target": ((str, type(None)), None),
        "columns": (dict, {}),
        "transform": ((str, type(None)), None),
        # Runs after `transform` on training batches only (augmentation): evaluation never sees it.
        "train_transform": ((str, type(None)), None),
        "batch_size": (int, 32),
        "eval_batch_size": ((int, type(None)), None),
        "shuffle": (bool, True),
        "drop_last": (bool, True),
        "prefetch": (int, 2),
    },
    "optimizer": {"name": (str, "AdamW"), "lr": ((int, float), 1e-3), "kwargs": (dict, {})},
    "scheduler": ((dict, type(None)), None),
    "loss": ((str, dict), "cross_entropy"),
    "metrics": (list, []),
    "epochs": ((int, type(None)), None),
    "max_steps": ((int, type(None)), None),
    "scaling": {
        "num_workers": (int, 0),
        "use_gpu": (bool, False),
        "cpus_per_worker": ((int, float), 1),
        "gpus_per_worker": ((int, float), 1),
        "placement_strategy": (str, "PACK"),
    },
    "checkpoint": {
        "every_n_epochs": ((int, type(None)), None),
        "every_n_steps": ((int, type(None)), None),
        "num_to_keep": ((int, type(None)), 2),
        "score_metric": ((str, type(None)), None),
        "score_mode": (str, "max"),
    },
    "failure": {"max_failures": (int, 0)},
    "run": {
        "storage_path": (str, "runs"),
        "seed": (int, 0),
        "log_every": (int, 10),
        "verbose": (int, 1),
    },
}

REQUIRED = ("model.class", "data.train", "data.features")


def read_yaml_mapping(path, kind: str, keys: str) -> dict:
    """The mapping in a YAML file, or a ConfigError naming the file: missing, not YAML, not a mapping."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ConfigError(f"{kind} file {path} does not exist")
    with open(path) as f:
        try:
            raw = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of {keys}, got {type(raw).__name__}")
    return raw


def load_job(path, overrides=()) -> dict:
    """Read a job YAML, apply `key=value` overrides, fill defaults, and validate everything."""
    path = os.fspath(path)
    raw = read_yaml_mapping(path, "job", "job keys (name, model, data, ...)")
    job = parse_job(raw, overrides)
    job["base_dir"] = job["base_dir"] or os.path.dirname(os.path.abspath(path))
    return job


def parse_job(raw: dict, overrides=()) -> dict:
    raw = copy.deepcopy(raw)
    for item in overrides:
        apply_override(raw, item)
    job = _validate(raw, SCHEMA, prefix="")
    for key in REQUIRED:
        if get_path(job, key) is None:
            raise ConfigError(f"job is missing required key '{key}'")
    return job


def apply_override(raw: dict, item: str) -> None:
    """Apply one `a.b.c=value` (value parsed as YAML: 3, 0.1, true, [1, 2], {a: 1})."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects key=value (e.g. optimizer.lr=0.01), got {item!r}")
    parts = key.strip().split(".")
    _check_known(parts)
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: '{part}' is not a section")
    node[parts[-1]] = yaml.safe_load(text)


def get_path(job: dict, dotted: str):
    node = job
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def set_path(job: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    _check_known(parts)
    node = job
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _check_known(parts):
    schema, walked = SCHEMA, []
    for part in parts:
        if not isinstance(schema, dict):
            return  # inside a free-form section (kwargs, scheduler): any key goes
        if part not in schema:
            _unknown(part, schema, ".".join(walked))
        walked.append(part)
        schema = schema[part]


def _validate(raw: dict, schema: dict, prefix: str) -> dict:
    for key in raw:
        if key not in schema:
            _unknown(key, schema, prefix.rstrip("."))
    out = {}
    for key, spec in schema.items():
        where = prefix + key
        value = raw.get(key)
        if isinstance(spec, dict):
            if value is not None and not isinstance(value, dict):
                raise ConfigError(f"'{where}' must be a mapping with keys {', '.join(spec)}, got {value!r}")
            out[key] = _validate(value or {}, spec, where + ".")
            continue
        types, default = spec
        if value is None:
            out[key] = copy.deepcopy(default)
            continue
        if not _is_instance(value, types):
            raise ConfigError(f"'{where}' must be {_type_names(types)}, got {type(value).__name__} {value!r}")
        out[key] = value
    return out


def _is_instance(value, types) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in types:
        return False  # YAML's true is not an int here
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def _type_names(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false", list: "a list",
             dict: "a mapping", type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _unknown(key, schema, where):
    section = f" in '{where}'" if where else ""
    close = difflib.get_close_matches(str(key), list(schema), n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(schema)}"
    raise ConfigError(f"unknown key '{key}'{section}{hint}")
