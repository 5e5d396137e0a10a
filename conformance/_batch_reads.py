"""Reading several runs at once (``read_runs``), as a worker loads a claimed batch.

Whether the store has its own ``read_runs`` (one round trip for the batch) or is read run
by run, each run must come back exactly as ``read_checkpoint`` and ``read`` show it.
"""

from __future__ import annotations

from conformance._markers import since
from conformance._support import SuiteBase, commit_for, make_facts, new_run_id, start_run
from squidie_core.storage import Checkpoint, Store, read_runs


@since("1.1")
class BatchReadSuite(SuiteBase):
    """``read_runs``: each run as ``read_checkpoint`` plus ``read`` after it."""

    def test_runs_come_back_from_their_checkpoint_or_the_given_sequence(
        self, store: Store
    ) -> None:
        plain, _, _ = start_run(store)
        checkpointed, _, _ = start_run(store)
        store.commit(commit_for(store, checkpointed, 1, count=3,
                                checkpoint=Checkpoint(seq=3, data="state@3")))
        followed, _, _ = start_run(store)
        store.append(followed, make_facts(2, 3), expected_seq=1)
        missing = new_run_id("never-written")
        runs = read_runs(store, {plain: None, checkpointed: None, followed: 2,
                                 missing: None})
        assert runs[plain] == (None, store.read(plain))
        assert runs[checkpointed] == (Checkpoint(seq=3, data="state@3"),
                                      store.read(checkpointed, after_seq=3))
        assert [f.seq for f in runs[checkpointed][1]] == [4]
        assert runs[followed] == (None, store.read(followed, after_seq=2))
        assert [f.seq for f in runs[followed][1]] == [3, 4]
        assert runs[missing] == (None, [])
        assert set(runs) == {plain, checkpointed, followed, missing}

    def test_nothing_asked_is_nothing_read(self, store: Store) -> None:
        assert read_runs(store, {}) == {}

    def test_a_run_read_after_its_head_has_no_facts(self, store: Store) -> None:
        run_id, _, _ = start_run(store)
        assert read_runs(store, {run_id: 1}) == {run_id: (None, [])}
