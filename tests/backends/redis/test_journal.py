"""The Redis store's journal: ordered appends, conflicts, replays, checkpoints, index."""

from __future__ import annotations

import pytest
from _redis_data import commit, entry, facts

from squidie_backends.redis import RedisStore
from squidie_core.errors import AppendConflict, InvalidArgument
from squidie_core.storage import Checkpoint, Commit, Fact, decode_cursor, encode_cursor

pytestmark = pytest.mark.redis


def test_append_and_read_in_order(store: RedisStore) -> None:
    assert store.read("r") == [] and store.head("r") == 0
    assert store.append("r", facts(0, 3), 0) == 3
    assert store.append("r", facts(3, 2), 3) == 5
    got = store.read("r")
    assert [f.seq for f in got] == [1, 2, 3, 4, 5]
    assert got == facts(0, 3) + facts(3, 2)
    assert [f.seq for f in store.read("r", after_seq=3)] == [4, 5]
    assert store.read("r", after_seq=9) == []
    assert store.head("r") == 5


def test_stale_expected_seq_conflicts_and_writes_nothing(store: RedisStore) -> None:
    store.append("r", facts(0, 2), 0)
    with pytest.raises(AppendConflict) as info:
        store.append("r", facts(1, 1, kind="other"), 1)
    assert (info.value.expected_seq, info.value.actual_seq) == (1, 2)
    with pytest.raises(AppendConflict):
        store.append("r", facts(3, 1), 3)
    assert store.head("r") == 2


def test_identical_resend_of_an_append_is_answered_not_repeated(store: RedisStore) -> None:
    batch = facts(0, 2)
    assert store.append("r", batch, 0) == 2
    store.append("r", facts(2, 1), 2)
    # The same facts again at the same position: they are there, so it is a resend.
    assert store.append("r", batch, 0) == 2
    assert store.head("r") == 3
    # Same position, different facts: a genuine conflict.
    with pytest.raises(AppendConflict):
        store.append("r", facts(0, 2, kind="different"), 0)


def test_facts_must_be_contiguous_and_json(store: RedisStore) -> None:
    with pytest.raises(ValueError, match="contiguously"):
        store.append("r", [Fact(2, "x", 1.0, {})], 0)
    with pytest.raises(InvalidArgument):
        store.append("r", [Fact(1, "x", 1.0, {"bad": {1, 2}})], 0)
    assert store.head("r") == 0


def test_fact_bodies_round_trip_exactly(store: RedisStore) -> None:
    body = {"unicode": "Frodo ✓ «»", "nested": {"b": [1, 2.5, None, True]}, "big": 2**60,
            "float": 1_700_000_000.123456}
    fact = Fact(1, "run_started", 1_795_000_000.987654, body)
    store.append("r", [fact], 0)
    assert store.read("r") == [fact]


def test_checkpoints_keep_the_newest(store: RedisStore) -> None:
    assert store.read_checkpoint("r") is None
    store.append("r", facts(0, 5), 0)
    store.write_checkpoint("r", Checkpoint(3, "three"))
    store.write_checkpoint("r", Checkpoint(2, "two"))  # older: ignored
    assert store.read_checkpoint("r") == Checkpoint(3, "three")
    store.write_checkpoint("r", Checkpoint(5, "five\nlines"))
    assert store.read_checkpoint("r") == Checkpoint(5, "five\nlines")
    store.write_checkpoint("other", Checkpoint(1, "x"))
    assert store.delete_checkpoints("r") == 1
    assert store.delete_checkpoints("r") == 0
    assert store.read_checkpoint("r") is None
    store.write_checkpoint("r", Checkpoint(5, "again"))
    assert store.delete_checkpoints() == 2
    assert store.read_checkpoint("other") is None


def test_checkpoints_in_several_home_queues_are_all_deleted(store: RedisStore) -> None:
    store.commit(commit("a", 0, queue="qa"))
    store.commit(commit("b", 0, queue="qb"))
    store.write_checkpoint("a", Checkpoint(1, "a"))
    store.write_checkpoint("b", Checkpoint(1, "b"))
    assert store.delete_checkpoints() == 2


def test_commit_writes_checkpoint_and_index(store: RedisStore) -> None:
    c = commit("r", 0, 2)
    store.commit(Commit(c.run_id, 0, c.facts, c.run, checkpoint=Checkpoint(2, "state")))
    assert store.read_checkpoint("r") == Checkpoint(2, "state")
    assert store.get_run("r") == c.run
    assert store.get_run("missing") is None


