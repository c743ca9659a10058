"""Trainer and train_loop in the driver process: files, resume, corrupt checkpoints, retries, Ctrl-C."""
import csv
import json
import os

import numpy as np
import pytest

from dist.data import Dataset
from trainers import (
    CheckpointConfig, FailureConfig, RunConfig, TrainingFailedError, TrainingInterrupted, session, train_loop,
)
from trainer_helpers import blobs, make_trainer, read_records

pytestmark = pytest.mark.timeout(180)


def test_fit_reports_each_epoch_and_writes_metrics_files(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYGRAD_PLOT", "1")
    result = make_trainer(tmp_path, "files", max_epochs=2).fit()
    assert [row["epoch"] for row in result.metrics_history] == [0, 1]
    assert result.metrics["accuracy"] > 0.8 and 0 < result.metrics["eval_loss"] < 0.7
    for key in ("train_loss", "roc_auc", "samples_per_s", "step_time_s", "step_time_s_max", "lr", "iteration"):
        assert key in result.metrics, key
    run = tmp_path / "files"
    assert result.path == str(run)
    with open(run / "metrics.jsonl") as f:
        assert [json.loads(line)["epoch"] for line in f] == [0, 1]
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1] and float(rows[-1]["accuracy"]) == result.metrics["accuracy"]
    assert [c.epoch for c in result.checkpoints] == [0, 1]
    assert result.best_checkpoint.path == result.checkpoints[-1].path
    pytest.importorskip("matplotlib")
    assert (run / "curves.png").stat().st_size > 0


def test_tensorboard_event_files(tmp_path, monkeypatch):
    pytest.importorskip("tensorboardX")
    monkeypatch.setenv("RAYGRAD_TENSORBOARD", "1")
    make_trainer(tmp_path, "tb", max_epochs=1).fit()
    events = os.listdir(tmp_path / "tb" / "tensorboard")
    assert any(name.startswith("events.out.tfevents") for name in events), events


def test_rerun_with_the_same_name_resumes_at_the_next_epoch(tmp_path):
    first = make_trainer(tmp_path, "resume", max_epochs=2, record_dir=_folder(tmp_path / "first")).fit()
    second = make_trainer(tmp_path, "resume", max_epochs=4, record_dir=_folder(tmp_path / "second")).fit()
    assert [row["epoch"] for row in second.metrics_history] == [0, 1, 2, 3]
    assert second.metrics_history[:2] == first.metrics_history
    # 256 rows / batch 16 = 16 steps per epoch: the second driver run trained epochs 2 and 3 only
    assert len(read_records(tmp_path / "second", 0, 0)) == 32
    assert second.metrics["step"] == 64


def test_resume_false_moves_the_old_outputs_aside(tmp_path):
    make_trainer(tmp_path, "fresh", max_epochs=1).fit()
    (tmp_path / "fresh" / "job.yaml").write_text("kept: true\n")  # what `raygrad train` saves before fit()
    again = make_trainer(tmp_path, "fresh", max_epochs=1, resume=False).fit()
    assert [row["epoch"] for row in again.metrics_history] == [0] and len(again.checkpoints) == 1
    aside = [name for name in os.listdir(tmp_path) if name.startswith("fresh.")]
    assert len(aside) == 1 and {"checkpoints", "metrics.jsonl"} <= set(os.listdir(tmp_path / aside[0]))
    assert (tmp_path / "fresh" / "job.yaml").exists()


