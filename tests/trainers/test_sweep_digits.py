"""Sweeps on Ray Tune end to end, on a slice of the digits data with a 4-channel CNN and 2-3 epochs:
ASHA stopping the bad learning rates, the results files, best_job.yaml reproducing the best trial,
an interrupted sweep resuming, multi-worker trials inside their placement group, PBT cloning
checkpoints, and a metric that is never reported. Uses the session-wide ray_cluster (4 CPUs)."""
import json
import os
import signal
import time

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from ray import tune

from trainers import cli
from trainers.errors import ConfigError, TrainingFailedError
from trainers import sweep

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VISION = os.path.join(REPO, "examples", "vision")
GOOD, BAD = [0.02, 0.01], [1e-6, 1e-6]

JOB = """
name: tiny-digits
model: {{class: "{model}", kwargs: {{channels: 4, dropout: 0.0}}}}
data:
  train: train.parquet
  eval: test.parquet
  columns: {{image: {{dtype: float32, shape: [1, 8, 8]}}, label: {{dtype: int64}}}}
  transform: "{vision}/model.py:scale_pixels"
  features: image
  target: label
  batch_size: 32
optimizer: {{name: AdamW, lr: 0.01}}
loss: cross_entropy
metrics: [accuracy]
epochs: 3
checkpoint: {{num_to_keep: 2, score_metric: accuracy, score_mode: max}}
run: {{storage_path: "{folder}/runs", seed: 0}}
"""


def write_job(folder, model=f"{VISION}/model.py:DigitsCNN") -> str:
    """A tiny digits job in `folder`: 256 training rows, 128 evaluation rows."""
    pq.write_table(pq.read_table(f"{VISION}/data/digits_train.parquet").slice(0, 256), folder / "train.parquet")
    pq.write_table(pq.read_table(f"{VISION}/data/digits_test.parquet").slice(0, 128), folder / "test.parquet")
    path = folder / "job.yaml"
    path.write_text(JOB.format(model=model, vision=VISION, folder=folder))
    return str(path)


def read_csv(path):
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))


