"""Leases, fencing, heartbeats and concurrency through the runtime on the memory store.

Time is a ManualClock: a lease expires when the test moves the clock, never by sleeping.
Threads are real; they are synchronised with events, not sleeps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import _flows as f
import pytest

from squidie_core import ExecuteResult
from squidie_core.errors import CapabilityNotSupported, LeaseLostError
from squidie_core.testing import Harness


@pytest.fixture(autouse=True)
def _reset() -> None:
    f.reset()


def successes(h: Harness, run_id: str) -> Counter[tuple[str, int]]:
    return Counter(
        (x.body["step"], x.body["attempt"])
        for x in h.store.read(run_id) if x.type == "attempt_succeeded"
    )


def in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(fn()), daemon=True)
    thread.start()
    return thread, box


def gate() -> tuple[threading.Event, threading.Event]:
    started, release = threading.Event(), threading.Event()
    f.FAIL["started"], f.FAIL["gate"] = started, release
    return started, release


def test_worker_killed_mid_step_lease_expires_and_step_reruns_once() -> None:
    h = Harness(f.Three)
    run = h.start(f.Three)
    # Worker A claims the attempt and dies without a trace (no commit, no heartbeat).
    dead = h.store.claim("worker-a", lease_for=30, queues=["default"])
    assert len(dead) == 1
    assert h.step("worker-b") is None  # the lease still holds
    assert h.explain(run.run_id)["reason"] == "attempt_claimed"
    h.advance_time(30)
    explain = h.explain(run.run_id)
    assert (explain["reason"], explain["next_actions"]) == ("expired_claim",
                                                             ["recover_expired_claim"])
    taken = h.step("worker-b")
    assert taken is not None and (taken.step, taken.outcome) == ("one", "ok")
    h.drain(owner_id="worker-b")
    assert h.inspect(run.run_id)["status"] == "completed"
    assert successes(h, run.run_id) == {("one", 1): 1, ("two", 1): 1, ("three", 1): 1}
    record = h.store.dispatches(run.run_id)[0]
    assert (record.deliveries, record.fence) == (2, 2)
    with pytest.raises(LeaseLostError):
        h.store.complete(dead[0])


def test_stale_holder_commit_rejected_after_takeover() -> None:
    h = Harness(f.Slow)
    run = h.start(f.Slow)
    started, release = gate()
    # Worker A runs the step (heartbeats off) and blocks inside it.
    thread, box = in_thread(lambda: h.engine.execute_next(
        owner_id="worker-a", lease_for=10, heartbeat_interval=0))
    assert started.wait(10)
    h.advance_time(11)  # A's lease expires while its step is still running
    taken = h.engine.execute_next(owner_id="worker-b", lease_for=10, heartbeat_interval=0)
    assert taken is not None and (taken.step, taken.outcome) == ("block", "ok")
    release.set()
    thread.join(10)
    stale: ExecuteResult = box[0]
    assert stale.outcome == "lease_lost" and stale.run_status is None
    assert successes(h, run.run_id) == {("block", 1): 1}
    owners = [x.body["owner"] for x in h.store.read(run.run_id) if x.type == "attempt_started"]
    assert owners == ["worker-b"]
    h.drain()
    assert h.inspect(run.run_id)["status"] == "completed"


def test_cancel_fences_a_running_step() -> None:
    h = Harness(f.Slow)
    run = h.start(f.Slow)
    started, release = gate()
    thread, box = in_thread(lambda: h.engine.execute_next(
        owner_id="worker-a", heartbeat_interval=0))
    assert started.wait(10)
    h.cancel(run.run_id, actor="ops")
    release.set()
    thread.join(10)
    assert box[0].outcome == "lease_lost"
    view = h.inspect(run.run_id)
    assert view["status"] == "cancelled"
    assert "attempt_succeeded" not in [x.type for x in h.store.read(run.run_id)]
    assert h.step() is None


def poll(predicate: Any, timeout: float = 10.0) -> None:
    """Wait for a real background thread to act (never used to wait on the clock)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def test_heartbeats_keep_a_long_step_leased() -> None:
    h = Harness(f.Slow)
    run = h.start(f.Slow)
    started, release = gate()
    thread, box = in_thread(lambda: h.engine.execute_next(
        owner_id="worker-a", lease_for=10, heartbeat_interval=0.05))
    assert started.wait(10)

    def expires() -> float:
        record = h.store.dispatches(run.run_id)[0]
        assert record.lease_expires_at is not None
        return record.lease_expires_at

    first = expires()
    for _ in range(3):  # 3 x 8 s: far past the original 10 s lease
        h.advance_time(8)
        now = h.clock.now()
        poll(lambda now=now: expires() >= now + 10)
        assert h.engine.execute_next(owner_id="worker-b", heartbeat_interval=0) is None
    assert expires() > first + 20
    release.set()
    thread.join(10)
    assert box[0].outcome == "ok"
    assert successes(h, run.run_id) == {("block", 1): 1}


