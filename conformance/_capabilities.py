"""Optional behaviours: each is honoured when declared and refused clearly when not.

A capability is a documented field of ``Capabilities``, off by default. Cases that only
make sense with one carry ``@requires(...)`` and are reported "not supported" on stores
without it. Where a store without the capability must still refuse the request clearly
(a priority, a wake-up wait), one case checks both branches.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from conformance._markers import requires, since
from conformance._support import (
    LEASE,
    AdvancingClock,
    SuiteBase,
    beyond,
    claim_one,
    commit_for,
    dispatch,
    new_run_id,
    record_of,
    snapshot,
    start_run,
)
from squidie_core import open_store
from squidie_core.errors import CapabilityNotSupported, ValueTooLarge
from squidie_core.storage import Capabilities, Checkpoint, Fact, Store


@contextmanager
def second_client(store_url: str | None, capability: str) -> Iterator[Any]:
    """Open another client of the store under test through discovery (``store_url``)."""
    if store_url is None:
        pytest.fail(
            f"a store declaring {capability!r} must provide the `store_url` fixture "
            "(a URL that opens the same store)", pytrace=False,
        )
    other = open_store(store_url)
    try:
        yield other
    finally:
        other.close()


@since("1.0")
class CapabilitySuite(SuiteBase):
    """The store's declaration, priorities, wake-ups, durability and sharing."""

    def test_the_store_declares_its_name_clock_and_capabilities(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        assert isinstance(store, Store)
        assert isinstance(store.name, str) and store.name
        assert isinstance(store.capabilities, Capabilities)
        assert store.capabilities.visibility_precision >= 0
        limit = store.capabilities.max_value_bytes
        assert limit is None or limit > 0
        before = clock.now()
        clock.advance(5)
        assert store.clock.now() >= before + 5 - store.capabilities.visibility_precision, (
            "the clock fixture must move the store's own clock"
        )

    def test_a_priority_is_honoured_or_refused_never_ignored(self, store: Store) -> None:
        run_id = new_run_id()
        urgent = dispatch(run_id, "zz_urgent", priority=-5)
        if not store.capabilities.priorities:
            with pytest.raises(CapabilityNotSupported) as info:
                store.enqueue([urgent])
            assert info.value.capability == "priorities"
            assert store.dispatches(run_id) == []
            return
        store.enqueue([dispatch(run_id, "aa_routine"), urgent])
        assert claim_one(store).dispatch.step == "zz_urgent"

    @requires("priorities")
    def test_lower_priorities_are_claimed_first_among_visible_dispatches(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        run_id = new_run_id()
        store.enqueue([dispatch(run_id, "old_low", priority=10)])
        clock.advance(5)
        store.enqueue([dispatch(run_id, "new_high", priority=1),
                       dispatch(run_id, "new_mid", priority=5),
                       dispatch(run_id, "later_top", priority=0, delay=60)])
        leases = store.claim("worker", lease_for=LEASE, limit=3)
        assert [lease.dispatch.step for lease in leases] == ["new_high", "new_mid", "old_low"]

    def test_wait_for_work_is_honoured_or_refused(self, store: Store) -> None:
        if not store.capabilities.wake_up:
            with pytest.raises(CapabilityNotSupported):
                store.wait_for_work(["default"], 0.01)
            return
        assert isinstance(store.wait_for_work(["default"], 0.01), bool)

    @requires("wake_up")
    def test_new_work_wakes_a_waiting_worker(self, store: Store) -> None:
        woke = threading.Event()
        stop = threading.Event()

        def waiter() -> None:
            while not stop.is_set():
                if store.wait_for_work(["default"], 0.2):
                    woke.set()
                    return

        thread = threading.Thread(target=waiter, daemon=True)
        thread.start()
        run_id = new_run_id()
        try:
            # A hint may be missed if it lands between two waits: keep offering work.
            for i in range(100):
                store.enqueue([dispatch(run_id, f"s{i}")])
                if woke.wait(0.05):
                    break
        finally:
            stop.set()
            thread.join(5)
        assert woke.is_set(), "wait_for_work never woke up although work kept arriving"

    @requires("durable")
    def test_committed_data_is_seen_by_a_new_client(
        self, store: Store, store_url: str | None
    ) -> None:
        run_id, _, _ = start_run(store, steps=("a", "b"))
        lease = claim_one(store)
        store.commit(commit_for(store, run_id, 1, settle=lease,
                                checkpoint=Checkpoint(seq=2, data="cp")))
        store.dead_letter(claim_one(store), "poison")
        with second_client(store_url, "durable") as other:
            assert snapshot(other, run_id) == snapshot(store, run_id)
            assert [r.dispatch.key for r in other.dead_letters().items] == [f"{run_id}:b:1"]

    @requires("durable")
    def test_delivery_counts_are_durable(
        self, store: Store, clock: AdvancingClock, store_url: str | None
    ) -> None:
        d = dispatch(new_run_id(), max_deliveries=5)
        store.enqueue([d])
        for _ in range(3):
            claim_one(store)
            clock.advance(beyond(store, LEASE))  # the worker died each time
        with second_client(store_url, "durable") as other:
            record = record_of(other, d.key)
            assert record.deliveries == 3
            assert record.fence == record_of(store, d.key).fence

    @requires("multi_process")
    def test_the_store_url_opens_the_same_store(
        self, store: Store, store_url: str | None
    ) -> None:
        run_id, _, _ = start_run(store)
        with second_client(store_url, "multi_process") as other:
            assert other.head(run_id) == 1
            other.append(run_id, [Fact(2, "note", 1.0, {"from": "other client"})],
                         expected_seq=1)
        assert store.read(run_id)[-1].body == {"from": "other client"}

    def test_a_value_over_the_declared_limit_is_refused_or_large_values_round_trip(
        self, store: Store
    ) -> None:
        limit = store.capabilities.max_value_bytes
        run_id = new_run_id()
        big = Fact(1, "note", 1.0, {"blob": "x" * ((limit or 300_000) + 1_000)})
        if limit is None:
            store.append(run_id, [big], expected_seq=0)
            assert store.read(run_id) == [big]
            return
        with pytest.raises(ValueTooLarge):
            store.append(run_id, [big], expected_seq=0)
        assert store.read(run_id) == []
