"""Claims and lease expiry: one holder at a time; an expired lease is simply claimable.

No sweeper runs anywhere: the claim path itself treats a dispatch whose lease expired as
visible. A crashed worker therefore costs one lease period, never a lost dispatch::

    worker A                          store                         worker B
    claim d (fence 1)       ------>   d claimed until t+30
    crashes                           ...
                                      t+30: lease lapsed
                                      claim d (fence 2)   <------   claim
"""

from __future__ import annotations

import pytest

from conformance._markers import since
from conformance._support import (
    LEASE,
    AdvancingClock,
    SuiteBase,
    beyond,
    claim_one,
    dispatch,
    move_past,
    new_run_id,
    record_of,
)
from squidie_core.storage import Store


@since("1.0")
class ClaimSuite(SuiteBase):
    """``claim`` under leases: exclusivity, expiry, fences, deliveries, delivery limits."""

    def test_a_claimed_dispatch_is_not_handed_to_anyone_else(self, store: Store) -> None:
        store.enqueue([dispatch(new_run_id())])
        claim_one(store, "worker-1")
        assert store.claim("worker-2", lease_for=LEASE) == []
        assert store.claim("worker-1", lease_for=LEASE) == []

    def test_a_claimed_dispatch_is_reported_with_its_holder(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        lease = claim_one(store, "worker-1")
        record = record_of(store, d.key)
        assert record.state == "claimed"
        assert record.owner_id == "worker-1"
        assert record.deliveries == 1
        assert record.fence == lease.fence
        assert record.lease_expires_at is not None
        assert abs(record.lease_expires_at - lease.expires_at) <= (
            store.capabilities.visibility_precision + 0.001
        )

    def test_a_lease_holds_until_it_expires(self, store: Store, clock: AdvancingClock) -> None:
        store.enqueue([dispatch(new_run_id())])
        claim_one(store, "worker-1")
        clock.advance(LEASE - 10)
        assert store.claim("worker-2", lease_for=LEASE) == []

    def test_an_expired_lease_is_claimable_by_another_owner(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        first = claim_one(store, "worker-1")
        move_past(store, clock, first.expires_at)
        second = claim_one(store, "worker-2")
        assert second.key == d.key
        assert second.owner_id == "worker-2"
        assert second.fence > first.fence
        assert second.delivery == 2
        assert second.token != first.token

    def test_the_fence_increases_on_every_delivery(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        store.enqueue([dispatch(new_run_id(), max_deliveries=10)])
        fences, deliveries = [], []
        for i in range(5):
            lease = claim_one(store, f"worker-{i}")
            fences.append(lease.fence)
            deliveries.append(lease.delivery)
            move_past(store, clock, lease.expires_at)
        assert fences == sorted(set(fences))
        assert deliveries == [1, 2, 3, 4, 5]

    def test_a_crashed_workers_dispatch_is_redelivered_intact(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        d = dispatch(new_run_id(), "charge_card", 2, queue="payments", max_deliveries=7)
        store.enqueue([d])
        claim_one(store, "doomed-worker", queues=["payments"])
        # The worker dies here without settling anything.
        clock.advance(beyond(store, LEASE))
        again = claim_one(store, "rescuer", queues=["payments"])
        assert again.key == d.key
        assert again.dispatch.intent() == d.intent()
        record = record_of(store, d.key)
        assert (record.state, record.owner_id, record.deliveries) == ("claimed", "rescuer", 2)

    def test_an_expired_lease_counts_as_claimed_until_it_is_reclaimed(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        claim_one(store, "worker-1")
        clock.advance(beyond(store, LEASE))
        depth = store.depth(["default"])["default"]
        assert (depth.claimed, depth.visible) == (1, 0)

    @pytest.mark.parametrize("limit", [1, 2, 4])
    def test_a_dispatch_that_kills_its_worker_is_dead_lettered_after_its_delivery_limit(
        self, store: Store, clock: AdvancingClock, limit: int
    ) -> None:
        d = dispatch(new_run_id(), max_deliveries=limit)
        store.enqueue([d])
        deliveries = 0
        for _ in range(limit + 3):
            leases = store.claim("worker", lease_for=LEASE)
            if not leases:
                break
            deliveries += 1
            assert leases[0].delivery == deliveries
            assert record_of(store, d.key).deliveries == deliveries
            clock.advance(beyond(store, LEASE))  # the worker died mid-step
        assert deliveries == limit
        record = record_of(store, d.key)
        assert record.state == "dead_lettered"
        assert record.reason == "delivery_limit_exceeded"
        assert record.deliveries == limit
        assert [r.dispatch.key for r in store.dead_letters().items] == [d.key]

    def test_the_raw_token_is_never_shown(self, store: Store) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        lease = claim_one(store)
        assert lease.token not in repr(lease)
        for record in store.dispatches(d.run_id):
            assert lease.token not in repr(record)
            assert lease.token not in str(record.to_dict())
        assert lease.token not in repr(store)

    def test_a_completed_dispatch_is_never_claimed_again(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        store.enqueue([dispatch(new_run_id())])
        store.complete(claim_one(store))
        clock.advance(beyond(store, 10 * LEASE))
        assert store.claim("worker-2", lease_for=LEASE) == []

    def test_each_lease_of_a_batch_has_its_own_token(self, store: Store) -> None:
        run_id = new_run_id()
        store.enqueue([dispatch(run_id, s) for s in ("a", "b", "c")])
        leases = store.claim("worker-1", lease_for=LEASE, limit=3)
        assert len({lease.token for lease in leases}) == 3

    def test_an_expired_dispatch_is_claimed_with_the_visible_ones(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        run_id = new_run_id()
        store.enqueue([dispatch(run_id, "first")])
        claim_one(store, "worker-1")
        clock.advance(beyond(store, LEASE))
        store.enqueue([dispatch(run_id, "second")])
        leases = store.claim("worker-2", lease_for=LEASE, limit=5)
        assert sorted(lease.dispatch.step for lease in leases) == ["first", "second"]
