"""Builders of contract objects for the Redis store's tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from squidie_core.storage import Commit, Dispatch, Fact, Lease, RunEntry


def facts(after: int, n: int, kind: str = "note", **body: Any) -> list[Fact]:
    """``n`` facts numbered ``after + 1 ...``."""
    return [Fact(seq=after + i, type=kind, at=1_700_000_000.0 + after + i,
                 body={"i": after + i, **body})
            for i in range(1, n + 1)]


def entry(run_id: str, *, status: str = "running", workflow: str = "wf", queue: str = "default",
          created: float = 100.0, seq: int = 1, parent: str | None = None) -> RunEntry:
    """An index row."""
    return RunEntry(run_id=run_id, workflow=workflow, trigger="manual", status=status,
                    queue=queue, created_at=created, updated_at=created + seq, last_seq=seq,
                    parent_run_id=parent)


def dispatch(run_id: str, step: str = "s", attempt: int = 1, *, queue: str = "default",
             delay: float = 0.0, max_deliveries: int = 5, workflow: str = "wf") -> Dispatch:
    """A dispatch with the canonical key."""
    return Dispatch(key=Dispatch.make_key(run_id, step, attempt), run_id=run_id,
                    workflow=workflow, step=step, attempt=attempt, queue=queue, delay=delay,
                    max_deliveries=max_deliveries)


def commit(run_id: str, expected: int, n: int = 1, *, status: str = "running",
           enqueue: Sequence[Dispatch] = (), settle: Lease | None = None,
           workflow: str = "wf", queue: str = "default", created: float = 100.0,
           kind: str = "note") -> Commit:
    """A commit of ``n`` facts after ``expected``."""
    return Commit(run_id=run_id, expected_seq=expected, facts=facts(expected, n, kind),
                  run=entry(run_id, status=status, workflow=workflow, queue=queue,
                            created=created, seq=expected + n),
                  enqueue=list(enqueue), settle=settle)
