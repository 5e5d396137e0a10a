"""The engine (``Squidie``) on the Redis store: retries, timers, approvals, cancel, wake-up.

Time moves with the store clock's offset; only ``wait_for_work`` tests wait for real
(a blocking read on a real server), and they poll with deadlines.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import _redis_flows as flows
import pytest
from _redis_data import dispatch

from squidie_backends.redis import RedisStore
from squidie_core import Squidie

pytestmark = pytest.mark.redis


@pytest.fixture
def engine(store: RedisStore) -> Squidie:
    return Squidie(store, workflows=[flows.ThreeSteps, flows.Flaky, flows.WaitThenStep,
                                     flows.Approval, flows.Blocking, flows.OtherQueue])


def drain(engine: Squidie, owner: str = "w") -> list[str]:
    outcomes = []
    while (result := engine.execute_next(owner_id=owner, heartbeat_interval=0)) is not None:
        outcomes.append(f"{result.step}:{result.outcome}")
    return outcomes


def test_a_run_completes_with_its_outputs(engine: Squidie) -> None:
    run = engine.start(flows.ThreeSteps, payload={"n": 4})
    assert drain(engine) == ["a:ok", "b:ok", "c:ok"]
    state = engine.inspect_run(run.run_id)
    assert state["status"] == "completed"
    assert engine.load(run.run_id).context["c"] == 11
    assert [r.run_id for r in engine.list_runs(status="completed").items] == [run.run_id]


def test_retry_backoff_waits_for_the_store_clock(engine: Squidie, store: RedisStore) -> None:
    run = engine.start(flows.Flaky)
    assert drain(engine) == ["flaky:retry"]
    [first, second] = store.dispatches(run.run_id)
    assert (first.state, second.state) == ("completed", "scheduled")
    store.clock.advance(6)
    assert drain(engine) == ["flaky:ok"]
    assert engine.inspect_run(run.run_id)["status"] == "completed"


def test_a_durable_timer(engine: Squidie, store: RedisStore) -> None:
    run = engine.start(flows.WaitThenStep)
    assert drain(engine) == []
    store.clock.advance(61)
    assert drain(engine) == ["pause_a_minute:ok", "only:ok"]
    assert engine.inspect_run(run.run_id)["status"] == "completed"


def test_approval_parks_the_run_until_approved(engine: Squidie) -> None:
    run = engine.start(flows.Approval)
    assert drain(engine) == []
    assert engine.inspect_run(run.run_id)["status"] == "paused"
    engine.approve(run.run_id, actor="ops", comment="fine")
    assert drain(engine) == ["only:ok"]


def test_lease_lapse_mid_step_reruns_the_step_once(engine: Squidie, store: RedisStore) -> None:
    run = engine.start(flows.ThreeSteps)
    [stale] = store.claim("dead-worker", lease_for=30, queues=["default"])
    assert drain(engine) == []  # the lease holds
    store.clock.advance(31)
    assert drain(engine, "live-worker") == ["a:ok", "b:ok", "c:ok"]
    succeeded = [f.body["step"] for f in store.read(run.run_id) if f.type == "attempt_succeeded"]
    assert succeeded == ["a", "b", "c"]
    assert stale.fence == 1


def test_cancel_fences_a_running_step(engine: Squidie) -> None:
    flows.CONTROL.update(started=threading.Event(), release=threading.Event())
    run = engine.start(flows.Blocking)
    results: list[object] = []
    worker = threading.Thread(
        target=lambda: results.append(engine.execute_next(owner_id="w", heartbeat_interval=0))
    )
    worker.start()
    assert flows.CONTROL["started"].wait(10)
    engine.cancel(run.run_id, actor="ops", reason="enough")
    flows.CONTROL["release"].set()
    worker.join(10)
    [result] = results
    assert result.outcome == "lease_lost"  # type: ignore[attr-defined]
    assert engine.inspect_run(run.run_id)["status"] == "cancelled"
    [rec] = engine.store.dispatches(run.run_id)
    assert (rec.state, rec.reason) == ("failed", "run_terminal")


def test_runs_of_another_queue_wait_for_a_worker_of_that_queue(engine: Squidie) -> None:
    run = engine.start(flows.OtherQueue)
    assert engine.execute_next(owner_id="w", queues=["default"]) is None
    result = engine.execute_next(owner_id="w", queues=["reports"], heartbeat_interval=0)
    assert result is not None and result.outcome == "ok"
    assert engine.inspect_run(run.run_id)["status"] == "completed"


def test_checkpoints_can_be_deleted_without_changing_results(store: RedisStore) -> None:
    engine = Squidie(store, workflows=[flows.ThreeSteps], checkpoint_every=2)
    run = engine.start(flows.ThreeSteps)
    drain(engine)
    before = engine.inspect_run(run.run_id)
    assert store.delete_checkpoints() >= 1
    assert engine.inspect_run(run.run_id) == before


# ------------------------------------------------------------------ wait_for_work


def test_wait_for_work_returns_at_once_when_work_is_visible(store: RedisStore) -> None:
    store.enqueue([dispatch("r")])
    t0 = time.monotonic()
    assert store.wait_for_work(["default"], 10) is True
    assert time.monotonic() - t0 < 5


def test_wait_for_work_times_out_when_idle(store: RedisStore) -> None:
    assert store.wait_for_work(["default", "other"], 0.2) is False


def test_wait_for_work_wakes_on_an_enqueue_from_elsewhere(
    store: RedisStore, open_store: Callable[..., RedisStore]
) -> None:
    other = open_store()
    woken: list[bool] = []
    waiter = threading.Thread(target=lambda: woken.append(store.wait_for_work(["q"], 20)))
    waiter.start()
    # The waiter may start blocking before or after this enqueue: either way it must
    # return True long before its 20 s timeout.
    other.enqueue([dispatch("r", queue="q")])
    waiter.join(10)
    assert woken == [True]


def test_wait_for_work_wakes_when_a_delayed_dispatch_falls_due(store: RedisStore) -> None:
    store.enqueue([dispatch("r", delay=0.3)])
    t0 = time.monotonic()
    assert store.wait_for_work(["default"], 20) is True
    assert 0.2 < time.monotonic() - t0 < 10


def test_closing_the_store_releases_a_blocked_waiter(store: RedisStore) -> None:
    woken: list[bool] = []
    waiter = threading.Thread(target=lambda: woken.append(store.wait_for_work(["default"], 30)))
    waiter.start()
    deadline = time.monotonic() + 10
    while not _blocked(store) and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the server for the blocked client, with a deadline
    store.close()
    waiter.join(10)
    assert woken == [False]


def _blocked(store: RedisStore) -> bool:
    clients = store._client.client_list()
    return any(c.get("cmd") == "xread" for c in clients)
