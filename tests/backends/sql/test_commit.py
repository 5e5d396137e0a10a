"""The atomic commit of the SQL store: every check of ``Commit``'s docstring, per dialect.

Each failing commit is shown to write nothing: not its facts, not its dispatches, not the
index row, not the checkpoint, and not the settlement of its lease.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sql_helpers import dispatch, end_group, entry, facts, settle, start

from squidie_backends.sql import SQLStore
from squidie_core import ManualClock
from squidie_core.errors import (
    AppendConflict,
    IdempotencyConflict,
    LeaseLostError,
    RunTerminalError,
)
from squidie_core.storage import Checkpoint, Commit, CommitResult


def _snapshot(store: SQLStore, run_id: str) -> tuple[object, ...]:
    return (store.read(run_id), store.get_run(run_id), store.read_checkpoint(run_id),
            store.dispatches(run_id))


def test_commit_appends_enqueues_settles_and_indexes(sql_store: SQLStore) -> None:
    start(sql_store, "r", dispatch("r", "a"))
    [lease] = sql_store.claim("w", lease_for=30)
    result = settle(sql_store, lease, 1, n=2, enqueue=(dispatch("r", "b"), dispatch("r", "c")))
    assert result == CommitResult(last_seq=3)
    assert sql_store.head("r") == 3
    states = {x.dispatch.step: x.state for x in sql_store.dispatches("r")}
    assert states == {"a": "completed", "b": "available", "c": "available"}
    assert sql_store.get_run("r") == entry("r", last_seq=3)


def test_replay_of_an_identical_commit(sql_store: SQLStore) -> None:
    start(sql_store, "r", dispatch("r", "a"))
    [lease] = sql_store.claim("w", lease_for=30)
    commit = Commit("r", 1, facts(2, 2), entry("r", last_seq=3),
                    enqueue=[dispatch("r", "b")], settle=lease,
                    checkpoint=Checkpoint(3, "state@3"))
    assert sql_store.commit(commit) == CommitResult(3)
    before = _snapshot(sql_store, "r")
    # The reply was lost and the runtime sends it again: nothing new is written, even
    # though the lease it carries is no longer current.
    assert sql_store.commit(commit) == CommitResult(3, replayed=True)
    assert _snapshot(sql_store, "r") == before


def test_stale_lease_fails_first_and_writes_nothing(sql_store: SQLStore,
                                                    clock: ManualClock) -> None:
    start(sql_store, "r", dispatch("r", "a"))
    [old] = sql_store.claim("A", lease_for=10)
    clock.advance(10)
    [new] = sql_store.claim("B", lease_for=10)
    before = _snapshot(sql_store, "r")
    # Check 2 comes before check 3: a stale lease with a stale sequence is LeaseLost.
    with pytest.raises(LeaseLostError):
        sql_store.commit(Commit("r", 0, facts(1, 1, x=1), entry("r"), settle=old))
    with pytest.raises(LeaseLostError):
        settle(sql_store, old, 1, enqueue=(dispatch("r", "b"),))
    assert _snapshot(sql_store, "r") == before
    settle(sql_store, new, 1)
    assert sql_store.dispatches("r")[0].state == "completed"


def test_expired_lease_cannot_commit(sql_store: SQLStore, clock: ManualClock) -> None:
    start(sql_store, "r", dispatch("r", "a"))
    [lease] = sql_store.claim("A", lease_for=10)
    clock.advance(10)  # nobody took it over, but the lease has lapsed
    before = _snapshot(sql_store, "r")
    with pytest.raises(LeaseLostError, match="expired"):
        settle(sql_store, lease, 1)
    assert _snapshot(sql_store, "r") == before


def test_stale_sequence_conflicts_and_keeps_the_lease(sql_store: SQLStore) -> None:
    start(sql_store, "r", dispatch("r", "a"), count=2)
    [lease] = sql_store.claim("w", lease_for=30)
    before = _snapshot(sql_store, "r")
    with pytest.raises(AppendConflict) as info:
        settle(sql_store, lease, 1, enqueue=(dispatch("r", "b"),), outcome="ok")
    assert (info.value.expected_seq, info.value.actual_seq) == (1, 2)
    assert _snapshot(sql_store, "r") == before
    # The lease was not consumed by the failed attempt: re-planned, the commit succeeds.
    settle(sql_store, lease, 2)
    assert sql_store.dispatches("r")[0].state == "completed"


def test_terminal_run_refuses_new_work(sql_store: SQLStore) -> None:
    start(sql_store, "r", status="failed")
    before = _snapshot(sql_store, "r")
    with pytest.raises(RunTerminalError):
        sql_store.commit(Commit("r", 1, facts(2, 1), entry("r", "failed", last_seq=2),
                                enqueue=[dispatch("r", "late")]))
    assert _snapshot(sql_store, "r") == before
    # Receipts without new work are still accepted (e.g. a replay request).
    sql_store.commit(Commit("r", 1, facts(2, 1), entry("r", "failed", last_seq=2)))
    assert sql_store.head("r") == 2


def test_enqueue_with_a_different_intent_conflicts(sql_store: SQLStore) -> None:
    start(sql_store, "r", dispatch("r", "a"))
    [lease] = sql_store.claim("w", lease_for=30)
    before = _snapshot(sql_store, "r")
    with pytest.raises(IdempotencyConflict):
        settle(sql_store, lease, 1, enqueue=(dispatch("r", "a", priority=3),))
    assert _snapshot(sql_store, "r") == before
    # The same intent is skipped, not an error.
    settle(sql_store, lease, 1, enqueue=(dispatch("r", "a"), dispatch("r", "b")))
    assert [x.dispatch.step for x in sql_store.dispatches("r")] == ["a", "b"]


def test_terminal_commit_fences_every_other_dispatch(sql_store: SQLStore,
                                                     clock: ManualClock) -> None:
    start(sql_store, "r", dispatch("r", "a"), dispatch("r", "b"), dispatch("r", "c", delay=60))
    leases = sql_store.claim("w", lease_for=30, limit=2)
    a, b = leases
    # "a" finishes the run (say, a cancel raced "b"); "b" and the scheduled "c" die with it.
    settle(sql_store, a, 1, status="cancelled")
    records = {x.dispatch.step: x for x in sql_store.dispatches("r")}
    assert {k: (v.state, v.reason) for k, v in records.items()} == {
        "a": ("completed", None), "b": ("failed", "run_terminal"), "c": ("failed", "run_terminal"),
    }
    assert records["b"].history[-1] == {"event": "failed", "fence": 1, "at": clock.now(),
                                        "reason": "run_terminal"}
    with pytest.raises(LeaseLostError):
        settle(sql_store, b, 2)
    with pytest.raises(LeaseLostError):
        sql_store.heartbeat(b, lease_for=30)
    clock.advance(120)
    assert sql_store.claim("w", lease_for=30, limit=5) == []
    with pytest.raises(RunTerminalError):
        sql_store.enqueue([dispatch("r", "d")])


def test_checkpoint_written_with_the_commit(sql_store: SQLStore) -> None:
    start(sql_store, "r")
    sql_store.commit(Commit("r", 1, facts(2, 1), entry("r", last_seq=2),
                            checkpoint=Checkpoint(2, "state@2")))
    assert sql_store.read_checkpoint("r") == Checkpoint(2, "state@2")
    sql_store.write_checkpoint("r", Checkpoint(9, "newer"))
    sql_store.commit(Commit("r", 2, facts(3, 1), entry("r", last_seq=3),
                            checkpoint=Checkpoint(3, "older")))
    assert sql_store.read_checkpoint("r") == Checkpoint(9, "newer")


def test_malformed_commit_is_a_caller_bug(sql_store: SQLStore) -> None:
    with pytest.raises(ValueError):
        sql_store.commit(Commit("r", 0, facts(2, 1), entry("r")))
    with pytest.raises(ValueError):
        sql_store.commit(Commit("r", 0, facts(1, 1), entry("other")))
    assert sql_store.head("r") == 0


# --------------------------------------------------------------------------- group commit


class _Transactions:
    """Counts the transactions committed and statements sent through a store's engine."""

    def __init__(self, store: SQLStore) -> None:
        self.commits = 0
        self.statements = 0
        engine = store._engine
        sa.event.listen(engine, "commit", self._commit)
        sa.event.listen(engine, "before_cursor_execute", self._statement)

    def _commit(self, conn: object) -> None:
        self.commits += 1

    def _statement(self, *args: object) -> None:
        self.statements += 1