def run_history(run_folder) -> list[dict]:
    with open(os.path.join(run_folder, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


# -------------------------------------------------------------------------------- ASHA, 2 at a time
@pytest.fixture(scope="module")
def asha(ray_cluster, tmp_path_factory):
    folder = tmp_path_factory.mktemp("asha")
    job = write_job(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAYGRAD_PLOT", "1")  # the sweep's curves.png
        result = sweep(job, {"optimizer.lr": {"grid": GOOD + BAD}}, "accuracy", "max", max_concurrent=2,
                       scheduler={"type": "asha", "grace_period": 1, "max_t": 3, "reduction_factor": 2},
                       workers_per_trial=0, name="asha", storage_path=str(folder / "sweeps"))
    return folder, result


def test_a_sweep_of_four_trials_completes_and_asha_stops_the_bad_ones(asha):
    _, result = asha
    assert result.complete and len(result.trials) == 4
    by_lr = {}
    for row in result.trials:
        by_lr.setdefault(row.config["optimizer.lr"], []).append(row)
    for row in by_lr[BAD[0]]:  # the good trials were ahead at the first rung: the bad ones stop there
        assert row.status == "stopped early" and row.iterations == 1
    # The first good trial at a rung always continues; the second may stop if it is behind it.
    assert any(row.status == "finished" and row.iterations == 3 for lr in GOOD for row in by_lr[lr])
    assert all(row.iterations < 3 for row in result.trials if row.status == "stopped early")
    assert all(row.error == "" for row in result.trials)


def test_the_results_files_hold_every_trial_and_the_best(asha):
    _, result = asha
    rows = read_csv(os.path.join(result.path, "results.csv"))
    assert len(rows) == 4 and {"trial", "status", "iterations", "optimizer.lr", "accuracy", "best_accuracy",
                                "checkpoint", "run", "error"} <= set(rows[0])
    assert result.best_metric == max(float(row["best_accuracy"]) for row in rows)
    with open(os.path.join(result.path, "results.jsonl")) as f:
        assert [json.loads(line)["trial"] for line in f] == [row["trial"] for row in rows]
    with open(os.path.join(result.path, "best.json")) as f:
        best = json.load(f)
    assert best["value"] == result.best_metric and best["config"] == result.best_config
    assert result.best_config["optimizer.lr"] in GOOD
    assert os.path.exists(result.best_checkpoint) and result.best_checkpoint.endswith(".safetensors")
    assert os.path.getsize(os.path.join(result.path, "curves.png")) > 0


def test_the_best_job_yaml_reproduces_the_best_trial(asha):
    folder, result = asha
    outcome = CliRunner().invoke(cli.main, ["train", result.best_job])
    assert outcome.exit_code == 0, outcome.output
    again = run_history(os.path.join(folder, "runs", "asha-best"))
    trial = run_history(result.best.run)
    assert [row["epoch"] for row in again] == [row["epoch"] for row in trial] == [0, 1, 2]
    for mine, theirs in zip(again, trial):
        assert mine["eval_loss"] == pytest.approx(theirs["eval_loss"], rel=1e-4)
        assert mine["accuracy"] == pytest.approx(theirs["accuracy"], abs=1e-9)
    assert again[-1]["accuracy"] == result.best.last


# ----------------------------------------------------------------------------------------- resume
class InterruptAfter(tune.Callback):
    """Ctrl-C (SIGINT to this process, which Tune handles) once `trials` trials have completed."""

    def __init__(self, trials: int):
        self.trials, self.completed = trials, 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.completed += 1
        if self.completed == self.trials:
            os.kill(os.getpid(), signal.SIGINT)


def test_an_interrupted_sweep_continues_where_it_stopped(ray_cluster, tmp_path, sigint_raises):
    job = write_job(tmp_path)
    arguments = dict(job=job, space={"optimizer.lr": {"grid": [0.02, 0.01, 0.005, 0.003]}}, metric="accuracy",
                     max_concurrent=2, workers_per_trial=0, name="resume", storage_path=str(tmp_path / "sweeps"),
                     overrides=["epochs=2"])
    first = sweep(**arguments, callbacks=[InterruptAfter(1)])
    assert not first.complete
    done = {row.trial for row in first.trials if row.status == "finished"}
    assert done and len(done) < 4
    lines = {trial: _result_lines(first.path, trial) for trial in done}

    second = sweep(**arguments)
    assert second.complete and len(second.trials) == 4
    assert all(row.status == "finished" and row.iterations == 2 for row in second.trials)
    assert {trial: _result_lines(second.path, trial) for trial in done} == lines  # not trained again
    for row in second.trials:  # an unfinished trial resumed from its checkpoint: no report twice
        assert [r["iteration"] for r in run_history(row.run)] == [1, 2]
    with pytest.raises(ConfigError, match="started with other settings .*metric.*--no-resume"):
        sweep(**{**arguments, "metric": "eval_loss", "mode": "min"})


def _result_lines(path, trial):
    with open(os.path.join(path, f"trial_{trial}", "result.json")) as f:
        return len(f.readlines())


# ------------------------------------------------------------------------ multi-worker trials
RECORDING_MODEL = '''
import os
import ray
from model import DigitsCNN


class PlacedCNN(DigitsCNN):
    """Writes where its rank runs (placement group, process) on construction."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        record = os.path.join(os.path.dirname(os.path.abspath(__file__)), "placed")
        os.makedirs(record, exist_ok=True)
        with open(os.path.join(record, str(os.getpid())), "w") as f:
            f.write(ray.get_runtime_context().get_placement_group_id() or "none")
'''


def test_multi_worker_trials_run_inside_their_placement_group_and_stop_cleanly(ray_cluster, tmp_path):
    from ray.util.placement_group import placement_group_table

    (tmp_path / "placed_model.py").write_text(RECORDING_MODEL)
    (tmp_path / "model.py").write_text(open(f"{VISION}/model.py").read())
    job = write_job(tmp_path, model="placed_model.py:PlacedCNN")
    # eval_loss: with 4 steps an epoch, the good learning rate is ahead in loss before it is in accuracy.
    result = sweep(job, {"optimizer.lr": {"grid": [0.02, 1e-6]}}, "eval_loss", "min", workers_per_trial=2,
                   scheduler={"type": "asha", "grace_period": 1, "max_t": 2, "reduction_factor": 2},
                   max_concurrent=1, name="workers", storage_path=str(tmp_path / "sweeps"), overrides=["epochs=2"])
    assert result.complete and [row.status for row in result.trials] == ["finished", "stopped early"]
    placed = {int(pid): open(tmp_path / "placed" / pid).read() for pid in os.listdir(tmp_path / "placed")}
    assert len(placed) == 4 and len(set(placed.values())) == 2  # 2 ranks in each trial's placement group
    table = placement_group_table()
    for pg_id in set(placed.values()):  # the trial's group: its own bundle, then one per worker
        assert [table[pg_id]["bundles"][i] for i in range(3)] == [{"CPU": 1.0}] * 3
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in placed) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(_alive(pid) for pid in placed)  # the stopped trial's workers are gone too


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ---------------------------------------------------------------------------------------------- PBT
def test_pbt_clones_the_better_trial_and_continues_with_its_own_values(ray_cluster, tmp_path):
    job = write_job(tmp_path)
    result = sweep(job, {"optimizer.lr": {"grid": [0.02, 1e-6]}}, "accuracy", "max", max_concurrent=2,
                   workers_per_trial=0, name="pbt", storage_path=str(tmp_path / "sweeps"),
                   scheduler={"type": "pbt", "perturbation_interval": 1, "quantile_fraction": 0.5, "synch": True,
                              "resample_probability": 1.0,
                              "hyperparam_mutations": {"optimizer.lr": {"choice": [0.02, 0.01]}}})
    assert result.complete and len(result.trials) == 2
    assert any(name.startswith("pbt_policy") for name in os.listdir(result.path))  # an exploit happened
    for row in result.trials:
        assert row.config["optimizer.lr"] in (0.02, 0.01)  # the 1e-6 trial took a value from the mutations
        history = run_history(row.run)
        assert [r["iteration"] for r in history] == [1, 2, 3]  # a clone continues its donor's run
        assert history[-1]["accuracy"] > 0.3  # ... with the donor's weights


# --------------------------------------------------------------------------------- missing metric
def test_a_metric_the_trials_never_report_fails_the_sweep_early(ray_cluster, tmp_path):
    job = write_job(tmp_path)
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        sweep(job, {"optimizer.lr": {"grid": [0.02, 0.01, 0.005, 0.003]}}, "acc", "max", max_concurrent=1,
              workers_per_trial=0, name="nometric", storage_path=str(tmp_path / "sweeps"), overrides=["epochs=2"])
    message = str(caught.value)
    assert "never report metric 'acc' (did you mean 'accuracy'?)" in message
    assert "They report: accuracy, epoch, epoch_time_s, eval_loss" in message
    trials = [name for name in os.listdir(tmp_path / "sweeps" / "nometric") if name.startswith("trial_")]
    assert len(trials) == 1  # the sweep stopped at the first result, before the other trials were made
    assert time.monotonic() - started < 300


def test_a_sweep_whose_trials_all_fail_says_why(ray_cluster, tmp_path):
    (tmp_path / "broken.py").write_text("class Broken:\n    def __init__(self, **kwargs):\n"
                                        "        raise RuntimeError('broken on purpose')\n")
    job = write_job(tmp_path, model="broken.py:Broken")
    with pytest.raises(TrainingFailedError, match="every trial of the sweep failed; trial .*broken on purpose"):
        sweep(job, {"optimizer.lr": {"grid": [0.02, 0.01]}}, "accuracy", max_concurrent=2, workers_per_trial=0,
              name="broken", storage_path=str(tmp_path / "sweeps"))
    rows = read_csv(tmp_path / "sweeps" / "broken" / "results.csv")
    assert [row["status"] for row in rows] == ["error", "error"] and "broken on purpose" in rows[0]["error"]


# ------------------------------------------------------------------------------------------ Optuna
def test_optuna_search(ray_cluster, tmp_path):
    pytest.importorskip("optuna")
    job = write_job(tmp_path)
    result = sweep(job, {"optimizer.lr": {"loguniform": [1e-3, 3e-2]}, "data.batch_size": {"choice": [16, 32]}},
                   "eval_loss", "min", num_samples=2, max_concurrent=2, search="optuna", workers_per_trial=0,
                   name="optuna", storage_path=str(tmp_path / "sweeps"), overrides=["epochs=1"])
    assert result.complete and len(result.trials) == 2
    assert all(1e-3 <= row.config["optimizer.lr"] <= 3e-2 for row in result.trials)
    assert result.best_metric == min(row.best for row in result.trials)
