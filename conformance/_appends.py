"""Journal appends and ordering: facts land in order, contiguously, all or nothing."""

from __future__ import annotations

import pytest

from conformance._markers import since
from conformance._support import SuiteBase, make_facts, new_run_id, snapshot
from squidie_core.storage import Fact, Store


@since("1.0")
class AppendSuite(SuiteBase):
    """``append``, ``read`` and ``head``: ordered, contiguous, atomic, durable once returned."""

    def test_append_to_a_new_run_returns_its_last_seq(self, store: Store) -> None:
        run_id = new_run_id()
        assert store.append(run_id, make_facts(1, 3), expected_seq=0) == 3

    def test_read_returns_the_facts_in_order(self, store: Store) -> None:
        run_id = new_run_id()
        facts = make_facts(1, 5)
        store.append(run_id, facts, expected_seq=0)
        assert store.read(run_id) == facts

    def test_read_after_seq_returns_the_tail(self, store: Store) -> None:
        run_id = new_run_id()
        facts = make_facts(1, 5)
        store.append(run_id, facts, expected_seq=0)
        assert store.read(run_id, after_seq=2) == facts[2:]
        assert store.read(run_id, after_seq=4) == facts[4:]

    def test_read_after_the_head_is_empty(self, store: Store) -> None:
        run_id = new_run_id()
        store.append(run_id, make_facts(1, 2), expected_seq=0)
        assert store.read(run_id, after_seq=2) == []
        assert store.read(run_id, after_seq=10) == []

    def test_an_unknown_run_has_no_facts_and_head_zero(self, store: Store) -> None:
        assert store.read("no-such-run") == []
        assert store.head("no-such-run") == 0

    def test_head_follows_appends(self, store: Store) -> None:
        run_id = new_run_id()
        assert store.head(run_id) == 0
        store.append(run_id, make_facts(1, 2), expected_seq=0)
        assert store.head(run_id) == 2
        store.append(run_id, make_facts(3, 1), expected_seq=2)
        assert store.head(run_id) == 3

    def test_successive_appends_form_one_contiguous_journal(self, store: Store) -> None:
        run_id = new_run_id()
        seq = 0
        for size in (1, 3, 2, 1, 4):
            seq = store.append(run_id, make_facts(seq + 1, size), expected_seq=seq)
        facts = store.read(run_id)
        assert [f.seq for f in facts] == list(range(1, 12))
        assert seq == 11

    def test_fact_fields_round_trip_exactly(self, store: Store) -> None:
        run_id = new_run_id()
        body = {
            "text": "Frodo’s ring — ∞ 🐙 \"quoted\" \\ back\nslash",
            "int": 2**53 - 1,
            "negative": -17,
            "float": 0.1 + 0.2,
            "tiny": 1.5e-300,
            "bools": [True, False],
            "none": None,
            "nested": {"list": [1, [2, [3, {"deep": "yes"}]]], "empty": {}, "empty_list": []},
        }
        fact = Fact(seq=1, type="run_started", at=1_700_000_123.456789, body=body)
        store.append(run_id, [fact], expected_seq=0)
        (read,) = store.read(run_id)
        assert read.seq == 1
        assert read.type == "run_started"
        assert read.at == fact.at
        assert dict(read.body) == body

    def test_many_facts_in_one_append(self, store: Store) -> None:
        run_id = new_run_id()
        facts = make_facts(1, 250)
        assert store.append(run_id, facts, expected_seq=0) == 250
        assert store.read(run_id) == facts

    def test_a_large_fact_body_round_trips(self, store: Store) -> None:
        limit = store.capabilities.max_value_bytes
        size = 32_000 if limit is None else min(32_000, limit // 2)
        run_id = new_run_id()
        fact = Fact(seq=1, type="note", at=1.0, body={"blob": "x" * size})
        store.append(run_id, [fact], expected_seq=0)
        assert store.read(run_id) == [fact]

    @pytest.mark.parametrize(
        ("seqs", "expected_seq"),
        [((1, 3), 0), ((2, 3), 0), ((1, 1), 0), ((3, 2), 1), ((0, 1), 0)],
        ids=["gap", "starts_late", "repeats", "backwards", "starts_at_zero"],
    )
    def test_non_contiguous_facts_are_refused_and_nothing_is_written(
        self, store: Store, seqs: tuple[int, int], expected_seq: int
    ) -> None:
        run_id = new_run_id()
        if expected_seq:
            store.append(run_id, make_facts(1, expected_seq), expected_seq=0)
        before = snapshot(store, run_id)
        facts = [Fact(seq=s, type="note", at=1.0, body={}) for s in seqs]
        with pytest.raises(ValueError):
            store.append(run_id, facts, expected_seq=expected_seq)
        assert snapshot(store, run_id) == before

    def test_a_negative_expected_seq_is_refused(self, store: Store) -> None:
        with pytest.raises(ValueError):
            store.append(new_run_id(), make_facts(0, 1), expected_seq=-1)

    def test_runs_have_separate_journals(self, store: Store) -> None:
        first, second = new_run_id(), new_run_id()
        store.append(first, make_facts(1, 3, who="first"), expected_seq=0)
        store.append(second, make_facts(1, 1, who="second"), expected_seq=0)
        assert [f.body["who"] for f in store.read(first)] == ["first"] * 3
        assert [f.body["who"] for f in store.read(second)] == ["second"]
        assert (store.head(first), store.head(second)) == (3, 1)

    def test_an_identical_resend_of_a_landed_append_returns_normally_once(
        self, store: Store
    ) -> None:
        run_id = new_run_id()
        facts = make_facts(1, 2)
        assert store.append(run_id, facts, expected_seq=0) == 2
        # The reply was lost; the writer sends the very same append again.
        assert store.append(run_id, facts, expected_seq=0) == 2
        assert store.read(run_id) == facts

    def test_an_older_resend_is_still_recognised_after_later_appends(self, store: Store) -> None:
        run_id = new_run_id()
        first = make_facts(1, 1)
        store.append(run_id, first, expected_seq=0)
        store.append(run_id, make_facts(2, 2), expected_seq=1)
        assert store.append(run_id, first, expected_seq=0) == 1
        assert store.head(run_id) == 3

    def test_reads_are_repeatable(self, store: Store) -> None:
        run_id = new_run_id()
        store.append(run_id, make_facts(1, 4), expected_seq=0)
        assert store.read(run_id) == store.read(run_id)
        assert store.read(run_id, after_seq=1) == store.read(run_id)[1:]
