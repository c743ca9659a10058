"""Training on 2 local Ray workers: the same results as in-process, recovery from a killed worker
(exactly-once data, identical final parameters), and Ctrl-C. Uses the session-wide ray_cluster."""
import os
import signal
import threading
import time

import numpy as np
import pytest

from dist.data import Dataset
from trainers import CheckpointConfig, RunConfig, ScalingConfig, TrainingInterrupted, session, train_loop
from trainer_helpers import blobs, final_parameters, make_trainer, read_records

pytestmark = pytest.mark.timeout(300)

STEPS_PER_EPOCH = 8  # 256 rows / (2 workers * batch 16)


@pytest.fixture(scope="module")
def two_workers(ray_cluster, tmp_path_factory):
    """The uninterrupted 2-worker run the other tests compare with."""
    return make_trainer(tmp_path_factory.mktemp("ray"), "baseline", workers=2, every_n_steps=3).fit()


def test_two_workers_reach_the_in_process_metrics(two_workers, tmp_path):
    # The same global batch (2 x 16 on Ray, 32 in process) and step count; the batches hold other rows.
    local = make_trainer(tmp_path, "local", workers=0, batch_size=32, every_n_steps=3).fit()
    assert two_workers.metrics["step"] == local.metrics["step"] == 3 * STEPS_PER_EPOCH
    assert [r["epoch"] for r in two_workers.metrics_history if "eval_loss" in r] == [0, 1, 2]
    assert two_workers.metrics["accuracy"] > 0.85
    assert two_workers.metrics["accuracy"] == pytest.approx(local.metrics["accuracy"], abs=0.05)
    assert two_workers.metrics["eval_loss"] == pytest.approx(local.metrics["eval_loss"], abs=0.05)
    assert two_workers.metrics["train_loss"] == pytest.approx(local.metrics["train_loss"], abs=0.05)


def test_a_killed_worker_is_restarted_from_the_checkpoint(two_workers, tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    # rank 1 dies in step 13 (epoch 1); the latest checkpoint is the one of step 12
    result = make_trainer(tmp_path, "killed", workers=2, every_n_steps=3, record_dir=records, kill_at=13,
                          max_failures=1).fit()
    total = 3 * STEPS_PER_EPOCH
    batches = {rank: read_records(records, 0, rank)[:12] + read_records(records, 1, rank) for rank in (0, 1)}
    assert [len(b) for b in batches.values()] == [total, total]  # the restart did steps 13..24 only
    for epoch in range(3):
        seen = [i for rank in (0, 1) for batch in batches[rank][epoch * 8:(epoch + 1) * 8] for i in batch]
        assert sorted(seen) == list(range(256)), f"epoch {epoch}: not every sample exactly once"
    expected, actual = final_parameters(two_workers), final_parameters(result)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], atol=1e-5, rtol=0, err_msg=name)
    assert result.metrics["accuracy"] == pytest.approx(two_workers.metrics["accuracy"], abs=1e-6)
    assert [r["iteration"] for r in result.metrics_history] == list(range(1, len(result.metrics_history) + 1))


def wait_for_ctrl_c(config):
    """Checkpoint once, tell the test, then keep stepping until the run is stopped."""
    session.report({"step": 1}, checkpoint={"value": 1.0})
    if session.get_context().world_rank == 0:
        open(config["marker"], "w").close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        session.report_progress(step=2)  # where a rank notices that the run was stopped
        time.sleep(0.05)
    raise AssertionError("never stopped")


def test_ctrl_c_stops_every_rank_and_keeps_the_checkpoint(ray_cluster, tmp_path, sigint_raises):
    marker = tmp_path / "checkpointed"

    def press_ctrl_c():
        while not marker.exists():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    run = RunConfig(name="ctrl-c", storage_path=str(tmp_path), checkpoint_config=CheckpointConfig())
    with pytest.raises(TrainingInterrupted, match="last checkpoint: .*checkpoint_000000001"):
        train_loop(wait_for_ctrl_c, {"marker": str(marker)}, scaling=ScalingConfig(num_workers=2), run=run,
                   datasets={"train": Dataset(blobs(32, 0))})
    assert os.path.exists(tmp_path / "ctrl-c" / "checkpoints" / "checkpoint_000000001.safetensors")