def test_a_group_of_outcomes_is_one_transaction(sql_store: SQLStore) -> None:
    for i in range(10):
        start(sql_store, f"r{i}", dispatch(f"r{i}", "a"))
    leases = sql_store.claim("w", lease_for=30, limit=10)
    commits = [
        Commit(lease.dispatch.run_id, 1, facts(2, 2), entry(lease.dispatch.run_id, last_seq=3),
               enqueue=[dispatch(lease.dispatch.run_id, "b")], settle=lease,
               checkpoint=Checkpoint(3, "state@3"))
        for lease in leases
    ]
    counted = _Transactions(sql_store)
    assert sql_store.commit_many(commits) == [CommitResult(3)] * 10
    # One transaction and a statement per table, whatever the size of the group.
    assert counted.commits == 1
    assert counted.statements <= 12
    for i in range(10):
        states = {x.dispatch.step: x.state for x in sql_store.dispatches(f"r{i}")}
        assert states == {"a": "completed", "b": "available"}
        assert sql_store.read_checkpoint(f"r{i}") == Checkpoint(3, "state@3")


def test_a_group_compiles_no_statement_per_row_count_where_the_driver_batches(
    sql_store: SQLStore,
) -> None:
    # SQLite, and MariaDB's inserts: a multi-row write is the one-row statement in one
    # ``executemany``, so groups of 7 and 9 rows build no statement of 7 or 9 rows.
    many_rows = sql_store._dialect.many_rows
    for size in (7, 9):
        end_group(sql_store, size)
    sized = {kind for kind, n in sql_store._sized if n > 1}
    assert not sized & many_rows
    if sql_store.name == "sqlite":
        assert many_rows >= {"facts", "dispatches", "runs", "checkpoints", "settle", "take",
                             "fail_others"}
    elif sql_store.name == "mysql":
        assert many_rows == {"facts", "dispatches", "runs", "checkpoints"}
        assert {"settle", "take"} <= sized


