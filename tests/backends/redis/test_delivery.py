"""The Redis store's lease delivery: order, visibility, leases, fencing, dead letters.

Time is the store's server clock; tests move its offset (``store.clock.advance``) to make
delayed dispatches visible and leases lapse. Real time passes too (milliseconds), so
every delay and lease here is whole seconds and the clock is moved well past or well
short of an edge.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _redis_data import commit, dispatch

from squidie_backends.redis import RedisStore
from squidie_core.errors import (
    CapabilityNotSupported,
    DispatchNotFound,
    IdempotencyConflict,
    InvalidArgument,
    LeaseLostError,
    RunTerminalError,
)
from squidie_core.storage import Dispatch, QueueDepth

pytestmark = pytest.mark.redis


def keys(leases: list) -> list[str]:  # type: ignore[type-arg]
    return [lease.key for lease in leases]


def test_enqueue_then_claim_returns_a_fenced_lease(store: RedisStore) -> None:
    d = dispatch("r1")
    store.enqueue([d])
    before = store.clock.now()
    [lease] = store.claim("w", lease_for=30)
    assert lease.dispatch == d and lease.owner_id == "w"
    assert (lease.fence, lease.delivery) == (1, 1)
    assert before + 29 < lease.expires_at < store.clock.now() + 31
    assert store.claim("w2", lease_for=30) == []


def test_enqueue_is_idempotent_by_key_and_refuses_another_intent(store: RedisStore) -> None:
    d = dispatch("r1")
    store.enqueue([d])
    store.enqueue([d])
    store.enqueue([Dispatch(**{**d.to_dict(), "delay": 99.0})])  # delay is not intent
    assert len(store.claim("w", lease_for=30, limit=10)) == 1
    with pytest.raises(IdempotencyConflict):
        store.enqueue([Dispatch(**{**d.to_dict(), "max_deliveries": 9})])
    with pytest.raises(IdempotencyConflict):
        store.enqueue([Dispatch(**{**d.to_dict(), "queue": "other"})])
    assert store.depth(["other"])["other"] == QueueDepth()


def test_enqueue_is_all_or_nothing(store: RedisStore) -> None:
    store.enqueue([dispatch("r1")])
    conflicting = Dispatch(**{**dispatch("r1").to_dict(), "step": "other-step"})
    with pytest.raises(IdempotencyConflict):
        store.enqueue([dispatch("r2"), conflicting])
    assert store.dispatches("r2") == []


def test_priorities_are_not_supported(store: RedisStore) -> None:
    assert store.capabilities.priorities is False
    with pytest.raises(CapabilityNotSupported):
        store.enqueue([Dispatch(**{**dispatch("r1").to_dict(), "priority": 1})])


def test_claim_order_is_visible_time_then_key(store: RedisStore) -> None:
    store.enqueue([dispatch("c"), dispatch("a"), dispatch("b")])  # same instant: by key
    store.clock.advance(1)
    store.enqueue([dispatch("later", delay=5), dispatch("first", delay=2)])
    store.clock.advance(1)
    store.enqueue([dispatch("0now")])  # visible now, after a, b, c
    assert keys(store.claim("w", lease_for=60, limit=3)) == ["a:s:1", "b:s:1", "c:s:1"]
    assert keys(store.claim("w", lease_for=60, limit=5)) == ["0now:s:1"]
    store.clock.advance(10)
    assert keys(store.claim("w", lease_for=60, limit=5)) == ["first:s:1", "later:s:1"]


def test_delayed_dispatch_becomes_visible_before_a_later_immediate_one(
    store: RedisStore,
) -> None:
    store.enqueue([dispatch("delayed", delay=5)])
    store.clock.advance(10)
    store.enqueue([dispatch("immediate")])  # visible at t+10; "delayed" since t+5
    assert keys(store.claim("w", lease_for=60, limit=2)) == ["delayed:s:1", "immediate:s:1"]


def test_delayed_visibility_follows_the_store_clock(store: RedisStore) -> None:
    store.enqueue([dispatch("r", delay=30)])
    assert store.claim("w", lease_for=10) == []
    assert store.depth()["default"].scheduled == 1
    store.clock.advance(29)
    assert store.claim("w", lease_for=10) == []
    store.clock.advance(2)
    assert keys(store.claim("w", lease_for=10)) == ["r:s:1"]


def test_lapsed_lease_is_taken_over_with_a_higher_fence(store: RedisStore) -> None:
    store.enqueue([dispatch("r")])
    [a] = store.claim("wa", lease_for=10)
    assert store.claim("wb", lease_for=10) == []
    store.clock.advance(11)
    [b] = store.claim("wb", lease_for=10)
    assert (b.key, b.fence, b.delivery, b.owner_id) == (a.key, 2, 2, "wb")
    for stale in (lambda: store.heartbeat(a, lease_for=10), lambda: store.complete(a),
                  lambda: store.retry(a), lambda: store.dead_letter(a, "x")):
        with pytest.raises(LeaseLostError):
            stale()
    store.complete(b)
    [rec] = store.dispatches("r")
    assert rec.state == "completed" and rec.fence == 2
    assert [h["event"] for h in rec.history] == ["claimed", "lease_expired", "claimed",
                                                 "completed"]


def test_lapsed_leases_interleave_with_fresh_dispatches_by_time(store: RedisStore) -> None:
    store.enqueue([dispatch("leased")])
    store.claim("wa", lease_for=10)        # lapses at t+10
    store.clock.advance(5)
    store.enqueue([dispatch("fresh1")])    # visible at t+5
    store.clock.advance(10)
    store.enqueue([dispatch("fresh2")])    # visible at t+15
    got = store.claim("wb", lease_for=10, limit=3)
    assert keys(got) == ["fresh1:s:1", "leased:s:1", "fresh2:s:1"]


def test_heartbeat_extends_a_live_lease_only(store: RedisStore) -> None:
    store.enqueue([dispatch("r")])
    [lease] = store.claim("w", lease_for=10)
    store.clock.advance(8)
    lease = store.heartbeat(lease, lease_for=10)
    store.clock.advance(8)  # past the first expiry, within the extended one
    assert store.claim("other", lease_for=10) == []
    lease = store.heartbeat(lease, lease_for=10)
    store.clock.advance(11)
    with pytest.raises(LeaseLostError, match="expired"):
        store.heartbeat(lease, lease_for=10)
    with pytest.raises(InvalidArgument):
        store.heartbeat(lease, lease_for=0)


def test_complete_is_idempotent_for_the_same_token(store: RedisStore) -> None:
    store.enqueue([dispatch("r")])
    [lease] = store.claim("w", lease_for=10)
    store.complete(lease)
    store.complete(lease)
    store.clock.advance(60)
    assert store.claim("w", lease_for=10) == []
    assert store.depth()["default"] == QueueDepth()


def test_retry_releases_with_delay_and_counts_deliveries(store: RedisStore) -> None:
    store.enqueue([dispatch("r", max_deliveries=2)])
    [first] = store.claim("w", lease_for=10)
    store.retry(first, delay=20, reason="busy")
    with pytest.raises(LeaseLostError):
        store.retry(first)  # a second, distinct retry with a spent lease
    assert store.claim("w", lease_for=10) == []
    store.clock.advance(21)
    [second] = store.claim("w", lease_for=10)
    assert (second.fence, second.delivery) == (2, 2)
    store.retry(second)
    # Delivered max_deliveries times: the next claim dead-letters it instead.
    assert store.claim("w", lease_for=10) == []
    [dead] = store.dead_letters().items
    assert dead.state == "dead_lettered" and dead.reason == "delivery_limit_exceeded"
    assert dead.deliveries == 2
    events = [h["event"] for h in dead.history]
    assert events == ["claimed", "retried", "claimed", "retried", "dead_lettered"]
    assert dead.history[1]["reason"] == "busy"


def test_dead_letter_with_reason_and_redrive(store: RedisStore) -> None:
    store.enqueue([dispatch("r")])
    [lease] = store.claim("w", lease_for=10)
    store.dead_letter(lease, "poison")
    with pytest.raises(LeaseLostError):
        store.complete(lease)
    page = store.dead_letters()
    assert [(d.dispatch.key, d.reason) for d in page.items] == [("r:s:1", "poison")]
    assert store.depth()["default"] == QueueDepth(dead=1)
    store.redrive("r:s:1", delay=5)
    assert store.dead_letters().items == []
    assert store.claim("w", lease_for=10) == []
    store.clock.advance(6)
    [again] = store.claim("w", lease_for=10)
    assert (again.fence, again.delivery) == (2, 1)  # fence continues, deliveries reset
    with pytest.raises(DispatchNotFound):
        store.redrive("r:s:1")
    with pytest.raises(DispatchNotFound):
        store.redrive("nope")


def test_redrive_refused_once_the_run_ended(store: RedisStore) -> None:
    store.commit(commit("r", 0, enqueue=[dispatch("r")]))
    [lease] = store.claim("w", lease_for=10)
    store.dead_letter(lease, "poison")
    store.commit(commit("r", 1, status="failed"))
    with pytest.raises(RunTerminalError):
        store.redrive("r:s:1")


def test_dead_letters_oldest_first_across_queues_with_paging(store: RedisStore) -> None:
    order = [("b", "q2"), ("a", "q1"), ("c", "q2"), ("d", "q1"), ("e", "q3")]
    for run, queue in order:
        store.enqueue([dispatch(run, queue=queue)])
        [lease] = store.claim("w", lease_for=10, queues=[queue])
        store.dead_letter(lease, f"why-{run}")
    seen, cursor = [], None
    while True:
        page = store.dead_letters(limit=2, cursor=cursor)
        seen += [d.dispatch.run_id for d in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ["b", "a", "c", "d", "e"]
    assert [d.dispatch.run_id for d in store.dead_letters(queue="q1").items] == ["a", "d"]
    with pytest.raises(InvalidArgument):
        store.dead_letters(cursor="bogus")


def test_queues_are_isolated(store: RedisStore) -> None:
    store.enqueue([dispatch(f"a{i}", queue="busy") for i in range(20)])
    store.enqueue([dispatch("b", queue="quiet")])
    assert keys(store.claim("w", lease_for=10, queues=["quiet"])) == ["b:s:1"]
    assert store.claim("w", lease_for=10) == []  # "default" is empty
    assert len(store.claim("w", lease_for=10, limit=50, queues=["busy"])) == 20


def test_claim_across_queues_takes_the_earliest_head(store: RedisStore) -> None:
    store.enqueue([dispatch("x1", queue="x")])
    store.clock.advance(1)
    store.enqueue([dispatch("y1", queue="y")])
    store.clock.advance(1)
    store.enqueue([dispatch("x2", queue="x")])
    got = store.claim("w", lease_for=10, limit=3, queues=["y", "x"])
    assert keys(got) == ["x1:s:1", "y1:s:1", "x2:s:1"]


def test_claim_limit_spans_batches(store: RedisStore) -> None:
    store.enqueue([dispatch(f"r{i:04d}") for i in range(1200)])
    got = store.claim("w", lease_for=60, limit=1100)
    assert len(got) == 1100 and len({lease.key for lease in got}) == 1100
    assert keys(got) == sorted(keys(got))
    assert len({lease.token for lease in got}) == 1100


def test_claim_validates_its_arguments(store: RedisStore) -> None:
    for kwargs in ({"lease_for": 0}, {"lease_for": 1, "limit": 0}):
        with pytest.raises(InvalidArgument):
            store.claim("w", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        store.claim("", lease_for=1)


def test_depth_counts_each_state(store: RedisStore) -> None:
    store.enqueue([dispatch(f"v{i}") for i in range(3)])
    store.enqueue([dispatch("s", delay=100)])
    store.enqueue([dispatch("other", queue="q2")])
    [_claimed] = store.claim("w", lease_for=10)
    [dead] = store.claim("w", lease_for=10)
    store.dead_letter(dead, "x")
    depth = store.depth()
    assert set(depth) == {"default", "q2"}
    d = depth["default"]
    assert (d.visible, d.scheduled, d.claimed, d.dead) == (1, 1, 1, 1)
    assert d.oldest_visible_at is not None and d.oldest_visible_at <= store.clock.now()
    store.clock.advance(20)  # the lease lapsed: still counted as claimed until re-claimed
    d = store.depth(["default"])["default"]
    assert (d.visible, d.scheduled, d.claimed, d.dead) == (1, 1, 1, 1)
    store.clock.advance(100)
    assert store.depth(["default"])["default"].visible == 2
    assert store.depth(["nothing"]) == {"nothing": QueueDepth()}


def test_depth_lists_only_queues_with_dispatches(store: RedisStore) -> None:
    store.append("journal-only", [], 0)
    store.commit(commit("r", 0, queue="runs-only"))
    assert store.depth() == {}


def test_dispatches_lists_a_run_in_enqueue_order(store: RedisStore) -> None:
    store.enqueue([dispatch("r", "b"), dispatch("r", "a", delay=50)])
    store.enqueue([dispatch("r", "c", queue="elsewhere")])
    records = store.dispatches("r")
    assert [r.dispatch.step for r in records] == ["b", "a", "c"]
    assert [r.state for r in records] == ["available", "scheduled", "available"]
    [lease] = store.claim("w", lease_for=10)
    by_step = {r.dispatch.step: r for r in store.dispatches("r")}
    assert by_step["b"].state == "claimed"
    assert by_step["b"].owner_id == "w"
    assert by_step["b"].lease_expires_at == pytest.approx(lease.expires_at)
    assert store.dispatches("nobody") == []


def test_owners_leave_the_consumer_group_when_they_hold_nothing(
    store: RedisStore, open_store: Callable[..., RedisStore]
) -> None:
    store.enqueue([dispatch(f"r{i}") for i in range(3)])
    leases = store.claim("w1", lease_for=10, limit=2)
    store.clock.advance(20)
    store.claim("w2", lease_for=10, limit=3)  # takes both lapsed leases over
    ready = store._queue("default").ready
    consumers = {c["name"]: c["pending"] for c in store._client.xinfo_consumers(ready, "squidie")}
    assert consumers == {"w2": 3}
    assert len(leases) == 2


def test_more_dispatches_due_than_one_promotion_still_claim_in_order(
    store: RedisStore,
) -> None:
    store.enqueue([dispatch(f"r{i:05d}", delay=10) for i in range(2500)])
    store.clock.advance(11)
    store.enqueue([dispatch("late")])  # visible after all 2,500
    got = keys(store.claim("w", lease_for=60, limit=3000))
    assert got == [f"r{i:05d}:s:1" for i in range(2500)] + ["late:s:1"]
