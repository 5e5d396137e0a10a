"""Reading several runs at once (``read_runs``), as a worker loads a claimed batch, and
reading the runs of a claim (``read_claimed``).

Whether the store has its own ``read_runs`` (one round trip for the batch) or is read run
by run, each run must come back exactly as ``read_checkpoint`` and ``read`` show it; and
whether or not it reads claimed runs with their claim, as ``read_runs`` reads them.
"""

from __future__ import annotations

from conformance._markers import since
from conformance._support import SuiteBase, commit_for, make_facts, new_run_id, start_run
from squidie_core.storage import Checkpoint, Store, read_claimed, read_runs


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

    @since("1.2")
    def test_claimed_runs_come_back_as_read_runs_reads_them(self, store: Store) -> None:
        claimed, _, _ = start_run(store)
        store.append(claimed, make_facts(2, 2), expected_seq=1)
        later, _, _ = start_run(store, delay=60)
        leases = store.claim("worker-1", lease_for=30, limit=4)
        assert [lease.dispatch.run_id for lease in leases] == [claimed]
        after: dict[str, int | None] = {claimed: None, later: None}
        runs = read_claimed(store, leases, after)
        assert runs == read_runs(store, after)
        assert [f.seq for f in runs[claimed][1]] == [1, 2, 3]
        assert read_claimed(store, leases, {claimed: 2}) == {claimed: (None, store.read(
            claimed, after_seq=2))}

    @since("1.2")
    def test_a_lease_of_an_earlier_claim_reads_the_journal_as_it_is(
        self, store: Store
    ) -> None:
        for _ in range(2):
            start_run(store)
        leases = store.claim("worker-1", lease_for=30, limit=1)
        (first,) = [lease.dispatch.run_id for lease in leases]
        store.append(first, make_facts(2, 1), expected_seq=1)
        (again,) = store.claim("worker-1", lease_for=30, limit=1)
        assert again.dispatch.run_id != first
        runs = read_claimed(store, leases, {first: None})
        assert [f.seq for f in runs[first][1]] == [1, 2]
        assert runs == read_runs(store, {first: None})
