"""`raygrad eval`: a checkpoint's model on a dataset, with the metrics of the job that trained it.

    metrics = evaluate_checkpoint("runs/digits", "examples/vision/data/digits_test.parquet")

The model, columns, loss and metrics come from the job YAML: by default the job.yaml that
`raygrad train` keeps in the run folder, or one given with job_file. Evaluation runs in this
process over every row exactly once (trainers.evaluation).
"""
from __future__ import annotations

import os

from .checkpoint import Checkpoint
from .errors import CheckpointError, ConfigError
from .evaluation import eval_batches, evaluate
from .metrics import resolve_metrics

JOB_FILE = "job.yaml"


def evaluate_checkpoint(checkpoint, data_path, *, job_file=None, batch_size: int = 256, device=None) -> dict:
    """{"samples": rows, "loss": ..., metric: ...} of the checkpoint's model on `data_path`.

    checkpoint: a checkpoint file, or a run folder (its latest valid checkpoint).
    device: where to run (default: the first GPU if there is one, else the CPU).
    Raises FileNotFoundError or ConfigError for missing or unusable inputs.
    """
    from dist.data import Dataset

    from .backend import local_device
    from .build import Ref, loss_from
    from .loop import split_batch

    device = device or local_device()
    model, job, base_dir = load_model_and_job(checkpoint, job_file=job_file, device=device)
    data = job["data"]
    transform = Ref(data["transform"], base_dir) if data["transform"] else None
    dataset = Dataset(data_path, columns=data["columns"] or None, transform=transform, name="eval")
    features = [data["features"]] if isinstance(data["features"], str) else list(data["features"])
    results = evaluate(model, eval_batches(dataset, 0, 1, batch_size, device),
                       split_batch=lambda batch: split_batch(batch, features, data["target"]),
                       loss_fn=loss_from(job["loss"], base_dir),
                       metrics=resolve_metrics(job["metrics"]), all_gather=lambda value: [value], prefix="")
    return {"samples": dataset.num_rows, **results}


def load_model_and_job(checkpoint, *, job_file=None, device=None):
    """(model on `device` with the checkpoint's weights, its job, the job's base_dir).

    checkpoint: a checkpoint file, or a run folder (its latest valid checkpoint); the job is the run's
    job.yaml unless job_file is given. Used by `raygrad eval` and `raygrad generate`.
    """
    from .backend import local_device
    from .build import Ref

    found = _checkpoint(checkpoint)
    job, base_dir = _job(job_file or _job_beside(found.path))
    device = device or local_device()
    state = found.load(map_location=device)
    if "model" not in state:
        raise ConfigError(f"{found.path} holds no 'model' state (keys: {sorted(state)}); was it written by Trainer?")
    model = Ref(job["model"]["class"], base_dir, job["model"]["kwargs"])()
    model.load_state_dict(state["model"])
    return model.to(device), job, base_dir


def _checkpoint(path) -> Checkpoint:
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist (give a checkpoint file or a run folder)")
    try:
        return Checkpoint.from_path(path)
    except CheckpointError as exc:
        raise ConfigError(str(exc)) from None


def _job_beside(checkpoint_path: str) -> str:
    """The job.yaml of the run a checkpoint belongs to (run/checkpoints/checkpoint_*.safetensors)."""
    run_folder = os.path.dirname(os.path.dirname(os.path.abspath(checkpoint_path)))
    path = os.path.join(run_folder, JOB_FILE)
    if not os.path.exists(path):
        raise ConfigError(f"no {JOB_FILE} in {run_folder} to rebuild the model from; pass the job with --job JOB.yaml")
    return path


def _job(path: str) -> tuple[dict, str]:
    """The validated job and the folder its relative paths start from (its base_dir)."""
    from .job import load_job

    if not os.path.exists(path):
        raise FileNotFoundError(f"job file {path} does not exist")
    job = load_job(path)
    return job, job["base_dir"]
