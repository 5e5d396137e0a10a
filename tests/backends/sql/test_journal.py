"""Journal, checkpoints and the run index of the SQL store, on every dialect."""

from __future__ import annotations

import pytest
from sql_helpers import T0, entry, facts, start

from squidie_backends.sql import SQLStore
from squidie_core.errors import AppendConflict, InvalidArgument
from squidie_core.storage import Checkpoint, Commit, Fact


def test_append_read_head(sql_store: SQLStore) -> None:
    assert sql_store.head("r") == 0
    assert sql_store.read("r") == []
    assert sql_store.append("r", facts(1, 3), 0) == 3
    assert sql_store.append("r", facts(4, 2), 3) == 5
    got = sql_store.read("r")
    assert [f.seq for f in got] == [1, 2, 3, 4, 5]
    assert got[0] == Fact(seq=1, type="note", at=T0, body={"i": 1})
    assert [f.seq for f in sql_store.read("r", after_seq=3)] == [4, 5]
    assert sql_store.head("r") == 5
    assert sql_store.read("other") == []


def test_stale_append_conflicts_and_writes_nothing(sql_store: SQLStore) -> None:
    sql_store.append("r", facts(1, 2), 0)
    with pytest.raises(AppendConflict) as info:
        sql_store.append("r", facts(2, 2, x=1), 1)
    assert (info.value.expected_seq, info.value.actual_seq) == (1, 2)
    with pytest.raises(AppendConflict):
        sql_store.append("r", facts(4, 1), 3)
    assert [f.body for f in sql_store.read("r")] == [{"i": 1}, {"i": 2}]


def test_identical_resend_of_an_append_is_accepted(sql_store: SQLStore) -> None:
    batch = facts(1, 2, nested={"b": [1, 2], "a": None})
    sql_store.append("r", batch, 0)
    assert sql_store.append("r", batch, 0) == 2
    assert sql_store.head("r") == 2
    with pytest.raises(AppendConflict):
        sql_store.append("r", facts(1, 2), 0)  # same sequences, different facts


def test_resend_with_integer_times_is_still_a_replay(sql_store: SQLStore) -> None:
    batch = [Fact(1, "x", 1_700_000_000, {"v": 1.5})]
    sql_store.append("r", batch, 0)
    assert sql_store.append("r", batch, 0) == 1
    assert sql_store.read("r") == batch  # 1_700_000_000 == 1_700_000_000.0


def test_facts_must_be_contiguous(sql_store: SQLStore) -> None:
    with pytest.raises(ValueError, match="contiguously"):
        sql_store.append("r", [Fact(2, "x", T0, {})], 0)
    assert sql_store.head("r") == 0


def test_non_json_fact_is_refused_before_writing(sql_store: SQLStore) -> None:
    with pytest.raises(InvalidArgument):
        sql_store.append("r", [Fact(1, "x", T0, {"v": {1, 2}})], 0)
    assert sql_store.head("r") == 0


def test_overlong_run_id_is_a_clear_error(sql_store: SQLStore) -> None:
    with pytest.raises(InvalidArgument, match="at most 255"):
        sql_store.append("r" * 256, facts(1, 1), 0)


def test_unicode_and_case_are_kept_apart(sql_store: SQLStore) -> None:
    sql_store.append("Run-É", facts(1, 1, text="ünïcødé ✓"), 0)
    sql_store.append("run-é", facts(1, 2), 0)
    assert sql_store.read("Run-É")[0].body["text"] == "ünïcødé ✓"
    assert sql_store.head("run-é") == 2


def test_checkpoints_keep_the_newest(sql_store: SQLStore) -> None:
    assert sql_store.read_checkpoint("r") is None
    sql_store.write_checkpoint("r", Checkpoint(5, "five"))
    sql_store.write_checkpoint("r", Checkpoint(3, "three"))
    assert sql_store.read_checkpoint("r") == Checkpoint(5, "five")
    sql_store.write_checkpoint("r", Checkpoint(5, "five again"))
    assert sql_store.read_checkpoint("r") == Checkpoint(5, "five again")
    sql_store.write_checkpoint("r", Checkpoint(9, "x" * 200_000))
    assert sql_store.read_checkpoint("r") == Checkpoint(9, "x" * 200_000)
    sql_store.write_checkpoint("q", Checkpoint(1, "q"))
    assert sql_store.delete_checkpoints("r") == 1
    assert sql_store.delete_checkpoints("r") == 0
    assert sql_store.delete_checkpoints() == 1
    assert sql_store.read_checkpoint("q") is None


def test_get_run_reflects_the_last_commit(sql_store: SQLStore) -> None:
    assert sql_store.get_run("r") is None
    start(sql_store, "r", count=2)
    assert sql_store.get_run("r") == entry("r", last_seq=2)
    sql_store.commit(Commit("r", 2, facts(3, 1), entry("r", "completed", last_seq=3)))
    row = sql_store.get_run("r")
    assert row is not None and (row.status, row.last_seq) == ("completed", 3)


