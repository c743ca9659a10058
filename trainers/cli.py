"""The `raygrad` command line (click): train, eval, generate, info, cluster (and sweep, from trainers.sweep).

Exit codes: 0 success; 1 a training run that failed (with the rank's error); 2 a bad argument,
config or file (one clear line, no traceback); 130 interrupted with Ctrl-C (last checkpoint kept).
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

import click

from .errors import ConfigError, TrainingFailedError, TrainingInterrupted

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="raygrad")
def main():
    """raygrad: train tensor-engine models in one process, on local Ray workers, or on a Ray cluster."""


def fail(message: str, code: int = EXIT_USAGE):
    click.echo(f"raygrad: error: {message}", err=True)
    sys.exit(code)


def _user_errors():
    """Exceptions that mean "your input is wrong": one line and exit code 2."""
    from dist.data.errors import DataError

    return (ConfigError, DataError, FileNotFoundError, ValueError, TypeError)


# -------------------------------------------------------------------------------------------- train
@main.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option("--workers", "-n", type=click.IntRange(min=0), help="Ray workers (0: train in this process).")
@click.option("--gpus/--no-gpus", default=None, help="One GPU per worker (default: as the job says).")
@click.option("--address", help="Join a running Ray cluster (e.g. auto, or ray://host:10001).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a job key, e.g. optimizer.lr=0.01.")
@click.option("--resume/--no-resume", default=True, show_default=True, help="Continue from the run's latest checkpoint.")
@click.option("--name", help="Run name (default: the job's name).")
@click.option("--storage-path", help="Where runs are written (default: the job's run.storage_path).")
def train(job_file, workers, gpus, address, overrides, resume, name, storage_path):
    """Train the model described by JOB_FILE (YAML).

    \b
    Examples:
      raygrad train examples/vision/digits.yaml
      raygrad train examples/vision/digits.yaml --workers 4 --set optimizer.lr=0.001 --set epochs=30
      raygrad train job.yaml --workers 8 --gpus --address auto      # on a Ray cluster
    """
    overrides = list(overrides)
    if workers is not None:
        overrides.append(f"scaling.num_workers={workers}")
    if gpus is not None:
        overrides.append(f"scaling.use_gpu={'true' if gpus else 'false'}")
    if name:
        overrides.append(f"name={name}")
    if storage_path:
        overrides.append(f"run.storage_path={storage_path}")
    try:
        from .build import trainer_from
        from .job import load_job

        job = load_job(job_file, overrides)
        if address:
            _connect(address)
        trainer = trainer_from(job, resume=resume)
        _save_job(job, trainer.run.run_path)
    except _user_errors() as exc:
        fail(str(exc))
    try:
        result = trainer.fit()
    except TrainingInterrupted:
        click.echo("raygrad: interrupted; the last checkpoint is kept", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except TrainingFailedError as exc:
        fail(f"training failed: {exc}", EXIT_FAILED)
    if result.error is not None:
        fail(f"training failed: {result.error}", EXIT_FAILED)


def _connect(address: str):
    import ray

    if not ray.is_initialized():
        ray.init(address=address, logging_level="ERROR")


def _save_job(job: dict, run_path: str):
    """Keep the resolved job beside the run, so `raygrad eval` can rebuild the model later."""
    import yaml

    from .checkpoint import atomic_write_text

    os.makedirs(run_path, exist_ok=True)
    atomic_write_text(os.path.join(run_path, "job.yaml"), yaml.safe_dump(job, sort_keys=False))


# --------------------------------------------------------------------------------------------- eval
@main.command("eval")
@click.argument("checkpoint", type=click.Path())
@click.option("--data", "data_path", required=True, help="Parquet/IPC/CSV file or folder to evaluate on.")
@click.option("--job", "job_file", type=click.Path(dir_okay=False),
              help="Job YAML that defines the model (default: job.yaml of the checkpoint's run).")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
def evaluate(checkpoint, data_path, job_file, batch_size):
    """Evaluate CHECKPOINT (a checkpoint file or a run folder) on --data; prints the job's metrics.

    \b
    Example:
      raygrad eval runs/digits --data examples/vision/data/digits_test.parquet
    """
    try:
        from .evaluate import evaluate_checkpoint

        metrics = evaluate_checkpoint(checkpoint, data_path, job_file=job_file, batch_size=batch_size)
    except _user_errors() as exc:
        fail(str(exc))
    for key, value in metrics.items():
        click.echo(f"{key:>16s}  {value:.6g}" if isinstance(value, float) else f"{key:>16s}  {value}")


# ----------------------------------------------------------------------------------------- generate
@main.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--prompt", default="", show_default=True, help="Text the sample starts with.")
@click.option("--length", type=click.IntRange(min=1), default=200, show_default=True, help="Characters to generate.")
@click.option("--temperature", type=click.FloatRange(min=0.0), default=1.0, show_default=True,
              help="Below 1: likelier, safer text; 0: always the most likely (greedy).")
@click.option("--seed", type=int, help="Seed the sampling for a repeatable result.")
@click.option("--job", "job_file", type=click.Path(dir_okay=False),
              help="Job YAML that defines the model (default: job.yaml of the checkpoint's run).")
def generate(checkpoint, prompt, length, temperature, seed, job_file):
    """Print text sampled from CHECKPOINT's model (a checkpoint file or a run folder).

    The model class must define generate(prompt, length, temperature) -> str.

    \b
    Example:
      raygrad generate runs/charlm --prompt "def " --length 200 --temperature 0.8
    """
    try:
        from .generate import generate_text

        text = generate_text(checkpoint, prompt, length, temperature, job_file=job_file, seed=seed)
    except _user_errors() as exc:
        fail(str(exc))
    click.echo(text)


# --------------------------------------------------------------------------------------------- info
@main.command()
def info():
    """Show devices, CuPy/NCCL availability and, if one is running, the Ray cluster's resources.

    \b
    Example:
      raygrad info
    """
    import numpy as np

    import tensor

    click.echo(f"raygrad {tensor.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}")
    click.echo(f"CUDA devices: {tensor.cuda.device_count()}")
    try:
        import cupy

        click.echo(f"CuPy {cupy.__version__}, NCCL {_nccl_version()}")
    except Exception as exc:  # CuPy missing or broken: say so, never fail
        click.echo(f"CuPy: not available ({type(exc).__name__}: {exc})")
    _echo_ray_resources()


def _nccl_version():
    try:
        from cupy.cuda import nccl

        return nccl.get_version()
    except Exception:
        return "not available"


def _echo_ray_resources():
    try:
        import ray
    except ImportError:
        click.echo("Ray: not installed")
        return
    connected_here = not ray.is_initialized()
    if connected_here:
        try:
            ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
        except Exception:
            click.echo(f"Ray {ray.__version__}: no running cluster (start one with `ray start --head`)")
            return
    try:
        click.echo(f"Ray {ray.__version__} cluster resources: {ray.cluster_resources()}")
    finally:
        if connected_here:
            ray.shutdown()  # a look, not a session: leave the cluster as we found it


# ------------------------------------------------------------------------------------------ cluster
@main.group()
def cluster():
    """Manage a Ray cluster described by cluster.yaml (wraps `ray up/down/exec`).

    \b
    Examples:
      raygrad cluster up
      raygrad cluster submit examples/vision/digits.yaml --workers 8 --gpus
      raygrad cluster status
      raygrad cluster down
    """


CONFIG_OPTION = click.option("--config", "config", default="cluster.yaml", show_default=True,
                             type=click.Path(dir_okay=False), help="Ray cluster launcher config.")
REMOTE_DIR = "~/raygrad"  # where cluster.yaml's file_mounts put the project


def _ray(*args):
    """Run the `ray` CLI; its exit code becomes ours."""
    ray_cli = shutil.which("ray")
    if ray_cli is None:
        fail("the `ray` command is not on PATH; install ray in this environment")
    return subprocess.call([ray_cli, *args])


def _check_config(config):
    if not os.path.exists(config):
        fail(f"cluster config {config} does not exist (pass --config PATH)")


@cluster.command()
@CONFIG_OPTION
def up(config):
    """Start (or update and re-sync) the cluster."""
    _check_config(config)
    sys.exit(_ray("up", config, "--yes"))


@cluster.command()
@CONFIG_OPTION
def down(config):
    """Tear the cluster down."""
    _check_config(config)
    sys.exit(_ray("down", config, "--yes"))


@cluster.command()
@CONFIG_OPTION
def status(config):
    """Show the cluster's nodes and resources."""
    _check_config(config)
    sys.exit(_ray("exec", config, "ray status"))


@cluster.command(context_settings={"ignore_unknown_options": True})
@CONFIG_OPTION
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.argument("train_args", nargs=-1, type=click.UNPROCESSED)
def submit(config, job_file, train_args):
    """Run `raygrad train JOB_FILE [TRAIN_ARGS...]` on the cluster's head node.

    JOB_FILE is a path inside the project folder, which `cluster up` syncs to the nodes.

    \b
    Example:
      raygrad cluster submit examples/vision/digits.yaml --workers 8 --gpus --set epochs=30
    """
    _check_config(config)
    if not os.path.exists(job_file):
        fail(f"job file {job_file} does not exist")
    command = " ".join(["cd", REMOTE_DIR, "&&", "raygrad", "train", shlex.quote(job_file), "--address", "auto",
                        *map(shlex.quote, train_args)])
    sys.exit(_ray("exec", config, command))


# -------------------------------------------------------------------------------------------- sweep
from .sweep_cli import sweep  # noqa: E402 - registered last: it imports this module's helpers

main.add_command(sweep)
