"""Failures never hang: a raising rank, a rank that never arrives, a killed actor, a silent rank.

Each test starts its own small WorkerGroup, since an abort is final for a group. The timeouts below
are hang guards only; nothing here asserts how long anything took.
"""

import os
import signal
import time

import numpy as np
import pytest
import ray

from dist import WorkerGroup
from dist.comm import init_communicator
from dist.env import get_context
from dist.errors import CollectiveAborted, CollectiveTimeout, PlacementTimeout, WorkerDied, WorkerGroupError

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def make_group(ray_cluster):
    groups = []

    def make(num_workers, **kwargs):
        groups.append(WorkerGroup(num_workers, **kwargs))
        return groups[-1]
    yield make
    for group in groups:
        group.shutdown()


def raise_on_rank_1():
    comm = init_communicator("cpu", timeout_s=120)
    if get_context().rank == 1:
        raise ValueError("boom on rank 1")
    comm.allreduce(np.ones(1000))  # waits for rank 1, which never comes: must be aborted, not time out


def test_a_raising_rank_gives_one_error_with_its_traceback_and_aborts_the_others(make_group):
    group = make_group(3)
    with pytest.raises(WorkerGroupError) as info:
        group.execute(raise_on_rank_1)
    err = info.value
    assert sorted(err.errors) == [0, 1, 2]
    assert "Traceback" in err.errors[1] and "ValueError: boom on rank 1" in err.errors[1]
    assert "raise_on_rank_1" in err.errors[1]  # the frame that raised
    assert err.root_ranks == [1]
    for rank in (0, 2):
        assert isinstance(err.exceptions[rank], CollectiveAborted), err.errors[rank]
    assert str(err).index("--- rank 1 ---") < str(err).index("--- rank 0 ---")  # root cause first
    assert "Traceback" in ray.get(group.coordinator.errors.remote())[1]


def skip_collective_on_rank_2():
    comm = init_communicator("cpu", timeout_s=120)
    rank = get_context().rank
    if rank == 0:
        comm.allreduce(np.ones(10), timeout=2.0)
    elif rank == 1:
        comm.allreduce_async(np.ones(10), timeout=2.0).wait()  # the async form reports the same timeout


def test_a_rank_that_never_arrives_gives_collective_timeout_naming_it(make_group):
    group = make_group(3)
    with pytest.raises(WorkerGroupError) as info:
        group.execute(skip_collective_on_rank_2)
    err = info.value
    assert 2 not in err.errors  # rank 2 returned normally
    timeouts = [e for e in err.exceptions.values() if isinstance(e, CollectiveTimeout)]
    assert timeouts and all(t.missing_ranks == [2] and t.op == "allreduce" for t in timeouts)
    assert "never arrived: [2]" in str(err)
    # the first rank to time out wakes the other one: a timeout or an abort, never a hang
    assert all(isinstance(err.exceptions[r], (CollectiveTimeout, CollectiveAborted)) for r in (0, 1))


def kill_rank_1():
    comm = init_communicator("cpu", timeout_s=120)
    if get_context().rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    comm.allreduce(np.ones(10))


def test_a_killed_actor_is_reported_as_worker_died(make_group):
    group = make_group(2)
    with pytest.raises(WorkerGroupError) as info:
        group.execute(kill_rank_1)
    err = info.value
    assert isinstance(err.exceptions[1], WorkerDied) and "died" in err.errors[1]
    assert isinstance(err.exceptions[0], CollectiveAborted)


def go_silent_on_rank_1():
    context = get_context()
    comm = init_communicator("cpu", timeout_s=120)
    if context.rank == 1:
        context._heartbeat.stop()  # looks like a hung node from the outside
        time.sleep(60)
    comm.allreduce(np.ones(10))


def test_a_silent_rank_is_declared_dead_by_its_heartbeat(make_group):
    group = make_group(2, heartbeat_timeout_s=2.0, heartbeat_interval_s=0.5, abort_grace_s=3.0)
    with pytest.raises(WorkerGroupError) as info:
        group.execute(go_silent_on_rank_1)
    err = info.value
    assert isinstance(err.exceptions[1], WorkerDied) and "no heartbeat" in err.errors[1]
    assert isinstance(err.exceptions[0], CollectiveAborted) and "declared dead" in err.errors[0]


def test_unplaceable_group_raises_placement_timeout_and_cleans_up(ray_cluster):
    from ray.util import placement_group_table

    before = {pg_id for pg_id, pg in placement_group_table().items() if pg["state"] != "REMOVED"}
    with pytest.raises(PlacementTimeout) as info:
        WorkerGroup(2, cpus_per_worker=64, placement_timeout_s=1.0, name="test-unplaceable")
    message = str(info.value)
    assert "CPU: 128" in message and "bundles of {CPU: 64}" in message and "CPU: 4" in message
    after = {pg_id for pg_id, pg in placement_group_table().items() if pg["state"] != "REMOVED"}
    assert after <= before  # our placement group was removed
    with pytest.raises(ValueError):
        ray.get_actor("raygrad-coordinator-test-unplaceable")  # and the coordinator killed
