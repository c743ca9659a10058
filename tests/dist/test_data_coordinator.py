"""The data plan through a real coordinator actor: ranks as Ray tasks, a crash, a resume on 3 ranks.

Uses the suite's session-scoped `ray_cluster` fixture (tests/conftest.py) and
dist.coordinator.start_coordinator; skips, rather than starting a cluster of its own, where either
is missing.
"""

import json
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dist.data import Dataset, ShardedLoader

BATCH = 4


@pytest.fixture
def ray_session(request):
    try:
        return request.getfixturevalue("ray_cluster")
    except pytest.FixtureLookupError:
        pytest.skip("tests/conftest.py has no session-scoped ray_cluster fixture yet; not starting a second cluster")


@pytest.fixture
def coordinator_factory(ray_session):
    coordinator = pytest.importorskip("dist.coordinator", reason="dist.coordinator is not written yet")
    if not hasattr(coordinator, "start_coordinator"):
        pytest.skip("dist.coordinator has no start_coordinator yet")
    import ray

    started = []

    def start(world_size):
        handle = coordinator.start_coordinator(f"data-test-{uuid.uuid4().hex[:8]}", world_size)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        ray.kill(handle)


@pytest.fixture
def dataset(tmp_path):
    start = 0
    for i, size in enumerate([23, 40, 18]):  # 81 rows in three files
        pq.write_table(pa.table({"id": np.arange(start, start + size)}), tmp_path / f"{i}.parquet", row_group_size=7)
        start += size
    return Dataset(tmp_path, columns=["id"])


def run_ranks(dataset, coordinator, world_size, max_batches):
    """Each rank a Ray task that loads its shard and stops after max_batches[rank] (None: all)."""
    import ray

    # defined here so that Ray ships it by value: workers cannot import this test module
    def rank_task(dataset, coordinator, rank, world_size, max_batches):
        ids = []
        with ShardedLoader(dataset, coordinator, rank, world_size, batch_size=BATCH, shuffle_buffer=8) as loader:
            for count, batch in enumerate(loader, start=1):
                ids.extend(batch["id"].tolist())
                if count == max_batches:
                    break
            loader.flush_progress()
        return ids

    task = ray.remote(num_cpus=0)(rank_task)
    refs = [task.remote(dataset, coordinator, rank, world_size, max_batches[rank]) for rank in range(world_size)]
    return ray.get(refs, timeout=120)


def test_exactly_once_through_the_coordinator_actor_across_a_crash(dataset, coordinator_factory):
    import ray

    first = coordinator_factory(2)
    before = run_ranks(dataset, first, 2, [3, 5])
    assert [len(ids) for ids in before] == [3 * BATCH, 5 * BATCH]
    checkpoint = json.dumps(ray.get(first.data_state.remote()))  # what the trainer stores
    ray.kill(first)  # the job dies; a new coordinator is restored from the checkpoint

    second = coordinator_factory(3)
    ray.get(second.load_data_state.remote(json.loads(checkpoint)))
    after = run_ranks(dataset, second, 3, [None, None, None])
    assert len({len(ids) for ids in after}) == 1, "every rank gets the same number of batches"
    ids = [i for rank in before + after for i in rank]
    assert len(ids) == len(set(ids)), "a sample was served twice"
    assert 81 - len(ids) < 3 * BATCH
    assert ray.get(second.data_resume_epoch.remote("train")) == 1
