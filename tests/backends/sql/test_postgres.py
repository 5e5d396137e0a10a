"""PostgreSQL specifics of the SQL store: plans and pipelines.

Until autovacuum (or ``ANALYZE``) first visits a table, PostgreSQL prices a lookup of
16 keys above a scan of the whole table. The store's batch transactions turn sequential
scans off for their own statements (``Dialect.transaction(batch=True)``); these tests
read the plans PostgreSQL picks for the group commit's lock of the settled leases.

A commit's writes go in one psycopg pipeline where libpq supports it (14 and newer);
with an older libpq they go one by one, with the same results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sql_helpers import T0, dispatch, end_group, entry, facts, settle, start

from squidie_backends.sql import SQLStore, uninstall
from squidie_core import ManualClock
from squidie_core.errors import AppendConflict, LeaseLostError, RunTerminalError, StoreError
from squidie_core.storage import Checkpoint, Commit, CommitResult

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_store(postgres_url: str, unique_name: str) -> Iterator[SQLStore]:
    url = f"{postgres_url}?prefix={unique_name}_"
    store = SQLStore(url)
    yield store
    store.close()
    uninstall(url)


def _plan(store: SQLStore, keys: list[str], *, batch: bool) -> str:
    sql = store._sql["lock_settled"].params(keys=keys).compile(
        dialect=store._engine.dialect, compile_kwargs={"literal_binds": True}).string

    def body(conn: sa.Connection) -> str:
        return "\n".join(str(row[0]) for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))

    return store._run(body, write=False, batch=batch)


def test_a_batch_reads_by_index_from_a_table_never_analysed(pg_store: SQLStore) -> None:
    pg_store.enqueue([dispatch(f"r{i}") for i in range(3000)])
    with pg_store._engine.connect() as conn:
        analysed = conn.execute(sa.text(
            "SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"),
            {"t": pg_store.tables.dispatches.name}).scalar()
    assert analysed == -1  # never analysed: the planner has no statistics
    keys = sorted(dispatch(f"r{i}").key for i in range(0, 3000, 187))
    assert len(keys) == 17
    # Left to itself, PostgreSQL scans the whole table for them...
    assert "Seq Scan" in _plan(pg_store, keys, batch=False)
    # ...which a batch's transaction rules out.
    plan = _plan(pg_store, keys, batch=True)
    assert "Seq Scan" not in plan and "dispatches_key" in plan


def _read_plan(store: SQLStore, kind: str, params: dict[str, list[Any]]) -> str:
    """The plan of ``read_runs``' ``kind`` read over ``params`` in a batch transaction."""
    sql = store._for(kind, 0).sql

    def body(conn: sa.Connection) -> str:
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor:
            cursor.execute(f"EXPLAIN {sql}", params)
            return "\n".join(str(row[0]) for row in cursor.fetchall())

    return store._run(body, write=False, batch=True)


def test_a_batch_read_of_many_runs_looks_their_keys_up(pg_store: SQLStore) -> None:
    """``read_runs`` over ``unnest``: every table is reached through its primary key for
    the runs asked, never scanned whole (a join of the checkpoints to ``unnest`` was
    hashed over all of them)."""
    for i in range(400):
        pg_store.append(f"r{i}", facts(1, 3), 0)
        if i % 2:
            pg_store.write_checkpoint(f"r{i}", Checkpoint(2, "cp"))
    ids = [f"r{i}" for i in range(0, 400, 5)]
    plan = _read_plan(pg_store, "checkpointed_facts", {"run_id": ids})
    assert "Hash" not in plan and "Seq Scan" not in plan, plan
    assert "facts_pkey" in plan and "checkpoints_pkey" in plan and "ANY" in plan, plan
    plan = _read_plan(pg_store, "facts_after", {"run_id": ids, "seq": [1] * len(ids)})
    assert "Hash" not in plan and "Seq Scan" not in plan and "facts_pkey" in plan, plan


