"""The shared-memory collectives of one node (dist.comm.node), without Ray: N ranks as N threads.

Threads map the same shared files that processes would, so this exercises the real protocol
(banks, epochs, descriptors, growth) quickly and exhaustively; tests/dist/test_collectives.py runs
the same code in Ray actors.
"""

import os
import threading
import uuid

import numpy as np
import pytest

from dist.comm.base import Deadline
from dist.comm.node import NodeGroup
from dist.comm.shm import ControlBlock, SharedFile, shm_dir
from dist.errors import CollectiveAborted, CollectiveError, CollectiveTimeout

pytestmark = pytest.mark.timeout(120)


def open_groups(size, max_bank_bytes=64 * 1024):
    prefix = os.path.join(shm_dir(), f"raygrad-test-{uuid.uuid4().hex[:8]}")
    ctrl_file = SharedFile(prefix + "-ctrl", ControlBlock.nbytes(size))
    files = [ctrl_file] + [SharedFile(prefix + "-ctrl") for _ in range(size - 1)]
    ctrl_file.unlink()
    ranks = list(range(size))
    return [NodeGroup(ControlBlock(f, size), r, ranks, prefix, None, max_bank_bytes) for r, f in enumerate(files)]


def run_ranks(groups, body, timeout=60):
    """body(group) on one thread per rank; returns the results in rank order, re-raising the first error."""
    results, errors = [None] * len(groups), [None] * len(groups)

    def target(i):
        try:
            results[i] = body(groups[i])
        except BaseException as exc:  # noqa: B036 - handed back to the test thread
            errors[i] = exc
    threads = [threading.Thread(target=target, args=(i,)) for i in range(len(groups))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a rank hung"
    for exc in errors:
        if exc is not None:
            raise exc
    return results


def inputs(size, length, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return [rng.standard_normal(length).astype(dtype) for _ in range(size)]
    if np.dtype(dtype).kind == "b":
        return [rng.random(length) < 0.5 for _ in range(size)]
    return [rng.integers(-1000, 1000, length).astype(dtype) for _ in range(size)]


TOL = {"float16": 2e-2, "float32": 1e-5, "float64": 1e-12}
REFERENCE = {"sum": np.sum, "max": np.max, "min": np.min}


@pytest.fixture(params=[2, 3, 4], ids=lambda n: f"{n}ranks")
def groups(request):
    groups = open_groups(request.param)
    yield groups
    for g in groups:
        g.close()


@pytest.mark.parametrize("length", [0, 1, 7, 8191, 100003])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int32", "int64"])
@pytest.mark.parametrize("op", ["sum", "max", "min"])
def test_allreduce_matches_numpy_across_bank_steps(groups, length, dtype, op):
    xs = inputs(len(groups), length, dtype)
    expected = REFERENCE[op](np.stack([x.astype(np.float64) for x in xs]), axis=0)
    outs = [x.copy() for x in xs]
    run_ranks(groups, lambda g: g.allreduce(outs[g.local_rank], op, Deadline.after(30)))
    for out in outs:
        np.testing.assert_allclose(out.astype(np.float64), expected, rtol=TOL.get(dtype, 0), atol=TOL.get(dtype, 0))
        assert out.tobytes() == outs[0].tobytes(), "ranks disagree bit for bit"


def test_allreduce_divide_gives_mean_and_root_only_leaves_others(groups):
    xs = inputs(len(groups), 1001, "float64", seed=1)
    means = [x.copy() for x in xs]
    run_ranks(groups, lambda g: g.allreduce(means[g.local_rank], "sum", Deadline.after(30), divide_by=len(groups)))
    np.testing.assert_allclose(means[-1], np.mean(xs, axis=0), rtol=1e-12, atol=1e-12)
    rooted = [x.copy() for x in xs]
    run_ranks(groups, lambda g: g.allreduce(rooted[g.local_rank], "sum", Deadline.after(30), root_only=True))
    np.testing.assert_allclose(rooted[0], np.sum(xs, axis=0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op,reference", [("max", np.any), ("min", np.all)])
def test_bool_max_is_any_and_min_is_all(groups, op, reference):
    xs = inputs(len(groups), 257, "bool")
    outs = [x.copy() for x in xs]
    run_ranks(groups, lambda g: g.allreduce(outs[g.local_rank], op, Deadline.after(30)))
    np.testing.assert_array_equal(outs[1], reference(np.stack(xs), axis=0))


@pytest.mark.parametrize("length", [0, 1, 7, 100003])
def test_broadcast_allgather_reduce_scatter(groups, length):
    n = len(groups)
    xs = inputs(n, length, "float32", seed=2)
    bcast = [x.copy() for x in xs]
    run_ranks(groups, lambda g: g.broadcast(bcast[g.local_rank], n - 1, Deadline.after(30)))
    for out in bcast:
        np.testing.assert_array_equal(out, xs[-1])
    gathered = [np.empty((n, length), np.float32) for _ in range(n)]
    run_ranks(groups, lambda g: g.allgather(xs[g.local_rank], gathered[g.local_rank], Deadline.after(30)))
    for out in gathered:
        np.testing.assert_array_equal(out, np.stack(xs))
    big = inputs(n, n * length, "float64", seed=3)
    scattered = [np.empty(length) for _ in range(n)]
    run_ranks(groups, lambda g: g.reduce_scatter(big[g.local_rank], "sum", scattered[g.local_rank], Deadline.after(30)))
    total = np.sum(big, axis=0).reshape(n, length)
    for r, out in enumerate(scattered):
        np.testing.assert_allclose(out, total[r], rtol=1e-12, atol=1e-12)


def test_many_mixed_ops_in_a_row_stay_in_step(groups):
    """Different sizes back to back: the alternating banks must keep a slow reader's data intact."""
    n, rng = len(groups), np.random.default_rng(4)
    lengths = [int(v) for v in rng.integers(0, 40000, 30)]

    def body(g):
        results = []
        for i, length in enumerate(lengths):
            x = np.full(length, g.local_rank + i, np.float64)
            if i % 3 == 0:
                g.allreduce(x, "sum", Deadline.after(30))
            elif i % 3 == 1:
                g.broadcast(x, i % n, Deadline.after(30))
            else:
                g.barrier(Deadline.after(30))
            results.append(float(x.sum()))
        return results
    per_rank = run_ranks(groups, body)
    for i, length in enumerate(lengths):
        if i % 3 == 0:
            assert all(rank_results[i] == length * sum(r + i for r in range(n)) for rank_results in per_rank)
        elif i % 3 == 1:
            assert all(rank_results[i] == length * (i % n + i) for rank_results in per_rank)


def test_mismatched_sizes_raise_collective_error_on_every_rank():
    groups = open_groups(2)
    errors = []

    def body(g):
        try:
            g.allreduce(np.ones(10 + g.local_rank), "sum", Deadline.after(10))
        except CollectiveError as exc:
            errors.append(str(exc))
    run_ranks(groups, body)
    assert len(errors) == 2 and all("mismatched" in e and "10 x float64" in e and "11 x float64" in e for e in errors)


def test_missing_rank_times_out_naming_it_and_aborts_the_others():
    groups = open_groups(3)

    def body(g):
        if g.local_rank == 2:
            return None  # never enters the collective
        try:
            g.allreduce(np.ones(5), "sum", Deadline.after(1.0))
        except (CollectiveTimeout, CollectiveAborted) as exc:
            return exc
    results = run_ranks(groups, body)
    timeouts = [e for e in results[:2] if isinstance(e, CollectiveTimeout)]
    assert timeouts and all(e.missing_ranks == [2] for e in timeouts)
    assert all(isinstance(e, (CollectiveTimeout, CollectiveAborted)) for e in results[:2])


def test_shared_files_fall_back_to_the_temp_dir_when_dev_shm_is_too_small():
    import tempfile

    assert shm_dir(1 << 60) == tempfile.gettempdir()
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        assert shm_dir(0) == "/dev/shm"
