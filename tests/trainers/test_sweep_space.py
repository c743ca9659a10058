"""Sweep spaces, schedulers, SWEEP.yaml and the `raygrad sweep` command: everything wrong is refused
before a trial starts, with a message that names the value and the fix. No Ray here."""
import os
import sys

import pytest
from click.testing import CliRunner

from trainers import cli
from trainers.errors import ConfigError
from trainers.job import load_job
from trainers import sweep
from trainers.sweep_config import load_sweep
from trainers.sweep_space import make_scheduler, make_searcher, parse_space

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIGITS = os.path.join(REPO, "examples", "vision", "digits.yaml")


@pytest.fixture(scope="module")
def job():
    return load_job(DIGITS)


def test_a_good_space_becomes_tune_domains_and_fixed_values(job):
    from ray.tune.search.sample import Categorical, Float, Integer

    space = parse_space({"optimizer.lr": {"loguniform": [1e-4, 1e-2]}, "model.kwargs.channels": {"grid": [8, 16]},
                         "model.kwargs.dropout": {"uniform": [0.0, 0.3]}, "data.batch_size": {"choice": [16, 32]},
                         "run.seed": {"randint": [0, 10]}, "epochs": 3, "scheduler.T_max": 3}, job)
    assert isinstance(space["optimizer.lr"], Float) and isinstance(space["model.kwargs.dropout"], Float)
    assert space["model.kwargs.channels"] == {"grid_search": [8, 16]}
    assert isinstance(space["data.batch_size"], Categorical) and isinstance(space["run.seed"], Integer)
    assert space["epochs"] == 3 and space["scheduler.T_max"] == 3


@pytest.mark.parametrize("space, message", [
    ({"optimizer.lr": {"logunifrom": [1e-4, 1e-2]}}, "unknown distribution 'logunifrom'; did you mean 'loguniform'?"),
    ({"optimizer.lr": {"uniform": [0.3, 0.1]}}, "uniform low=0.3 is greater than high=0.1; write [0.1, 0.3]"),
    ({"optimizer.lr": {"choice": []}}, "choice needs a non-empty list of values, got []"),
    ({"model.kwargs.channels": {"grid": []}}, "grid needs a non-empty list"),
    ({"optimizer.lrr": {"choice": [0.1]}},
     "space key 'optimizer.lrr': unknown key 'lrr' in 'optimizer'; did you mean 'lr'?"),
    ({"optimiser.lr": 0.1}, "unknown key 'optimiser'; did you mean 'optimizer'?"),
    ({"model.kwargs.chanels": {"grid": [8]}}, "DigitsCNN has no argument 'chanels'; did you mean 'channels'?"),
    ({"optimizer.kwargs.weight_decy": {"choice": [0.0]}}, "AdamW has no argument 'weight_decy'; did you mean "),
    ({"scheduler.T_maxx": 3}, "CosineAnnealingLR has no argument 'T_maxx'; did you mean 'T_max'?"),
    ({"data.batch_size": {"uniform": [16, 64]}}, "'data.batch_size' must be an integer, got float 16.0"),
    ({"data.batch_size": {"choice": [32, "big"]}}, "space key 'data.batch_size' = 'big'"),
    ({"optimizer.lr": [0.1, 0.01]}, "a bare list [0.1, 0.01] is ambiguous; write {grid: [0.1, 0.01]}"),
    ({"optimizer.lr": {"loguniform": [0, 0.1]}}, "loguniform needs low > 0"),
    ({"optimizer.lr": {"uniform": [0.1]}}, "uniform takes [low, high] (two numbers), got [0.1]"),
    ({"run.seed": {"randint": [0, 2.5]}}, "randint takes two integers [low, high)"),
    ({"optimizer.lr": {"uniform": [0.1, 0.1]}}, "low and high are both 0.1"),
    ({"optimizer.lr": {"choice": [0.1], "grid": [0.2]}}, "must name one distribution"),
    ({}, "space must be a non-empty mapping"),
])
def test_bad_spaces_are_refused_with_the_value_and_the_fix(job, space, message):
    with pytest.raises(ConfigError) as caught:
        parse_space(space, job)
    assert message in str(caught.value)


