"""Checkpoints: a run's folded state at a sequence, kept so reads need not replay.

A checkpoint is a cache of the journal: the store keeps the newest one per run, treats its
data as opaque text, and deleting every checkpoint never loses a fact.
"""

from __future__ import annotations

from conformance._markers import since
from conformance._support import (
    SuiteBase,
    claim_one,
    commit_for,
    make_facts,
    new_run_id,
    start_run,
)
from squidie_core.storage import Checkpoint, Store


@since("1.0")
class CheckpointSuite(SuiteBase):
    """``read_checkpoint``, ``write_checkpoint``, ``delete_checkpoints`` and commits' ones."""

    def test_a_run_without_a_checkpoint_reads_none(self, store: Store) -> None:
        assert store.read_checkpoint(new_run_id()) is None

    def test_a_written_checkpoint_reads_back(self, store: Store) -> None:
        run_id = new_run_id()
        store.append(run_id, make_facts(1, 3), expected_seq=0)
        store.write_checkpoint(run_id, Checkpoint(seq=3, data='{"state": 3}'))
        assert store.read_checkpoint(run_id) == Checkpoint(seq=3, data='{"state": 3}')

    def test_a_newer_checkpoint_replaces_an_older_one(self, store: Store) -> None:
        run_id = new_run_id()
        store.append(run_id, make_facts(1, 5), expected_seq=0)
        store.write_checkpoint(run_id, Checkpoint(seq=2, data="two"))
        store.write_checkpoint(run_id, Checkpoint(seq=5, data="five"))
        assert store.read_checkpoint(run_id) == Checkpoint(seq=5, data="five")

    def test_an_older_checkpoint_never_replaces_a_newer_one(self, store: Store) -> None:
        run_id = new_run_id()
        store.append(run_id, make_facts(1, 5), expected_seq=0)
        store.write_checkpoint(run_id, Checkpoint(seq=5, data="five"))
        store.write_checkpoint(run_id, Checkpoint(seq=2, data="two"))
        assert store.read_checkpoint(run_id) == Checkpoint(seq=5, data="five")

    def test_a_checkpoint_at_the_same_seq_replaces_the_stored_one(self, store: Store) -> None:
        run_id = new_run_id()
        store.append(run_id, make_facts(1, 2), expected_seq=0)
        store.write_checkpoint(run_id, Checkpoint(seq=2, data="first"))
        store.write_checkpoint(run_id, Checkpoint(seq=2, data="second"))
        assert store.read_checkpoint(run_id) == Checkpoint(seq=2, data="second")

    def test_checkpoints_belong_to_their_run(self, store: Store) -> None:
        first, second = new_run_id(), new_run_id()
        store.write_checkpoint(first, Checkpoint(seq=1, data="first"))
        store.write_checkpoint(second, Checkpoint(seq=7, data="second"))
        assert store.read_checkpoint(first) == Checkpoint(seq=1, data="first")
        assert store.read_checkpoint(second) == Checkpoint(seq=7, data="second")

    def test_checkpoint_data_is_opaque_text_that_round_trips(self, store: Store) -> None:
        limit = store.capabilities.max_value_bytes
        size = 20_000 if limit is None else min(20_000, limit // 4)
        data = '{"é": "∞ 🐙", "lines": "a\\nb"}\n\ttrailing \\ text ' + "z" * size
        run_id = new_run_id()
        store.write_checkpoint(run_id, Checkpoint(seq=1, data=data))
        checkpoint = store.read_checkpoint(run_id)
        assert checkpoint is not None
        assert checkpoint.data == data

    def test_a_checkpoint_beyond_the_journal_is_stored_as_given(self, store: Store) -> None:
        # The runtime detects it (and rebuilds from facts); the store does not judge.
        run_id = new_run_id()
        store.append(run_id, make_facts(1, 1), expected_seq=0)
        store.write_checkpoint(run_id, Checkpoint(seq=9, data="future"))
        assert store.read_checkpoint(run_id) == Checkpoint(seq=9, data="future")

    def test_deleting_one_runs_checkpoint_reports_how_many(self, store: Store) -> None:
        run_id, other = new_run_id(), new_run_id()
        store.write_checkpoint(run_id, Checkpoint(seq=1, data="x"))
        store.write_checkpoint(other, Checkpoint(seq=1, data="y"))
        assert store.delete_checkpoints(run_id) == 1
        assert store.delete_checkpoints(run_id) == 0
        assert store.read_checkpoint(run_id) is None
        assert store.read_checkpoint(other) == Checkpoint(seq=1, data="y")

    def test_deleting_every_checkpoint_reports_how_many(self, store: Store) -> None:
        runs = [new_run_id() for _ in range(3)]
        for run_id in runs:
            store.write_checkpoint(run_id, Checkpoint(seq=1, data=run_id))
        assert store.delete_checkpoints() == 3
        assert all(store.read_checkpoint(r) is None for r in runs)
        assert store.delete_checkpoints() == 0

    def test_deleting_checkpoints_never_touches_facts(self, store: Store) -> None:
        run_id = new_run_id()
        facts = make_facts(1, 4)
        store.append(run_id, facts, expected_seq=0)
        store.write_checkpoint(run_id, Checkpoint(seq=4, data="s"))
        store.delete_checkpoints()
        assert store.read(run_id) == facts
        assert store.head(run_id) == 4

    def test_a_commit_stores_its_checkpoint(self, store: Store) -> None:
        run_id, _, _ = start_run(store)
        lease = claim_one(store)
        store.commit(commit_for(store, run_id, 1, settle=lease,
                                checkpoint=Checkpoint(seq=2, data="after-step")))
        assert store.read_checkpoint(run_id) == Checkpoint(seq=2, data="after-step")

    def test_a_commit_without_a_checkpoint_keeps_the_stored_one(self, store: Store) -> None:
        run_id, _, _ = start_run(store)
        store.write_checkpoint(run_id, Checkpoint(seq=1, data="started"))
        store.commit(commit_for(store, run_id, 1))
        assert store.read_checkpoint(run_id) == Checkpoint(seq=1, data="started")

    def test_a_commit_with_an_older_checkpoint_keeps_the_newer_one(self, store: Store) -> None:
        run_id, _, _ = start_run(store)
        store.write_checkpoint(run_id, Checkpoint(seq=9, data="newer"))
        store.commit(commit_for(store, run_id, 1, checkpoint=Checkpoint(seq=2, data="older")))
        assert store.read_checkpoint(run_id) == Checkpoint(seq=9, data="newer")
