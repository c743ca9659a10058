"""The coordinator's logic as a plain object (no Ray): kv, barriers, heartbeats, abort, errors."""

import threading
import time

import pytest

from dist.coordinator import Coordinator

pytestmark = pytest.mark.timeout(60)


def in_thread(fn, *args):
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", fn(*args)))
    thread.start()
    return thread, result


def test_kv_get_waits_for_a_put_and_times_out_without_one():
    c = Coordinator("job", 2)
    thread, result = in_thread(c.kv_get, "k", 10.0)
    time.sleep(0.05)
    c.kv_put("k", [1, 2])
    thread.join(5)
    assert result["value"] == (True, [1, 2], None)
    assert c.kv_get("missing", 0.05) == (False, None, None)
    c.kv_delete("k")
    assert c.kv_get("k", 0.0)[0] is False


def test_barrier_reports_missing_ranks_and_names_are_reusable():
    c = Coordinator("job", 3)
    generation = c.barrier_arrive("b", 0)
    c.barrier_arrive("b", 1)
    assert c.barrier_wait("b", generation, [0, 1, 2], 0.05) == (False, [2], None)
    c.barrier_arrive("b", 2)
    for rank in range(3):
        assert c.barrier_wait("b", generation, [0, 1, 2], 1.0) == (True, [], None)
    assert c.barrier_arrive("b", 0) == generation + 1  # the next use of the same name is a new barrier
    assert ("b", generation) not in c._barrier_arrived  # released by all three: forgotten


def test_abort_wakes_blocked_waiters_and_keeps_the_first_reason():
    c = Coordinator("job", 2)
    thread, result = in_thread(c.kv_get, "never", 30.0)
    time.sleep(0.05)
    assert c.abort("rank 1 failed") == "rank 1 failed"
    assert c.abort("a later reason") == "rank 1 failed"
    thread.join(5)
    assert not thread.is_alive() and result["value"] == (False, None, "rank 1 failed")
    assert c.heartbeat(0) == "rank 1 failed"


def test_silent_rank_is_declared_dead_and_the_job_aborted():
    c = Coordinator("job", 2, heartbeat_timeout_s=0.3)
    c.heartbeat(0)
    c.heartbeat(1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and 1 not in c.dead_ranks():
        c.heartbeat(0)
        time.sleep(0.1)
    assert list(c.dead_ranks()) == [1]
    assert "rank 1 declared dead" in c.abort_reason()


def test_leaving_rank_is_not_declared_dead():
    c = Coordinator("job", 1, heartbeat_timeout_s=0.2)
    c.heartbeat(0)
    c.leave(0)
    time.sleep(1.0)
    assert c.dead_ranks() == {} and c.abort_reason() is None


def test_rendezvous_errors_progress_and_reset():
    c = Coordinator("job", 2)
    c.register(1, {"node_id": "b"})
    assert c.rendezvous(0.01) == (None, [0], None)
    c.register(0, {"node_id": "a"})
    assert c.rendezvous(0.01)[0] == [{"node_id": "a"}, {"node_id": "b"}]
    c.heartbeat(0, {"comm": 5})
    c.heartbeat(1, {"comm": 3})
    assert c.ranks_behind("comm", 5) == [1]
    c.record_error(1, "Traceback ...")
    assert c.errors() == {1: "Traceback ..."}
    c.abort("x")
    c.reset(3)
    assert c.abort_reason() is None and c.errors() == {} and c.rendezvous(0.0)[1] == [0, 1, 2]