def _seed_runs(store: SQLStore) -> list[str]:
    ids = []
    for i in range(9):
        run_id = f"run-{i:02d}"
        created = T0 + (i // 3)  # three runs share each created_at: the tiebreak matters
        store.commit(Commit(run_id, 0, facts(1, 1), entry(
            run_id, ("completed", "running", "failed")[i % 3], created=created,
            workflow="A" if i % 2 else "B",
        )))
        ids.append(run_id)
    return ids


def _all_pages(store: SQLStore, **filters: object) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list_runs(limit=2, cursor=cursor, **filters)  # type: ignore[arg-type]
        seen += [r.run_id for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen


def test_list_runs_newest_first_with_stable_paging(sql_store: SQLStore) -> None:
    ids = _seed_runs(sql_store)
    newest_first = sorted(ids, key=lambda r: (int(r[-2:]) // 3, r), reverse=True)
    assert _all_pages(sql_store) == newest_first
    first = sql_store.list_runs(limit=4)
    assert [r.run_id for r in first.items] == newest_first[:4]
    # A run created after the first page does not shift the later pages.
    sql_store.commit(Commit("run-new", 0, facts(1, 1), entry("run-new", created=T0 + 99)))
    rest = sql_store.list_runs(limit=50, cursor=first.next_cursor)
    assert [r.run_id for r in rest.items] == newest_first[4:]
    assert rest.next_cursor is None


def test_list_runs_filters(sql_store: SQLStore) -> None:
    ids = _seed_runs(sql_store)
    assert set(_all_pages(sql_store, workflow="A")) == {r for r in ids if int(r[-2:]) % 2}
    assert set(_all_pages(sql_store, status="failed")) == {
        r for r in ids if int(r[-2:]) % 3 == 2
    }
    both = _all_pages(sql_store, workflow="B", status="completed")
    assert both == ["run-06", "run-00"]
    assert sql_store.list_runs(workflow="nope").items == []


def test_list_runs_rejects_bad_input(sql_store: SQLStore) -> None:
    with pytest.raises(InvalidArgument):
        sql_store.list_runs(limit=0)
    with pytest.raises(InvalidArgument):
        sql_store.list_runs(cursor="not-a-cursor!")


def test_read_runs_from_checkpoints_past_one_statement_s_worth(
    sql_store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """71 fresh runs (two statements' worth), every third with a checkpoint, some
    followed from a known sequence; a lone fresh run is one statement."""
    import sqlalchemy as sa

    from squidie_core.storage import read_runs

    for i in range(70):
        sql_store.append(f"r{i:02}", [Fact(s, "note", 0.0, {"s": s}) for s in (1, 2, 3, 4)], 0)
        if i % 3 == 0:
            sql_store.write_checkpoint(f"r{i:02}", Checkpoint(2 + i % 2, f"cp{i}"))
    after: dict[str, int | None] = {f"r{i:02}": None for i in range(70)}
    after.update({"r01": 1, "r03": 3, "nobody": None})
    # An id JSON and SQL would both have to escape, read with the others.
    odd = 'r"\\\'ü'
    sql_store.append(odd, [Fact(1, "note", 0.0, {"s": 1})], 0)
    after[odd] = None
    sent: list[str] = []

    def record(*args: object) -> None:
        sent.append(str(args[2]))

    if sql_store.name == "postgresql":
        # A batch's reads go to psycopg directly, in one pipeline (test_postgres.py):
        # count what the driver is given, whichever way it comes to it.
        import psycopg

        execute = psycopg.Cursor.execute

        def sent_to_driver(self: psycopg.Cursor[object], query: object, *args: object,
                           **kwargs: object) -> object:
            sent.append(str(query))
            return execute(self, query, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(psycopg.Cursor, "execute", sent_to_driver)
    else:  # the store's own engine, dropped with the test's store
        sa.event.listen(sql_store._engine, "before_cursor_execute", record)

    def selects() -> int:
        """The reads sent (not PostgreSQL's batch setting, ``SELECT set_config``)."""
        return len([s for s in sent if s.lstrip().upper().startswith(("SELECT", "(SELECT"))
                    and "set_config" not in s])

    runs = read_runs(sql_store, after)
    # 70 runs from their checkpoints and 2 from a known sequence: PostgreSQL (``unnest``)
    # and SQLite (``json_each``) read each kind in one statement, MariaDB 64 runs a
    # statement.
    assert selects() == (2 if sql_store.name in ("postgresql", "sqlite") else 3)
    for run_id, seq in after.items():
        checkpoint = sql_store.read_checkpoint(run_id) if seq is None else None
        base = seq if seq is not None else checkpoint.seq if checkpoint else 0
        assert runs[run_id] == (checkpoint, sql_store.read(run_id, after_seq=base)), run_id
    assert runs["r03"][0] is None and [f.seq for f in runs["r03"][1]] == [4]
    assert [f.seq for f in runs["r00"][1]] == [3, 4] and runs["nobody"] == (None, [])

    expected = (Checkpoint(2, "cp0"), sql_store.read("r00", after_seq=2))
    sent.clear()
    assert read_runs(sql_store, {"r00": None}) == {"r00": expected}
    assert selects() == 1
