"""Every collective of the CPU communicator in Ray actors, against NumPy, with 2 and 3 ranks.

One WorkerGroup per world size for the whole module. Each rank rebuilds every rank's input from a
seed, so it can check its own result against NumPy and return only the error and a digest (the
digests show that all ranks got bit-identical results).
"""

import hashlib

import numpy as np
import pytest

from dist import WorkerGroup
from dist.comm import get_communicator, init_communicator
from dist.env import get_context
from dist.errors import CollectiveError

pytestmark = pytest.mark.timeout(300)

LENGTHS = [0, 1, 7, 1_000_000]
DTYPES = ["float16", "float32", "float64", "int32", "int64"]
TOL = {"float16": 2e-2, "float32": 1e-5, "float64": 1e-12}
REFERENCE = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}


@pytest.fixture(scope="module", params=[2, 3], ids=lambda n: f"{n}ranks")
def group(request, ray_cluster):
    wg = WorkerGroup(request.param, name=f"test-collectives-{request.param}")
    wg.execute(setup_communicators)
    yield wg
    wg.shutdown()


def setup_communicators():
    init_communicator("cpu", timeout_s=60)
    init_communicator("cpu", name="small", timeout_s=60, max_buffer_bytes=64 * 1024)  # many bank steps


def rank_input(rank, length, dtype, seed=0):
    rng = np.random.default_rng([seed, rank, length])
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(length).astype(dtype)
    if np.dtype(dtype).kind == "b":
        return rng.random(length) < 0.5
    return rng.integers(-1000, 1000, length).astype(dtype)


def all_inputs(length, dtype, seed=0):
    return [rank_input(r, length, dtype, seed) for r in range(get_context().world_size)]


def report(actual, expected, dtype):
    """(max abs error scaled by the tolerance, digest of the result)."""
    tol = TOL.get(str(dtype), 0)
    err = np.abs(actual.astype(np.float64) - expected.astype(np.float64)) - tol * (1 + np.abs(expected.astype(np.float64)))
    return float(err.max(initial=0.0)) <= 0, hashlib.sha1(actual.tobytes()).hexdigest()


def check(results):
    assert all(ok for ok, _ in results), results
    assert len({digest for _, digest in results}) == 1, "ranks disagree bit for bit"


def do_allreduce(length, dtype, op, name="default"):
    xs = all_inputs(length, dtype)
    x = xs[get_context().rank].copy()
    out = get_communicator(name).allreduce(x, op=op)
    assert out is x
    return report(x, REFERENCE[op](np.stack(xs).astype(np.float64), axis=0), dtype)


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["sum", "max", "min"])
def test_allreduce_matches_numpy(group, length, dtype, op):
    check(group.execute(do_allreduce, length, dtype, op))


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_allreduce_mean_matches_numpy(group, length, dtype):
    check(group.execute(do_allreduce, length, dtype, "mean"))


@pytest.mark.parametrize("length", [104_729, 1_000_003])  # primes, many 64 KiB steps
def test_allreduce_with_small_buffers_matches_numpy(group, length):
    check(group.execute(do_allreduce, length, "float32", "sum", "small"))


def do_bool(op):
    xs = all_inputs(1001, "bool")
    x = xs[get_context().rank].copy()
    get_communicator().allreduce(x, op=op)
    return report(x, (np.any if op == "max" else np.all)(np.stack(xs), axis=0), "bool")


@pytest.mark.parametrize("op", ["max", "min"])
def test_allreduce_bool_max_is_any_min_is_all(group, op):
    check(group.execute(do_bool, op))


def do_broadcast(length, dtype, src):
    xs = all_inputs(length, dtype)
    x = xs[get_context().rank].copy()
    get_communicator().broadcast(x, src=src)
    return report(x, xs[src], dtype)


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_broadcast_copies_the_source_rank(group, length, dtype):
    check(group.execute(do_broadcast, length, dtype, group.num_workers - 1))


def do_allgather(length, dtype):
    xs = all_inputs(length, dtype)
    out = get_communicator().allgather(xs[get_context().rank])
    assert out.shape == (len(xs), length)
    return report(out, np.stack(xs), dtype)


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_allgather_stacks_every_rank(group, length, dtype):
    check(group.execute(do_allgather, length, dtype))


def do_reduce_scatter(length, dtype, op):
    ctx = get_context()
    xs = all_inputs(ctx.world_size * length, dtype)
    out = get_communicator().reduce_scatter(xs[ctx.rank], op=op)
    total = REFERENCE[op](np.stack(xs).astype(np.float64), axis=0).reshape(ctx.world_size, length)
    ok, _ = report(out, total[ctx.rank], dtype)
    return ok, "same"  # each rank gets a different block: no digest to compare


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_reduce_scatter_gives_each_rank_its_block(group, length, dtype):
    check(group.execute(do_reduce_scatter, length, dtype, "sum"))


@pytest.mark.parametrize("op", ["mean", "max"])
def test_reduce_scatter_other_ops(group, op):
    check(group.execute(do_reduce_scatter, 1001, "float64", op))


