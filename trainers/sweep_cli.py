"""`raygrad sweep SWEEP.yaml`: a hyperparameter sweep on Ray Tune from the command line (registered in cli.py)."""
from __future__ import annotations

import sys

import click

from .cli import EXIT_FAILED, EXIT_INTERRUPTED, _user_errors, fail
from .errors import TrainingFailedError


@click.command("sweep")
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a job key for every trial, e.g. epochs=5 (after the file's `set`).")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue the sweep found in its folder; --no-resume moves it aside and starts over.")
@click.option("--num-samples", type=click.IntRange(min=1), help="Samples of the space (default: as the file says).")
@click.option("--max-concurrent", type=click.IntRange(min=1), help="Trials at a time.")
@click.option("--workers-per-trial", type=click.IntRange(min=0), help="Ray workers per trial (0: in-process).")
@click.option("--name", help="The sweep's name (its folder under the storage path).")
@click.option("--storage-path", help="Where the sweep's folder goes (default: the job's run.storage_path).")
@click.option("--address", help="Join a running Ray cluster (e.g. auto).")
def sweep(sweep_file, overrides, resume, num_samples, max_concurrent, workers_per_trial, name, storage_path, address):
    """Run the hyperparameter sweep described by SWEEP_FILE (YAML) on Ray Tune.

    Each trial trains the job with its own values; the sweep's folder gets results.csv,
    results.jsonl, best_job.yaml (train the best again with `raygrad train`), best.json and
    curves.png. Run the same command again to continue an interrupted sweep.

    \b
    Examples:
      raygrad sweep examples/sweeps/sweep.yaml
      raygrad sweep examples/sweeps/sweep.yaml --set epochs=3 --num-samples 1 --max-concurrent 2
      raygrad sweep examples/sweeps/sweep.yaml --no-resume          # start over
    """
    from .sweep_run import sweep as run_sweep
    from .sweep_config import load_sweep

    options = {"num_samples": num_samples, "max_concurrent": max_concurrent, "workers_per_trial": workers_per_trial,
               "name": name, "storage_path": storage_path}
    try:
        kwargs = load_sweep(sweep_file, overrides)
        kwargs.update({key: value for key, value in options.items() if value is not None})
        result = run_sweep(**kwargs, resume=resume, address=address)
    except _user_errors() as exc:
        fail(str(exc))
    except TrainingFailedError as exc:
        fail(f"sweep failed: {exc}", EXIT_FAILED)
    except KeyboardInterrupt:
        click.echo("raygrad: sweep interrupted; run the same command again to continue it", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if not result.complete:
        sys.exit(EXIT_INTERRUPTED)  # the summary already said how to continue