def test_a_job_without_a_scheduler_refuses_its_options(job):
    job = {**job, "scheduler": None}
    with pytest.raises(ConfigError, match="the job has no LR scheduler"):
        parse_space({"scheduler.T_max": 5}, job)


def test_grid_search_needs_values_and_optuna_takes_no_grid(job):
    grid = parse_space({"data.batch_size": {"choice": [16, 32]}}, job, search="grid")
    assert grid["data.batch_size"] == {"grid_search": [16, 32]}  # a choice is tried exhaustively
    with pytest.raises(ConfigError, match="search='grid' tries every value, but space key 'optimizer.lr' is a"):
        parse_space({"optimizer.lr": {"loguniform": [1e-4, 1e-2]}}, job, search="grid")
    with pytest.raises(ConfigError, match=r"search='optuna' .* write \{choice: \[8, 16\]\} instead"):
        parse_space({"model.kwargs.channels": {"grid": [8, 16]}}, job, search="optuna")
    with pytest.raises(ConfigError, match="search must be one of random, grid, optuna, got 'bayes'"):
        parse_space({"epochs": 2}, job, search="bayes")


def test_optuna_search_without_optuna_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if it were not installed
    with pytest.raises(ConfigError, match="pip install optuna"):
        make_searcher("optuna", "accuracy", "max", 0, None)


def test_schedulers_from_names_and_options(job):
    from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule, PopulationBasedTraining

    space = parse_space({"optimizer.lr": {"loguniform": [1e-4, 1e-2]}, "model.kwargs.channels": {"grid": [8, 16]}},
                        job)
    asha = make_scheduler({"type": "asha", "grace_period": 1}, job, space)
    assert isinstance(asha, ASHAScheduler) and asha._max_t == job["epochs"]  # max_t defaults to the job's epochs
    assert isinstance(make_scheduler("median", job, space), MedianStoppingRule)
    pbt = make_scheduler({"type": "pbt", "perturbation_interval": 2}, job, space)
    # PBT mutates the sampled keys, not the grid of widths (another trial's weights would not fit)
    assert isinstance(pbt, PopulationBasedTraining) and set(pbt._hyperparam_mutations) == {"optimizer.lr"}
    assert make_scheduler(None, job, space) is None and make_scheduler("fifo", job, space) is None


@pytest.mark.parametrize("spec, message", [
    ("ashaa", "scheduler type 'ashaa' is unknown; did you mean 'asha'?"),
    ({"type": "asha", "grace": 1}, "scheduler asha has no option 'grace'; did you mean 'grace_period'?"),
    ({"type": "median", "metric": "accuracy"}, "set 'metric' on the sweep, not on its scheduler"),
    ({"grace_period": 1}, "a mapping with 'type'"),
    ({"type": "pbt", "hyperparam_mutations": {"optimizer.lrr": {"choice": [0.1]}}}, "did you mean 'lr'?"),
])
def test_bad_schedulers_are_refused(job, spec, message):
    space = parse_space({"optimizer.lr": {"loguniform": [1e-4, 1e-2]}}, job)
    with pytest.raises(ConfigError) as caught:
        make_scheduler(spec, job, space)
    assert message in str(caught.value)


def test_pbt_needs_a_checkpoint_at_every_perturbation(job):
    job = {**job, "checkpoint": {**job["checkpoint"], "every_n_epochs": 2}}
    space = parse_space({"optimizer.lr": {"loguniform": [1e-4, 1e-2]}}, job)
    with pytest.raises(ConfigError, match="perturbs every 1 report.*checkpoints every 2 epochs"):
        make_scheduler("pbt", job, space)