class TensorLike:
    """What the communicators accept besides arrays: an object with a .data array (a tensor.Tensor)."""

    def __init__(self, data):
        self.data = data


def do_shapes_views_and_tensors():
    ctx, comm = get_context(), get_communicator()
    matrix = np.arange(24.0).reshape(4, 6) + ctx.rank
    comm.allreduce(matrix[:, ::2])  # a strided view: reduced in place, the other columns untouched
    assert np.array_equal(matrix[:, 1::2], (np.arange(24.0).reshape(4, 6) + ctx.rank)[:, 1::2])
    expected = sum(np.arange(24.0).reshape(4, 6)[:, ::2] + r for r in range(ctx.world_size))
    assert np.array_equal(matrix[:, ::2], expected)
    tensor = TensorLike(np.full((2, 3), float(ctx.rank)))
    assert comm.allreduce(tensor, op="max") is tensor.data and (tensor.data == ctx.world_size - 1).all()
    gathered = comm.allgather(TensorLike(np.full((2, 3), ctx.rank, np.int64)))
    assert gathered.shape == (ctx.world_size, 2, 3) and (gathered[:, 0, 0] == np.arange(ctx.world_size)).all()
    block = comm.reduce_scatter(np.ones((2 * ctx.world_size, 3)), out=np.empty((2, 3)))
    assert (block == ctx.world_size).all()
    comm.barrier()
    return True


def test_shapes_strided_views_out_arrays_and_tensor_likes(group):
    assert group.execute(do_shapes_views_and_tensors) == [True] * group.num_workers


def do_async_in_order():
    ctx, comm = get_context(), get_communicator()
    xs = [np.full(200_003, float(ctx.rank + i)) for i in range(4)]
    works = [comm.allreduce_async(x) for x in xs]
    works.append(comm.broadcast_async(np.full(3, float(ctx.rank)), src=1))
    works.append(comm.allgather_async(np.array([ctx.rank])))
    works.append(comm.barrier_async())
    sync = np.ones(5)
    comm.allreduce(sync)  # a sync op after async ones waits for them, then runs
    results = [w.wait(timeout=60) for w in works]
    assert all(w.is_completed() for w in works)
    n = ctx.world_size
    for i, x in enumerate(results[:4]):
        assert x is xs[i] and (x == sum(r + i for r in range(n))).all()
    assert (results[4] == 1.0).all() and results[5].tolist() == [[r] for r in range(n)] and results[6] is None
    assert (sync == n).all()
    return True


def test_async_forms_complete_in_issue_order(group):
    assert group.execute(do_async_in_order) == [True] * group.num_workers


def do_late_peer():
    import time

    from dist.errors import CollectiveTimeout

    comm, rank = get_communicator(), get_context().rank
    if rank == 1:
        time.sleep(1.5)  # arrives late, well within the op's own 60 s timeout
    work = comm.allreduce_async(np.ones(10))
    if rank == 0:
        with pytest.raises(CollectiveTimeout, match="Work.wait"):
            work.wait(timeout=0.2)  # only this wait gives up: the op goes on
    return work.wait().tolist()


def test_work_wait_timeout_leaves_the_op_running(group):
    assert group.execute(do_late_peer) == [[float(group.num_workers)] * 10] * group.num_workers


def do_bad_inputs():
    comm, messages = get_communicator(), []
    for call in (lambda: comm.allreduce(np.ones(3), op="prod"),
                 lambda: comm.allreduce(np.ones(3, np.int32), op="mean"),
                 lambda: comm.allreduce(np.ones(3, bool)),
                 lambda: comm.allreduce(np.broadcast_to(np.ones(1), (3,))),
                 lambda: comm.allreduce([1.0, 2.0]),
                 lambda: comm.broadcast(np.array([None, 1], dtype=object)),
                 lambda: comm.broadcast(np.ones(3), src=99),
                 lambda: comm.reduce_scatter(np.ones(comm.world_size * 2 + 1)),
                 lambda: comm.allgather(np.ones(3), out=np.empty(3)),
                 lambda: comm.allreduce(np.ones(3), timeout=0)):
        with pytest.raises((ValueError, TypeError)) as info:
            call()
        messages.append(str(info.value))
    comm.allreduce(np.ones(3))  # validation errors raise before the collective: the communicator still works
    return messages


def test_bad_inputs_get_clear_errors_and_leave_the_communicator_usable(group):
    messages = group.execute(do_bad_inputs)[0]
    for fragment in ("op='prod'", "needs a floating-point array", "undefined on bool", "read-only",
                     "got list", "Python objects", "src=99", "multiple of world_size", "out has shape", "timeout"):
        assert any(fragment in m for m in messages), (fragment, messages)


def do_mismatch():
    comm = init_communicator("cpu", name="mismatch", timeout_s=20)
    try:
        comm.allreduce(np.ones(10 + get_context().rank))
    except CollectiveError as exc:
        message = str(exc)
    comm.close()
    return message


def test_mismatched_calls_raise_collective_error_naming_them(group):
    for message in group.execute(do_mismatch):
        assert "mismatched" in message and "10 x float64" in message and "11 x float64" in message
