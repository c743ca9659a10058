"""The per-rank API of a training function run by `train_loop`, named after Ray Train's.

    def train_fn(config):
        ctx = session.get_context()
        model = session.prepare_model(build_model())          # on the rank's device, DDP when world > 1
        optimizer = tensor.optim.AdamW(model.parameters(), lr=config["lr"])
        start = session.get_checkpoint()
        if start is not None:
            state = start.load(map_location=ctx.device)
            session.unwrap_model(model).load_state_dict(state["model"]); ...
            session.load_rng_state(state)
        train = session.get_dataset_shard("train", batch_size=64)
        for epoch in range(train.resume_epoch(), config["epochs"]):
            train.set_epoch(epoch)
            for batch in train:
                ...
            session.report({"epoch": epoch, "loss": loss}, checkpoint={"model": ..., "optimizer": ...})

Every rank calls `report` (it is a barrier); rank 0's checkpoint dict is written, with the data
progress of every dataset and every rank's RNG state added under the reserved key "_raygrad", so
a restart continues each epoch with exactly the samples not yet seen. Outside `train_loop` these
functions raise SessionError saying so.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field

from tensor.nn import Module

from . import rng
from .checkpoint import RESERVED_KEY, Checkpoint, CheckpointManager, pack_directory
from .config import CheckpointConfig
from .errors import SessionError

_PROGRESS_EVERY_S = 0.5


@dataclass(frozen=True)
class TrainContext:
    """Where this rank runs. `storage_path` is the run's folder (RunConfig.storage_path/name)."""

    world_size: int
    world_rank: int
    local_rank: int
    local_world_size: int
    node_rank: int
    device: str
    experiment_name: str
    storage_path: str
    attempt: int = 0  # 0 for the first start, n after the n-th restart

    # Ray Train's accessor names, so ported code keeps working.
    def get_world_size(self) -> int:
        return self.world_size

    def get_world_rank(self) -> int:
        return self.world_rank

    def get_local_rank(self) -> int:
        return self.local_rank

    def get_local_world_size(self) -> int:
        return self.local_world_size

    def get_node_rank(self) -> int:
        return self.node_rank

    def get_experiment_name(self) -> str:
        return self.experiment_name

    def get_trial_name(self) -> str:
        return self.experiment_name  # a run is one trial (a sweep runs each trial as a run of its own)

    def get_trial_dir(self) -> str:
        return self.storage_path


@dataclass
class SessionSpec:
    """What the driver tells every rank about the run (picklable)."""

    name: str
    run_path: str
    checkpoint_folder: str
    checkpoint_config: CheckpointConfig
    datasets: dict = field(default_factory=dict)
    checkpoint: Checkpoint | None = None
    seed: int = 0
    attempt: int = 0
    log_every: int = 10