def test_heartbeat_that_learns_the_lease_is_lost_discards_the_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(f.Slow)
    run = h.start(f.Slow)
    started, release = gate()
    with caplog.at_level(logging.WARNING, logger="squidie"):
        thread, box = in_thread(lambda: h.engine.execute_next(
            owner_id="worker-a", lease_for=10, heartbeat_interval=0.05))
        assert started.wait(10)
        h.cancel(run.run_id)  # fails the dispatch: the next heartbeat is refused
        poll(lambda: "heartbeat found the lease on" in caplog.text)
        release.set()
        thread.join(10)
    assert box[0].outcome == "lease_lost"
    assert "lost while the step ran" in caplog.text
    assert "result is discarded" in caplog.text


def test_eight_threads_500_runs_each_step_committed_exactly_once() -> None:
    h = Harness(f.Three)
    runs = [h.start(f.Three).run_id for _ in range(500)]

    def worker(n: int) -> int:
        done = 0
        while h.engine.execute_next(owner_id=f"worker-{n}") is not None:
            done += 1
        return done

    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(worker, range(8)))
    assert sum(counts) == 1500
    for run_id in runs:
        assert h.store.get_run(run_id).status == "completed"  # type: ignore[union-attr]
        assert successes(h, run_id) == {("one", 1): 1, ("two", 1): 1, ("three", 1): 1}
    assert f.CALLS == {"one": 500, "two": 500, "three": 500}


def test_parallel_branches_conflict_and_replan() -> None:
    """Two branches of one run commit concurrently: the loser re-plans, nothing is lost."""
    h = Harness(f.FanOut)
    for _ in range(50):
        h.start(f.FanOut)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: [None for _ in iter(
            lambda: h.engine.execute_next(owner_id=f"w{n}"), None)], range(4)))
    for entry in h.engine.list_runs(limit=100).items:
        assert entry.status == "completed"
        assert sorted(s for s, _ in successes(h, entry.run_id)) == [
            "join", "left", "right", "split"]


def test_injected_append_conflict_is_replanned() -> None:
    h = Harness(f.Three)
    run = h.start(f.Three)
    h.inject_append_conflict(2)
    result = h.step()
    assert result is not None and result.outcome == "ok"
    h.drain()
    assert successes(h, run.run_id) == {("one", 1): 1, ("two", 1): 1, ("three", 1): 1}


def test_a_dispatch_that_kills_every_worker_is_dead_lettered_at_its_limit() -> None:
    h = Harness(f.Three, max_deliveries=3)
    run = h.start(f.Three)
    for n in range(3):  # three workers claim it and die
        assert len(h.store.claim(f"doomed-{n}", lease_for=5, queues=["default"])) == 1
        h.advance_time(5)
    assert h.step() is None  # the fourth claim buries it instead of delivering
    explain = h.explain(run.run_id)
    assert (explain["reason"], explain["next_actions"]) == ("dead_lettered",
                                                             ["redrive_dead_letter"])
    dead = h.engine.dead_letters()
    assert [d.dispatch.key for d in dead.items] == [f"{run.run_id}:one:1"]
    assert dead.items[0].reason == "delivery_limit_exceeded"
    assert dead.items[0].deliveries == 3
    h.engine.redrive(f"{run.run_id}:one:1")
    h.drain()
    assert h.inspect(run.run_id)["status"] == "completed"
    assert successes(h, run.run_id)[("one", 1)] == 1


def test_unknown_workflow_is_dead_lettered_with_the_reason() -> None:
    h = Harness(f.Three)
    run = h.start(f.Three)
    from squidie_core import Squidie

    stranger = Squidie(h.store, workflows=[f.Timer])  # a worker that lacks Three
    result = stranger.execute_next(owner_id="stranger", heartbeat_interval=0)
    assert result is not None and result.outcome == "dead_lettered"
    assert result.detail is not None and "'Three' is not registered" in result.detail
    dead = h.engine.dead_letters().items
    assert dead[0].reason is not None and dead[0].reason.startswith("unknown_workflow")
    assert h.explain(run.run_id)["reason"] == "dead_lettered"


def test_queues_are_isolated() -> None:
    h = Harness(f.Three, f.Emails)
    for _ in range(20):
        h.start(f.Three)
    mail = h.start(f.Emails)
    first = h.engine.execute_next(owner_id="mailer", queues=["emails"], heartbeat_interval=0)
    assert first is not None and first.run_id == mail.run_id
    assert h.engine.execute_next(owner_id="mailer", queues=["emails"]) is None
    default_only = h.engine.execute_next(owner_id="w", queues=["default"], heartbeat_interval=0)
    assert default_only is not None and default_only.run_id != mail.run_id
    depth = h.store.depth()
    assert depth["emails"].visible == 0 and depth["default"].visible == 20


def test_priorities_order_claims_within_a_queue() -> None:
    h = Harness(f.Three)
    low = h.start(f.Three, priority=5)
    high = h.start(f.Three, priority=-1)
    normal = h.start(f.Three)
    leases = h.store.claim("w", lease_for=30, limit=3, queues=["default"])
    assert [lease.dispatch.run_id for lease in leases] == [high.run_id, normal.run_id,
                                                            low.run_id]
    assert [lease.dispatch.priority for lease in leases] == [-1, 0, 5]


def test_priority_needs_the_capability() -> None:
    from dataclasses import replace

    h = Harness(f.Three)
    h.store.capabilities = replace(h.store.capabilities, priorities=False)
    with pytest.raises(CapabilityNotSupported):
        h.start(f.Three, priority=1)
    assert h.engine.list_runs().items == []
