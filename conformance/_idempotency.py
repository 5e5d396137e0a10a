"""Idempotent enqueue: a dispatch key names one intent; a resend of it is a no-op.

Resends happen (a client retries after a lost reply, two schedulers race on a cron
window, a commit re-enqueues a dispatch another branch already created). The same key
with the same ``intent()`` changes nothing, whatever state the dispatch is in; the same
key with a different intent is a caller bug and is refused without writing.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from conformance._markers import since
from conformance._support import (
    DELAY,
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
from squidie_core.errors import ConflictError, IdempotencyConflict
from squidie_core.storage import Store

CHANGES = {
    "workflow": {"workflow": "SomethingElse"},
    "step": {"step": "other_step"},
    "attempt": {"attempt": 9},
    "queue": {"queue": "elsewhere"},
    "max_deliveries": {"max_deliveries": 99},
    "run_id": {"run_id": "another-run"},
}


@since("1.0")
class IdempotencySuite(SuiteBase):
    """``enqueue`` (and a commit's enqueue) is idempotent by dispatch key and intent."""

    def test_the_same_dispatch_twice_is_one_dispatch(self, store: Store) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        store.enqueue([d])
        assert len(store.dispatches(d.run_id)) == 1
        claim_one(store)
        assert store.claim("worker-2", lease_for=LEASE) == []

    def test_a_resend_with_another_delay_keeps_the_first_visibility(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        d = dispatch(new_run_id(), delay=DELAY)
        store.enqueue([d])
        first = record_of(store, d.key).visible_at
        store.enqueue([replace(d, delay=0.0)])
        assert record_of(store, d.key).visible_at == first
        assert store.claim("worker", lease_for=LEASE) == []
        clock.advance(beyond(store, DELAY))
        assert claim_one(store).key == d.key

    @pytest.mark.parametrize("field", sorted(CHANGES))
    def test_the_same_key_with_another_intent_is_refused(self, store: Store, field: str) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        before = snapshot(store, d.run_id)
        with pytest.raises(IdempotencyConflict) as info:
            store.enqueue([replace(d, **CHANGES[field])])  # type: ignore[arg-type]
        assert info.value.key == d.key
        assert isinstance(info.value, ConflictError)
        assert snapshot(store, d.run_id) == before

    def test_a_batch_with_one_conflicting_dispatch_enqueues_nothing(self, store: Store) -> None:
        run_id = new_run_id()
        existing = dispatch(run_id, "existing")
        store.enqueue([existing])
        before = snapshot(store, run_id)
        with pytest.raises(IdempotencyConflict):
            store.enqueue([dispatch(run_id, "fresh"), replace(existing, queue="elsewhere")])
        assert snapshot(store, run_id) == before

    def test_duplicate_keys_within_one_batch_enqueue_once(self, store: Store) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d, d, d])
        assert len(store.dispatches(d.run_id)) == 1

    def test_a_resend_while_claimed_leaves_the_lease_alone(self, store: Store) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        lease = claim_one(store, "holder")
        before = snapshot(store, d.run_id)
        store.enqueue([d])
        assert snapshot(store, d.run_id) == before
        assert store.claim("intruder", lease_for=LEASE) == []
        store.complete(lease)

    @pytest.mark.parametrize("state", ["completed", "dead_lettered", "scheduled_retry"])
    def test_a_resend_never_revives_or_resets_a_dispatch(self, store: Store, state: str) -> None:
        d = dispatch(new_run_id())
        store.enqueue([d])
        lease = claim_one(store)
        if state == "completed":
            store.complete(lease)
        elif state == "dead_lettered":
            store.dead_letter(lease, "poison")
        else:
            store.retry(lease, delay=DELAY)
        before = snapshot(store, d.run_id)
        store.enqueue([d])
        assert snapshot(store, d.run_id) == before
        assert store.claim("worker", lease_for=LEASE) == []

    def test_a_commit_re_enqueueing_an_existing_dispatch_skips_it(self, store: Store) -> None:
        run_id, _, (first,) = start_run(store)
        lease = claim_one(store)
        store.commit(commit_for(store, run_id, 1, settle=lease, enqueue=[first]))
        assert record_of(store, first.key).state == "completed"
        assert store.claim("worker", lease_for=LEASE) == []

    def test_a_commit_with_a_conflicting_dispatch_is_refused(self, store: Store) -> None:
        run_id, _, (first,) = start_run(store)
        before = snapshot(store, run_id)
        with pytest.raises(IdempotencyConflict):
            store.commit(commit_for(store, run_id, 1,
                                    enqueue=[replace(first, max_deliveries=1)]))
        assert snapshot(store, run_id) == before