class Session:
    """One rank's state while its training function runs (made by trainers.backend)."""

    def __init__(self, spec: SessionSpec, context: TrainContext, data_target, channel, exchange, check_abort=None):
        self.spec, self.context = spec, context
        self.data_target = data_target  # the coordinator's actor handle, or an in-process DataService
        self.channel, self.exchange = channel, exchange
        self.check_abort = check_abort or (lambda op: None)
        self.loaders: dict[str, tuple] = {}  # name -> (options, ShardedLoader)
        is_writer = context.world_rank == 0  # only rank 0 writes checkpoints
        self.manager = CheckpointManager(spec.checkpoint_folder, spec.checkpoint_config) if is_writer else None
        self.iteration = _saved_iteration(spec.checkpoint)
        self._last_progress_sent = 0.0

    # ------------------------------------------------------------------------------------ report
    def report(self, metrics: dict, checkpoint: dict | Checkpoint | None) -> None:
        self.check_abort("report")
        row = {**_plain_metrics(metrics), "iteration": self.iteration + 1}
        if checkpoint is not None:
            _check_checkpoint(checkpoint)  # before the barrier: a bad dict fails here, not halfway through
        self.iteration += 1
        for _, loader in self.loaders.values():
            loader.flush_progress()  # progress must be on the coordinator before rank 0 reads it
        rng_states = self.exchange.gather(rng.capture(self.context.device))  # also the first barrier
        entry = None
        if self.context.world_rank == 0 and checkpoint is not None:
            entry = self._save_checkpoint(checkpoint, row, rng_states)
        if self.context.world_rank == 0:
            self.channel.send_report({"metrics": row, "checkpoint": None if entry is None else asdict(entry)})
        # No rank may consume more data until rank 0 has read the data progress for the checkpoint.
        self.exchange.barrier("trainers/report")

    def _save_checkpoint(self, checkpoint: dict | Checkpoint, row: dict, rng_states: list) -> Checkpoint:
        from dist.data.client import DataClient

        folder = isinstance(checkpoint, Checkpoint)
        state = {} if folder else dict(checkpoint)
        state[RESERVED_KEY] = {
            "iteration": self.iteration,
            "world_size": self.context.world_size,
            "data_state": DataClient(self.data_target).call("data_state"),
            "rng": {str(rank): states for rank, states in enumerate(rng_states)},
        }
        if folder:
            state[RESERVED_KEY]["files"] = pack_directory(checkpoint.path)
        step = row["step"] if _is_int(row.get("step")) else self.iteration
        epoch = row["epoch"] if _is_int(row.get("epoch")) else 0
        return self.manager.save(state, step, epoch, row)

    def report_progress(self, values: dict) -> None:
        self.check_abort("train step")
        if self.context.world_rank != 0:
            return
        now = time.monotonic()
        step = values.get("step")
        due = now - self._last_progress_sent >= _PROGRESS_EVERY_S or (_is_int(step) and step % self.spec.log_every == 0)
        if due:
            self._last_progress_sent = now
            self.channel.send_progress(_plain_metrics(values))

    # ------------------------------------------------------------------------------------ data
    def dataset(self, name: str):
        if name not in self.spec.datasets:
            known = ", ".join(sorted(self.spec.datasets)) or "none"
            raise KeyError(f"no dataset named {name!r} was given to train_loop (datasets: {known}); pass "
                           f"datasets={{{name!r}: Dataset(...)}}")
        return self.spec.datasets[name]

    def dataset_shard(self, name: str, options: dict):
        from dist.data import ShardedLoader

        dataset = self.dataset(name)
        if name in self.loaders:
            known_options, loader = self.loaders[name]
            if known_options != options:
                raise ValueError(f"get_dataset_shard({name!r}) was called before with {known_options}, now with "
                                 f"{options}; one loader per dataset: call it once and reuse the loader")
            return loader
        loader = ShardedLoader(dataset, self.data_target, self.context.world_rank,
                               self.context.world_size, device=self.context.device, name=name, **options)
        self.loaders[name] = (options, loader)
        return loader

    def communicator(self):
        """The rank's default dist communicator (created on first use: a collective call on every rank)."""
        from dist.comm import get_communicator, init_communicator

        try:
            return get_communicator()
        except LookupError:
            return init_communicator()

    def close(self) -> None:
        for _, loader in self.loaders.values():
            with contextlib.suppress(Exception):  # already failing or finished: closing is best effort
                loader.close()


# ------------------------------------------------------------------------------ the active session
_active: Session | None = None


@contextlib.contextmanager
def activate(session: Session):
    """Make `session` the one the module functions use while the training function runs."""
    global _active
    if _active is not None:
        raise SessionError("a training function is already running in this process; train_loop/Trainer.fit "
                           "cannot be nested inside it")
    _active = session
    try:
        yield session
    finally:
        _active = None
        session.close()


def _require(what: str) -> Session:
    if _active is None:
        raise SessionError(f"trainers.session.{what}() works only inside a training function run by "
                           f"train_loop(fn, ...) or Trainer.fit(); call it from within that function")
    return _active


