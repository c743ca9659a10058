"""Shard plans and exactly-once progress, on the pure classes (no Ray, no files)."""

import json

import numpy as np
import pytest

from dist.data import BatchSizeError, DataProgress, DataService, DataStateError, PlanConfig, RowRanges, ShardPlanner
from dist.data.ranges import stream_cycle, stream_slice
from dist.data.splits import select_rows, split_spec

# odd sizes on purpose: 7 units of uneven length, 127 rows
UNIT_ROWS = [13, 29, 1, 17, 31, 3, 33]
NUM_ROWS = sum(UNIT_ROWS)


def rank_ids(plan, batches=None):
    """The row ids a rank serves, in the order its loader yields them (window shuffle applied)."""
    ids = np.concatenate([np.arange(a, b) for a, b in zip(plan.starts, plan.stops)] or [np.empty(0, np.int64)])
    ordered = []
    for window in range(-(-plan.num_rows // plan.config.window_rows)):
        begin, end = plan.window_bounds(window)
        order = plan.window_order(window)
        chunk = ids[begin:end]
        ordered.append(chunk if order is None else chunk[order])
    flat = np.concatenate(ordered) if ordered else np.empty(0, np.int64)
    stop = len(flat) if batches is None else batches * plan.config.batch_size
    return flat[plan.skip_batches * plan.config.batch_size : stop]


# row ranges


def test_row_ranges_algebra_matches_python_sets():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a_ids, b_ids = rng.choice(200, 60, replace=False), rng.choice(200, 80, replace=False)
        a, b = RowRanges.from_ids(a_ids), RowRanges.from_ids(b_ids)
        assert set(a.union(b).to_ids()) == set(a_ids) | set(b_ids)
        assert set(a.difference(b).to_ids()) == set(a_ids) - set(b_ids)
        assert set(a.intersection(b).to_ids()) == set(a_ids) & set(b_ids)


def test_row_ranges_are_canonical():
    ranges = RowRanges([5, 0, 3, 10], [8, 3, 4, 10])
    assert ranges.to_pairs() == [[0, 4], [5, 8]]
    assert RowRanges.from_pairs([[0, 2], [2, 4], [6, 7]]).to_pairs() == [[0, 4], [6, 7]]


def test_stream_slice_and_cycle():
    starts, stops = np.array([10, 0, 50]), np.array([13, 2, 52])  # stream: 10 11 12 0 1 50 51
    s, e = stream_slice(starts, stops, 2, 6)
    assert np.concatenate([np.arange(a, b) for a, b in zip(s, e)]).tolist() == [12, 0, 1, 50]
    s, e = stream_cycle(starts, stops, 10)
    assert np.concatenate([np.arange(a, b) for a, b in zip(s, e)]).tolist() == [10, 11, 12, 0, 1, 50, 51, 10, 11, 12]


# one epoch


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("batch_size", [4, 5])
def test_drop_last_serves_each_row_at_most_once_and_drops_less_than_a_step(world_size, batch_size):
    config = PlanConfig(batch_size=batch_size, seed=1, shuffle_buffer=12)
    plan = ShardPlanner(UNIT_ROWS).plan(RowRanges.full(NUM_ROWS), 0, 0, world_size, config)
    served = np.concatenate([rank_ids(r) for r in plan.ranks])
    assert len(served) == len(set(served.tolist()))
    assert set(served.tolist()) <= set(range(NUM_ROWS))
    assert NUM_ROWS - len(served) == plan.dropped_rows < world_size * batch_size
    assert {r.num_batches for r in plan.ranks} == {NUM_ROWS // (world_size * batch_size)}


@pytest.mark.parametrize("world_size", [2, 3])
def test_pad_serves_every_row_and_repeats_only_the_padding(world_size):
    config = PlanConfig(batch_size=5, seed=1, drop_last=False)
    plan = ShardPlanner(UNIT_ROWS).plan(RowRanges.full(NUM_ROWS), 0, 0, world_size, config)
    served = np.concatenate([rank_ids(r) for r in plan.ranks])
    assert set(served.tolist()) == set(range(NUM_ROWS))
    assert len(served) - NUM_ROWS == plan.padded_rows < world_size * 5
    assert len({r.num_batches for r in plan.ranks}) == 1


def test_order_changes_with_epoch_and_repeats_with_seed():
    planner, rows = ShardPlanner(UNIT_ROWS), RowRanges.full(NUM_ROWS)
    config = PlanConfig(batch_size=4, seed=7)
    orders = [rank_ids(planner.plan(rows, epoch, 0, 2, config).ranks[0]).tolist() for epoch in range(3)]
    assert orders[0] != orders[1] != orders[2]
    again = ShardPlanner(UNIT_ROWS).plan(rows, 1, 0, 2, PlanConfig(batch_size=4, seed=7))
    assert rank_ids(again.ranks[0]).tolist() == orders[1]
    other_seed = planner.plan(rows, 1, 0, 2, PlanConfig(batch_size=4, seed=8))
    assert rank_ids(other_seed.ranks[0]).tolist() != orders[1]


def test_without_shuffle_rows_come_in_index_order():
    plan = ShardPlanner(UNIT_ROWS).plan(RowRanges.full(NUM_ROWS), 3, 0, 2, PlanConfig(batch_size=4, shuffle=False))
    assert rank_ids(plan.ranks[0]).tolist() == list(range(60))
    assert rank_ids(plan.ranks[1]).tolist() == list(range(60, 120))


def test_batch_larger_than_share_is_refused():
    with pytest.raises(BatchSizeError, match=r"batch_size=64 .* 127 rows over world_size=3 .* 42 rows per rank"):
        ShardPlanner(UNIT_ROWS).plan(RowRanges.full(NUM_ROWS), 0, 0, 3, PlanConfig(batch_size=64))


def test_plan_config_rejects_bad_values():
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        PlanConfig(batch_size=0)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        PlanConfig(batch_size=2, seed=-1)
    assert PlanConfig(batch_size=10, shuffle_buffer=25).window_rows == 30


# failures and resumes


def consume(progress, epoch, world_size, config, fractions, rng):
    """Every rank asks for its plan and consumes some of it; returns the ids consumed."""
    eaten = []
    for rank in range(world_size):
        plan = progress.plan(epoch, rank, world_size, config)
        batches = plan.skip_batches + int(round(fractions[rank] * plan.remaining_batches))
        eaten.append(rank_ids(plan, batches))
        progress.report(epoch, plan.generation, rank, batches)
    return np.concatenate(eaten)


@pytest.mark.parametrize("drop_last", [True, False])
@pytest.mark.parametrize("worlds", [(2, 3), (3, 2), (2, 2, 3), (3, 1)])
def test_resume_after_failures_consumes_each_row_exactly_once(worlds, drop_last):
    config = PlanConfig(batch_size=4, seed=3, shuffle_buffer=8, drop_last=drop_last)
    rng = np.random.default_rng(len(worlds))
    progress, eaten = DataProgress(UNIT_ROWS), []
    for world_size in worlds[:-1]:  # each of these fails part-way through the epoch
        eaten.append(consume(progress, 0, world_size, config, rng.uniform(0.1, 0.9, world_size), rng))
        state = json.loads(json.dumps(progress.state()))  # what a checkpoint stores
        progress = DataProgress(UNIT_ROWS)
        progress.load_state(state)
    last = worlds[-1]
    eaten.append(consume(progress, 0, last, config, [1.0] * last, rng))
    eaten = np.concatenate(eaten).tolist()
    assert progress.is_complete(0)
    if drop_last:
        assert len(eaten) == len(set(eaten))
        assert NUM_ROWS - len(eaten) < last * config.batch_size
    else:
        assert set(eaten) == set(range(NUM_ROWS))
        assert len(eaten) - NUM_ROWS < sum(worlds) * config.batch_size  # padding only
    assert set(eaten) == set(progress.consumed(0).to_ids().tolist())


def test_resumed_generation_gives_every_rank_the_same_batch_count():
    config = PlanConfig(batch_size=4, seed=0)
    progress = DataProgress(UNIT_ROWS)
    consume(progress, 0, 2, config, [0.5, 0.25], np.random.default_rng(0))
    progress.seal()
    plans = [progress.plan(0, rank, 3, config) for rank in range(3)]
    assert len({p.num_batches for p in plans}) == 1 and plans[0].generation == 1


def test_same_world_continues_after_consumed_batches_without_a_restart():
    config = PlanConfig(batch_size=4)
    progress = DataProgress(UNIT_ROWS)
    first = progress.plan(0, 0, 2, config)
    progress.report(0, 0, 0, 5)
    again = progress.plan(0, 0, 2, config)
    assert (again.generation, again.skip_batches) == (0, 5)
    assert rank_ids(again).tolist() == rank_ids(first)[20:].tolist()


def test_late_report_to_a_sealed_generation_is_ignored():
    config = PlanConfig(batch_size=4)
    progress = DataProgress(UNIT_ROWS)
    progress.plan(0, 0, 2, config)
    progress.report(0, 0, 0, 3)
    progress.seal()
    assert progress.report(0, 0, 0, 9) is False
    assert progress.consumed(0).num_rows == 12


def test_report_from_another_run_of_the_same_generation_is_ignored():
    config = PlanConfig(batch_size=4)
    progress = DataProgress(UNIT_ROWS)
    stale = progress.plan(0, 0, 2, config)
    progress.load_state({"epochs": {}})  # restored from an older checkpoint: generation 0 again
    fresh = progress.plan(0, 0, 2, config)
    assert fresh.generation == stale.generation == 0 and fresh.token != stale.token
    assert progress.report(0, 0, 0, 3, token=stale.token) is False
    assert progress.report(0, 0, 0, 3, token=fresh.token) is True


def test_report_beyond_the_plan_is_an_error():
    progress = DataProgress(UNIT_ROWS)
    plan = progress.plan(0, 1, 2, PlanConfig(batch_size=4))
    with pytest.raises(DataStateError, match=f"report of {plan.num_batches + 1} batches by rank 1"):
        progress.report(0, 0, 1, plan.num_batches + 1)


def test_resume_epoch_and_pruning():
    config = PlanConfig(batch_size=4)
    progress = DataProgress(UNIT_ROWS)
    assert progress.resume_epoch() == 0
    for epoch in range(4):
        consume(progress, epoch, 2, config, [1.0, 1.0], None)
    assert progress.resume_epoch() == 4
    assert sorted(int(e) for e in progress.state()["epochs"]) == [2, 3]
    consume(progress, 4, 2, config, [0.5, 0.5], None)
    assert progress.resume_epoch() == 4


# the service and its state


def descriptor(unit_rows=UNIT_ROWS, fingerprint="abc", split=None):
    return {"fingerprint": fingerprint, "unit_rows": list(unit_rows), "split": split}


def test_service_state_is_small_json_and_restores_into_a_new_service():
    config = PlanConfig(batch_size=4, seed=5).to_dict()
    service = DataService()
    service.data_register("train", descriptor())
    plan = service.data_plan("train", 0, 0, 2, config)
    service.data_report("train", 0, plan.generation, 0, 3)
    state = service.data_state()
    assert len(json.dumps(state)) < 1000
    restored = DataService()
    restored.load_data_state(json.loads(json.dumps(state)))  # before the dataset registers
    restored.data_register("train", descriptor())
    assert restored.data_plan("train", 0, 0, 3, config).generation == 1
    assert restored.data_state()["datasets"]["train"]["epochs"]["0"][0]["consumed"] == [3, 0]


def test_service_refuses_state_of_other_data():
    service = DataService()
    service.data_register("train", descriptor(fingerprint="abc"))
    state = service.data_state()
    other = DataService()
    other.data_register("train", descriptor(fingerprint="xyz"))
    with pytest.raises(DataStateError, match="recorded on other data .*fingerprint abc, now xyz"):
        other.load_data_state(state)
    with pytest.raises(DataStateError, match="already registered for other data"):
        other.data_register("train", descriptor(fingerprint="abc"))
    with pytest.raises(DataStateError, match="version"):
        other.load_data_state({"version": 99, "datasets": {}})


def test_load_none_starts_over():
    config = PlanConfig(batch_size=4).to_dict()
    service = DataService()
    service.data_register("train", descriptor())
    service.data_plan("train", 0, 0, 1, config)
    service.data_report("train", 0, 0, 0, 2)
    service.load_data_state(None)
    plan = service.data_plan("train", 0, 0, 1, config)
    assert (plan.generation, plan.skip_batches) == (0, 0)


# splits


@pytest.mark.parametrize("by", ["unit", "row"])
def test_holdout_is_deterministic_and_disjoint(by):
    train = select_rows(UNIT_ROWS, split_spec(0.3, 4, by, "train"))
    held = select_rows(UNIT_ROWS, split_spec(0.3, 4, by, "holdout"))
    assert not train.intersection(held) and train.union(held) == RowRanges.full(NUM_ROWS)
    assert held == select_rows(UNIT_ROWS, split_spec(0.3, 4, by, "holdout"))
    assert any(held != select_rows(UNIT_ROWS, split_spec(0.3, seed, by, "holdout")) for seed in range(5, 10))
    if by == "row":
        assert held.num_rows == round(0.3 * NUM_ROWS)


def test_progress_of_a_split_serves_only_its_rows():
    held = select_rows(UNIT_ROWS, split_spec(0.3, 0, "row", "holdout"))
    progress = DataProgress(UNIT_ROWS, held)
    eaten = consume(progress, 0, 2, PlanConfig(batch_size=3), [1.0, 1.0], None)
    assert set(eaten.tolist()) <= set(held.to_ids().tolist())
    assert held.num_rows - len(eaten) < 6
