"""Enqueue and delayed visibility: a dispatch is deliverable from ``now + delay``, in order.

Time is the store's: every case moves ``clock`` instead of sleeping, and allows the
store's declared ``visibility_precision`` around each boundary.
"""

from __future__ import annotations

import pytest

from conformance._markers import since
from conformance._support import (
    DELAY,
    LEASE,
    AdvancingClock,
    SuiteBase,
    beyond,
    claim_one,
    dispatch,
    new_run_id,
    record_of,
)
from squidie_core.errors import InvalidArgument
from squidie_core.storage import QueueDepth, Store


def _between(value: float, low: float, high: float, slack: float) -> bool:
    return low - slack <= value <= high + slack


@since("1.0")
class EnqueueSuite(SuiteBase):
    """``enqueue``, delayed visibility, claim order, queues, ``dispatches`` and ``depth``."""

    def test_an_enqueued_dispatch_can_be_claimed(self, store: Store) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        lease = claim_one(store)
        assert lease.key == d.key
        assert lease.dispatch.intent() == d.intent()

    def test_a_lease_describes_its_claim(self, store: Store, clock: AdvancingClock) -> None:
        store.enqueue([dispatch(new_run_id())])
        before = clock.now()
        lease = claim_one(store, "worker-7", lease_for=LEASE)
        after = clock.now()
        slack = store.capabilities.visibility_precision
        assert lease.owner_id == "worker-7"
        assert lease.fence >= 1
        assert lease.delivery == 1
        assert isinstance(lease.token, str) and len(lease.token) >= 16
        assert _between(lease.expires_at, before + LEASE, after + LEASE, slack)

    def test_claiming_from_an_empty_store_returns_nothing(self, store: Store) -> None:
        assert store.claim("worker-1", lease_for=LEASE) == []

    def test_a_delayed_dispatch_is_not_visible_before_its_delay(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        store.enqueue([dispatch(new_run_id(), delay=DELAY)])
        assert store.claim("worker-1", lease_for=LEASE) == []
        clock.advance(DELAY - 10)
        assert store.claim("worker-1", lease_for=LEASE) == []

    def test_a_delayed_dispatch_becomes_visible_after_its_delay(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        d = dispatch(new_run_id(), delay=DELAY)
        store.enqueue([d])
        clock.advance(beyond(store, DELAY))
        assert claim_one(store).key == d.key

    def test_a_delayed_dispatch_is_reported_scheduled_then_available(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        d = dispatch(new_run_id(), delay=DELAY)
        store.enqueue([d])
        assert record_of(store, d.key).state == "scheduled"
        clock.advance(beyond(store, DELAY))
        assert record_of(store, d.key).state == "available"

    def test_visible_at_is_the_enqueue_time_plus_the_delay(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        d = dispatch(new_run_id(), delay=DELAY)
        before = clock.now()
        store.enqueue([d])
        after = clock.now()
        record = record_of(store, d.key)
        assert _between(record.visible_at, before + DELAY, after + DELAY,
                        store.capabilities.visibility_precision)
        assert (record.deliveries, record.fence) == (0, 0)

    def test_a_zero_delay_dispatch_is_visible_at_once(self, store: Store) -> None:
        d = dispatch(new_run_id(), delay=0.0)
        store.enqueue([d])
        assert record_of(store, d.key).state == "available"
        assert claim_one(store).key == d.key

    def test_claims_come_earliest_visible_first(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        run_id = new_run_id()
        for step, delay in (("late", 30.0), ("early", 10.0), ("middle", 20.0)):
            store.enqueue([dispatch(run_id, step, delay=delay)])
        clock.advance(beyond(store, 30.0))
        leases = store.claim("worker-1", lease_for=LEASE, limit=3)
        assert [lease.dispatch.step for lease in leases] == ["early", "middle", "late"]

    def test_dispatches_visible_at_the_same_time_are_claimed_in_key_order(
        self, store: Store
    ) -> None:
        run_id = new_run_id()
        store.enqueue([dispatch(run_id, s) for s in ("charlie", "alpha", "bravo")])
        leases = store.claim("worker-1", lease_for=LEASE, limit=3)
        assert [lease.dispatch.step for lease in leases] == ["alpha", "bravo", "charlie"]

    def test_a_claim_returns_at_most_limit_distinct_dispatches(self, store: Store) -> None:
        run_id = new_run_id()
        store.enqueue([dispatch(run_id, f"s{i}") for i in range(5)])
        first = store.claim("worker-1", lease_for=LEASE, limit=3)
        second = store.claim("worker-2", lease_for=LEASE, limit=3)
        keys = [lease.key for lease in first + second]
        assert (len(first), len(second)) == (3, 2)
        assert len(set(keys)) == 5

    @pytest.mark.parametrize("limit", [0, -1])
    def test_a_claim_limit_below_one_is_refused(self, store: Store, limit: int) -> None:
        with pytest.raises(InvalidArgument):
            store.claim("worker-1", lease_for=LEASE, limit=limit)

    @pytest.mark.parametrize("lease_for", [0.0, -5.0])
    def test_a_non_positive_lease_is_refused(self, store: Store, lease_for: float) -> None:
        store.enqueue([dispatch(new_run_id())])
        with pytest.raises(InvalidArgument):
            store.claim("worker-1", lease_for=lease_for)
        assert claim_one(store).delivery == 1

    def test_claims_default_to_the_default_queue(self, store: Store) -> None:
        run_id = new_run_id()
        store.enqueue([dispatch(run_id, "elsewhere", queue="emails")])
        assert store.claim("worker-1", lease_for=LEASE) == []
        store.enqueue([dispatch(run_id, "here")])
        assert claim_one(store).dispatch.step == "here"

    def test_claims_come_only_from_the_named_queues(self, store: Store) -> None:
        run_id = new_run_id()
        store.enqueue([dispatch(run_id, "a", queue="default"),
                       dispatch(run_id, "b", queue="emails"),
                       dispatch(run_id, "c", queue="reports")])
        leases = store.claim("worker-1", lease_for=LEASE, limit=10, queues=["emails"])
        assert [lease.dispatch.step for lease in leases] == ["b"]
        assert leases[0].dispatch.queue == "emails"

    def test_one_claim_can_serve_several_queues(self, store: Store) -> None:
        run_id = new_run_id()
        store.enqueue([dispatch(run_id, "a", queue="emails"),
                       dispatch(run_id, "b", queue="reports"),
                       dispatch(run_id, "c", queue="other")])
        leases = store.claim("worker-1", lease_for=LEASE, limit=10,
                             queues=["emails", "reports"])
        assert sorted(lease.dispatch.step for lease in leases) == ["a", "b"]

    def test_a_backlog_in_one_queue_does_not_delay_another(self, store: Store) -> None:
        run_id = new_run_id()
        store.enqueue([dispatch(run_id, f"bulk{i:03d}", queue="bulk") for i in range(150)])
        store.enqueue([dispatch(run_id, "urgent", queue="urgent")])
        leases = store.claim("worker-1", lease_for=LEASE, limit=1, queues=["urgent"])
        assert [lease.dispatch.step for lease in leases] == ["urgent"]

    def test_dispatches_lists_a_run_in_enqueue_order(self, store: Store) -> None:
        run_id, other = new_run_id(), new_run_id()
        store.enqueue([dispatch(run_id, "zulu")])
        store.enqueue([dispatch(other, "noise")])
        store.enqueue([dispatch(run_id, "alpha"), dispatch(run_id, "mike")])
        steps = [r.dispatch.step for r in store.dispatches(run_id)]
        assert steps == ["zulu", "alpha", "mike"]

    def test_an_unknown_run_has_no_dispatches(self, store: Store) -> None:
        assert store.dispatches("no-such-run") == []

    def test_dispatch_fields_round_trip(self, store: Store) -> None:
        d = dispatch(new_run_id(), "send_mail", 3, queue="emails", max_deliveries=9,
                     workflow="Mailer")
        store.enqueue([d])
        (record,) = store.dispatches(d.run_id)
        assert record.dispatch.intent() == d.intent()
        assert record.dispatch.key == d.key
        lease = claim_one(store, queues=["emails"])
        assert lease.dispatch.intent() == d.intent()

    def test_depth_counts_visible_and_scheduled_dispatches(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        run_id = new_run_id()
        now = clock.now()
        store.enqueue([dispatch(run_id, "a"), dispatch(run_id, "b"),
                       dispatch(run_id, "c", delay=DELAY)])
        depth = store.depth(["default"])["default"]
        assert (depth.visible, depth.scheduled, depth.claimed, depth.dead) == (2, 1, 0, 0)
        assert depth.oldest_visible_at is not None
        assert abs(depth.oldest_visible_at - now) <= 5 + store.capabilities.visibility_precision

    def test_depth_counts_claimed_and_dead_dispatches(self, store: Store) -> None:
        run_id = new_run_id()
        store.enqueue([dispatch(run_id, s, queue="jobs") for s in ("a", "b", "c")])
        claim_one(store, queues=["jobs"])
        store.dead_letter(claim_one(store, queues=["jobs"]), "poison")
        depth = store.depth(["jobs"])["jobs"]
        assert (depth.visible, depth.scheduled, depth.claimed, depth.dead) == (1, 0, 1, 1)

    def test_depth_is_reported_per_queue(self, store: Store) -> None:
        run_id = new_run_id()
        store.enqueue([dispatch(run_id, "a", queue="emails"),
                       dispatch(run_id, "b", queue="emails"),
                       dispatch(run_id, "c", queue="reports")])
        depth = store.depth()
        assert depth["emails"].visible == 2
        assert depth["reports"].visible == 1
        assert set(store.depth(["reports"])) == {"reports"}

    def test_depth_of_a_named_empty_queue_is_all_zero(self, store: Store) -> None:
        assert store.depth(["nothing-here"]) == {"nothing-here": QueueDepth()}

    def test_many_dispatches_enqueue_in_one_call(self, store: Store) -> None:
        run_id = new_run_id()
        store.enqueue([dispatch(run_id, f"s{i:02d}") for i in range(40)])
        leases = store.claim("worker-1", lease_for=LEASE, limit=100)
        assert len({lease.key for lease in leases}) == 40
