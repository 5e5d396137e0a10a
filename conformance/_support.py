"""Helpers shared by the conformance suites: building data, moving time, snapshots.

Nothing here is a test. Suites use these helpers so every case reads the same way: make
a dispatch, claim it, move the store's clock past a boundary, and compare what the store
shows before and after an operation that must not have written anything.

Time: a case never sleeps to move a lease or a visibility boundary. It calls
``clock.advance(seconds)`` on the fixture clock (an injected ``ManualClock``, or a
server-clock store's controllable offset) and allows ``visibility_precision`` of slack
where the store declares some.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from squidie_core.storage import (
    Checkpoint,
    Commit,
    CommitResult,
    Dispatch,
    Fact,
    Lease,
    RunEntry,
    Store,
)

__all__ = [
    "DELAY",
    "EPSILON",
    "LEASE",
    "AdvancingClock",
    "Snapshot",
    "SuiteBase",
    "beyond",
    "claim_one",
    "commit_for",
    "dispatch",
    "make_facts",
    "move_past",
    "new_run_id",
    "record_of",
    "run_entry",
    "snapshot",
    "start_run",
]

#: The lease most cases take (seconds); long enough that real time never expires it.
LEASE = 30.0
#: The delay most delayed-visibility cases use (seconds).
DELAY = 60.0
#: Added beyond a boundary so "past it" is strictly past it on every clock.
EPSILON = 0.001


class AdvancingClock(Protocol):
    """What the ``clock`` fixture provides: the store's clock, movable forward."""

    def now(self) -> float:
        """Return the store's current time (epoch seconds)."""
        ...

    def advance(self, seconds: float) -> Any:
        """Move the store's time forward by ``seconds``."""
        ...


class SuiteBase:
    """Base of every suite mixin: marks its cases and checks the plugin is loaded."""

    @pytest.fixture(autouse=True)
    def _conformance_plugin_loaded(self, request: pytest.FixtureRequest) -> None:
        if not request.config.pluginmanager.has_plugin("conformance.pytest_plugin"):
            pytest.fail(
                "the conformance suite needs its pytest plugin: add "
                "`pytest_plugins = [\"conformance.pytest_plugin\"]` to your top-level "
                "conftest.py, or run pytest with `-p conformance.pytest_plugin`",
                pytrace=False,
            )