# ----------------------------------------------------------------------------------- public API
def report(metrics: dict, checkpoint: dict | Checkpoint | None = None) -> None:
    """Report metrics (and, on rank 0, a checkpoint) for this iteration. Every rank must call it.

    metrics: numbers (Tensors with one element are fine) and strings; rank 0's go to the driver
        (metrics.jsonl/csv, TensorBoard, the progress display) with "iteration" added. An int
        "step" names the checkpoint file and an int "epoch" is recorded with it.
    checkpoint: a dict of tensors, arrays and plain values (model.state_dict(), optimizer.state_dict(),
        ...); only rank 0's is written. The key "_raygrad" is reserved. Or, as in Ray Train,
        Checkpoint.from_directory(folder): rank 0's folder is packed into the checkpoint file before
        report returns (get it back with checkpoint.as_directory()).
    """
    _require("report").report(metrics, checkpoint)


def report_progress(**values) -> None:
    """Step-level progress for the driver's progress bar: e.g. epoch=, step=, steps=, loss=, samples_per_s=.

    Cheap and non-blocking: only rank 0's is sent, at most every half second or every
    RunConfig.log_every steps. Also where a rank notices that the run was stopped (Ctrl-C or a
    failed rank) between collectives, so call it once per step.
    """
    _require("report_progress").report_progress(values)


def get_context() -> TrainContext:
    """This rank's TrainContext: world size, ranks, device, the run's name and folder."""
    return _require("get_context").context


def get_checkpoint() -> Checkpoint | None:
    """The checkpoint to resume from (the latest valid one of this run, else the trainer's
    resume_from_checkpoint), or None on a fresh start.

    Load it with `.load(map_location=get_context().device)`; restore your state from the dict, then
    call load_rng_state(state) to continue the random streams where they were. One reported as a
    folder comes back with `with checkpoint.as_directory() as folder: ...`.
    """
    return _require("get_checkpoint").spec.checkpoint


def get_device() -> str:
    """This rank's device ("cpu" or "cuda:N"), Ray Train's ray.train.torch.get_device()."""
    return _require("get_device").context.device


def get_dataset_shard(name: str, batch_size: int | None = None, *, shuffle: bool | None = None,
                      seed: int | None = None, drop_last: bool = True, prefetch: int = 2,
                      shuffle_buffer: int = 16384):
    """A dist.data.ShardedLoader over this rank's share of dataset `name` (given to train_loop).

    Batches come as {column: Tensor on the rank's device}. batch_size defaults to 32 per rank,
    shuffle to True, seed to RunConfig.seed. Each epoch every sample is served once across the
    ranks, and after a restart an epoch continues with the samples not yet served. Calling it
    again with the same arguments returns the same loader.
    """
    active = _require("get_dataset_shard")
    options = {"batch_size": 32 if batch_size is None else batch_size, "shuffle": True if shuffle is None else shuffle,
               "seed": active.spec.seed if seed is None else seed, "drop_last": drop_last, "prefetch": prefetch,
               "shuffle_buffer": shuffle_buffer}
    return active.dataset_shard(name, options)


def get_eval_shard(name: str, batch_size: int | None = None):
    """This rank's batches of dataset `name` for evaluation: a contiguous share of its rows, every row
    of the dataset on exactly one rank, none repeated or dropped (the last batch may be short, and
    ranks may get one batch more or less). Iterate it again for another pass; no progress is kept.
    Combine the ranks' results with all_gather_object (see trainers.evaluation.evaluate)."""
    from .evaluation import eval_batches

    active = _require("get_eval_shard")
    dataset = active.dataset(name)
    return eval_batches(dataset, active.context.world_rank, active.context.world_size,
                        32 if batch_size is None else batch_size, active.context.device)


