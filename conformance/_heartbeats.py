"""Heartbeats: a live holder extends its lease; anyone else's heartbeat is refused.

A heartbeat without a token check would let a paused worker resurrect a lease that was
taken over::

    worker A                          store                         worker B
    claim d (fence 1, token a)
    ... paused past expiry ...        d claimable
                                      claim d (fence 2, b)  <------
    heartbeat(a) ----------------->   a is not current: LeaseLostError
                                      (B's lease is untouched)
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
    snapshot,
)
from squidie_core.errors import InvalidArgument, LeaseLostError
from squidie_core.storage import Lease, Store, new_token


@since("1.0")
class HeartbeatSuite(SuiteBase):
    """``heartbeat``: extends live leases only, returns the extended lease."""

    def test_a_heartbeat_extends_the_lease_from_now(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        store.enqueue([dispatch(new_run_id())])
        lease = claim_one(store)
        clock.advance(LEASE / 2)
        before = clock.now()
        extended = store.heartbeat(lease, lease_for=LEASE)
        slack = store.capabilities.visibility_precision + 0.001
        assert extended.expires_at >= before + LEASE - slack
        assert extended.expires_at > lease.expires_at
        assert (extended.key, extended.token, extended.fence, extended.owner_id) == (
            lease.key, lease.token, lease.fence, lease.owner_id)

    def test_a_heartbeat_is_reflected_in_the_record(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        lease = claim_one(store)
        clock.advance(LEASE / 2)
        extended = store.heartbeat(lease, lease_for=LEASE)
        record = record_of(store, d.key)
        assert record.lease_expires_at is not None
        assert abs(record.lease_expires_at - extended.expires_at) <= (
            store.capabilities.visibility_precision + 0.001
        )

    def test_a_heartbeat_keeps_others_away_past_the_original_expiry(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        store.enqueue([dispatch(new_run_id())])
        lease = claim_one(store, "holder")
        clock.advance(LEASE / 2)
        store.heartbeat(lease, lease_for=LEASE)
        clock.advance(LEASE / 2 + 5)  # past the first expiry, inside the extension
        assert store.claim("intruder", lease_for=LEASE) == []

    def test_repeated_heartbeats_hold_a_dispatch_for_many_lease_periods(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        store.enqueue([dispatch(new_run_id())])
        lease = claim_one(store, "holder")
        for _ in range(12):
            clock.advance(LEASE / 3)
            lease = store.heartbeat(lease, lease_for=LEASE)
            assert store.claim("intruder", lease_for=LEASE) == []
        store.complete(lease)

    def test_a_heartbeat_after_expiry_fails_even_if_nobody_reclaimed(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        lease = claim_one(store, "sleeper")
        move_past(store, clock, lease.expires_at)
        before = snapshot(store, d.run_id)
        with pytest.raises(LeaseLostError) as info:
            store.heartbeat(lease, lease_for=LEASE)
        assert info.value.dispatch_key == d.key
        assert snapshot(store, d.run_id) == before
        assert claim_one(store, "rescuer").delivery == 2

    def test_a_heartbeat_after_a_takeover_fails_and_spares_the_new_holder(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        store.enqueue([dispatch(new_run_id())])
        stale = claim_one(store, "sleeper")
        move_past(store, clock, stale.expires_at)
        current = claim_one(store, "rescuer")
        with pytest.raises(LeaseLostError):
            store.heartbeat(stale, lease_for=LEASE)
        store.heartbeat(current, lease_for=LEASE)
        store.complete(current)

    def test_a_heartbeat_with_a_forged_token_fails(self, store: Store) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        lease = claim_one(store)
        forged = Lease(lease.dispatch, lease.owner_id, new_token(), lease.fence, lease.delivery,
                       lease.expires_at)
        before = snapshot(store, d.run_id)
        with pytest.raises(LeaseLostError):
            store.heartbeat(forged, lease_for=LEASE)
        assert snapshot(store, d.run_id) == before

    @pytest.mark.parametrize("settled_by", ["complete", "retry", "dead_letter"])
    def test_a_heartbeat_after_settling_fails(self, store: Store, settled_by: str) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        lease = claim_one(store)
        if settled_by == "complete":
            store.complete(lease)
        elif settled_by == "retry":
            store.retry(lease, delay=LEASE)
        else:
            store.dead_letter(lease, "poison")
        before = snapshot(store, d.run_id)
        with pytest.raises(LeaseLostError):
            store.heartbeat(lease, lease_for=LEASE)
        assert snapshot(store, d.run_id) == before

    def test_a_heartbeat_for_an_unknown_dispatch_fails(self, store: Store) -> None:
        store.enqueue([dispatch(new_run_id())])
        lease = claim_one(store)
        ghost = Lease(dispatch("no-such-run"), "worker-1", lease.token, lease.fence, 1,
                      lease.expires_at)
        with pytest.raises(LeaseLostError):
            store.heartbeat(ghost, lease_for=LEASE)

    @pytest.mark.parametrize("lease_for", [0.0, -1.0])
    def test_a_non_positive_extension_is_refused(self, store: Store, lease_for: float) -> None:
        store.enqueue([dispatch(new_run_id())])
        lease = claim_one(store)
        with pytest.raises(InvalidArgument):
            store.heartbeat(lease, lease_for=lease_for)
        store.heartbeat(lease, lease_for=LEASE)

    def test_an_extended_lease_still_expires(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        store.enqueue([dispatch(new_run_id())])
        lease = store.heartbeat(claim_one(store, "holder"), lease_for=LEASE * 2)
        clock.advance(beyond(store, LEASE * 2))
        taken = claim_one(store, "rescuer")
        assert taken.fence > lease.fence