def test_get_run_reflects_the_latest_commit(store: RedisStore) -> None:
    store.commit(commit("r", 0, status="running"))
    store.commit(commit("r", 1, status="paused"))
    row = store.get_run("r")
    assert row is not None and (row.status, row.last_seq) == ("paused", 2)


def _ids(page: object) -> list[str]:
    return [r.run_id for r in page.items]  # type: ignore[attr-defined]


def test_list_runs_newest_first_with_stable_cursor(store: RedisStore) -> None:
    for i in range(7):
        store.commit(commit(f"r{i}", 0, created=100.0 + i))
    first = store.list_runs(limit=3)
    assert _ids(first) == ["r6", "r5", "r4"] and first.next_cursor
    # A run created after the first page does not shift the later pages.
    store.commit(commit("late", 0, created=500.0))
    second = store.list_runs(limit=3, cursor=first.next_cursor)
    assert _ids(second) == ["r3", "r2", "r1"]
    third = store.list_runs(limit=3, cursor=second.next_cursor)
    assert _ids(third) == ["r0"] and third.next_cursor is None
    assert _ids(store.list_runs(limit=1)) == ["late"]


def test_list_runs_ties_on_created_at_break_by_run_id(store: RedisStore) -> None:
    for rid in ["b", "a", "c", "ab"]:
        store.commit(commit(rid, 0, created=5.0))
    pages, cursor = [], None
    while True:
        page = store.list_runs(limit=1, cursor=cursor)
        pages += _ids(page)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == ["c", "b", "ab", "a"]


def test_list_runs_negative_and_fractional_times_sort_numerically(store: RedisStore) -> None:
    for rid, created in [("neg", -5.5), ("zero", 0.0), ("small", 0.25), ("big", 1e12)]:
        store.commit(commit(rid, 0, created=created))
    assert _ids(store.list_runs()) == ["big", "small", "zero", "neg"]


def test_list_runs_filters_follow_status_changes(store: RedisStore) -> None:
    store.commit(commit("a", 0, workflow="w1", created=1.0))
    store.commit(commit("b", 0, workflow="w2", created=2.0))
    store.commit(commit("c", 0, workflow="w1", created=3.0))
    store.commit(commit("a", 1, workflow="w1", created=1.0, status="completed"))
    assert _ids(store.list_runs(workflow="w1")) == ["c", "a"]
    assert _ids(store.list_runs(status="completed")) == ["a"]
    assert _ids(store.list_runs(status="running")) == ["c", "b"]
    assert _ids(store.list_runs(workflow="w1", status="running")) == ["c"]
    assert _ids(store.list_runs(workflow="w2", status="completed")) == []
    assert _ids(store.list_runs(workflow="nope")) == []
    page = store.list_runs(status="running", limit=1)
    assert _ids(store.list_runs(status="running", limit=1, cursor=page.next_cursor)) == ["b"]


def test_list_runs_merges_runs_homed_in_several_queues(store: RedisStore) -> None:
    for i, queue in enumerate(["q1", "q2", "q1", "q3", "q2"]):
        store.commit(commit(f"r{i}", 0, queue=queue, created=float(i)))
    seen, cursor = [], None
    while True:
        page = store.list_runs(limit=2, cursor=cursor)
        seen += _ids(page)
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == ["r4", "r3", "r2", "r1", "r0"]


def test_list_runs_reindexes_a_run_whose_workflow_changed(store: RedisStore) -> None:
    store.commit(commit("r", 0, workflow="old"))
    store.commit(commit("r", 1, workflow="new"))
    assert _ids(store.list_runs(workflow="old")) == []
    assert _ids(store.list_runs(workflow="new")) == ["r"]
    assert _ids(store.list_runs(workflow="new", status="running")) == ["r"]
    assert _ids(store.list_runs(workflow="old", status="running")) == []


def test_list_runs_rejects_bad_limits_and_foreign_cursors(store: RedisStore) -> None:
    with pytest.raises(InvalidArgument):
        store.list_runs(limit=0)
    with pytest.raises(InvalidArgument):
        store.list_runs(cursor="not a cursor")
    with pytest.raises(InvalidArgument):
        store.list_runs(cursor=encode_cursor("x"))
    with pytest.raises(InvalidArgument):
        store.list_runs(cursor=encode_cursor("nan?", "r"))
    assert decode_cursor(encode_cursor(1.5, "r"), 2) == [1.5, "r"]


def test_index_rows_are_summaries_only(store: RedisStore) -> None:
    store.commit(commit("r", 0))
    row = store.list_runs().items[0]
    assert row == entry("r", seq=1)
    assert "payload" not in row.to_dict()
