"""The standard supervised training loop that Trainer.fit runs on every rank (through train_loop).

Per epoch: train steps (forward, loss, backward with DDP's gradient averaging, optimizer step,
per-step scheduler), an exact evaluation over the evaluation set, the epoch scheduler, then one
report with the epoch's metrics and, when due, a checkpoint. Every RunConfig checkpoint_config
.every_n_steps steps it also reports (and checkpoints) mid-epoch. A resumed run continues the
epoch it was in, with its running loss, learning rate and random streams as they were.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from . import session
from .errors import ConfigError
from .evaluation import evaluate
from .metrics import resolve_metrics


@dataclass
class LoopSpec:
    """Everything the loop needs, picklable (factories are called on each rank)."""

    model: object                 # () -> Module
    optimizer: object             # (parameters) -> Optimizer
    loss: object                  # name in tensor.nn.functional, or (outputs, target) -> scalar Tensor
    features: list
    target: str
    batch_size: int
    scheduler: object = None      # (optimizer) -> scheduler
    scheduler_interval: str = "epoch"
    metrics: tuple = ()
    eval_batch_size: int | None = None
    shuffle: bool = True
    drop_last: bool = True
    prefetch: int = 2
    has_eval: bool = False
    max_epochs: int | None = None
    max_steps: int | None = None
    every_n_epochs: int | None = 1
    every_n_steps: int | None = None
    score_metric: str | None = None


@dataclass
class LoopState:
    """Where the loop is. loss_sum/samples are this rank's running sums for the epoch in progress
    (after a restore, rank 0 holds all ranks' sums up to the checkpoint and the others start at 0)."""

    epoch: int = 0
    step: int = 0  # optimizer steps over the whole run
    epoch_steps: int = 0
    loss_sum: float = 0.0
    samples: int = 0

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.epoch_steps, self.loss_sum, self.samples = epoch, 0, 0.0, 0


def resolve_loss(loss):
    """A loss callable from a name in tensor.nn.functional (e.g. "cross_entropy") or a callable."""
    if callable(loss):
        return loss
    import tensor.nn.functional as F

    function = getattr(F, loss, None) if isinstance(loss, str) else None
    if not callable(function):
        known = sorted(n for n in dir(F) if n.endswith("_loss") or n in ("cross_entropy", "binary_cross_entropy",
                                                                           "binary_cross_entropy_with_logits"))
        raise ConfigError(f"loss {loss!r} is not a function of tensor.nn.functional; use one of {known} or a "
                          "callable(outputs, target) -> scalar Tensor")
    return function


def fit_loop(spec: LoopSpec) -> None:
    ctx = session.get_context()
    model = session.prepare_model(spec.model())
    optimizer = spec.optimizer(model.parameters())
    scheduler = spec.scheduler(optimizer) if spec.scheduler is not None else None
    loss_fn, metrics = resolve_loss(spec.loss), resolve_metrics(spec.metrics)
    state = LoopState()
    _resume(model, optimizer, scheduler, state, ctx)
    train = session.get_dataset_shard("train", spec.batch_size, shuffle=spec.shuffle, drop_last=spec.drop_last,
                                      prefetch=spec.prefetch)
    epoch = train.resume_epoch()
    while not _finished(spec, epoch, state.step):
        if state.epoch != epoch or state.epoch_steps == 0:
            state.start_epoch(epoch)  # a restore into the middle of `epoch` keeps its running sums
        train.set_epoch(epoch)
        timing = _train_epoch(spec, model, optimizer, scheduler, loss_fn, train, state, ctx)
        row = _epoch_metrics(state, timing, optimizer)
        if spec.has_eval:
            batches = session.get_eval_shard("eval", spec.eval_batch_size or spec.batch_size)
            row.update(evaluate(session.unwrap_model(model), batches, loss_fn=loss_fn, metrics=metrics,
                                split_batch=lambda batch: split_batch(batch, spec.features, spec.target),
                                all_gather=session.all_gather_object))
        _step_epoch_scheduler(scheduler, spec, row)
        last = _finished(spec, epoch + 1, state.step)
        due = last or (spec.every_n_epochs is not None and (epoch + 1) % spec.every_n_epochs == 0)
        session.report(row, checkpoint=_checkpoint(spec, model, optimizer, scheduler, state, ctx) if due else None)
        epoch += 1


def _finished(spec: LoopSpec, epoch: int, step: int) -> bool:
    return ((spec.max_epochs is not None and epoch >= spec.max_epochs)
            or (spec.max_steps is not None and step >= spec.max_steps))


def split_batch(batch: dict, features: list, target: str):
    """(model inputs, target) of a batch; a KeyError names the missing column and those present."""
    missing = [c for c in [*features, target] if c not in batch]
    if missing:
        raise KeyError(f"batch has no column(s) {missing}; it has {sorted(batch)} (check features= and target=)")
    return tuple(batch[name] for name in features), batch[target]


# ------------------------------------------------------------------------------------- training
def _train_epoch(spec, model, optimizer, scheduler, loss_fn, train, state: LoopState, ctx) -> dict:
    model.train()
    total_steps = state.epoch_steps + len(train)
    started, busy, steps, samples = time.perf_counter(), 0.0, 0, 0
    for batch in train:
        step_started = time.perf_counter()
        inputs, target = split_batch(batch, spec.features, spec.target)
        optimizer.zero_grad()
        loss = loss_fn(model(*inputs), target)
        loss.backward()  # with DDP, returns once the gradients are averaged over the ranks
        optimizer.step()
        if scheduler is not None and spec.scheduler_interval == "step":
            scheduler.step()
        value, count = loss.item(), int(target.shape[0])
        state.step, state.epoch_steps = state.step + 1, state.epoch_steps + 1
        state.loss_sum, state.samples = state.loss_sum + value * count, state.samples + count
        steps, samples = steps + 1, samples + count
        busy += time.perf_counter() - step_started
        session.report_progress(epoch=state.epoch, step=state.epoch_steps, steps=total_steps, loss=value,
                                samples_per_s=samples * ctx.world_size / (time.perf_counter() - started),
                                global_step=state.step)
        if spec.max_steps is not None and state.step >= spec.max_steps:
            break
        if spec.every_n_steps and state.step % spec.every_n_steps == 0 and state.epoch_steps < total_steps:
            _report_mid_epoch(spec, model, optimizer, scheduler, state, ctx)
    return {"seconds": time.perf_counter() - started, "busy": busy, "steps": steps, "samples": samples}


def _report_mid_epoch(spec, model, optimizer, scheduler, state: LoopState, ctx) -> None:
    loss_sum, samples = _global_sums(state)
    row = {"epoch": state.epoch, "step": state.step, "train_loss": loss_sum / max(samples, 1)}
    checkpoint = _checkpoint(spec, model, optimizer, scheduler, state, ctx, (loss_sum, samples))
    session.report(row, checkpoint=checkpoint)


def _global_sums(state: LoopState) -> tuple[float, int]:
    gathered = session.all_gather_object((state.loss_sum, state.samples))
    return sum(g[0] for g in gathered), sum(g[1] for g in gathered)


def _epoch_metrics(state: LoopState, timing: dict, optimizer) -> dict:
    ranks = session.all_gather_object({"loss_sum": state.loss_sum, "samples": state.samples,
                                       "busy": timing["busy"], "steps": timing["steps"]})
    samples = sum(r["samples"] for r in ranks)
    step_times = [r["busy"] / r["steps"] for r in ranks if r["steps"]]
    row = {"epoch": state.epoch, "step": state.step, "train_loss": sum(r["loss_sum"] for r in ranks) / max(samples, 1),
           "lr": float(optimizer.param_groups[0]["lr"]),
           "samples_per_s": timing["samples"] * len(ranks) / max(timing["seconds"], 1e-9),
           "epoch_time_s": timing["seconds"]}
    if step_times:
        row["step_time_s"] = sum(step_times) / len(step_times)
        row["step_time_s_max"] = max(step_times)  # the slowest rank sets everyone's pace
    return row


def _step_epoch_scheduler(scheduler, spec: LoopSpec, row: dict) -> None:
    if scheduler is None or spec.scheduler_interval != "epoch":
        return
    if type(scheduler).__name__ == "ReduceLROnPlateau":
        monitored = next(key for key in (spec.score_metric, "eval_loss", "train_loss") if key in row)
        scheduler.step(row[monitored])
    else:
        scheduler.step()


# ----------------------------------------------------------------------------------- checkpoints
def _checkpoint(spec, model, optimizer, scheduler, state: LoopState, ctx, global_sums=None) -> dict | None:
    """Rank 0's checkpoint (None elsewhere: only rank 0's is written)."""
    if ctx.world_rank != 0:
        return None
    loop = asdict(state)
    if global_sums is not None:
        loop["loss_sum"], loop["samples"] = global_sums
    return {
        "model": session.unwrap_model(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "loop": loop,
        "trainer": {"features": list(spec.features), "target": spec.target,
                    "loss": spec.loss if isinstance(spec.loss, str) else None,
                    "metrics": [m for m in spec.metrics if isinstance(m, str)]},
    }


def _resume(model, optimizer, scheduler, state: LoopState, ctx) -> None:
    start = session.get_checkpoint()
    if start is None:
        return
    saved = start.load(map_location=ctx.device)
    session.unwrap_model(model).load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if scheduler is not None and saved.get("scheduler") is not None:
        scheduler.load_state_dict(saved["scheduler"])
    loop = saved["loop"]
    state.epoch, state.step, state.epoch_steps = int(loop["epoch"]), int(loop["step"]), int(loop["epoch_steps"])
    if ctx.world_rank == 0:  # the saved sums are every rank's: count them once
        state.loss_sum, state.samples = float(loop["loss_sum"]), int(loop["samples"])
    session.load_rng_state(saved)
