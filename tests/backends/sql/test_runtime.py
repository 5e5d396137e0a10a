"""The engine on the SQL store: a lease expiring mid-step, and a workflow run end to end,
on every dialect, with time driven by the store's ManualClock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from ring_errand import RingErrand

from squidie_backends.sql import SQLStore
from squidie_core import (
    COMPLETE,
    ManualClock,
    Squidie,
    StepContext,
    Workflow,
    field,
    manual,
    step,
    transition,
)

#: The test's clock, and the runs whose first delivery already "paused".
_CLOCK: list[ManualClock] = []
_PAUSED: set[str] = set()


def slow(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """On its first delivery, stalls past its lease (the clock jumps 120 s)."""
    if ctx.run_id not in _PAUSED:
        _PAUSED.add(ctx.run_id)
        _CLOCK[0].advance(120)
    return {"done": True}


class Slow(Workflow):
    go = manual(n=field(int, default=0))
    slow = step(slow)
    transitions = [transition(slow, on="ok", to=COMPLETE)]


def test_lease_expiring_mid_step_commits_exactly_once(sql_store: SQLStore,
                                                      clock: ManualClock) -> None:
    _CLOCK[:] = [clock]
    a = Squidie(sql_store, workflows=[Slow])
    b = Squidie(sql_store, workflows=[Slow])
    run = a.start(Slow, "go", {})
    # Worker A claims; its step outlives the 60 s lease (no heartbeat), so its commit is
    # refused and its result discarded; worker B takes the attempt over and commits.
    first = a.execute_next(owner_id="A", lease_for=60, heartbeat_interval=0)
    assert first is not None and first.outcome == "lease_lost"
    second = b.execute_next(owner_id="B", lease_for=60, heartbeat_interval=0)
    assert second is not None and second.outcome == "ok"
    facts = sql_store.read(run.run_id)
    succeeded = Counter(f.body["step"] for f in facts if f.type == "attempt_succeeded")
    assert succeeded == {"slow": 1}
    assert a.inspect_run(run.run_id)["status"] == "completed"
    [record] = sql_store.dispatches(run.run_id)
    assert (record.state, record.fence, record.owner_id) == ("completed", 2, "B")


def test_ring_errand_end_to_end(sql_store: SQLStore, clock: ManualClock) -> None:
    engine = Squidie(sql_store, workflows=[RingErrand])
    run = engine.start(RingErrand, "leave_shire", {"ring_id": "one-ring"})
    for _ in range(40):
        status = engine.inspect_run(run.run_id)["status"]
        if status in ("completed", "failed"):
            break
        if status == "paused":
            engine.approve(run.run_id, actor="elrond")
        elif engine.execute_next(owner_id="w", heartbeat_interval=0) is None:
            clock.advance(1.0)  # the wait and the retry backoff are delayed visibility
    assert engine.inspect_run(run.run_id)["status"] == "completed"
    engine.store.delete_checkpoints()
    assert engine.inspect_run(run.run_id)["status"] == "completed"  # rebuilt from facts
    assert [r.run_id for r in sql_store.list_runs(status="completed").items] == [run.run_id]
