"""Settling a lease: complete, retry, dead-letter, and re-driving dead letters."""

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
    snapshot,
)
from squidie_core.errors import DispatchNotFound, InvalidArgument
from squidie_core.storage import Store


@since("1.0")
class SettleSuite(SuiteBase):
    """``complete``, ``retry``, ``dead_letter``, ``dead_letters`` and ``redrive``."""

    # ------------------------------------------------------------------ complete

    def test_complete_settles_the_dispatch(self, store: Store) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        store.complete(claim_one(store))
        record = record_of(store, d.key)
        assert record.state == "completed"
        assert record.lease_expires_at is None
        assert store.depth(["default"])["default"].claimed == 0

    def test_completing_twice_with_the_same_lease_is_idempotent(self, store: Store) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        lease = claim_one(store)
        store.complete(lease)
        before = snapshot(store, d.run_id)
        store.complete(lease)  # a resend after a lost reply
        assert snapshot(store, d.run_id) == before

    # ------------------------------------------------------------------ retry

    def test_retry_without_delay_makes_the_dispatch_visible_at_once(self, store: Store) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        first = claim_one(store, "worker-1")
        store.retry(first, reason="try again")
        second = claim_one(store, "worker-2")
        assert second.key == d.key
        assert second.delivery == 2
        assert second.fence > first.fence

    def test_retry_with_a_delay_hides_the_dispatch_until_then(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        store.retry(claim_one(store), delay=DELAY, reason="backoff")
        assert record_of(store, d.key).state == "scheduled"
        clock.advance(DELAY - 10)
        assert store.claim("worker-2", lease_for=LEASE) == []
        clock.advance(beyond(store, 10))
        assert claim_one(store, "worker-2").key == d.key

    def test_retry_releases_the_lease(self, store: Store) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        store.retry(claim_one(store), delay=DELAY)
        record = record_of(store, d.key)
        assert record.lease_expires_at is None
        assert store.depth(["default"])["default"].claimed == 0

    def test_retries_count_toward_the_delivery_limit(self, store: Store) -> None:
        d = dispatch(new_run_id(), max_deliveries=2)
        store.enqueue([d])
        store.retry(claim_one(store))
        store.retry(claim_one(store))
        assert store.claim("worker", lease_for=LEASE) == []
        record = record_of(store, d.key)
        assert (record.state, record.reason, record.deliveries) == (
            "dead_lettered", "delivery_limit_exceeded", 2)

    # ------------------------------------------------------------------ dead letters

    def test_dead_letter_moves_the_dispatch_to_the_dead_letters(self, store: Store) -> None:
        d = dispatch(new_run_id(), queue="emails")
        store.enqueue([d])
        store.dead_letter(claim_one(store, queues=["emails"]), "poison message")
        record = record_of(store, d.key)
        assert (record.state, record.reason) == ("dead_lettered", "poison message")
        (listed,) = store.dead_letters().items
        assert listed.dispatch.key == d.key
        assert listed.dispatch.intent() == d.intent()
        assert (listed.state, listed.reason, listed.deliveries) == (
            "dead_lettered", "poison message", 1)

    def test_a_dead_letter_is_never_claimed(self, store: Store, clock: AdvancingClock) -> None:
        store.enqueue([dispatch(new_run_id())])
        store.dead_letter(claim_one(store), "poison")
        clock.advance(beyond(store, 10 * LEASE))
        assert store.claim("worker", lease_for=LEASE) == []

    def test_dead_letters_are_listed_oldest_first(self, store: Store) -> None:
        run_id = new_run_id()
        store.enqueue([dispatch(run_id, s) for s in ("c", "a", "b")])
        leases = {lease.dispatch.step: lease
                  for lease in store.claim("worker", lease_for=LEASE, limit=3)}
        # Dead-letter in an order that is neither key order nor enqueue order.
        for step in ("b", "c", "a"):
            store.dead_letter(leases[step], "poison")
        assert [r.dispatch.step for r in store.dead_letters().items] == ["b", "c", "a"]

    def test_dead_letters_filter_by_queue(self, store: Store) -> None:
        run_id = new_run_id()
        store.enqueue([dispatch(run_id, "a", queue="emails"),
                       dispatch(run_id, "b", queue="reports")])
        for queue in ("emails", "reports"):
            store.dead_letter(claim_one(store, queues=[queue]), "poison")
        assert [r.dispatch.step for r in store.dead_letters(queue="emails").items] == ["a"]
        assert [r.dispatch.step for r in store.dead_letters(queue="reports").items] == ["b"]
        assert store.dead_letters(queue="other").items == []
        assert len(store.dead_letters().items) == 2

    def test_dead_letters_page_with_a_cursor(self, store: Store) -> None:
        run_id = new_run_id()
        store.enqueue([dispatch(run_id, f"s{i}") for i in range(5)])
        expected = []
        for _ in range(5):
            lease = claim_one(store)
            store.dead_letter(lease, "poison")
            expected.append(lease.key)
        seen, cursor = [], None
        for _ in range(5):
            page = store.dead_letters(limit=2, cursor=cursor)
            assert len(page.items) <= 2
            seen += [r.dispatch.key for r in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected

    def test_dead_letters_refuse_a_foreign_cursor(self, store: Store) -> None:
        with pytest.raises(InvalidArgument):
            store.dead_letters(cursor="not-a-cursor!")

    def test_dead_letters_refuse_a_limit_below_one(self, store: Store) -> None:
        with pytest.raises(InvalidArgument):
            store.dead_letters(limit=0)

    # ------------------------------------------------------------------ redrive

    def test_redrive_makes_a_dead_letter_claimable_with_a_fresh_count(
        self, store: Store
    ) -> None:
        d = dispatch(new_run_id(), max_deliveries=1)
        store.enqueue([d])
        first = claim_one(store)
        store.dead_letter(first, "poison")
        store.redrive(d.key)
        again = claim_one(store)
        assert again.key == d.key
        assert again.delivery == 1
        assert again.fence > first.fence
        assert store.dead_letters().items == []

    def test_redrive_with_a_delay_hides_the_dispatch_until_then(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        store.dead_letter(claim_one(store), "poison")
        store.redrive(d.key, delay=DELAY)
        assert record_of(store, d.key).state == "scheduled"
        assert store.claim("worker", lease_for=LEASE) == []
        clock.advance(beyond(store, DELAY))
        assert claim_one(store).key == d.key

    def test_a_delivery_limit_dead_letter_can_be_redriven(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        d = dispatch(new_run_id(), max_deliveries=1)
        store.enqueue([d])
        claim_one(store)
        clock.advance(beyond(store, LEASE))
        assert store.claim("worker", lease_for=LEASE) == []
        assert record_of(store, d.key).state == "dead_lettered"
        store.redrive(d.key)
        lease = claim_one(store)
        store.complete(lease)
        assert record_of(store, d.key).state == "completed"

    def test_a_redriven_dispatch_can_be_dead_lettered_again(self, store: Store) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        store.dead_letter(claim_one(store), "first")
        store.redrive(d.key)
        store.dead_letter(claim_one(store), "second")
        (listed,) = store.dead_letters().items
        assert (listed.dispatch.key, listed.reason) == (d.key, "second")

    def test_redriving_an_unknown_key_fails(self, store: Store) -> None:
        with pytest.raises(DispatchNotFound) as info:
            store.redrive("no-such-run:step:1")
        assert info.value.dispatch_key == "no-such-run:step:1"

    @pytest.mark.parametrize("state", ["available", "claimed", "completed"])
    def test_redriving_a_dispatch_that_is_not_dead_fails(self, store: Store, state: str) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        if state != "available":
            lease = claim_one(store)
            if state == "completed":
                store.complete(lease)
        before = snapshot(store, d.run_id)
        with pytest.raises(DispatchNotFound):
            store.redrive(d.key)
        assert snapshot(store, d.run_id) == before
