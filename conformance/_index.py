"""The run index: one row per run, upserted by commits, listed newest first by cursor."""

from __future__ import annotations

import pytest

from conformance._markers import since
from conformance._support import SuiteBase, commit_for, make_facts, new_run_id, run_entry
from squidie_core.errors import InvalidArgument
from squidie_core.storage import Commit, RunEntry, Store

T0 = 1_700_000_000.0


def _create(
    store: Store, run_id: str, created_at: float, *, workflow: str = "Alpha",
    status: str = "started", parent_run_id: str | None = None,
) -> RunEntry:
    entry = run_entry(run_id, last_seq=1, status=status, workflow=workflow,
                      created_at=created_at, parent_run_id=parent_run_id)
    store.commit(Commit(run_id=run_id, expected_seq=0, facts=make_facts(1, 1), run=entry))
    return entry


def _ids(store: Store, **filters: object) -> list[str]:
    return [row.run_id for row in store.list_runs(limit=1000, **filters).items]  # type: ignore[arg-type]


@since("1.0")
class RunIndexSuite(SuiteBase):
    """``get_run`` and ``list_runs``: served from the index that commits maintain."""

    def test_an_unknown_run_has_no_row(self, store: Store) -> None:
        assert store.get_run("no-such-run") is None

    def test_a_commit_creates_the_runs_row(self, store: Store) -> None:
        run_id = new_run_id()
        entry = _create(store, run_id, T0 + 5, parent_run_id="parent-1")
        assert store.get_run(run_id) == entry

    def test_a_later_commit_updates_the_row(self, store: Store) -> None:
        run_id = new_run_id()
        _create(store, run_id, T0)
        commit = commit_for(store, run_id, 1, count=2, status="idle", created_at=T0,
                            workflow="Alpha")
        store.commit(commit)
        row = store.get_run(run_id)
        assert row == commit.run
        assert (row.status, row.last_seq, row.created_at) == ("idle", 3, T0)

    def test_an_empty_index_lists_nothing(self, store: Store) -> None:
        page = store.list_runs()
        assert page.items == []
        assert page.next_cursor is None

    def test_runs_are_listed_newest_first(self, store: Store) -> None:
        ids = [new_run_id() for _ in range(4)]
        for offset, run_id in zip((3, 1, 4, 2), ids, strict=True):
            _create(store, run_id, T0 + offset)
        assert _ids(store) == [ids[2], ids[0], ids[3], ids[1]]

    def test_runs_created_at_the_same_time_list_by_run_id_descending(
        self, store: Store
    ) -> None:
        for run_id in ("run-b", "run-a", "run-c"):
            _create(store, run_id, T0)
        assert _ids(store) == ["run-c", "run-b", "run-a"]

    def test_list_runs_filters_by_workflow(self, store: Store) -> None:
        _create(store, "run-1", T0 + 1, workflow="Alpha")
        _create(store, "run-2", T0 + 2, workflow="Beta")
        _create(store, "run-3", T0 + 3, workflow="Alpha")
        assert _ids(store, workflow="Alpha") == ["run-3", "run-1"]
        assert _ids(store, workflow="Gamma") == []

    def test_list_runs_filters_by_status(self, store: Store) -> None:
        _create(store, "run-1", T0 + 1, status="started")
        _create(store, "run-2", T0 + 2, status="paused")
        _create(store, "run-3", T0 + 3, status="completed")
        assert _ids(store, status="paused") == ["run-2"]
        assert _ids(store, status="failed") == []

    def test_list_runs_combines_filters(self, store: Store) -> None:
        _create(store, "run-1", T0 + 1, workflow="Alpha", status="paused")
        _create(store, "run-2", T0 + 2, workflow="Beta", status="paused")
        _create(store, "run-3", T0 + 3, workflow="Alpha", status="started")
        assert _ids(store, workflow="Alpha", status="paused") == ["run-1"]

    def test_a_status_change_moves_the_row_between_filters(self, store: Store) -> None:
        _create(store, "run-1", T0, workflow="ConformanceWorkflow")
        store.commit(commit_for(store, "run-1", 1, status="completed", created_at=T0))
        assert _ids(store, status="started") == []
        assert _ids(store, status="completed") == ["run-1"]

    def test_pages_cover_every_row_exactly_once(self, store: Store) -> None:
        created = [f"run-{i:02d}" for i in range(11)]
        for i, run_id in enumerate(created):
            _create(store, run_id, T0 + i // 2)  # pairs share a created_at
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            page = store.list_runs(limit=3, cursor=cursor)
            assert len(page.items) <= 3
            seen += [row.run_id for row in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == _ids(store)
        assert sorted(seen) == sorted(created)

    def test_a_last_page_that_is_exactly_full_has_no_cursor(self, store: Store) -> None:
        for i in range(4):
            _create(store, f"run-{i}", T0 + i)
        first = store.list_runs(limit=2)
        assert first.next_cursor is not None
        second = store.list_runs(limit=2, cursor=first.next_cursor)
        assert [r.run_id for r in second.items] == ["run-1", "run-0"]
        assert second.next_cursor is None

    def test_runs_created_after_the_first_page_do_not_shift_later_pages(
        self, store: Store
    ) -> None:
        for i in range(6):
            _create(store, f"run-{i}", T0 + i)
        first = store.list_runs(limit=2)
        for i in range(6, 9):
            _create(store, f"run-{i}", T0 + i)
        rest: list[str] = []
        cursor = first.next_cursor
        while cursor is not None:
            page = store.list_runs(limit=2, cursor=cursor)
            rest += [row.run_id for row in page.items]
            cursor = page.next_cursor
        assert [r.run_id for r in first.items] == ["run-5", "run-4"]
        assert rest == ["run-3", "run-2", "run-1", "run-0"]

    def test_cursors_respect_filters(self, store: Store) -> None:
        for i in range(6):
            _create(store, f"run-{i}", T0 + i, workflow="Alpha" if i % 2 else "Beta")
        first = store.list_runs(workflow="Alpha", limit=2)
        assert first.next_cursor is not None
        second = store.list_runs(workflow="Alpha", limit=2, cursor=first.next_cursor)
        assert [r.run_id for r in first.items + second.items] == ["run-5", "run-3", "run-1"]

    @pytest.mark.parametrize("cursor", ["not-a-cursor!", "W10"], ids=["junk", "wrong_shape"])
    def test_a_foreign_cursor_is_refused(self, store: Store, cursor: str) -> None:
        _create(store, "run-1", T0)
        with pytest.raises(InvalidArgument):
            store.list_runs(cursor=cursor)

    def test_a_limit_below_one_is_refused(self, store: Store) -> None:
        with pytest.raises(InvalidArgument):
            store.list_runs(limit=0)