def test_a_unique_violation_in_a_batched_write_writes_none_of_its_rows(
    sql_store: SQLStore,
) -> None:
    class Taken(Exception):
        pass

    start(sql_store, "dup", count=1)
    rows = sql_store._fact_rows("dup", facts(2, 3))
    # The third row repeats the first's sequence: the statement fails past two inserted
    # rows (an ``executemany`` on SQLite), and the transaction takes them back.
    rows = [*rows, rows[0]]
    with pytest.raises(Taken):
        sql_store._run(lambda conn: sql_store._send(
            conn, sql_store._writes("facts", rows, on_unique=Taken)), write=True)
    assert sql_store.head("dup") == 1
    assert [f.seq for f in sql_store.read("dup")] == [1]


def test_a_group_ending_runs_fails_only_their_other_dispatches(sql_store: SQLStore) -> None:
    for run_id in ("end1", "end2", "live"):
        start(sql_store, run_id, dispatch(run_id, "a"), dispatch(run_id, "b"))
    leases = [lease for lease in sql_store.claim("w", lease_for=30, limit=6)
              if lease.dispatch.step == "a"]
    commits = [
        Commit(lease.dispatch.run_id, 1, facts(2, 1),
               entry(lease.dispatch.run_id, last_seq=2,
                     status="running" if lease.dispatch.run_id == "live" else "completed"),
               settle=lease)
        for lease in leases
    ]
    assert sql_store.commit_many(commits) == [CommitResult(2)] * 3
    for run_id, other in (("end1", "failed"), ("end2", "failed"), ("live", "claimed")):
        states = {x.dispatch.step: x.state for x in sql_store.dispatches(run_id)}
        assert states == {"a": "completed", "b": other}


