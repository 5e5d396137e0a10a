"""Fencing: every operation made on behalf of an attempt is refused for a stale holder.

A lease only narrows overlap; the token is what makes a stale holder harmless. Each case
makes a lease stale one way (taken over, expired, forged, released by its own holder) and
checks that every lease operation with it raises ``LeaseLostError`` and writes nothing::

    worker A (paused)                 store                         worker B
    claim d (fence 1)
                                      lease expires; claim d (fence 2) <--
    complete / retry / dead_letter /
    heartbeat / commit(settle=A) -->  token not current: LeaseLostError,
                                      journal, dispatch and index untouched
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conformance._markers import since
from conformance._support import (
    LEASE,
    AdvancingClock,
    SuiteBase,
    claim_one,
    commit_for,
    move_past,
    snapshot,
    start_run,
)
from squidie_core.errors import LeaseLostError
from squidie_core.storage import Checkpoint, Lease, Store, new_token

OPERATIONS = ["heartbeat", "complete", "retry", "dead_letter", "commit"]
STALENESS = ["taken_over", "expired", "forged", "released"]


def _operate(store: Store, operation: str, lease: Lease, run_id: str) -> Callable[[], object]:
    head = store.head(run_id)
    actions: dict[str, Callable[[], object]] = {
        "heartbeat": lambda: store.heartbeat(lease, lease_for=LEASE),
        "complete": lambda: store.complete(lease),
        "retry": lambda: store.retry(lease, delay=0.0, reason="stale"),
        "dead_letter": lambda: store.dead_letter(lease, "stale"),
        "commit": lambda: store.commit(
            commit_for(store, run_id, head, count=2, settle=lease, type="attempt_succeeded",
                       checkpoint=Checkpoint(seq=head + 2, data="stale"),
                       enqueue=[], body={"by": "stale holder"})
        ),
    }
    return actions[operation]


def _make_stale(
    store: Store, clock: AdvancingClock, lease: Lease, how: str
) -> tuple[Lease, Lease | None]:
    """Make ``lease`` stale; return it and the current holder's lease, if any."""
    if how == "taken_over":
        move_past(store, clock, lease.expires_at)
        return lease, claim_one(store, "rescuer")
    if how == "expired":
        move_past(store, clock, lease.expires_at)
        return lease, None
    if how == "forged":
        forged = Lease(lease.dispatch, lease.owner_id, new_token(), lease.fence,
                       lease.delivery, lease.expires_at)
        return forged, lease
    # released: the holder gave it back (retry), then used the lease again.
    store.retry(lease, delay=10 * LEASE, reason="released")
    return lease, None


@since("1.0")
class FencingSuite(SuiteBase):
    """Stale holders are fenced on heartbeat, complete, retry, dead-letter and commit."""

    @pytest.mark.parametrize("how", STALENESS)
    @pytest.mark.parametrize("operation", OPERATIONS)
    def test_a_stale_holder_is_fenced(
        self, store: Store, clock: AdvancingClock, operation: str, how: str
    ) -> None:
        run_id, _, _ = start_run(store)
        lease, current = _make_stale(store, clock, claim_one(store, "stale-holder"), how)
        before = snapshot(store, run_id)
        with pytest.raises(LeaseLostError) as info:
            _operate(store, operation, lease, run_id)()
        assert info.value.dispatch_key == lease.key
        assert snapshot(store, run_id) == before, f"a fenced {operation} wrote something"
        if current is not None:
            # The current holder is unaffected and can still settle its attempt.
            store.heartbeat(current, lease_for=LEASE)
            store.commit(commit_for(store, run_id, store.head(run_id), settle=current,
                                    type="attempt_succeeded"))

    def test_after_a_takeover_only_the_new_holders_outcome_is_written(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        run_id, _, _ = start_run(store)
        stale = claim_one(store, "paused-worker")
        move_past(store, clock, stale.expires_at)
        current = claim_one(store, "rescuer")
        store.commit(commit_for(store, run_id, 1, settle=current, type="attempt_succeeded",
                                body={"by": "rescuer"}))
        for operation in OPERATIONS:
            with pytest.raises(LeaseLostError):
                _operate(store, operation, stale, run_id)()
        written = [f.body.get("by") for f in store.read(run_id) if f.type == "attempt_succeeded"]
        assert written == ["rescuer"]
