"""Lease delivery of the SQL store on every dialect, time driven by a ManualClock."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sql_helpers import T0, dispatch, start

from squidie_backends.sql import SQLStore
from squidie_core import ManualClock
from squidie_core.errors import (
    DispatchNotFound,
    IdempotencyConflict,
    InvalidArgument,
    LeaseLostError,
    RunTerminalError,
)
from squidie_core.storage import QueueDepth


def test_enqueue_is_idempotent_by_key(sql_store: SQLStore) -> None:
    d = dispatch("r")
    sql_store.enqueue([d, d])
    sql_store.enqueue([d])
    assert len(sql_store.dispatches("r")) == 1
    with pytest.raises(IdempotencyConflict):
        sql_store.enqueue([dispatch("r", max_deliveries=2)])
    # The failed batch wrote nothing, not even its valid part.
    with pytest.raises(IdempotencyConflict):
        sql_store.enqueue([dispatch("r", "other"), dispatch("r", queue="elsewhere")])
    assert [r.dispatch.key for r in sql_store.dispatches("r")] == ["r:s:1"]


def test_enqueue_refuses_terminal_runs(sql_store: SQLStore) -> None:
    start(sql_store, "done", status="completed")
    with pytest.raises(RunTerminalError):
        sql_store.enqueue([dispatch("done")])
    assert sql_store.dispatches("done") == []


def test_delayed_visibility_follows_the_clock(sql_store: SQLStore, clock: ManualClock) -> None:
    sql_store.enqueue([dispatch("r", delay=10.0)])
    [record] = sql_store.dispatches("r")
    assert (record.state, record.visible_at) == ("scheduled", T0 + 10)
    assert sql_store.claim("w", lease_for=30) == []
    clock.advance(9.999)
    assert sql_store.claim("w", lease_for=30) == []
    clock.advance(0.001)
    [lease] = sql_store.claim("w", lease_for=30)
    assert lease.dispatch == dispatch("r", delay=10.0)
    assert (lease.fence, lease.delivery, lease.expires_at) == (1, 1, T0 + 40)


def test_claim_order_visibility_then_enqueue_order(sql_store: SQLStore,
                                                   clock: ManualClock) -> None:
    sql_store.enqueue([dispatch("a", delay=5), dispatch("b"), dispatch("c", delay=1)])
    sql_store.enqueue([dispatch("d"), dispatch("e")])
    clock.advance(10)
    leases = sql_store.claim("w", lease_for=30, limit=10)
    assert [x.dispatch.run_id for x in leases] == ["b", "d", "e", "c", "a"]
    assert len({x.token for x in leases}) == 5


def test_priorities_order_within_and_across_queues(sql_store: SQLStore) -> None:
    sql_store.enqueue([
        dispatch("p5", priority=5), dispatch("p1", priority=1), dispatch("p0", priority=0),
        dispatch("q1", priority=1, queue="q"), dispatch("p1b", priority=1),
        dispatch("later", priority=-1, delay=100),
    ])
    # Priority first, then visibility, then the dispatch key (across queues too).
    got = sql_store.claim("w", lease_for=30, limit=3, queues=["default", "q"])
    assert [x.dispatch.run_id for x in got] == ["p0", "p1", "p1b"]
    got = sql_store.claim("w", lease_for=30, limit=5, queues=["default", "q"])
    assert [x.dispatch.run_id for x in got] == ["q1", "p5"]


def test_a_claim_that_comes_back_short_takes_two_statements(sql_store: SQLStore) -> None:
    """The rows a claim selects carry the queue's next priority level, so a claim that
    runs out of rows at the last level needs no probe for another: select, update."""
    sql_store.enqueue([dispatch("a"), dispatch("b")])
    statements: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE")):
            statements.append(statement.split(maxsplit=1)[0].upper())

    sa.event.listen(sql_store._engine, "before_cursor_execute", record)
    try:
        got = sql_store.claim("w", lease_for=30, limit=16)
    finally:
        sa.event.remove(sql_store._engine, "before_cursor_execute", record)
    assert [x.dispatch.run_id for x in got] == ["a", "b"]
    # PostgreSQL claims in one statement of its own, sent to the driver directly
    # (test_postgres.py).
    assert statements == ([] if sql_store.name == "postgresql" else ["SELECT", "UPDATE"])


def test_queues_are_isolated(sql_store: SQLStore) -> None:
    sql_store.enqueue([dispatch(f"bulk{i}", queue="bulk") for i in range(20)])
    sql_store.enqueue([dispatch("urgent", queue="urgent")])
    [lease] = sql_store.claim("w", lease_for=30, queues=["urgent"])
    assert lease.dispatch.run_id == "urgent"
    assert sql_store.claim("w", lease_for=30) == []  # default queue is empty


def test_lease_expiring_mid_step_is_taken_over(sql_store: SQLStore, clock: ManualClock) -> None:
    sql_store.enqueue([dispatch("r")])
    [first] = sql_store.claim("A", lease_for=30)
    clock.advance(15)
    first = sql_store.heartbeat(first, lease_for=30)
    assert first.expires_at == T0 + 45
    clock.advance(29)
    assert sql_store.claim("B", lease_for=30) == []  # still held thanks to the heartbeat
    clock.advance(1)  # exactly at expiry: expired
    [second] = sql_store.claim("B", lease_for=30)
    assert (second.fence, second.delivery, second.owner_id) == (2, 2, "B")
    for stale in (
        lambda: sql_store.heartbeat(first, lease_for=30),
        lambda: sql_store.complete(first),
        lambda: sql_store.retry(first),
        lambda: sql_store.dead_letter(first, "x"),
    ):
        with pytest.raises(LeaseLostError):
            stale()
    [record] = sql_store.dispatches("r")
    assert (record.state, record.owner_id, record.fence) == ("claimed", "B", 2)
    assert [h["event"] for h in record.history] == ["claimed", "lease_expired", "claimed"]
    sql_store.complete(second)
    sql_store.complete(second)  # idempotent for the same lease
    assert sql_store.dispatches("r")[0].state == "completed"


def test_expired_lease_cannot_heartbeat_even_unclaimed(sql_store: SQLStore,
                                                       clock: ManualClock) -> None:
    sql_store.enqueue([dispatch("r")])
    [lease] = sql_store.claim("A", lease_for=10)
    clock.advance(10)
    with pytest.raises(LeaseLostError, match="expired"):
        sql_store.heartbeat(lease, lease_for=10)
    with pytest.raises(LeaseLostError, match="expired"):
        sql_store.complete(lease)


def test_retry_redelivers_after_delay_and_counts(sql_store: SQLStore, clock: ManualClock) -> None:
    sql_store.enqueue([dispatch("r", max_deliveries=2)])
    [lease] = sql_store.claim("w", lease_for=30)
    sql_store.retry(lease, delay=5, reason="flaky")
    assert sql_store.dispatches("r")[0].state == "scheduled"
    assert sql_store.claim("w", lease_for=30) == []
    clock.advance(5)
    [again] = sql_store.claim("w", lease_for=30)
    assert (again.delivery, again.fence) == (2, 2)
    sql_store.retry(again)
    # A third delivery would exceed max_deliveries=2: the claim dead-letters it instead.
    assert sql_store.claim("w", lease_for=30) == []
    [record] = sql_store.dispatches("r")
    assert (record.state, record.reason) == ("dead_lettered", "delivery_limit_exceeded")
    events = [h["event"] for h in record.history]
    assert events == ["claimed", "retried", "claimed", "retried", "dead_lettered"]
    assert record.history[1]["reason"] == "flaky"


def test_claim_keeps_filling_past_buried_dispatches(sql_store: SQLStore,
                                                     clock: ManualClock) -> None:
    sql_store.enqueue([dispatch("a-spent", max_deliveries=1)])
    assert len(sql_store.claim("w", lease_for=10)) == 1
    clock.advance(10)
    # Visible at the instant the spent lease expires; ties break by key, so the spent
    # dispatch comes first, is buried, and the claim goes on to fill its limit.
    sql_store.enqueue([dispatch("ok1"), dispatch("ok2")])
    got = sql_store.claim("w", lease_for=10, limit=2)
    assert [x.dispatch.run_id for x in got] == ["ok1", "ok2"]
    [dead] = sql_store.dead_letters().items
    assert dead.dispatch.run_id == "a-spent"
    assert [h["event"] for h in dead.history] == ["claimed", "lease_expired", "dead_lettered"]


def test_dead_letters_paging_queue_filter_and_redrive(sql_store: SQLStore,
                                                      clock: ManualClock) -> None:
    keys = [dispatch(f"r{i}", queue="q" if i % 2 else "default") for i in range(5)]
    sql_store.enqueue(keys)
    leases = sql_store.claim("w", lease_for=30, limit=5, queues=["default", "q"])
    for lease in reversed(leases):  # buried newest-enqueued first: order is burial order
        sql_store.dead_letter(lease, "poison")
    page = sql_store.dead_letters(limit=2)
    seen = [x.dispatch.run_id for x in page.items]
    while page.next_cursor:
        page = sql_store.dead_letters(limit=2, cursor=page.next_cursor)
        seen += [x.dispatch.run_id for x in page.items]
    assert seen == ["r4", "r3", "r2", "r1", "r0"]
    assert [x.dispatch.run_id for x in sql_store.dead_letters(queue="q").items] == ["r3", "r1"]
    assert sql_store.depth(["q"])["q"] == QueueDepth(dead=2)

    sql_store.redrive("r3:s:1", delay=2)
    with pytest.raises(DispatchNotFound):
        sql_store.redrive("r3:s:1")
    with pytest.raises(DispatchNotFound):
        sql_store.redrive("missing:s:1")
    assert [x.dispatch.run_id for x in sql_store.dead_letters(queue="q").items] == ["r1"]
    clock.advance(2)
    [lease] = sql_store.claim("w", lease_for=30, queues=["q"])
    assert (lease.dispatch.run_id, lease.delivery, lease.fence) == ("r3", 1, 2)


def test_redrive_refuses_a_run_that_ended(sql_store: SQLStore) -> None:
    from sql_helpers import entry, facts

    from squidie_core.storage import Commit

    start(sql_store, "r", dispatch("r"))
    [lease] = sql_store.claim("w", lease_for=30)
    sql_store.dead_letter(lease, "poison")
    sql_store.commit(Commit("r", 1, facts(2, 1), entry("r", "failed", last_seq=2)))
    with pytest.raises(RunTerminalError):
        sql_store.redrive("r:s:1")


def test_depth_counts_per_queue(sql_store: SQLStore, clock: ManualClock) -> None:
    assert sql_store.depth() == {}
    sql_store.enqueue([dispatch("v1"), dispatch("v2"), dispatch("s", delay=50),
                       dispatch("c"), dispatch("o", queue="other")])
    clock.advance(1)
    sql_store.claim("w", lease_for=30, limit=1)
    depth = sql_store.depth()
    assert depth == {
        "default": QueueDepth(visible=2, scheduled=1, claimed=1, dead=0,
                              oldest_visible_at=T0),
        "other": QueueDepth(visible=1, oldest_visible_at=T0),
    }
    assert sql_store.depth(["nothing"]) == {"nothing": QueueDepth()}


def test_claim_rejects_bad_arguments(sql_store: SQLStore) -> None:
    with pytest.raises(InvalidArgument):
        sql_store.claim("w", lease_for=0)
    with pytest.raises(InvalidArgument):
        sql_store.claim("w", lease_for=1, limit=0)
