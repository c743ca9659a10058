"""Models, data and training functions shared by the trainers tests.

They live in a module of their own (not in a test file) so that Ray workers import them by name.
"""
from __future__ import annotations

import functools
import os

import numpy as np

import tensor
import tensor.nn as nn
from dist.data import Dataset
from trainers import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig, Trainer, session

FEATURES = 8


def blobs(n: int, seed: int) -> dict:
    """A linearly separable two-class problem with a row id column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    w = np.linspace(1.0, -1.0, FEATURES).astype(np.float32)
    return {"x": x, "y": (x @ w > 0).astype(np.int64), "id": np.arange(n, dtype=np.int64)}


class RecordingMLP(nn.Module):
    """A small MLP that takes (x, ids); in training mode it appends each batch's ids to
    record_dir/a{attempt}_r{rank}.txt, and it can kill its own process at a chosen training call
    (first attempt only) to simulate a worker dying mid-epoch."""

    def __init__(self, record_dir: str | None = None, kill_at: int | None = None, kill_rank: int = 1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FEATURES, 16), nn.Tanh(), nn.Linear(16, 2))
        self.record_dir, self.kill_at, self.kill_rank = record_dir, kill_at, kill_rank
        self.calls = 0

    def forward(self, x, ids):
        if self.training and self.record_dir is not None:
            self.calls += 1
            ctx = session.get_context()
            path = os.path.join(self.record_dir, f"a{ctx.attempt}_r{ctx.world_rank}.txt")
            with open(path, "a") as f:
                f.write(" ".join(str(i) for i in ids.numpy().tolist()) + "\n")
            if ctx.attempt == 0 and ctx.world_rank == self.kill_rank and self.calls == self.kill_at:
                os._exit(1)
        return self.net(x)


def sgd(params):
    return tensor.optim.SGD(params, lr=0.2, momentum=0.9)


def make_trainer(storage, name, workers=0, batch_size=16, record_dir=None, kill_at=None, max_epochs=3, max_steps=None,
                 every_n_steps=None, max_failures=0, num_to_keep=None, resume=True, **trainer_options):
    model = functools.partial(RecordingMLP, record_dir=None if record_dir is None else str(record_dir),
                              kill_at=kill_at)
    checkpoints = CheckpointConfig(every_n_steps=every_n_steps, every_n_epochs=1, num_to_keep=num_to_keep)
    run = RunConfig(name=name, storage_path=str(storage), max_epochs=max_epochs, max_steps=max_steps, seed=7, verbose=1,
                    checkpoint_config=checkpoints, failure_config=FailureConfig(max_failures=max_failures))
    options = dict(model=model, optimizer=sgd, loss="cross_entropy", train_data=Dataset(blobs(256, 0)),
                   eval_data=Dataset(blobs(96, 1)), metrics=["accuracy", "roc_auc"], features=["x", "id"],
                   target="y", batch_size=batch_size, shuffle=False, scaling=ScalingConfig(num_workers=workers),
                   run=run, resume=resume)
    options.update(trainer_options)
    return Trainer(**options)


def read_records(record_dir, attempt: int, rank: int) -> list[list[int]]:
    """The ids of each training batch that rank saw in that attempt, in order."""
    path = os.path.join(str(record_dir), f"a{attempt}_r{rank}.txt")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [[int(i) for i in line.split()] for line in f if line.strip()]


def final_parameters(result) -> dict:
    state = result.checkpoint.load()["model"]
    return {name: value.numpy() for name, value in state.items()}
