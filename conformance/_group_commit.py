"""The group commit: several outcomes committed in one call (``commit_many``).

A worker that claims a batch commits its outcomes together. Whether the store has its
own ``commit_many`` (one round trip or transaction for the group) or is committed to
through ``commit_each``, the result must be what committing each alone, in order, would
have given: every commit judged by the same checks, its error returned in its place, and
a failing commit writing nothing while the others land.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from conformance._markers import since
from conformance._support import (
    LEASE,
    AdvancingClock,
    SuiteBase,
    claim_one,
    commit_for,
    dispatch,
    make_facts,
    move_past,
    snapshot,
    start_run,
)
from squidie_core.errors import AppendConflict, IdempotencyConflict, LeaseLostError
from squidie_core.storage import Checkpoint, Commit, CommitResult, Lease, Store, commit_many


def _outcome(store: Store, lease: Lease, expected_seq: int, *, status: str = "running",
             next_step: str | None = "next") -> Commit:
    run_id = lease.dispatch.run_id
    return commit_for(
        store, run_id, expected_seq, count=2, status=status, settle=lease,
        enqueue=[dispatch(run_id, next_step)] if next_step else [],
        checkpoint=Checkpoint(seq=expected_seq + 2, data=f"state of {run_id}"),
        type="attempt_succeeded",
    )


def _claim_all(store: Store, count: int, owner: str = "worker-1") -> dict[str, Lease]:
    leases = store.claim(owner, lease_for=LEASE, limit=count)
    assert len(leases) == count, f"expected {count} visible dispatches, got {len(leases)}"
    return {lease.dispatch.run_id: lease for lease in leases}


@since("1.1")
class GroupCommitSuite(SuiteBase):
    """``commit_many`` (or ``commit_each``): each commit as if alone, in order."""

    def test_a_group_applies_each_commit_as_alone(self, store: Store) -> None:
        runs = [start_run(store)[0] for _ in range(4)]
        leases = _claim_all(store, 4)
        commits = [_outcome(store, leases[run_id], 1) for run_id in runs]
        assert commit_many(store, commits) == [CommitResult(last_seq=3)] * 4
        for run_id, commit in zip(runs, commits, strict=True):
            assert store.read(run_id)[1:] == list(commit.facts)
            assert store.get_run(run_id) == commit.run
            assert store.read_checkpoint(run_id) == commit.checkpoint
            assert snapshot(store, run_id).dispatch_states() == {
                leases[run_id].key: "completed", f"{run_id}:next:1": "available"}

    def test_each_failure_is_returned_in_place_and_writes_nothing(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        good, stale_seq, stale_lease, resent, clash, ending = (
            start_run(store, steps=("step", "other"))[0] if i == 5 else start_run(store)[0]
            for i in range(6))
        claimed = store.claim("worker-1", lease_for=LEASE, limit=7)
        assert len(claimed) == 7, f"expected 7 visible dispatches, got {len(claimed)}"
        leases = {lease.dispatch.run_id: lease for lease in claimed
                  if lease.dispatch.step == "step"}
        # The last run's second branch, still running when the run ends.
        (other,) = [lease for lease in claimed if lease.dispatch.step == "other"]
        # A resend: this outcome was committed before and its reply was lost.
        resend = _outcome(store, leases[resent], 1)
        store.commit(resend)
        # Someone appended to this run since the worker read it.
        store.append(stale_seq, make_facts(2, 1, by="operator"), expected_seq=1)
        # A dispatch key already taken with another intent.
        store.enqueue([dispatch(clash, "next", queue="emails")])
        commits = [
            _outcome(store, leases[good], 1),
            _outcome(store, leases[stale_seq], 1),
            _outcome(store, leases[stale_lease], 1),
            resend,
            _outcome(store, leases[clash], 1),
            _outcome(store, leases[ending], 1, status="completed", next_step=None),
        ]
        # This lease expires and another worker takes its attempt over.
        for run_id, lease in leases.items():
            if run_id not in (stale_lease, resent):
                store.heartbeat(lease, lease_for=10 * LEASE)
        store.heartbeat(other, lease_for=10 * LEASE)
        move_past(store, clock, leases[stale_lease].expires_at)
        rescued = store.claim("rescuer", lease_for=LEASE, limit=10)
        assert leases[stale_lease].key in {lease.key for lease in rescued}
        before = {run_id: snapshot(store, run_id) for run_id in (stale_seq, stale_lease, clash)}
        results = commit_many(store, commits)
        assert results[0] == CommitResult(last_seq=3)
        assert isinstance(results[1], AppendConflict)
        assert isinstance(results[2], LeaseLostError)
        assert results[3] == CommitResult(last_seq=3, replayed=True)
        assert isinstance(results[4], IdempotencyConflict)
        assert results[5] == CommitResult(last_seq=3)
        assert {run_id: snapshot(store, run_id) for run_id in before} == before
        # The run that ended failed its other branch, and only that.
        assert snapshot(store, ending).dispatch_states() == {
            leases[ending].key: "completed", other.key: "failed"}
        assert snapshot(store, good).dispatch_states()[f"{good}:next:1"] == "available"

    def test_two_commits_of_one_run_apply_in_order(self, store: Store) -> None:
        run_id, _, _ = start_run(store, steps=("left", "right"))
        left = claim_one(store, "worker-l")
        right = claim_one(store, "worker-r")
        first = commit_for(store, run_id, 1, settle=left, body={"branch": "left"})
        second = commit_for(store, run_id, 2, settle=right, body={"branch": "right"})
        assert commit_many(store, [first, second]) == [CommitResult(2), CommitResult(3)]
        assert [f.body.get("branch") for f in store.read(run_id)] == [None, "left", "right"]
        assert set(snapshot(store, run_id).dispatch_states().values()) == {"completed"}

    def test_an_empty_group_is_nothing(self, store: Store) -> None:
        assert commit_many(store, []) == []

    def test_a_group_of_starts_and_outcomes_mixed(self, store: Store) -> None:
        run_id, _, _ = start_run(store)
        lease = claim_one(store)
        fresh = commit_for(store, "started-in-group", 0, status="started",
                           enqueue=[dispatch("started-in-group", "entry")],
                           type="run_started")
        results = commit_many(store, [_outcome(store, lease, 1, next_step=None), fresh])
        assert results == [CommitResult(3), CommitResult(1)]
        assert claim_one(store).key == "started-in-group:entry:1"
        assert store.head(run_id) == 3

    def test_racing_groups_on_the_same_runs_let_exactly_one_win_each(
        self, store: Store
    ) -> None:
        # Every run has two parallel branches, claimed by two workers; both group-commit
        # their branch of every run at the same journal head, at the same time.
        runs = [start_run(store, steps=("left", "right"))[0] for _ in range(8)]
        leases = store.claim("worker", lease_for=LEASE, limit=16)
        by_step: dict[str, list[Lease]] = {"left": [], "right": []}
        for lease in leases:
            by_step[lease.dispatch.step].append(lease)
        groups = {
            step: [commit_for(store, lease.dispatch.run_id, 1, settle=lease,
                              body={"branch": step}) for lease in held]
            for step, held in by_step.items()
        }
        results: dict[str, list[CommitResult | Exception]] = {}
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def commit_group(step: str) -> None:
            try:
                barrier.wait(10)
                results[step] = list(commit_many(store, groups[step]))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=commit_group, args=(s,)) for s in groups]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        won = dict.fromkeys(runs, 0)
        for step, replies in results.items():
            for commit, reply in zip(groups[step], replies, strict=True):
                if isinstance(reply, CommitResult):
                    assert reply == CommitResult(2)
                    won[commit.run_id] += 1
                else:
                    assert isinstance(reply, AppendConflict), reply
        assert set(won.values()) == {1}
        for run_id in runs:
            assert store.head(run_id) == 2
            assert len(store.read(run_id)) == 2

    def test_a_malformed_commit_is_refused(self, store: Store) -> None:
        run_id, _, _ = start_run(store)
        lease = claim_one(store)
        commit = replace(_outcome(store, lease, 1), run=replace(
            _outcome(store, lease, 1).run, run_id="someone-else"))
        try:
            commit_many(store, [commit])
        except ValueError:
            pass
        else:
            raise AssertionError("a malformed commit was accepted")
        assert store.head(run_id) == 1
