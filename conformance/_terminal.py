"""Terminal-run fencing: once a run has ended, none of its dispatches can move again.

The commit that ends a run fails every other live dispatch of the run (reason
``run_terminal``) in the same atomic write, so a step still running cannot commit::

    worker A (runs step s)              store                    operator
    claim s (fence 1)      --------->
    ... step running ...                                 <-----  cancel: receipt +
                                       run_cancelled            run_cancelled committed
                                       s failed (run_terminal)
    commit(settle=s)       --------->  token not current:
                                       LeaseLostError, nothing written
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
    commit_for,
    dispatch,
    record_of,
    snapshot,
    start_run,
)
from squidie_core.errors import LeaseLostError, RunTerminalError
from squidie_core.storage import Lease, Store

TERMINAL = ["completed", "failed", "cancelled"]


def _busy_run(store: Store) -> tuple[str, dict[str, Lease]]:
    """A run with a claimed, an available and a scheduled dispatch; returns the claims."""
    run_id, _, _ = start_run(store, steps=("running", "waiting"))
    store.enqueue([dispatch(run_id, "later", delay=DELAY)])
    (lease,) = store.claim("worker", lease_for=LEASE, limit=1)
    assert lease.dispatch.step == "running"
    return run_id, {"running": lease}


def _end(store: Store, run_id: str, status: str, settle: Lease | None = None) -> None:
    store.commit(commit_for(store, run_id, store.head(run_id), status=status, settle=settle,
                            type=f"run_{status}"))


@since("1.0")
class TerminalSuite(SuiteBase):
    """A terminal commit fails the run's live dispatches and fences their holders."""

    @pytest.mark.parametrize("status", TERMINAL)
    def test_a_terminal_commit_fails_every_other_live_dispatch(
        self, store: Store, status: str
    ) -> None:
        run_id, _ = _busy_run(store)
        _end(store, run_id, status)
        for record in store.dispatches(run_id):
            assert (record.state, record.reason) == ("failed", "run_terminal"), record
        assert store.get_run(run_id).status == status  # type: ignore[union-attr]

    def test_the_dispatch_a_terminal_commit_settles_is_completed(self, store: Store) -> None:
        run_id, leases = _busy_run(store)
        _end(store, run_id, "completed", settle=leases["running"])
        states = snapshot(store, run_id).dispatch_states()
        assert states[leases["running"].key] == "completed"
        assert states[f"{run_id}:waiting:1"] == "failed"

    def test_completed_dispatches_stay_completed(self, store: Store) -> None:
        run_id, leases = _busy_run(store)
        store.complete(leases["running"])
        _end(store, run_id, "failed")
        assert record_of(store, leases["running"].key).state == "completed"

    def test_no_dispatch_of_an_ended_run_is_ever_claimed(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        run_id, _ = _busy_run(store)
        _end(store, run_id, "cancelled")
        clock.advance(beyond(store, DELAY + LEASE))
        assert store.claim("worker", lease_for=LEASE, limit=10) == []

    @pytest.mark.parametrize("operation", ["heartbeat", "complete", "retry", "dead_letter",
                                           "commit"])
    def test_the_holder_of_a_failed_dispatch_is_fenced(
        self, store: Store, operation: str
    ) -> None:
        run_id, leases = _busy_run(store)
        lease = leases["running"]
        _end(store, run_id, "cancelled")
        before = snapshot(store, run_id)
        with pytest.raises(LeaseLostError):
            if operation == "heartbeat":
                store.heartbeat(lease, lease_for=LEASE)
            elif operation == "complete":
                store.complete(lease)
            elif operation == "retry":
                store.retry(lease)
            elif operation == "dead_letter":
                store.dead_letter(lease, "late")
            else:
                store.commit(commit_for(store, run_id, store.head(run_id), settle=lease,
                                        type="attempt_succeeded"))
        assert snapshot(store, run_id) == before

    def test_enqueueing_for_an_ended_run_is_refused(self, store: Store) -> None:
        run_id, _ = _busy_run(store)
        _end(store, run_id, "completed")
        before = snapshot(store, run_id)
        with pytest.raises(RunTerminalError):
            store.enqueue([dispatch(run_id, "too_late")])
        assert snapshot(store, run_id) == before

    def test_a_commit_scheduling_work_for_an_ended_run_is_refused(self, store: Store) -> None:
        run_id, _ = _busy_run(store)
        _end(store, run_id, "failed")
        before = snapshot(store, run_id)
        with pytest.raises(RunTerminalError):
            store.commit(commit_for(store, run_id, store.head(run_id), status="failed",
                                    enqueue=[dispatch(run_id, "too_late")]))
        assert snapshot(store, run_id) == before

    def test_a_receipt_can_still_be_appended_to_an_ended_run(self, store: Store) -> None:
        # A replay receipt lands on the source run after it ended; it schedules nothing.
        run_id, _ = _busy_run(store)
        _end(store, run_id, "completed")
        head = store.head(run_id)
        store.commit(commit_for(store, run_id, head, status="completed",
                                type="command_received", body={"command": "replay"}))
        assert store.head(run_id) == head + 1

    def test_redriving_a_dead_letter_of_an_ended_run_is_refused(self, store: Store) -> None:
        run_id, leases = _busy_run(store)
        store.dead_letter(leases["running"], "poison")
        _end(store, run_id, "failed")
        before = snapshot(store, run_id)
        with pytest.raises(RunTerminalError):
            store.redrive(leases["running"].key)
        assert snapshot(store, run_id) == before

    def test_ending_a_run_leaves_other_runs_alone(self, store: Store) -> None:
        run_id, _ = _busy_run(store)
        other, _, _ = start_run(store, steps=("theirs",))
        before = snapshot(store, other)
        _end(store, run_id, "cancelled")
        assert snapshot(store, other) == before
        assert claim_one(store).dispatch.run_id == other
