"""Trainer: supervised training from factories, in-process or on Ray workers, with one call.

    trainer = Trainer(
        model=lambda: MLP(784, 10),                                   # built on every rank
        optimizer=lambda params: tensor.optim.AdamW(params, lr=1e-3),
        loss="cross_entropy",                                         # or callable(outputs, target)
        train_data=Dataset("train.parquet"), eval_data=Dataset("test.parquet"),
        features="image", target="label", batch_size=64, metrics=["accuracy"],
        scaling=ScalingConfig(num_workers=2), run=RunConfig(name="mnist", max_epochs=5),
    )
    result = trainer.fit()       # Result(metrics, metrics_history, best_checkpoint, checkpoints, path)

fit() runs trainers.loop.fit_loop through train_loop: the same machinery as a hand-written loop, so
checkpoints, restarts, exactly-once data and the metrics files behave the same.

Or, as Ray Train's TorchTrainer, with a training function of your own (run by train_loop):

    trainer = Trainer(train_loop_per_worker, train_loop_config={"lr": 1e-3},
                      scaling_config=ScalingConfig(num_workers=2), run_config=RunConfig(name="mnist"),
                      datasets={"train": Dataset("train.parquet")}, resume_from_checkpoint=None)
"""
from __future__ import annotations

from .config import RunConfig, ScalingConfig
from .errors import ConfigError
from .loop import LoopSpec, fit_loop, resolve_loss
from .metrics import resolve_metrics
from .runner import Result, train_loop

SCHEDULER_INTERVALS = ("epoch", "step")


class Trainer:
    """Supervised training of `model()` on `train_data`, evaluated on `eval_data` after every epoch.

    model: () -> tensor.nn.Module, called on each rank. Called as model(*features): one argument
        per name in `features`.
    optimizer: (parameters) -> Optimizer, e.g. `lambda p: tensor.optim.AdamW(p, lr=1e-3)`.
    loss: a name in tensor.nn.functional ("cross_entropy", "mse_loss", ...) or callable(outputs, target)
        returning a scalar Tensor (mean over the batch).
    train_data, eval_data: dist.data.Dataset, or anything Dataset() accepts (a path, a pyarrow Table,
        a dict of NumPy arrays).
    metrics: names from trainers.metrics (accuracy, top5_accuracy, mse, mae, roc_auc, log_loss) or
        callables(outputs, targets) -> float, computed exactly over all of eval_data; needs eval_data.
    scheduler: (optimizer) -> LR scheduler, stepped every epoch (scheduler_interval="epoch"; a
        ReduceLROnPlateau gets the score metric, else eval_loss, else train_loss) or every optimizer
        step ("step").
    features, target: column names of the model inputs and of the target.
    batch_size: samples per step on each rank (the global batch is batch_size * num_workers).
    eval_batch_size: per-rank evaluation batch (default batch_size).
    shuffle: shuffle the training data each epoch (seeded by RunConfig.seed).
    drop_last: leave out the few rows per epoch that cannot fill a batch on every rank (a different
        few each epoch when shuffled); False repeats some rows instead, so every row is seen.
    prefetch: windows of rows each rank reads ahead on a background thread (0: none).
    scaling, run, resume, address: as for train_loop; scaling_config and run_config are Ray Train's
        names for scaling and run.

    Trainer(train_loop_per_worker, train_loop_config=..., datasets=..., resume_from_checkpoint=...)
    is Ray Train's TorchTrainer instead: fit() is train_loop(train_loop_per_worker, train_loop_config,
    ...), and of the arguments above only scaling, run, resume and address apply.
    """

    def __init__(self, train_loop_per_worker=None, *, train_loop_config=None, datasets=None,
                 resume_from_checkpoint=None, model=None, optimizer=None, loss="cross_entropy", train_data=None,
                 eval_data=None, metrics=(), scheduler=None, scheduler_interval: str = "epoch", features=None,
                 target: str | None = None, batch_size: int = 32, eval_batch_size: int | None = None,
                 shuffle: bool = True, drop_last: bool = True, prefetch: int = 2, scaling: ScalingConfig | None = None,
                 run: RunConfig | None = None, resume: bool = True, address: str | None = None,
                 scaling_config: ScalingConfig | None = None, run_config: RunConfig | None = None):
        scaling = _either("scaling", scaling, "scaling_config", scaling_config)
        run = _either("run", run, "run_config", run_config)
        self.scaling = ScalingConfig() if scaling is None else scaling
        self.run = RunConfig() if run is None else run
        self.resume, self.address = resume, address
        self.function = train_loop_per_worker
        if train_loop_per_worker is not None:
            factory_mode = (("model", model), ("optimizer", optimizer), ("train_data", train_data),
                            ("eval_data", eval_data), ("features", features), ("target", target),
                            ("metrics", metrics or None), ("scheduler", scheduler))
            given = [name for name, value in factory_mode if value is not None]
            if given:
                raise ConfigError(f"Trainer(train_loop_per_worker, ...) runs your function, which builds the model "
                                  f"and reads the data itself; drop {', '.join(given)}")
            if not callable(train_loop_per_worker):
                raise ConfigError(f"train_loop_per_worker must be a function fn(config), got "
                                  f"{type(train_loop_per_worker).__name__}")
            self.config, self.start = train_loop_config, resume_from_checkpoint
            self.datasets = {name: _as_dataset(data, f"datasets[{name!r}]", name)
                             for name, data in (datasets or {}).items()}
            return
        given = [name for name, value in (("train_loop_config", train_loop_config), ("datasets", datasets),
                                          ("resume_from_checkpoint", resume_from_checkpoint)) if value is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} go with Trainer(train_loop_per_worker, ...); with model= and "
                              "optimizer= give the data as train_data= / eval_data=")
        missing = [name for name, value in (("model", model), ("optimizer", optimizer), ("train_data", train_data),
                                            ("features", features), ("target", target)) if value is None]
        if missing:
            raise ConfigError(f"Trainer needs {', '.join(missing)} (or a training function: Trainer(train_fn, "
                              "train_loop_config=..., ...), as Ray Train's TorchTrainer)")
        features = [features] if isinstance(features, str) else list(features or [])
        _check_factories(model, optimizer, scheduler, scheduler_interval)
        resolve_loss(loss)
        metrics = [metrics] if isinstance(metrics, str) or callable(metrics) else list(metrics or [])
        resolve_metrics(metrics)  # unknown names fail here, on the driver, not on every rank
        if metrics and eval_data is None:
            raise ConfigError(f"metrics={_names(metrics)} are computed on eval_data, but eval_data is None; give "
                              "eval_data (e.g. train_data.holdout(0.1)) or drop the metrics")
        self.datasets = {"train": _as_dataset(train_data, "train_data", "train")}
        if eval_data is not None:
            self.datasets["eval"] = _as_dataset(eval_data, "eval_data", "eval")
        _check_columns(self.datasets, features, target)
        _check_loader_options(batch_size, eval_batch_size, shuffle, drop_last, prefetch)
        checkpoints = self.run.checkpoint_config
        self.spec = LoopSpec(
            model=model, optimizer=optimizer, loss=loss, features=features, target=target, batch_size=batch_size,
            scheduler=scheduler, scheduler_interval=scheduler_interval, metrics=tuple(metrics),
            eval_batch_size=eval_batch_size, shuffle=shuffle, drop_last=drop_last, prefetch=prefetch,
            has_eval=eval_data is not None,
            max_epochs=self.run.max_epochs, max_steps=self.run.max_steps, every_n_epochs=checkpoints.every_n_epochs,
            every_n_steps=checkpoints.every_n_steps, score_metric=checkpoints.score_metric)

    def fit(self, on_report=None, placement_group=None) -> Result:
        """Train to RunConfig.max_epochs / max_steps (resuming the run's latest checkpoint if any).

        on_report, placement_group: as for train_loop (a sweep's trial sees every epoch's metrics and
        may stop the run; its workers go into the trial's placement group).
        """
        if self.function is not None:
            return train_loop(self.function, self.config, scaling=self.scaling, run=self.run, datasets=self.datasets,
                              resume=self.resume, address=self.address, on_report=on_report,
                              placement_group=placement_group, resume_from_checkpoint=self.start)
        return train_loop(fit_loop, self.spec, scaling=self.scaling, run=self.run, datasets=self.datasets,
                          resume=self.resume, address=self.address, on_report=on_report,
                          placement_group=placement_group)


