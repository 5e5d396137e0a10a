"""Optimistic conflicts: an append based on a stale sequence writes nothing and says so.

The race this prevents::

    writer A                       journal (head 3)                writer B
    read run: head 3                                              read run: head 3
    append [4] expected 3 ------>  head 4
                                   append [4'] expected 3  <-----  append
                                   AppendConflict, nothing  ---->  re-read, decide again
"""

from __future__ import annotations

import pytest

from conformance._markers import since
from conformance._support import SuiteBase, make_facts, new_run_id, snapshot
from squidie_core.errors import AppendConflict, ConflictError
from squidie_core.storage import Fact, Store


@since("1.0")
class ConflictSuite(SuiteBase):
    """``append`` with a stale ``expected_seq`` raises ``AppendConflict`` and writes nothing."""

    def test_a_stale_expected_seq_conflicts_and_writes_nothing(self, store: Store) -> None:
        run_id = new_run_id()
        store.append(run_id, make_facts(1, 2), expected_seq=0)
        before = snapshot(store, run_id)
        with pytest.raises(AppendConflict) as info:
            store.append(run_id, make_facts(2, 1, writer="late"), expected_seq=1)
        assert snapshot(store, run_id) == before
        assert isinstance(info.value, ConflictError)

    def test_the_conflict_names_the_run_and_the_sequences(self, store: Store) -> None:
        run_id = new_run_id()
        store.append(run_id, make_facts(1, 3), expected_seq=0)
        with pytest.raises(AppendConflict) as info:
            store.append(run_id, make_facts(2, 1, writer="late"), expected_seq=1)
        assert info.value.run_id == run_id
        assert info.value.expected_seq == 1
        assert info.value.actual_seq in (None, 3)
        assert info.value.code == "append_conflict"

    def test_an_expected_seq_ahead_of_the_journal_conflicts(self, store: Store) -> None:
        run_id = new_run_id()
        store.append(run_id, make_facts(1, 1), expected_seq=0)
        before = snapshot(store, run_id)
        with pytest.raises(AppendConflict):
            store.append(run_id, make_facts(4, 1), expected_seq=3)
        assert snapshot(store, run_id) == before

    def test_expected_zero_on_an_existing_run_conflicts(self, store: Store) -> None:
        run_id = new_run_id()
        store.append(run_id, make_facts(1, 1, writer="first"), expected_seq=0)
        with pytest.raises(AppendConflict):
            store.append(run_id, make_facts(1, 1, writer="second"), expected_seq=0)
        assert [f.body["writer"] for f in store.read(run_id)] == ["first"]

    def test_a_new_run_with_a_non_zero_expected_seq_conflicts(self, store: Store) -> None:
        run_id = new_run_id()
        with pytest.raises(AppendConflict):
            store.append(run_id, make_facts(3, 1), expected_seq=2)
        assert store.read(run_id) == []
        assert store.head(run_id) == 0

    def test_different_facts_at_a_taken_sequence_conflict(self, store: Store) -> None:
        run_id = new_run_id()
        store.append(run_id, [Fact(1, "note", 1.0, {"v": "a"})], expected_seq=0)
        with pytest.raises(AppendConflict):
            store.append(run_id, [Fact(1, "note", 1.0, {"v": "b"})], expected_seq=0)
        assert store.read(run_id)[0].body["v"] == "a"

    def test_a_longer_resend_of_a_landed_append_conflicts(self, store: Store) -> None:
        run_id = new_run_id()
        store.append(run_id, make_facts(1, 2), expected_seq=0)
        with pytest.raises(AppendConflict):
            store.append(run_id, make_facts(1, 3), expected_seq=0)
        assert store.head(run_id) == 2

    def test_after_a_conflict_an_append_at_the_fresh_head_succeeds(self, store: Store) -> None:
        run_id = new_run_id()
        store.append(run_id, make_facts(1, 2), expected_seq=0)
        with pytest.raises(AppendConflict):
            store.append(run_id, make_facts(2, 1), expected_seq=1)
        head = store.head(run_id)
        assert store.append(run_id, make_facts(head + 1, 1), expected_seq=head) == 3
        assert [f.seq for f in store.read(run_id)] == [1, 2, 3]

    def test_a_conflict_in_one_run_leaves_other_runs_alone(self, store: Store) -> None:
        busy, quiet = new_run_id(), new_run_id()
        store.append(busy, make_facts(1, 2), expected_seq=0)
        store.append(quiet, make_facts(1, 1), expected_seq=0)
        with pytest.raises(AppendConflict):
            store.append(busy, make_facts(1, 1, writer="late"), expected_seq=0)
        assert store.append(quiet, make_facts(2, 1), expected_seq=1) == 2
