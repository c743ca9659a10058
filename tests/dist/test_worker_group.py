"""WorkerGroup: rank environment, results in rank order, single-rank calls, argument errors."""

import os

import numpy as np
import pytest
import ray

from dist import WorkerGroup
from dist.comm import get_communicator, init_communicator
from dist.env import get_context
from dist.errors import WorkerGroupError

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def group(ray_cluster):
    with WorkerGroup(2, name="test-worker-group") as wg:
        yield wg


def rank_environment():
    keys = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYGRAD_TEST_FLAG")
    ctx = get_context()
    return {k: os.environ.get(k) for k in keys}, (ctx.rank, ctx.world_size, ctx.local_rank, ctx.node_rank)


def test_each_rank_knows_its_place_and_thread_budget(group):
    results = group.execute(rank_environment)
    for rank, (environ, context) in enumerate(results):
        assert environ == {"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2",
                           "NODE_RANK": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                           "MKL_NUM_THREADS": "1", "RAYGRAD_TEST_FLAG": None}
        assert context == (rank, 2, rank, 0)
    assert [info.rank for info in group.rank_infos] == [0, 1]


def blas_threads():
    from threadpoolctl import threadpool_info

    return {pool["user_api"]: pool["num_threads"] for pool in threadpool_info()}


def test_blas_pools_use_the_workers_cpus(group):
    pytest.importorskip("threadpoolctl")
    for pools in group.execute(blas_threads):
        assert pools.get("blas", 1) == 1, pools


def echo(*args, **kwargs):
    return get_context().rank, args, kwargs


def test_execute_returns_results_in_rank_order_with_args(group):
    assert group.execute(echo, 1, "a", key=np.arange(2).tolist()) == [(0, (1, "a"), {"key": [0, 1]}),
                                                                       (1, (1, "a"), {"key": [0, 1]})]
    refs = group.execute_async(echo, 2)
    assert len(refs) == 2 and group.get(refs) == [(0, (2,), {}), (1, (2,), {})]
    assert group.execute_single(1, echo, 3) == (1, (3,), {})


def fail_here():
    raise KeyError("only this rank")


def allreduce_ones():
    comm = init_communicator("cpu", name="after-single", timeout_s=30)
    x = comm.allreduce(np.ones(4))
    comm.close()
    return x.tolist()


def test_execute_single_failure_raises_but_does_not_abort_the_job(group):
    with pytest.raises(WorkerGroupError) as info:
        group.execute_single(0, fail_here)
    assert list(info.value.errors) == [0] and "KeyError: 'only this rank'" in info.value.errors[0]
    assert group.execute(allreduce_ones) == [[2.0] * 4, [2.0] * 4]


def communicator_registry():
    comm = init_communicator("cpu", name="registry", timeout_s=30)
    assert get_communicator("registry") is comm
    with pytest.raises(ValueError, match="already open"):
        init_communicator("cpu", name="registry")
    with pytest.raises(ValueError, match="needs GPU workers"):
        init_communicator("nccl", name="gpu")
    comm.close()
    with pytest.raises(LookupError, match="no open communicator"):
        get_communicator("registry")
    return True


def test_communicator_registry_and_backend_errors(group):
    assert group.execute(communicator_registry) == [True, True]


def test_get_checks_refs_and_execute_checks_fn(group):
    with pytest.raises(ValueError, match="expected 2 refs"):
        group.get([])
    with pytest.raises(TypeError, match="fn must be callable"):
        group.execute(42)
    with pytest.raises(ValueError, match="rank=5"):
        group.execute_single(5, echo)


@pytest.mark.parametrize("kwargs,match", [
    ({"num_workers": 0}, "num_workers must be an int >= 1"),
    ({"num_workers": 2, "cpus_per_worker": 0}, "cpus_per_worker must be a number > 0"),
    ({"num_workers": 2, "placement_strategy": "TIGHT"}, "placement_strategy='TIGHT'"),
    ({"num_workers": 2, "env": {"A": 1}}, "env must map str to str"),
    ({"num_workers": 2, "name": "bad name!"}, "name='bad name!'"),
    ({"num_workers": 2, "resources_per_worker": {"CPU": 1}}, "use cpus_per_worker"),
    ({"num_workers": 2, "heartbeat_timeout_s": 1, "heartbeat_interval_s": 1}, "at least 3x"),
])
def test_bad_arguments_are_rejected_before_anything_starts(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        WorkerGroup(**kwargs)


def test_env_same_name_refused_and_shutdown_is_final(group):
    with pytest.raises(ValueError, match="already running"):
        WorkerGroup(1, name="test-worker-group")
    other = WorkerGroup(1, name="test-worker-group-2", cpus_per_worker=2, env={"RAYGRAD_TEST_FLAG": "on"})
    (environ, _), = other.execute(rank_environment)
    assert environ["RAYGRAD_TEST_FLAG"] == "on" and environ["OMP_NUM_THREADS"] == "2"
    other.shutdown()
    other.shutdown()  # idempotent
    with pytest.raises(RuntimeError, match="shut down"):
        other.execute(echo)
    with pytest.raises(ValueError):
        ray.get_actor("raygrad-coordinator-test-worker-group-2")