def prepare_model(model: Module, **ddp_options) -> Module:
    """Move `model` to this rank's device and, when world_size > 1, wrap it in DistributedDataParallel
    (its gradients are averaged across ranks during backward). With one rank the model is returned
    as is. `ddp_options` go to DistributedDataParallel (e.g. bucket_cap_mb=25)."""
    session = _require("prepare_model")
    if not isinstance(model, Module):
        raise TypeError(f"prepare_model expects a tensor.nn.Module, got {type(model).__name__}")
    model.to(session.context.device)
    if session.context.world_size == 1:
        return model
    from dist.ddp import DistributedDataParallel

    return DistributedDataParallel(model, comm=session.communicator(), **ddp_options)


def prepare_data_loader(data_loader, add_dist_sampler: bool = True, move_to_device: bool = True):
    """Ray Train's prepare_data_loader for a tensor.utils.data.DataLoader: with world_size > 1 the loader
    is rebuilt with a DistributedSampler (shuffled if the loader was), so each rank reads its share
    (call loader.sampler.set_epoch(epoch) each epoch); with move_to_device its batches' tensors come
    on this rank's device. For Arrow/Parquet data, get_dataset_shard reads the shards with resume."""
    from .data_loader import prepare

    context = _require("prepare_data_loader").context
    return prepare(data_loader, context.world_size, context.world_rank, context.device, add_dist_sampler,
                   move_to_device)


def unwrap_model(model: Module) -> Module:
    """The plain model inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    if type(model).__name__ == "DistributedDataParallel":  # no import: dist.ddp may never have been loaded
        return model.module
    return model


def all_gather_object(value) -> list:
    """Every rank's `value` (small, picklable: numbers, dicts, NumPy arrays), as a list in rank order.

    Every rank must call it, in the same order as its other collective calls."""
    return _require("all_gather_object").exchange.allgather(value)


def load_rng_state(checkpoint_state: dict) -> None:
    """Restore this rank's random streams from a loaded checkpoint (no-op if it holds none for this rank).

    Call it after building the model (whose initialisation draws random numbers) and before training."""
    session = _require("load_rng_state")
    saved = (checkpoint_state or {}).get(RESERVED_KEY, {}).get("rng", {})
    states = saved.get(str(session.context.world_rank))
    if states is not None:
        rng.restore(states)


# ------------------------------------------------------------------------------------ helpers
def _check_checkpoint(checkpoint) -> None:
    if isinstance(checkpoint, Checkpoint):
        if not checkpoint.is_directory:
            raise TypeError(f"report(checkpoint=...) got the saved checkpoint {checkpoint.path}; report a folder "
                            "(Checkpoint.from_directory(folder)) or a dict of tensors and plain values")
        return
    if not isinstance(checkpoint, dict):
        raise TypeError(f"report(checkpoint=...) takes a dict of tensors and plain values or "
                        f"Checkpoint.from_directory(folder), got {type(checkpoint).__name__}")
    if RESERVED_KEY in checkpoint:
        raise ValueError(f"report(checkpoint=...): the key {RESERVED_KEY!r} is reserved for raygrad's own state; "
                         "rename it")


def _saved_iteration(checkpoint: Checkpoint | None) -> int:
    if checkpoint is None:
        return 0
    iteration = checkpoint.metrics.get("iteration")
    return iteration if _is_int(iteration) else 0


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _plain_metrics(metrics: dict) -> dict:
    """Metrics as JSON-friendly scalars: one-element tensors and NumPy scalars become numbers."""
    if not isinstance(metrics, dict):
        raise TypeError(f"report(metrics=...) takes a dict of name -> number, got {type(metrics).__name__}")
    plain = {}
    for key, value in metrics.items():
        if hasattr(value, "item") and not isinstance(value, (int, float, str, bool)) and _numel(value) == 1:
            value = value.item()  # a one-element Tensor or array, a NumPy scalar
        if not (value is None or isinstance(value, (int, float, str, bool))):
            raise TypeError(f"report(metrics=...): {key!r} is {type(value).__name__} {value!r:.80}; metrics must "
                            "be numbers, strings or one-element tensors")
        plain[str(key)] = value
    return plain


def _numel(value) -> int:
    numel = getattr(value, "numel", None)
    if callable(numel):
        return int(numel())
    return int(getattr(value, "size", 1))