def _either(name, value, ray_name, ray_value):
    if value is not None and ray_value is not None:
        raise ConfigError(f"Trainer: {name}= and {ray_name}= are the same setting ({ray_name} is Ray Train's name "
                          "for it); give one of them")
    return ray_value if value is None else value


def _names(metrics) -> list[str]:
    return [m if isinstance(m, str) else getattr(m, "__name__", repr(m)) for m in metrics]


def _check_factories(model, optimizer, scheduler, scheduler_interval) -> None:
    from tensor.nn import Module

    if isinstance(model, Module) or not callable(model):
        raise ConfigError(f"model must be a factory () -> Module (e.g. lambda: MLP()), got {type(model).__name__}; "
                          "pass the class or a function, not a built model, so each rank builds its own")
    if not callable(optimizer):
        raise ConfigError(f"optimizer must be a factory (parameters) -> Optimizer, e.g. "
                          f"lambda p: tensor.optim.AdamW(p, lr=1e-3); got {type(optimizer).__name__}")
    if scheduler is not None and not callable(scheduler):
        raise ConfigError(f"scheduler must be a factory (optimizer) -> scheduler, got {type(scheduler).__name__}")
    if scheduler_interval not in SCHEDULER_INTERVALS:
        raise ConfigError(f"scheduler_interval must be one of {SCHEDULER_INTERVALS}, got {scheduler_interval!r}")


def _as_dataset(data, label: str, name: str):
    from dist.data import Dataset

    if isinstance(data, Dataset):
        return data
    try:
        return Dataset(data, name=name)
    except Exception as exc:
        raise ConfigError(f"{label}: cannot make a Dataset of {type(data).__name__} ({exc}); pass a "
                          "dist.data.Dataset, a path, a pyarrow Table or a dict of NumPy arrays") from exc


def _check_columns(datasets: dict, features: list, target) -> None:
    if not features or not all(isinstance(f, str) for f in features):
        raise ConfigError(f"features must be a column name or a non-empty list of names, got {features!r}")
    if not isinstance(target, str):
        raise ConfigError(f"target must be a column name, got {target!r}")
    for name, dataset in datasets.items():
        if dataset.transform is not None:
            continue  # a transform may add or rename columns: checked on the first batch instead
        missing = [c for c in [*features, target] if c not in dataset.column_names]
        if missing:
            raise ConfigError(f"{name} data has no column(s) {missing}; its columns are {dataset.column_names}")


def _check_loader_options(batch_size, eval_batch_size, shuffle, drop_last, prefetch) -> None:
    for label, value, minimum, optional in (("batch_size", batch_size, 1, False),
                                            ("eval_batch_size", eval_batch_size, 1, True),
                                            ("prefetch", prefetch, 0, False)):
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{label} must be an integer >= {minimum}, got {value!r}")
    for label, value in (("shuffle", shuffle), ("drop_last", drop_last)):
        if not isinstance(value, bool):
            raise ConfigError(f"{label} must be True or False, got {value!r}")
