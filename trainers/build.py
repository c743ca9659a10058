"""From a validated job dict (trainers/job.py) to the pieces a Trainer takes.

Models, transforms and losses are named in YAML as `file.py:Name` (relative to the YAML file) or
`package.module:Name`. They are resolved through `Ref`, a picklable reference that imports its
target where it is called, so every Ray worker builds its own model from the same file.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from .config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from .errors import ConfigError


class Ref:
    """A picklable pointer to a callable: `Ref("model.py:DigitsCNN", base_dir)` or `Ref("pkg.mod:fn")`."""

    def __init__(self, target: str, base_dir: str = ".", kwargs: dict | None = None):
        if not isinstance(target, str) or ":" not in target:
            raise ConfigError(f"'{target}' must look like 'file.py:Name' or 'package.module:Name'")
        self.target = target
        self.base_dir = os.path.abspath(base_dir)
        self.kwargs = dict(kwargs or {})

    def resolve(self):
        where, _, name = self.target.rpartition(":")
        module = self._load_file(where) if where.endswith(".py") else self._import(where)
        try:
            return getattr(module, name)
        except AttributeError:
            raise ConfigError(f"'{where}' has no attribute '{name}' (from '{self.target}')") from None

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **{**self.kwargs, **kwargs})

    def _load_file(self, where):
        path = where if os.path.isabs(where) else os.path.join(self.base_dir, where)
        if not os.path.exists(path):
            raise ConfigError(f"'{self.target}': file {path} does not exist")
        name = "raygrad_user_" + os.path.splitext(os.path.basename(path))[0]
        module = sys.modules.get(name)
        if module is None or getattr(module, "__file__", None) != path:
            folder = os.path.dirname(path)
            if folder not in sys.path:  # the file's own imports (helpers beside it) must resolve
                sys.path.insert(0, folder)
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        return module

    def _import(self, where):
        if self.base_dir not in sys.path:
            sys.path.append(self.base_dir)
        try:
            return importlib.import_module(where)
        except ImportError as exc:
            raise ConfigError(f"cannot import '{where}' (from '{self.target}'): {exc}") from None

    def __repr__(self):
        return f"Ref({self.target!r})"


class OptimizerFactory:
    """(params) -> tensor.optim.<name>(params, lr=..., **kwargs); picklable."""

    def __init__(self, name: str, lr: float, kwargs: dict):
        import tensor.optim

        if not hasattr(tensor.optim, name):
            options = [n for n in dir(tensor.optim) if n[0].isupper() and n not in ("Optimizer",)]
            raise ConfigError(f"optimizer.name '{name}' is not in tensor.optim; choose one of {', '.join(options)}")
        self.name, self.lr, self.kwargs = name, lr, dict(kwargs)

    def __call__(self, params):
        import tensor.optim

        return getattr(tensor.optim, self.name)(params, lr=self.lr, **self.kwargs)


class SchedulerFactory:
    """(optimizer) -> tensor.optim.lr_scheduler.<name>(optimizer, **kwargs); picklable."""

    def __init__(self, spec: dict):
        from tensor.optim import lr_scheduler

        spec = dict(spec)
        self.name = spec.pop("name", None)
        self.interval = spec.pop("interval", "epoch")
        if not self.name or not hasattr(lr_scheduler, self.name):
            raise ConfigError(f"scheduler.name {self.name!r} is not in tensor.optim.lr_scheduler")
        if self.interval not in ("epoch", "step"):
            raise ConfigError(f"scheduler.interval must be 'epoch' or 'step', got {self.interval!r}")
        self.kwargs = spec

    def __call__(self, optimizer):
        from tensor.optim import lr_scheduler

        return getattr(lr_scheduler, self.name)(optimizer, **self.kwargs)


def loss_from(spec, base_dir: str):
    """A loss name of tensor.nn.functional ('cross_entropy'), {name:, kwargs:}, or 'file.py:fn'."""
    if isinstance(spec, dict):
        name, kwargs = spec.get("name"), spec.get("kwargs", {})
    else:
        name, kwargs = spec, {}
    if ":" in name:
        return Ref(name, base_dir, kwargs)
    import tensor.nn.functional as F

    if not hasattr(F, name):
        raise ConfigError(f"loss '{name}' is not a function of tensor.nn.functional (e.g. cross_entropy, mse_loss)")
    return FunctionalLoss(name, kwargs)


class FunctionalLoss:
    """(output, target) -> tensor.nn.functional.<name>(output, target, **kwargs); picklable."""

    def __init__(self, name: str, kwargs: dict):
        self.name, self.kwargs = name, dict(kwargs)

    def __call__(self, output, target):
        import tensor.nn.functional as F

        return getattr(F, self.name)(output, target, **self.kwargs)


class Chain:
    """Transforms applied in turn, fn(batch) -> batch; picklable when its parts are (Refs are)."""

    def __init__(self, *transforms):
        self.transforms = transforms

    def __call__(self, batch):
        for transform in self.transforms:
            batch = transform(batch)
        return batch


def datasets_from(data: dict, base_dir: str):
    """(train Dataset, eval Dataset or None) for the job's data section. `transform` runs on both;
    `train_transform` after it, on the training batches only (an eval_fraction holdout is evaluation)."""
    from dist.data import Dataset

    transform = _transform_ref(data["transform"], base_dir)
    columns = data["columns"] or None
    train = Dataset(_source(data["train"], base_dir), columns=columns, transform=transform, name="train")
    if data["eval"] is not None:
        evaluation = Dataset(_source(data["eval"], base_dir), columns=columns, transform=transform, name="eval")
    elif data["eval_fraction"]:
        train, evaluation = train.holdout(data["eval_fraction"])
    else:
        evaluation = None
    augment = _transform_ref(data["train_transform"], base_dir)
    if augment is not None:
        train = train.with_transform(augment if transform is None else Chain(transform, augment))
    return train, evaluation


def _transform_ref(target, base_dir):
    """A Ref to a transform, resolved once here so that a wrong name fails before any training."""
    if not target:
        return None
    ref = Ref(target, base_dir)
    if not callable(ref.resolve()):
        raise ConfigError(f"transform '{target}' is not callable: it must be fn(batch: dict) -> dict")
    return ref


def _source(source, base_dir):
    if isinstance(source, dict):
        raise ConfigError("data.train/eval take a path or URI; put column options under data.columns")
    if "://" in source or os.path.isabs(source):
        return source
    here = os.path.join(base_dir, source)
    return here if os.path.exists(here) else source


def configs_from(job: dict, name: str | None = None):
    """(ScalingConfig, RunConfig) from the job's scaling/run/checkpoint/failure sections."""
    scaling = ScalingConfig(**job["scaling"])
    run = RunConfig(
        name=name or job["name"] or "run",
        storage_path=job["run"]["storage_path"],
        max_epochs=job["epochs"],
        max_steps=job["max_steps"],
        seed=job["run"]["seed"],
        log_every=job["run"]["log_every"],
        verbose=job["run"]["verbose"],
        checkpoint_config=CheckpointConfig(**job["checkpoint"]),
        failure_config=FailureConfig(**job["failure"]),
    )
    return scaling, run


def trainer_from(job: dict, resume: bool = True):
    """A Trainer ready to fit() the job."""
    from .trainer import Trainer

    base_dir = job["base_dir"] or "."
    train, evaluation = datasets_from(job["data"], base_dir)
    scaling, run = configs_from(job)
    model = Ref(job["model"]["class"], base_dir, job["model"]["kwargs"])
    optimizer = OptimizerFactory(job["optimizer"]["name"], job["optimizer"]["lr"], job["optimizer"]["kwargs"])
    scheduler = SchedulerFactory(job["scheduler"]) if job["scheduler"] else None
    data = job["data"]
    return Trainer(
        model=model,
        optimizer=optimizer,
        loss=loss_from(job["loss"], base_dir),
        train_data=train,
        eval_data=evaluation,
        metrics=list(job["metrics"]),
        scheduler=scheduler,
        scheduler_interval=scheduler.interval if scheduler else "epoch",
        features=data["features"],
        target=data["target"],
        batch_size=data["batch_size"],
        eval_batch_size=data["eval_batch_size"],
        shuffle=data["shuffle"],
        drop_last=data["drop_last"],
        prefetch=data["prefetch"],
        scaling=scaling,
        run=run,
        resume=resume,
    )
