"""Small builders shared by the SQL store tests."""

from __future__ import annotations

from typing import Any

from squidie_core.storage import Checkpoint, Commit, CommitResult, Dispatch, Fact, Lease, RunEntry

T0 = 1_700_000_000.0


def facts(start: int, count: int, at: float = T0, **body: Any) -> list[Fact]:
    """``count`` facts numbered from ``start``."""
    return [Fact(seq=start + i, type="note", at=at, body={"i": start + i, **body})
            for i in range(count)]


def entry(run_id: str, status: str = "running", *, last_seq: int = 1, created: float = T0,
          workflow: str = "W", queue: str = "default") -> RunEntry:
    """A run index row."""
    return RunEntry(run_id=run_id, workflow=workflow, trigger="manual", status=status,
                    queue=queue, created_at=created, updated_at=created, last_seq=last_seq)


def dispatch(run_id: str, step: str = "s", attempt: int = 1, **kw: Any) -> Dispatch:
    """A dispatch with its canonical key."""
    return Dispatch(key=Dispatch.make_key(run_id, step, attempt), run_id=run_id, workflow="W",
                    step=step, attempt=attempt, **kw)


def start(store: Any, run_id: str, *enqueue: Dispatch, count: int = 1,
          status: str = "running") -> None:
    """Create a run with ``count`` facts and the given dispatches."""
    store.commit(Commit(run_id=run_id, expected_seq=0, facts=facts(1, count),
                        run=entry(run_id, status, last_seq=count), enqueue=list(enqueue)))


def settle(store: Any, lease: Lease, expected: int, *, status: str = "running",
           enqueue: tuple[Dispatch, ...] = (), n: int = 1, **body: Any) -> Any:
    """Commit ``n`` facts settling ``lease``."""
    run_id = lease.dispatch.run_id
    return store.commit(Commit(run_id=run_id, expected_seq=expected,
                               facts=facts(expected + 1, n, **body),
                               run=entry(run_id, status, last_seq=expected + n),
                               enqueue=list(enqueue), settle=lease))


def end_group(store: Any, size: int) -> None:
    """Start ``size`` runs, claim their first dispatches in one claim and group-commit
    them as their last step (each enqueueing a second dispatch, which the end of its
    run fails); check what each run was left with."""
    run_ids = [f"g{size}-{i}" for i in range(size)]
    for run_id in run_ids:
        start(store, run_id, dispatch(run_id, "a"))
    leases = store.claim("w", lease_for=30, limit=size)
    assert len(leases) == size
    commits = [
        Commit(x.dispatch.run_id, 1, facts(2, 1),
               entry(x.dispatch.run_id, last_seq=2, status="completed"),
               enqueue=[dispatch(x.dispatch.run_id, "b")], settle=x,
               checkpoint=Checkpoint(2, "state@2"))
        for x in leases
    ]
    assert store.commit_many(commits) == [CommitResult(2)] * size
    for run_id in run_ids:
        assert store.get_run(run_id) == entry(run_id, "completed", last_seq=2)
        assert store.read_checkpoint(run_id) == Checkpoint(2, "state@2")
        assert {x.dispatch.step: x.state for x in store.dispatches(run_id)} == {
            "a": "completed", "b": "failed"}
