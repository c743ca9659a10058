"""The NCCL communicator on real GPUs: world size 1 in this process and in a GPU actor, and N ranks
where N GPUs exist. Skips cleanly without CuPy or CUDA."""

import numpy as np
import pytest

cupy = pytest.importorskip("cupy")


def _gpu_count() -> int:
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no driver, no device: CuPy raises its own CUDA errors
        return 0


GPUS = _gpu_count()
pytestmark = [pytest.mark.gpu, pytest.mark.timeout(300),
              pytest.mark.skipif(GPUS < 1, reason="needs a CUDA device")]
DTYPES = ["float16", "float32", "float64", "int32", "int64"]


@pytest.fixture(scope="module")
def comm():
    from dist.comm.nccl import NcclCommunicator

    with cupy.cuda.Device(0):
        c = NcclCommunicator(0, 1, key="test-nccl-world1", timeout_s=60)
        yield c
        c.close()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("length", [0, 1, 7, 1_000_003])
def test_world1_allreduce_keeps_the_values(comm, dtype, op, length):
    if op == "mean" and dtype.startswith("int"):
        pytest.skip("mean is for floating point")
    x = (cupy.arange(length) % 97).astype(dtype)
    expected = x.copy()
    assert comm.allreduce(x, op=op) is x
    cupy.testing.assert_array_equal(x, expected)


def test_world1_broadcast_allgather_reduce_scatter_barrier(comm):
    x = cupy.arange(12, dtype=cupy.float32).reshape(3, 4)
    cupy.testing.assert_array_equal(comm.broadcast(x.copy(), src=0), x)
    gathered = comm.allgather(x)
    assert gathered.shape == (1, 3, 4)
    cupy.testing.assert_array_equal(gathered[0], x)
    cupy.testing.assert_array_equal(comm.reduce_scatter(x), x)
    comm.barrier()


def test_async_work_is_ordered_after_the_compute_stream(comm):
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        x = cupy.zeros(4_000_000, dtype=cupy.float32)
        x += 3  # queued on the compute stream: the collective must see it
        work = comm.allreduce_async(x, op="mean")
        assert work.wait(timeout=60) is x
        total = float(x.sum())  # queued after wait(): must see the collective's result
    assert total == 3 * 4_000_000 and work.is_completed()


def test_wrong_inputs_get_clear_errors(comm):
    with pytest.raises(TypeError, match="cupy arrays"):
        comm.allreduce(np.ones(3))
    with pytest.raises(ValueError, match="C-contiguous"):
        comm.allreduce(cupy.ones((4, 4))[:, ::2])
    with pytest.raises(ValueError, match="floating-point"):
        comm.allreduce(cupy.ones(3, dtype=cupy.int32), op="mean")


def gpu_rank_check(use_nccl_timeout: bool):
    import cupy as cp

    from dist.comm import init_communicator
    from dist.env import get_context
    from dist.errors import CollectiveTimeout

    ctx = get_context()
    comm = init_communicator("auto", timeout_s=60)
    assert comm.backend == "nccl" and ctx.device_index == 0
    n, failures = ctx.world_size, []
    for dtype in DTYPES:
        for length in (0, 1, 7, 1_000_003):
            x = cp.full(length, ctx.rank + 1, dtype=dtype)
            comm.allreduce(x)
            if not bool((x == n * (n + 1) // 2).all()):
                failures.append(f"allreduce {dtype} {length}")
            y = cp.full(length, ctx.rank, dtype=dtype)
            comm.broadcast(y, src=n - 1)
            if not bool((y == n - 1).all()):
                failures.append(f"broadcast {dtype} {length}")
            gathered = comm.allgather(cp.full(length, ctx.rank, dtype=dtype))
            if gathered.shape != (n, length) or not bool((gathered == cp.arange(n, dtype=dtype)[:, None]).all()):
                failures.append(f"allgather {dtype} {length}")
            block = comm.reduce_scatter(cp.ones(n * length, dtype=dtype))
            if block.shape != (length,) or not bool((block == n).all()):
                failures.append(f"reduce_scatter {dtype} {length}")
    comm.barrier()
    if use_nccl_timeout and n > 1:
        if ctx.rank == 0:
            try:
                comm.allreduce(cp.ones(10), timeout=3.0)
                failures.append("no timeout")
            except CollectiveTimeout as exc:
                if exc.missing_ranks != list(range(1, n)):
                    failures.append(f"timeout named {exc.missing_ranks}")
        else:
            import time

            time.sleep(8)  # never enters the collective; rank 0 aborts its communicator
    return failures


@pytest.mark.parametrize("num_gpus", sorted({1, GPUS}))
def test_ranks_on_gpu_actors(ray_cluster, num_gpus):
    from dist import WorkerGroup

    with WorkerGroup(num_gpus, use_gpu=True, placement_timeout_s=60) as group:
        assert group.execute(gpu_rank_check, num_gpus > 1) == [[]] * num_gpus