def test_a_claim_and_group_commit_send_texts_psycopg_caches(
    pg_store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's statements have the same text whatever its size (arrays, not one
    parameter per row): psycopg parses a text longer than its cache's limit again on
    every execution, and the server cannot prepare a text that changes with the size."""
    from psycopg import _queries

    long: list[bytes] = []
    convert = _queries.PostgresQuery.convert

    def record(self: _queries.PostgresQuery, query: Any, vars: Any) -> None:
        text = query if isinstance(query, bytes) else str(query).encode()
        if (len(text) > _queries.MAX_CACHED_STATEMENT_LENGTH
                or len(vars or ()) > _queries.MAX_CACHED_STATEMENT_PARAMS):
            long.append(text[:120])
        convert(self, query, vars)

    monkeypatch.setattr(_queries.PostgresQuery, "convert", record)
    for size in (7, 64):
        end_group(pg_store, size)
    assert long == []
    assert not {kind for kind, n in pg_store._sized if n > 4}


def _commands(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The transaction commands (``BEGIN``, ``COMMIT``, ``ROLLBACK``) psycopg sends from
    now on, each a round trip of its own outside a pipeline."""
    sent: list[str] = []
    exec_command = psycopg.Connection._exec_command

    def record(self: psycopg.Connection[Any], command: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(bytes(command).decode().split()[0])
        return exec_command(self, command, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "_exec_command", record)
    return sent


def _statements(monkeypatch: pytest.MonkeyPatch, cursors: list[type] | None = None
                ) -> list[str]:
    """The statements psycopg is given from now on, pipelined or not (and, in
    ``cursors``, the class of the cursor each went through)."""
    sent: list[str] = []
    execute = psycopg.Cursor.execute

    def record(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        if cursors is not None:
            cursors.append(type(self))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", record)
    return sent


def test_a_start_is_one_statement_and_its_races_fall_back_to_the_checks(
    pg_store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new run's first commit sends its inserts (facts, dispatch, run row, checkpoint)
    and the wake-up as one statement, which commits on its own: one round trip, no
    ``BEGIN`` or ``COMMIT``. A unique key it meets still means what it means apart (a
    resend is a replay, a journal already there a conflict)."""
    sent = _statements(monkeypatch)
    commands = _commands(monkeypatch)
    commit = Commit("new", 0, facts(1, 2), entry("new", last_seq=2),
                    enqueue=[dispatch("new", "a")], checkpoint=Checkpoint(2, "state@2"))
    assert pg_store.commit(commit) == CommitResult(2)
    assert len(sent) == 1 and sent[0].startswith("WITH ") and "pg_notify" in sent[0]
    assert commands == []
    assert pg_store.read("new") == facts(1, 2)
    assert pg_store.get_run("new") == entry("new", last_seq=2)
    assert pg_store.read_checkpoint("new") == Checkpoint(2, "state@2")
    assert [x.state for x in pg_store.dispatches("new")] == ["available"]
    assert pg_store.claim("w", lease_for=30)[0].dispatch.key == dispatch("new", "a").key

    assert pg_store.commit(commit) == CommitResult(2, replayed=True)
    pg_store.append("taken", facts(1, 1), 0)
    with pytest.raises(AppendConflict) as raised:
        pg_store.commit(Commit("taken", 0, facts(1, 1, other=True), entry("taken", last_seq=1)))
    assert raised.value.actual_seq == 1
    assert pg_store.get_run("taken") is None


def test_a_workers_commit_is_one_statement_and_a_refused_gate_writes_nothing(
    pg_store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outcome that settles a live lease goes as one gated statement that commits on
    its own: no ``BEGIN`` or ``COMMIT``. When the gate refuses (a stale token, a journal
    moved on, new work for an ended run) or a key is taken (a resend), the statement
    wrote nothing and the checks decide, with the error or replay they always gave."""
    start(pg_store, "r1", dispatch("r1", "a"), dispatch("r1", "other"))
    lease = next(x for x in pg_store.claim("w", lease_for=30, limit=2) if x.dispatch.step == "a")
    commands = _commands(monkeypatch)
    assert settle(pg_store, lease, 1, enqueue=(dispatch("r1", "b"),)) == CommitResult(2)
    assert commands == []
    assert settle(pg_store, lease, 1, enqueue=(dispatch("r1", "b"),)) == CommitResult(
        2, replayed=True)
    assert commands == ["BEGIN", "COMMIT"]  # the refused statement, then the checks
    states = {x.dispatch.step: x.state for x in pg_store.dispatches("r1")}
    assert states == {"a": "completed", "other": "claimed", "b": "available"}

    (lease_b,) = pg_store.claim("w", lease_for=30, queues=["default"])
    stale = dataclasses.replace(lease_b, token=lease_b.token + "x")
    with pytest.raises(LeaseLostError):
        settle(pg_store, stale, 2)
    pg_store.append("r1", facts(3, 1, by="command"), 2)  # appended meanwhile
    with pytest.raises(AppendConflict) as raised:
        settle(pg_store, lease_b, 2)
    assert raised.value.actual_seq == 3
    assert len(pg_store.read("r1")) == 3
    assert {x.dispatch.step: x.state for x in pg_store.dispatches("r1")}["b"] == "claimed"

    # The run's last step: it settles its lease and fails the run's other dispatches.
    assert settle(pg_store, lease_b, 3, status="completed") == CommitResult(4)
    states = {x.dispatch.step: x.state for x in pg_store.dispatches("r1")}
    assert states == {"a": "completed", "other": "failed", "b": "completed"}

    # The index row says the run ended while its lease is live (ending a run fails
    # its leases, so only the gate's own check stands between them here).
    start(pg_store, "ended", dispatch("ended", "a"))
    (lease_e,) = pg_store.claim("w", lease_for=30)
    runs = pg_store.tables.runs
    with pg_store._engine.begin() as conn:
        conn.execute(sa.update(runs).where(runs.c.run_id == "ended").values(status="completed"))
    with pytest.raises(RunTerminalError):
        settle(pg_store, lease_e, 1, enqueue=(dispatch("ended", "b"),))
    assert len(pg_store.read("ended")) == 1
    assert [x.state for x in pg_store.dispatches("ended")] == ["claimed"]


def test_one_statement_goes_numbered_through_a_raw_cursor_unless_a_part_is_binary(
    pg_store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's commit of a few facts has more parameters than psycopg caches the
    parse of (50): it goes numbered (``$1``...) through a ``RawCursor``, which psycopg
    does not parse. A commit whose facts go as ``unnest`` arrays (sent in binary, which a
    raw cursor cannot ask for per parameter) goes named through a plain cursor. Both
    write what they say."""
    start(pg_store, "few", dispatch("few", "a"))
    start(pg_store, "many", dispatch("many", "a"))
    leases = {x.dispatch.run_id: x for x in pg_store.claim("w", lease_for=30, limit=2)}
    cursors: list[type] = []
    sent = _statements(monkeypatch, cursors)
    assert settle(pg_store, leases["few"], 1, n=4,
                  enqueue=(dispatch("few", "b"),)) == CommitResult(5)
    assert settle(pg_store, leases["many"], 1, n=6,
                  enqueue=(dispatch("many", "b"),)) == CommitResult(7)
    few, many = sent
    raw, plain = cursors
    assert "$1" in few and "%(" not in few and few.count("$") > 50
    assert "$1" not in many and "%(w0_" in many
    assert (raw, plain) == (psycopg.RawCursor, psycopg.Cursor)
    assert pg_store.read("few") == facts(1, 1) + facts(2, 4)
    assert pg_store.read("many") == facts(1, 1) + facts(2, 6)
    for run_id in ("few", "many"):
        states = {x.dispatch.step: x.state for x in pg_store.dispatches(run_id)}
        assert states == {"a": "completed", "b": "available"}


def test_a_claim_is_one_statement_unless_it_meets_what_only_the_full_claim_decides(
    postgres_url: str, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim of one queue's first priority level is one statement committed alone,
    whose leases, tokens and history are those of the full claim. Rows past their
    delivery limit, or too few rows with another level in the queue, send the rest of
    the claim to the full claim in a transaction."""
    url = f"{postgres_url}?prefix={unique_name}_"
    clock = ManualClock(T0)
    store = SQLStore(url, clock=clock)
    try:
        store.enqueue([dispatch("a"), dispatch("b"), dispatch("later", delay=35)])
        commands = _commands(monkeypatch)
        first = store.claim("w", lease_for=30, limit=16)
        assert [x.dispatch.run_id for x in first] == ["a", "b"]
        assert [(x.fence, x.delivery, x.expires_at) for x in first] == [(1, 1, T0 + 30)] * 2
        assert commands == []
        clock.advance(20)
        store.heartbeat(first[0], lease_for=30)  # the token is the one stored (hashed)
        clock.advance(20)  # b's lease expires; a's, renewed, holds; later is visible
        commands.clear()
        again = store.claim("v", lease_for=30, limit=16)
        assert [x.dispatch.run_id for x in again] == ["b", "later"]
        assert commands == []
        (record,) = list(store.dispatches("b"))
        assert [(e["event"], e.get("fence"), e.get("owner")) for e in record.history] == [
            ("claimed", 1, "w"), ("lease_expired", 1, "w"), ("claimed", 2, "v")]
        assert record.history[-1]["at"] == T0 + 40

        store.enqueue([dispatch("doomed", queue="d", max_deliveries=1),
                       dispatch("fine", queue="d")])
        assert [x.dispatch.run_id for x in store.claim("w", lease_for=30, queues=["d"])] == [
            "doomed"]
        clock.advance(40)  # its one delivery expires: the next claim buries it
        commands.clear()
        got = store.claim("w", lease_for=30, limit=4, queues=["d"])
        assert [x.dispatch.run_id for x in got] == ["fine"]
        assert commands == ["BEGIN", "COMMIT"]
        assert [x.state for x in store.dispatches("doomed")] == ["dead_lettered"]

        store.enqueue([dispatch("urgent", queue="p", priority=0, delay=60),
                       dispatch("low", queue="p", priority=5)])
        commands.clear()
        assert [x.dispatch.run_id for x in store.claim("w", lease_for=30, queues=["p"])] == [
            "low"]
        assert commands == ["BEGIN", "COMMIT"]  # the first level had nothing visible

        store.enqueue([dispatch(f"many{i}", queue="m") for i in range(70)])
        commands.clear()
        assert len(store.claim("w", lease_for=30, limit=100, queues=["m"])) == 70
        assert commands == ["BEGIN", "COMMIT"]  # past 64 rows: the full claim
    finally:
        store.close()
        uninstall(url)


def test_a_claim_reads_its_runs_in_its_round_trip(
    pg_store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim's pipeline reads the taken runs' checkpoints and journals: the runs of
    its leases are then read with no statement, as ``read_runs`` reads them. A run read
    after a sequence its checkpoint is past, or a run not claimed, is read anew."""
    start(pg_store, "plain", dispatch("plain"), count=2)
    start(pg_store, "kept", dispatch("kept"))
    pg_store.write_checkpoint("kept", Checkpoint(seq=1, data="state@1"))
    pg_store.append("kept", facts(2, 2), expected_seq=1)
    start(pg_store, "late", dispatch("late", delay=60), count=3)
    pg_store.write_checkpoint("late", Checkpoint(seq=2, data="state@2"))
    start(pg_store, "none")
    sent = _statements(monkeypatch)
    leases = pg_store.claim("w", lease_for=300, limit=4)
    assert sorted(lease.dispatch.run_id for lease in leases) == ["kept", "plain"]
    assert len(sent) == 2  # the claim and its read, in one pipeline
    sent.clear()
    after: dict[str, int | None] = {"plain": 1, "kept": None}
    found = pg_store.read_claimed(leases, after)
    assert sent == []
    assert found == pg_store.read_runs(after)
    assert found["kept"][0] == Checkpoint(seq=1, data="state@1")
    assert [f.seq for f in found["kept"][1]] == [2, 3]
    assert [f.seq for f in found["plain"][1]] == [2]
    # Taken once: read again, the runs are read anew.
    sent.clear()
    assert pg_store.read_claimed(leases, after) == found
    assert sent != []

    pg_store.clock = ManualClock(pg_store.clock.now() + 61)  # late becomes visible
    leases = pg_store.claim("w", lease_for=30, limit=4)
    assert [lease.dispatch.run_id for lease in leases] == ["late"]
    ask: dict[str, int | None] = {"late": 1, "none": None}
    sent.clear()
    assert pg_store.read_claimed(leases, ask) == pg_store.read_runs(ask)
    assert [f.seq for f in pg_store.read_claimed(leases, ask)["late"][1]] == [2, 3]
    assert sent != []


def test_a_claimed_read_is_never_older_than_what_its_thread_wrote(
    pg_store: SQLStore
) -> None:
    """What a claim read answers only the next ``read_claimed`` of its thread with the
    leases of that claim: a journal write (``append``, ``commit``, ``commit_many``) or
    a claim on the thread drops it, and another thread reads anew."""
    import threading

    for run_id in ("a", "b"):
        start(pg_store, run_id, dispatch(run_id))
    leases = pg_store.claim("w", lease_for=30, limit=1)
    pg_store.append("a", facts(2, 1), expected_seq=1)
    assert [f.seq for f in pg_store.read_claimed(leases, {"a": None})["a"][1]] == [1, 2]

    other = pg_store.claim("w", lease_for=30, limit=1)
    assert [lease.dispatch.run_id for lease in other] == ["b"]
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(
        pg_store.read_claimed(other, {"b": None})))
    pg_store.append("b", facts(2, 1), expected_seq=1)  # dropped by the write...
    thread.start()
    thread.join(30)
    assert [f.seq for f in seen[0]["b"][1]] == [1, 2]

    start(pg_store, "c", dispatch("c"))
    mine = pg_store.claim("w", lease_for=30, limit=1)
    thread = threading.Thread(target=lambda: pg_store.append("c", facts(2, 1),
                                                             expected_seq=1))
    thread.start()
    thread.join(30)
    # ...but not by another thread's: the answer is as the claim read it.
    assert [f.seq for f in pg_store.read_claimed(mine, {"c": None})["c"][1]] == [1]
    assert pg_store.read_claimed(leases, {"a": None}) == pg_store.read_runs({"a": None})


def test_claims_read_their_runs_while_the_runs_are_read_from_their_checkpoints(
    pg_store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs the engine has cached are read after a known sequence, for which the
    claim's read of every fact since the checkpoint is wasted: once most runs of a
    thread's recent claims were read so, its claims go alone, until fresh reads
    bring the share back up."""
    sent = _statements(monkeypatch)

    def claim_and_read(run_id: str, seq: int | None) -> int:
        start(pg_store, run_id, dispatch(run_id))
        sent.clear()
        leases = pg_store.claim("w", lease_for=300)
        statements = len(sent)
        assert [lease.dispatch.run_id for lease in leases] == [run_id]
        assert pg_store.read_claimed(leases, {run_id: seq}) == pg_store.read_runs(
            {run_id: seq})
        return statements

    assert [claim_and_read(f"cached{i}", 1) for i in range(5)] == [2, 2, 2, 2, 1]
    assert [claim_and_read(f"fresh{i}", None) for i in range(3)] == [1, 1, 2]

def test_a_failing_claimed_read_fails_the_claim_and_takes_nothing(
    pg_store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    start(pg_store, "r", dispatch("r"))
    monkeypatch.setattr(pg_store, "_claimed_read", lambda: "SELECT * FROM no_such_table")
    with pytest.raises(StoreError, match="UndefinedTable"):
        pg_store.claim("w", lease_for=30)
    (record,) = pg_store.dispatches("r")
    assert (record.state, record.deliveries) == ("available", 0)
    monkeypatch.undo()
    for _ in range(8):  # every pooled connection, in turn: none left mid-pipeline
        assert pg_store.claim("w", lease_for=30, queues=["empty"]) == []
    (lease,) = pg_store.claim("w", lease_for=30)
    assert lease.dispatch.run_id == "r"


def test_a_lone_read_commits_each_statement_alone(
    pg_store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that is not a batch runs in autocommit: no ``BEGIN`` or ``COMMIT`` round
    trips (in READ COMMITTED each statement reads its own snapshot either way), and the
    connection goes back to the pool in transactions, so a write after it is still
    atomic."""
    start(pg_store, "r1", dispatch("r1"), count=3)
    pg_store.write_checkpoint("r1", Checkpoint(2, "state@2"))
    commands = _commands(monkeypatch)
    assert pg_store.read_runs({"r1": None}) == {"r1": (Checkpoint(2, "state@2"), facts(3, 1))}
    assert pg_store.read_runs({"r1": 1}) == {"r1": (None, facts(2, 2))}
    assert pg_store.read("r1") == facts(1, 3)
    assert pg_store.get_run("r1") == entry("r1", last_seq=3)
    assert commands == []

    def autocommit(conn: sa.Connection) -> bool:
        return bool(conn.connection.driver_connection.autocommit)  # type: ignore[union-attr]

    assert pg_store._run(autocommit, write=False) is True
    assert pg_store._run(autocommit, write=True) is False
    assert pg_store._run(autocommit, write=False, batch=True) is False

    def half_written(conn: sa.Connection) -> None:
        start(pg_store, "unused", dispatch("unused"))  # its own transaction
        conn.exec_driver_sql(f"DELETE FROM {pg_store.tables.facts.name}")
        raise RuntimeError("the body fails after a write")

    with pytest.raises(RuntimeError):
        pg_store._run(half_written, write=True)
    assert pg_store.read("r1") == facts(1, 3)  # the delete was rolled back


def test_a_read_whose_connection_dies_leaves_no_autocommit_connection_behind(
    pg_store: SQLStore
) -> None:
    """The server ends the connection in the middle of an autocommitted read: the read
    is retried on a new connection, and the broken one is discarded, not pooled."""
    start(pg_store, "r1", dispatch("r1"))
    killed: list[int] = []

    def body(conn: sa.Connection) -> list[int]:
        if not killed:
            killed.append(1)
            conn.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")
        return [int(conn.exec_driver_sql("SELECT 1").scalar_one())]

    assert pg_store._run(body, write=False) == [1]
    for _ in range(8):  # every pooled connection, in turn
        assert pg_store._run(
            lambda conn: conn.connection.driver_connection.autocommit,  # type: ignore[union-attr]
            write=True) is False
    assert pg_store.read("r1") == facts(1, 1)


def test_the_setting_ends_with_the_batch(pg_store: SQLStore) -> None:
    """``SET LOCAL``: the next transaction on the same pooled connection plans freely."""
    def setting(conn: sa.Connection) -> str:
        return str(conn.exec_driver_sql("SHOW enable_seqscan").scalar())

    assert pg_store._run(setting, write=False, batch=True) == "off"
    assert pg_store._run(setting, write=False) == "on"


@pytest.mark.parametrize("write", [False, True])
def test_a_batch_reads_its_first_statements_with_the_setting(
    pg_store: SQLStore, write: bool
) -> None:
    """A batch's first reads go with the transaction's start (in one pipeline): they
    see the batch's setting, their rows come back by attribute and by position, and the
    setting ends with the batch. A write batch's own statements are in its transaction;
    a batch of reads has no transaction left for its block to use (it autocommits)."""
    reads = [("SHOW enable_seqscan", None),
             ("SELECT %(a)s::int AS a, %(b)s::text AS b", {"a": 7, "b": "x"})]

    def body(conn: sa.Connection, rows: list[list[Any]]) -> tuple[Any, ...]:
        raw = conn.connection.driver_connection
        assert raw is not None
        return (rows, raw.autocommit,
                conn.exec_driver_sql("SHOW enable_seqscan").scalar())

    rows, autocommit, later = pg_store._run_reading(body, reads, write=write, batch=True)
    assert [[tuple(row) for row in read] for read in rows] == [[("off",)], [(7, "x")]]
    assert (rows[1][0].a, rows[1][0].b) == (7, "x")
    assert (autocommit, later) == ((False, "off") if write else (True, "on"))
    assert pg_store._run(lambda conn: conn.exec_driver_sql("SHOW enable_seqscan").scalar(),
                         write=write) == "on"


def test_a_failing_first_read_fails_the_batch_and_leaves_the_connection_usable(
    pg_store: SQLStore
) -> None:
    with pytest.raises(StoreError, match="UndefinedTable"):
        pg_store._run_reading(lambda conn, rows: rows, [("SELECT * FROM no_such_table", None)],
                              write=True, batch=True)
    for _ in range(8):  # every pooled connection, in turn: none left mid-pipeline
        assert pg_store._run_reading(lambda conn, rows: rows[0][0][0], [("SELECT 1", None)],
                                     write=True, batch=True) == 1


def test_without_pipelines_the_writes_go_one_by_one(
    pg_store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_store._dialect, "pipelines", False)

    def no_pipeline(*args: object, **kwargs: object) -> None:
        raise AssertionError("a pipeline without libpq support")

    monkeypatch.setattr(psycopg.Connection, "pipeline", no_pipeline)
    start(pg_store, "r1", dispatch("r1"), dispatch("r1", step="later", delay=60))
    start(pg_store, "r2", dispatch("r2"))
    leases = pg_store.claim("w", lease_for=30, limit=2)
    commits = [Commit(lease.dispatch.run_id, 1, facts(2, 1),
                      entry(lease.dispatch.run_id, "completed", last_seq=2), settle=lease)
               for lease in leases]
    assert pg_store.commit_many(commits) == [CommitResult(2), CommitResult(2)]
    assert [len(pg_store.read(r)) for r in ("r1", "r2")] == [2, 2]
    # Every write happened: the runs ended, so r1's other dispatch failed.
    assert sorted(x.state for x in pg_store.dispatches("r1")) == ["completed", "failed"]
    assert pg_store.get_run("r2").status == "completed"  # type: ignore[union-attr]
    # A journal sequence taken: the unique violation is still an AppendConflict.
    start(pg_store, "r3", dispatch("r3"))
    (lease,) = pg_store.claim("w", lease_for=30)
    pg_store.append("r3", facts(2, 1, by="operator"), expected_seq=1)
    with pytest.raises(AppendConflict):
        pg_store.commit(Commit("r3", 1, facts(2, 1), entry("r3", last_seq=2), settle=lease))