def test_truncated_latest_checkpoint_falls_back_to_the_one_before(tmp_path, capsys):
    first = make_trainer(tmp_path, "damaged", max_epochs=2).fit()
    latest = first.checkpoints[-1].path
    with open(latest, "r+b") as f:
        f.truncate(os.path.getsize(latest) // 2)
    capsys.readouterr()
    records = _folder(tmp_path / "records")
    second = make_trainer(tmp_path, "damaged", max_epochs=3, record_dir=records).fit()
    assert "is damaged; resuming from the one before it" in capsys.readouterr().out
    assert [row["epoch"] for row in second.metrics_history] == [0, 1, 2]  # epoch 1 again, then 2
    assert len(read_records(records, 0, 0)) == 32


# ------------------------------------------------------------------------------ train_loop
def recording_loop(config):
    """A hand-written loop: checkpoints every 3 steps, records ids, fails once at config['fail_at']."""
    import tensor
    import tensor.nn.functional as F
    from trainer_helpers import RecordingMLP

    ctx = session.get_context()
    model = session.prepare_model(RecordingMLP())
    optimizer = tensor.optim.SGD(model.parameters(), lr=0.1)
    step = 0
    start = session.get_checkpoint()
    if start is not None:
        state = start.load()
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        session.load_rng_state(state)
    train = session.get_dataset_shard("train", batch_size=16, shuffle=True)
    for epoch in range(train.resume_epoch(), config["epochs"]):
        train.set_epoch(epoch)
        for batch in train:
            step += 1
            with open(os.path.join(config["records"], f"a{ctx.attempt}.txt"), "a") as f:
                f.write(f"{epoch} {step} " + " ".join(map(str, batch["id"].numpy().tolist())) + "\n")
            if ctx.attempt == 0 and step == config.get("fail_at"):
                raise config.get("error", ValueError)("injected failure")
            loss = F.cross_entropy(model(batch["x"], batch["id"]), batch["y"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            session.report_progress(epoch=epoch, step=step, loss=loss.item())
            if step % 3 == 0:
                session.report({"epoch": epoch, "step": step, "loss": loss.item()},
                               checkpoint={"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                           "step": step})


def _loop_run(tmp_path, name, max_failures=1, **config):
    run = RunConfig(name=name, storage_path=str(tmp_path), seed=3, checkpoint_config=CheckpointConfig(num_to_keep=2),
                    failure_config=FailureConfig(max_failures=max_failures))
    config = {"epochs": 2, "records": _folder(tmp_path / f"{name}-records"), **config}
    return train_loop(recording_loop, config, run=run, datasets={"train": Dataset(blobs(100, 0))}), config


def test_a_failed_attempt_restarts_from_the_checkpoint_and_sees_each_sample_once(tmp_path):
    result, config = _loop_run(tmp_path, "retry", fail_at=8)  # checkpoint at step 6, failure in step 8
    lines = {a: _read_loop_records(config["records"], a) for a in (0, 1)}
    assert [step for _, step, _ in lines[1]][:1] == [7]  # the restart continued after the checkpoint's step
    seen = [(epoch, ids) for epoch, step, ids in lines[0] if step <= 6] + [(e, ids) for e, _, ids in lines[1]]
    for epoch in (0, 1):
        ids = np.concatenate([i for e, i in seen if e == epoch])
        # 100 rows, batch 16, drop_last: 96 rows per epoch, each at most once, none twice
        assert len(ids) == 96 and len(set(ids.tolist())) == 96, epoch
    assert result.metrics["step"] == 12


def test_failures_past_max_failures_raise_with_the_rank_error(tmp_path):
    with pytest.raises(TrainingFailedError) as info:
        _loop_run(tmp_path, "broken", max_failures=0, fail_at=2)
    assert "ValueError: injected failure" in info.value.errors[0]
    assert info.value.failures == 1 and "max_failures=0" in str(info.value)


def test_ctrl_c_stops_keeps_checkpoints_and_the_rerun_resumes(tmp_path):
    with pytest.raises(TrainingInterrupted, match="last checkpoint: .*checkpoint_000000003"):
        _loop_run(tmp_path, "stopped", fail_at=5, error=KeyboardInterrupt)
    result, config = _loop_run(tmp_path, "stopped", records=_folder(tmp_path / "after"))
    assert [row["step"] for row in result.metrics_history] == [3, 6, 9, 12]
    assert _read_loop_records(config["records"], 0)[0][1] == 4  # continued after the checkpoint of step 3


def _read_loop_records(folder, attempt):
    path = os.path.join(folder, f"a{attempt}.txt")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = [line.split() for line in f if line.strip()]
    return [(int(r[0]), int(r[1]), np.array(r[2:], dtype=np.int64)) for r in rows]


def _folder(path) -> str:
    os.makedirs(path, exist_ok=True)
    return str(path)


def halve_every_epoch(optimizer):
    import tensor

    return tensor.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)


def test_scheduler_steps_per_epoch_and_resumes_with_its_state(tmp_path):
    make_trainer(tmp_path, "sched", max_epochs=2, scheduler=halve_every_epoch).fit()
    resumed = make_trainer(tmp_path, "sched", max_epochs=3, scheduler=halve_every_epoch).fit()
    assert [row["lr"] for row in resumed.metrics_history] == pytest.approx([0.2, 0.1, 0.05])


def test_max_steps_stops_mid_epoch_with_a_checkpoint(tmp_path):
    result = make_trainer(tmp_path, "steps", max_epochs=None, max_steps=5, scheduler=halve_every_epoch,
                          scheduler_interval="step").fit()
    assert result.metrics["step"] == 5 and result.checkpoint.step == 5
    assert result.metrics["lr"] == pytest.approx(0.2 * 0.5 ** 5)