@pytest.mark.parametrize("kwargs, message", [
    ({"space": {"optimizer.lrr": {"choice": [0.1]}}}, "did you mean 'lr'?"),
    ({"mode": "maximum"}, "mode must be 'max' or 'min', got 'maximum'"),
    ({"num_samples": 0}, "num_samples must be an integer >= 1, got 0"),
    ({"max_concurrent": 0}, "max_concurrent must be an integer >= 1, got 0"),
    ({"name": "a/b"}, "name must be 1-100 letters"),
    ({"overrides": ["data.train=missing.parquet"]}, "missing.parquet"),
])
def test_sweep_refuses_bad_arguments_before_any_trial(tmp_path, kwargs, message):
    arguments = {"job": DIGITS, "space": {"optimizer.lr": {"choice": [0.01]}}, "metric": "accuracy",
                 "storage_path": str(tmp_path), **kwargs}
    with pytest.raises((ConfigError, FileNotFoundError)) as caught:
        sweep(**arguments)
    assert message in str(caught.value)
    assert not any(tmp_path.iterdir())  # nothing was started


# ----------------------------------------------------------------------------------- SWEEP.yaml
def _sweep_file(tmp_path, text):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return str(path)


def test_a_sweep_file_gives_sweep_arguments(tmp_path):
    path = _sweep_file(tmp_path, f"job: {os.path.relpath(DIGITS, tmp_path)}\nmetric: eval_loss\nmode: min\n"
                                 "space: {optimizer.lr: {loguniform: [1.0e-4, 1.0e-2]}}\n"
                                 "set: {epochs: 2, scheduler.T_max: 2, data.columns: {a: 1}}\nscheduler: asha\n")
    kwargs = load_sweep(path, ["run.seed=3"])
    assert kwargs["job"] == DIGITS and kwargs["metric"] == "eval_loss" and kwargs["mode"] == "min"
    assert kwargs["overrides"] == ["epochs=2", "scheduler.T_max=2", "data.columns={a: 1}", "run.seed=3"]
    assert kwargs["scheduler"] == "asha" and kwargs["space"] == {"optimizer.lr": {"loguniform": [1e-4, 1e-2]}}


@pytest.mark.parametrize("text, message", [
    ("job: j.yaml\nmetric: a\nspace: {epochs: 1}\nnum_sample: 3\n",
     "unknown key 'num_sample'; did you mean 'num_samples'?"),
    ("job: j.yaml\nspace: {epochs: 1}\n", "is missing metric"),
    ("[1, 2]\n", "must hold a mapping"),
    ("job: j.yaml\nmetric: a\nspace: {epochs: 1}\nset: [epochs=1]\n", "set must map job keys to values"),
])
def test_bad_sweep_files_are_refused(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        load_sweep(_sweep_file(tmp_path, text))
    assert message in str(caught.value)


def test_the_example_sweep_file_is_valid():
    kwargs = load_sweep(os.path.join(REPO, "examples", "sweeps", "sweep.yaml"))
    job = load_job(kwargs["job"], kwargs["overrides"])
    space = parse_space(kwargs["space"], job, kwargs["search"])
    assert set(space) == {"optimizer.lr", "model.kwargs.channels", "model.kwargs.dropout"}
    assert make_scheduler(kwargs["scheduler"], job, space) is not None


def test_cli_sweep_has_help_and_refuses_bad_files_with_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli.main, ["sweep", "--help"])
    assert result.exit_code == 0 and "Example" in result.output
    bad = _sweep_file(tmp_path, f"job: {DIGITS}\nmetric: accuracy\nspace: {{optimizer.lr: {{uniform: [0.3, 0.1]}}}}\n")
    result = runner.invoke(cli.main, ["sweep", bad, "--storage-path", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "low=0.3 is greater than high=0.1" in result.output and "Traceback" not in result.output
    result = runner.invoke(cli.main, ["sweep", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "does not exist" in result.output