def _outcomes_of_r1_and_r2(sql_store: SQLStore) -> list[Commit]:
    for run_id in ("r1", "r2"):
        start(sql_store, run_id, dispatch(run_id, "a"))
    leases = sorted(sql_store.claim("w", lease_for=30, limit=2), key=lambda x: x.key)
    return [Commit(lease.dispatch.run_id, 1, facts(2, 1),
                   entry(lease.dispatch.run_id, last_seq=2), settle=lease)
            for lease in leases]


def test_a_group_checks_each_commit_and_sends_the_failures_alone(sql_store: SQLStore) -> None:
    commits = _outcomes_of_r1_and_r2(sql_store)
    sql_store.append("r2", facts(2, 1, by="operator"), expected_seq=1)
    results = sql_store.commit_many(commits)
    assert results[0] == CommitResult(2)
    assert isinstance(results[1], AppendConflict) and results[1].actual_seq == 2
    states = {x.dispatch.run_id: x.state for r in ("r1", "r2") for x in sql_store.dispatches(r)}
    assert states == {"r1": "completed", "r2": "claimed"}


def test_a_group_raced_between_its_checks_and_writes_is_committed_one_at_a_time(
    sql_store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits = _outcomes_of_r1_and_r2(sql_store)
    # A concurrent writer took a sequence after the checks: the group's fact insert hits
    # the unique key. The row is inserted in the group's own transaction (SQLite
    # serialises writers), so the rollback takes it back too.
    send = sql_store._send
    raced: list[int] = []

    def taken_once(conn: sa.Connection, writes: Any, **options: Any) -> None:
        if not raced and any(w.table == sql_store.tables.facts.name for w in writes):
            raced.append(len(writes))
            conn.execute(sa.insert(sql_store.tables.facts).values(
                run_id="r2", seq=2, type="raced", at=0.0, body="{}"))
        send(conn, writes, **options)

    monkeypatch.setattr(sql_store, "_send", taken_once)
    assert sql_store.commit_many(commits) == [CommitResult(2), CommitResult(2)]
    assert len(raced) == 1  # the group tried once, with all its writes, then each went alone
    states = {x.dispatch.run_id: x.state for r in ("r1", "r2") for x in sql_store.dispatches(r)}
    assert states == {"r1": "completed", "r2": "completed"}
    assert [len(sql_store.read(r)) for r in ("r1", "r2")] == [2, 2]


def test_a_group_sends_alone_only_the_commit_whose_dispatch_key_exists(
    sql_store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """r2 enqueues, again, a dispatch it already has (the same intent: idempotent); r1 a
    new one. The group writes r1 and leaves r2 to ``commit`` alone, which keeps the
    dispatch as it is. (On PostgreSQL the keys are looked up with the group's other
    reads, before its checks, for every commit of the group.)"""
    later = dispatch("r2", "later", delay=60)
    start(sql_store, "r1", dispatch("r1", "a"))
    start(sql_store, "r2", dispatch("r2", "a"), later)
    leases = sorted(sql_store.claim("w", lease_for=30, limit=2), key=lambda x: x.key)
    enqueue = {"r1": [dispatch("r1", "b")], "r2": [later]}
    commits = [Commit(lease.dispatch.run_id, 1, facts(2, 1),
                      entry(lease.dispatch.run_id, last_seq=2),
                      enqueue=enqueue[lease.dispatch.run_id], settle=lease)
               for lease in leases]
    alone: list[str] = []
    commit = sql_store.commit

    def commit_alone(c: Commit) -> CommitResult:
        alone.append(c.run_id)
        return commit(c)

    monkeypatch.setattr(sql_store, "commit", commit_alone)
    assert sql_store.commit_many(commits) == [CommitResult(2), CommitResult(2)]
    assert alone == ["r2"]
    states = {(x.dispatch.run_id, x.dispatch.step): x.state
              for r in ("r1", "r2") for x in sql_store.dispatches(r)}
    assert states == {("r1", "a"): "completed", ("r1", "b"): "available",
                      ("r2", "a"): "completed", ("r2", "later"): "scheduled"}
