"""The atomic commit: facts, next dispatches, the settled lease and the index, or nothing.

This is what makes "at-least-once execution, exactly-once journal" hold. Each failure
case snapshots everything the store shows about the run and checks it did not move: a
commit that fails half way (a stale sequence, a stale lease, a conflicting dispatch in
the last position) must leave no fact, no dispatch, no index change and no checkpoint.
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
    make_facts,
    move_past,
    new_run_id,
    record_of,
    run_entry,
    snapshot,
    start_run,
)
from squidie_core.errors import AppendConflict, IdempotencyConflict, LeaseLostError
from squidie_core.storage import Checkpoint, Commit, CommitResult, Fact, Lease, Store


def _step_commit(
    store: Store, run_id: str, expected_seq: int, lease: Lease | None, *, next_steps: tuple[
        str, ...] = ("next",), checkpoint: bool = True, delay: float = 0.0, status: str = "running",
) -> Commit:
    return commit_for(
        store, run_id, expected_seq, count=2, status=status, settle=lease,
        enqueue=[dispatch(run_id, s, delay=delay) for s in next_steps],
        checkpoint=Checkpoint(seq=expected_seq + 2, data="state") if checkpoint else None,
        type="attempt_succeeded",
    )


@since("1.0")
class AtomicCommitSuite(SuiteBase):
    """``commit``: all of it or nothing, checked in the contract's order."""

    def test_a_commit_applies_every_part(self, store: Store) -> None:
        run_id, _, (first,) = start_run(store)
        lease = claim_one(store)
        commit = _step_commit(store, run_id, 1, lease, next_steps=("b", "c"))
        result = store.commit(commit)
        assert result == CommitResult(last_seq=3, replayed=False)
        assert store.read(run_id)[1:] == list(commit.facts)
        assert store.get_run(run_id) == commit.run
        assert store.read_checkpoint(run_id) == commit.checkpoint
        states = snapshot(store, run_id).dispatch_states()
        assert states == {first.key: "completed", f"{run_id}:b:1": "available",
                          f"{run_id}:c:1": "available"}

    def test_a_commit_without_a_lease_starts_a_run(self, store: Store) -> None:
        run_id, result, (first,) = start_run(store, steps=("entry",))
        assert result == CommitResult(last_seq=1)
        assert store.head(run_id) == 1
        row = store.get_run(run_id)
        assert row is not None and row.status == "started"
        assert claim_one(store).key == first.key

    @since("1.1")
    def test_a_resent_first_commit_is_replayed_and_a_different_one_conflicts(
        self, store: Store
    ) -> None:
        run_id = new_run_id()
        first = commit_for(store, run_id, 0, status="started", type="run_started",
                           enqueue=[dispatch(run_id, "entry")])
        assert store.commit(first) == CommitResult(last_seq=1)
        before = snapshot(store, run_id)
        # The reply was lost and the start is sent again: recognised, nothing written.
        assert store.commit(first) == CommitResult(last_seq=1, replayed=True)
        # Another writer's first commit for the same run (the same idempotency key with
        # another payload, say) conflicts and writes nothing.
        other = commit_for(store, run_id, 0, status="started", type="run_started",
                           enqueue=[dispatch(run_id, "other")], body={"payload": "else"})
        with pytest.raises(AppendConflict) as raised:
            store.commit(other)
        assert raised.value.actual_seq == 1
        assert snapshot(store, run_id) == before

    @since("1.1")
    def test_a_first_commit_meets_dispatches_enqueued_before_it(self, store: Store) -> None:
        run_id = new_run_id()
        store.enqueue([dispatch(run_id, "same"), dispatch(run_id, "clash", queue="emails")])
        same = commit_for(store, run_id, 0, status="started", type="run_started",
                          enqueue=[dispatch(run_id, "same")])
        # An identical dispatch already there is skipped; the commit lands.
        assert store.commit(same) == CommitResult(last_seq=1)
        assert snapshot(store, run_id).dispatch_states() == {
            f"{run_id}:same:1": "available", f"{run_id}:clash:1": "available"}
        fresh = new_run_id()
        store.enqueue([dispatch(fresh, "clash", queue="emails")])
        before = snapshot(store, fresh)
        clash = commit_for(store, fresh, 0, status="started", type="run_started",
                           enqueue=[dispatch(fresh, "clash")])
        with pytest.raises(IdempotencyConflict):
            store.commit(clash)
        assert snapshot(store, fresh) == before

    def test_a_commit_enqueues_with_delayed_visibility(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        run_id, _, _ = start_run(store)
        store.commit(_step_commit(store, run_id, 1, claim_one(store), delay=DELAY))
        assert store.claim("worker", lease_for=LEASE) == []
        clock.advance(beyond(store, DELAY))
        assert claim_one(store).key == f"{run_id}:next:1"

    def test_a_settled_dispatch_is_never_delivered_again(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        run_id, _, _ = start_run(store)
        store.commit(_step_commit(store, run_id, 1, claim_one(store), next_steps=()))
        clock.advance(beyond(store, 10 * LEASE))
        assert store.claim("worker", lease_for=LEASE) == []

    def test_a_stale_sequence_commit_writes_nothing(self, store: Store) -> None:
        run_id, _, _ = start_run(store)
        lease = claim_one(store)
        store.append(run_id, make_facts(2, 1, by="operator"), expected_seq=1)
        before = snapshot(store, run_id)
        with pytest.raises(AppendConflict):
            store.commit(_step_commit(store, run_id, 1, lease))
        assert snapshot(store, run_id) == before
        # The lease survives a conflict: the holder re-reads and commits again.
        store.heartbeat(lease, lease_for=LEASE)
        store.commit(_step_commit(store, run_id, 2, lease))
        assert store.head(run_id) == 4

    def test_a_stale_lease_commit_writes_nothing(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        run_id, _, _ = start_run(store)
        stale = claim_one(store, "paused")
        move_past(store, clock, stale.expires_at)
        claim_one(store, "rescuer")
        before = snapshot(store, run_id)
        with pytest.raises(LeaseLostError):
            store.commit(_step_commit(store, run_id, 1, stale, next_steps=("x", "y")))
        assert snapshot(store, run_id) == before
        assert store.claim("worker", lease_for=LEASE) == []

    def test_the_lease_is_checked_before_the_sequence(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        run_id, _, _ = start_run(store)
        stale = claim_one(store, "paused")
        store.append(run_id, make_facts(2, 1, by="operator"), expected_seq=1)
        move_past(store, clock, stale.expires_at)
        with pytest.raises(LeaseLostError):
            store.commit(_step_commit(store, run_id, 1, stale))

    def test_an_identical_resend_is_replayed_without_writing(self, store: Store) -> None:
        run_id, _, _ = start_run(store)
        commit = _step_commit(store, run_id, 1, claim_one(store))
        store.commit(commit)
        before = snapshot(store, run_id)
        # The reply was lost; the lease is settled now, yet the resend is recognised.
        assert store.commit(commit) == CommitResult(last_seq=3, replayed=True)
        assert snapshot(store, run_id) == before

    def test_a_conflicting_dispatch_at_the_end_writes_nothing(self, store: Store) -> None:
        run_id, _, _ = start_run(store)
        lease = claim_one(store)
        store.enqueue([dispatch(run_id, "taken", queue="emails")])
        before = snapshot(store, run_id)
        commit = _step_commit(store, run_id, 1, lease, next_steps=("fresh",))
        commit = replace(commit, enqueue=[*commit.enqueue, dispatch(run_id, "taken")])
        with pytest.raises(IdempotencyConflict):
            store.commit(commit)
        assert snapshot(store, run_id) == before
        store.heartbeat(lease, lease_for=LEASE)

    def test_an_identical_dispatch_already_enqueued_is_skipped(self, store: Store) -> None:
        run_id, _, _ = start_run(store, steps=("a", "b"))
        held_a = claim_one(store, "worker-a")
        held_b = claim_one(store, "worker-b")
        # Committing a's outcome "enqueues" b again (same intent): b stays claimed by B.
        store.commit(commit_for(store, run_id, 1, settle=held_a, enqueue=[held_b.dispatch]))
        record = record_of(store, held_b.key)
        assert (record.state, record.owner_id, record.deliveries) == ("claimed", "worker-b", 1)
        store.heartbeat(held_b, lease_for=LEASE)

    @pytest.mark.parametrize("defect", ["non_contiguous", "foreign_run_row",
                                        "foreign_dispatch", "foreign_lease"])
    def test_a_malformed_commit_is_refused_and_writes_nothing(
        self, store: Store, defect: str
    ) -> None:
        run_id, _, _ = start_run(store)
        other, _, _ = start_run(store)
        leases = {lease.dispatch.run_id: lease
                  for lease in store.claim("worker", lease_for=LEASE, limit=2)}
        commit = _step_commit(store, run_id, 1, leases[run_id])
        if defect == "non_contiguous":
            commit = replace(commit, facts=[Fact(3, "note", 1.0, {}), Fact(4, "note", 1.0, {})])
        elif defect == "foreign_run_row":
            commit = replace(commit, run=run_entry(other, last_seq=3))
        elif defect == "foreign_dispatch":
            commit = replace(commit, enqueue=[dispatch(other, "intruder")])
        else:
            commit = replace(commit, settle=leases[other])
        before = (snapshot(store, run_id), snapshot(store, other))
        with pytest.raises(ValueError):
            store.commit(commit)
        assert (snapshot(store, run_id), snapshot(store, other)) == before

    def test_parallel_commits_at_one_sequence_let_exactly_one_win(self, store: Store) -> None:
        run_id, _, _ = start_run(store, steps=("left", "right"))
        left = claim_one(store, "worker-l")
        right = claim_one(store, "worker-r")
        store.commit(commit_for(store, run_id, 1, settle=left, body={"branch": "left"}))
        with pytest.raises(AppendConflict):
            store.commit(commit_for(store, run_id, 1, settle=right, body={"branch": "right"}))
        # The loser re-reads and commits after the winner; its lease is still good.
        store.commit(commit_for(store, run_id, 2, settle=right, body={"branch": "right"}))
        assert [f.body.get("branch") for f in store.read(run_id)] == [None, "left", "right"]
        assert set(snapshot(store, run_id).dispatch_states().values()) == {"completed"}

    def test_a_commit_leaves_other_runs_alone(self, store: Store) -> None:
        run_id, _, _ = start_run(store, steps=("mine",))
        other, _, _ = start_run(store, steps=("theirs",))
        leases = {lease.dispatch.run_id: lease
                  for lease in store.claim("worker", lease_for=LEASE, limit=2)}
        before = snapshot(store, other)
        store.commit(_step_commit(store, run_id, 1, leases[run_id], status="completed"))
        assert snapshot(store, other) == before

    def test_a_commit_can_fan_out_many_dispatches(self, store: Store) -> None:
        run_id, _, _ = start_run(store)
        steps = tuple(f"branch{i:02d}" for i in range(25))
        store.commit(_step_commit(store, run_id, 1, claim_one(store), next_steps=steps))
        leases = store.claim("worker", lease_for=LEASE, limit=100)
        assert sorted(lease.dispatch.step for lease in leases) == list(steps)

    def test_a_failed_commit_then_a_fresh_one_applies_exactly_once(self, store: Store) -> None:
        run_id, _, _ = start_run(store)
        lease = claim_one(store)
        store.append(run_id, make_facts(2, 1, by="operator"), expected_seq=1)
        with pytest.raises(AppendConflict):
            store.commit(_step_commit(store, run_id, 1, lease))
        commit = _step_commit(store, run_id, 2, lease)
        store.commit(commit)
        store.commit(commit)  # and a resend changes nothing
        assert [f.type for f in store.read(run_id)] == [
            "run_started", "note", "attempt_succeeded", "attempt_succeeded"]
        assert [d.dispatch.step for d in store.dispatches(run_id)] == ["step", "next"]

    def test_commit_facts_round_trip_like_appended_ones(self, store: Store) -> None:
        run_id = new_run_id()
        facts = [Fact(1, "run_started", 1_700_000_000.25, {"payload": {"k": [1, "two", None]}}),
                 Fact(2, "command_received", 1_700_000_000.5, {"command": "start"})]
        store.commit(Commit(run_id=run_id, expected_seq=0, facts=facts,
                            run=run_entry(run_id, last_seq=2)))
        assert store.read(run_id) == facts
