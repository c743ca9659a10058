"""What sweeps need from the layers below: train_loop's on_report (every report on the driver, and a way
to stop the run), a WorkerGroup inside a placement group it borrows, and checkpoints rewritten for a
PBT trial's perturbed values. Ray tests use the session-wide ray_cluster."""
import time

import pytest

from trainer_helpers import make_trainer
from trainers.sweep_trial import retune

pytestmark = pytest.mark.timeout(300)


# ------------------------------------------------------------------------------------ on_report
def test_on_report_sees_every_epoch_and_stops_an_in_process_run(tmp_path):
    seen = []

    def on_report(row, checkpoint):
        seen.append((row["epoch"], row["iteration"], checkpoint))
        return row["epoch"] == 1  # stop after the second epoch

    result = make_trainer(tmp_path, "hooked", max_epochs=4, max_failures=2).fit(on_report=on_report)
    assert [(epoch, iteration) for epoch, iteration, _ in seen] == [(0, 1), (1, 2)]
    assert all(checkpoint is not None and checkpoint.path.endswith(".safetensors") for *_, checkpoint in seen)
    assert seen[-1][2].metrics["accuracy"] == result.metrics["accuracy"]
    assert len(result.metrics_history) == 2 and result.checkpoint.epoch == 1  # stopped, and not restarted


def test_a_stopped_run_resumes_from_its_last_checkpoint(tmp_path):
    make_trainer(tmp_path, "again", max_epochs=3).fit(on_report=lambda row, checkpoint: True)
    result = make_trainer(tmp_path, "again", max_epochs=3).fit()
    assert [row["epoch"] for row in result.metrics_history] == [0, 1, 2]


def test_on_report_stops_ray_workers_without_a_restart(ray_cluster, tmp_path):
    seen = []

    def on_report(row, checkpoint):
        seen.append(row["epoch"])
        return True

    started = time.monotonic()
    result = make_trainer(tmp_path, "ray-hooked", workers=2, max_epochs=30, max_failures=3).fit(on_report=on_report)
    assert seen == [0]  # reports that arrive while the ranks stop are recorded, not passed on
    assert result.metrics_history[0]["epoch"] == 0 and result.metrics["epoch"] < 29
    assert time.monotonic() - started < 200  # stopped, not trained for 30 epochs


# ------------------------------------------------------------------------- borrowed placement group
def _placement(_=None):
    import ray

    return ray.get_runtime_context().get_placement_group_id()


def test_worker_group_places_its_actors_in_a_borrowed_placement_group(ray_cluster):
    import ray
    from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group

    from dist import WorkerGroup

    pg = placement_group([{"CPU": 1}] * 3)
    ray.get(pg.ready(), timeout=60)
    try:
        with WorkerGroup(2, placement_group=pg, bundle_offset=1, name="borrowed-pg") as group:
            assert group.execute(_placement) == [pg.id.hex()] * 2
        assert placement_group_table(pg)["state"] == "CREATED"  # borrowed: left in place
    finally:
        remove_placement_group(pg)


@pytest.mark.parametrize("bundles, offset, match", [
    ([{"CPU": 1}] * 2, 1, "has 2 bundle.*need bundles 1..2"),
    ([{"CPU": 1}, {"CPU": 0.5}, {"CPU": 1}], 1, "bundle 1 .* holds .*asks for"),
])
def test_a_borrowed_placement_group_too_small_is_refused(ray_cluster, bundles, offset, match):
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    from dist import WorkerGroup

    pg = placement_group(bundles)
    ray.get(pg.ready(), timeout=60)
    try:
        with pytest.raises(ValueError, match=match):
            WorkerGroup(2, placement_group=pg, bundle_offset=offset, name="small-pg")
    finally:
        remove_placement_group(pg)


def test_bundle_offset_is_checked():
    from dist.worker_group import _check_args

    with pytest.raises(ValueError, match="bundle_offset must be an int >= 0, got -1"):
        _check_args(2, 1, 1, "PACK", 60, None, None, None, 30, 1, -1)


# ------------------------------------------------------------------------------------------ retune
def test_retune_moves_a_checkpoint_to_the_perturbed_values():
    state = {"optimizer": {"param_groups": [{"lr": 0.005, "initial_lr": 0.01, "weight_decay": 0.1, "params": [0]}]},
             "scheduler": {"base_lrs": [0.01], "_last_lr": [0.005], "last_epoch": 3}}
    retune(state, {"optimizer.lr": 0.01, "optimizer.kwargs.weight_decay": 0.1},
           {"optimizer.lr": 0.02, "optimizer.kwargs.weight_decay": 0.3})
    group = state["optimizer"]["param_groups"][0]
    assert group["lr"] == pytest.approx(0.01) and group["initial_lr"] == pytest.approx(0.02)  # schedule kept
    assert group["weight_decay"] == 0.3
    assert state["scheduler"]["base_lrs"] == [pytest.approx(0.02)]
    assert state["scheduler"]["_last_lr"] == [pytest.approx(0.01)] and state["scheduler"]["last_epoch"] == 3