def new_run_id(prefix: str = "run") -> str:
    """Return a run id no other case uses (stores are shared by nothing, but be safe)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def make_facts(
    start_seq: int, count: int, *, at: float = 1_700_000_000.0, type: str = "note",
    **body: Any,
) -> list[Fact]:
    """Return ``count`` facts numbered from ``start_seq`` (bodies carry ``n``)."""
    return [
        Fact(seq=start_seq + i, type=type, at=at + i, body={"n": start_seq + i, **body})
        for i in range(count)
    ]


def run_entry(
    run_id: str,
    *,
    last_seq: int,
    status: str = "running",
    workflow: str = "ConformanceWorkflow",
    trigger: str = "manual",
    queue: str = "default",
    created_at: float = 1_700_000_000.0,
    updated_at: float | None = None,
    parent_run_id: str | None = None,
) -> RunEntry:
    """Return an index row for ``run_id``."""
    return RunEntry(
        run_id=run_id,
        workflow=workflow,
        trigger=trigger,
        status=status,
        queue=queue,
        created_at=created_at,
        updated_at=created_at if updated_at is None else updated_at,
        last_seq=last_seq,
        parent_run_id=parent_run_id,
    )


def dispatch(
    run_id: str,
    step: str = "step",
    attempt: int = 1,
    *,
    queue: str = "default",
    delay: float = 0.0,
    max_deliveries: int = 5,
    priority: int = 0,
    workflow: str = "ConformanceWorkflow",
) -> Dispatch:
    """Return a dispatch with its canonical key."""
    return Dispatch(
        key=Dispatch.make_key(run_id, step, attempt),
        run_id=run_id,
        workflow=workflow,
        step=step,
        attempt=attempt,
        queue=queue,
        priority=priority,
        delay=delay,
        max_deliveries=max_deliveries,
    )


def commit_for(
    store: Store,
    run_id: str,
    expected_seq: int,
    *,
    count: int = 1,
    status: str = "running",
    enqueue: Sequence[Dispatch] = (),
    settle: Lease | None = None,
    checkpoint: Checkpoint | None = None,
    type: str = "note",
    created_at: float = 1_700_000_000.0,
    workflow: str = "ConformanceWorkflow",
    body: Mapping[str, Any] | None = None,
) -> Commit:
    """Return a commit of ``count`` facts after ``expected_seq`` with a matching index row."""
    now = store.clock.now()
    facts = make_facts(expected_seq + 1, count, at=now, type=type, **dict(body or {}))
    return Commit(
        run_id=run_id,
        expected_seq=expected_seq,
        facts=facts,
        run=run_entry(
            run_id, last_seq=expected_seq + count, status=status, created_at=created_at,
            updated_at=now, workflow=workflow,
        ),
        enqueue=tuple(enqueue),
        settle=settle,
        checkpoint=checkpoint,
    )


def start_run(
    store: Store,
    run_id: str | None = None,
    *,
    steps: Sequence[str] = ("step",),
    delay: float = 0.0,
    max_deliveries: int = 5,
    queue: str = "default",
    created_at: float = 1_700_000_000.0,
) -> tuple[str, CommitResult, list[Dispatch]]:
    """Create a run the way the runtime does: one commit with its first fact, index row
    and entry dispatches. Returns ``(run_id, result, dispatches)``."""
    run_id = run_id or new_run_id()
    dispatches = [
        dispatch(run_id, s, queue=queue, delay=delay, max_deliveries=max_deliveries)
        for s in steps
    ]
    result = store.commit(
        commit_for(store, run_id, 0, status="started", enqueue=dispatches, type="run_started",
                   created_at=created_at)
    )
    return run_id, result, dispatches


def claim_one(
    store: Store, owner: str = "worker-1", *, lease_for: float = LEASE,
    queues: Sequence[str] = (),
) -> Lease:
    """Claim and return exactly one lease (fails the case if there is not exactly one)."""
    leases = store.claim(owner, lease_for=lease_for, limit=1, queues=queues)
    assert len(leases) == 1, f"expected one visible dispatch to claim, got {leases!r}"
    return leases[0]


def beyond(store: Store, seconds: float) -> float:
    """How far to move the clock to be strictly past a boundary ``seconds`` from now."""
    return seconds + max(store.capabilities.visibility_precision, 0.0) + EPSILON


def move_past(store: Store, clock: AdvancingClock, when: float) -> None:
    """Advance ``clock`` until it is strictly past the store time ``when`` (if not yet)."""
    remaining = when - clock.now()
    if remaining > -EPSILON:
        clock.advance(beyond(store, max(remaining, 0.0)))


@dataclass(frozen=True)
class Snapshot:
    """Everything a store shows about one run, in comparable form.

    Two snapshots taken around an operation that must not write are equal.
    """

    facts: tuple[str, ...]
    head: int
    run: RunEntry | None
    checkpoint: Checkpoint | None
    dispatches: tuple[tuple[Any, ...], ...]

    def dispatch_states(self) -> dict[str, str]:
        """Return ``{key: state}`` of the run's dispatches."""
        return {row[0]: row[1] for row in self.dispatches}


def snapshot(store: Store, run_id: str) -> Snapshot:
    """Return a ``Snapshot`` of ``run_id`` as the store shows it now."""
    return Snapshot(
        facts=tuple(f.to_json() for f in store.read(run_id)),
        head=store.head(run_id),
        run=store.get_run(run_id),
        checkpoint=store.read_checkpoint(run_id),
        dispatches=tuple(
            (r.dispatch.key, r.state, r.deliveries, r.fence, r.owner_id, r.reason,
             r.lease_expires_at)
            for r in store.dispatches(run_id)
        ),
    )


def record_of(store: Store, key: str) -> Any:
    """Return the ``DispatchRecord`` with ``key`` (fails the case if there is none)."""
    run_id = key.rsplit(":", 2)[0]
    for rec in store.dispatches(run_id):
        if rec.dispatch.key == key:
            return rec
    raise AssertionError(f"the store has no dispatch {key!r}")
