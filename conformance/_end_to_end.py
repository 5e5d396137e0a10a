"""End-to-end runtime behaviour: the engine on the store under test behaves as on memory.

Every reference scenario (``_workflows.SCENARIOS``) runs through ``squidie_core.Squidie``
twice, operation by operation: on the store under test and on a fresh memory store.
After each operation both sides are observed and must agree on every run's facts
(normalised), status, ``inspect_run`` essentials, ``explain_run`` reason and next actions,
graph statuses and dispatch states. A store that loses a fact, delivers a dispatch twice,
shows a wrong dispatch state or lets a fenced commit through makes the two diverge.
"""

from __future__ import annotations

import difflib
import json
import pprint
import random
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from conformance._markers import since
from conformance._support import AdvancingClock, SuiteBase
from conformance._workflows import (
    CURRENT,
    SCENARIOS,
    WORKFLOWS,
    Scenario,
    Side,
    branch,
    join,
)
from squidie_core import ManualClock, Squidie, Workflow, manual, open_store, step
from squidie_core.storage import Lease, Store, read_claimed, read_runs

SEED = 20_260_324
MAX_DELIVERIES = 3

#: Keys whose values legitimately differ between two honest stores.
IGNORED = frozenset({
    "at", "duration", "owner", "fence", "started_at", "received_at", "visible_at", "until",
    "completed_at", "since", "created_at", "updated_at", "when", "lease_expires_at",
    "next_visible_at", "owner_id", "traceback", "summary", "evidence", "request_id",
    # W3C trace context: a new trace per run wherever OpenTelemetry records spans.
    "trace",
})


def normalise(value: Any) -> Any:
    """Drop time-, owner- and fence-like keys (recursively) so two stores compare."""
    if isinstance(value, Mapping):
        return {k: normalise(v) for k, v in sorted(value.items()) if k not in IGNORED}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    return value


def observe(side: Side) -> dict[str, Any]:
    """Everything an operator can see about every run on one side."""
    engine = side.engine
    runs = sorted(r.run_id for r in engine.store.list_runs(limit=1000).items)
    seen: dict[str, Any] = {}
    for run_id in runs:
        inspected = engine.inspect_run(run_id)
        explained = engine.explain_run(run_id)
        graph = engine.inspect_run_graph(run_id)
        seen[run_id] = normalise({
            "facts": [{"seq": f.seq, "type": f.type, **dict(f.body)}
                      for f in engine.store.read(run_id)],
            "status": inspected["status"],
            "reason": inspected["reason"],
            "context": inspected["context"],
            "attempts": inspected["attempts"],
            "pending": inspected["pending"],
            "parked": inspected["parked"],
            "children": inspected["children"],
            "commands": inspected["commands"],
            "explain": {k: explained[k] for k in ("status", "reason", "step", "next_actions")},
            "graph": {"nodes": graph["nodes"], "edges": graph["edges"],
                      "current": graph["current"]},
            "dispatches": [
                {"key": r.dispatch.key, "state": r.state, "deliveries": r.deliveries,
                 "reason": r.reason}
                for r in engine.store.dispatches(run_id)
            ],
            "row": {"status": (engine.store.get_run(run_id) or _Missing()).status},
        })
    dead = [r.dispatch.key for r in engine.store.dead_letters(limit=1000).items]
    return {"runs": seen, "dead_letters": dead}


class _Missing:
    status = "<no index row>"


def _diff(expected: Any, actual: Any) -> str:
    a = pprint.pformat(expected, width=100).splitlines()
    b = pprint.pformat(actual, width=100).splitlines()
    return "\n".join(difflib.unified_diff(a, b, "memory store", "store under test", lineterm="",
                                          n=2))


def make_side(name: str, store: Store, clock: Any) -> Side:
    """An engine over ``store`` with every reference workflow and a seeded rng."""
    engine = Squidie(store, workflows=WORKFLOWS, max_deliveries=MAX_DELIVERIES,
                     rng=random.Random(SEED))
    return Side(name, engine, clock)


def run_side_by_side(scenario: Scenario, store: Store, clock: AdvancingClock) -> None:
    """Run ``scenario`` on ``store`` and on a fresh memory store; fail on any divergence."""
    model_clock = ManualClock()
    model_store = open_store("memory://", clock=model_clock)
    sides = (make_side("store under test", store, clock), make_side("memory", model_store,
                                                                     model_clock))
    try:
        for index, (label, op) in enumerate(scenario.ops):
            results = []
            for side in sides:
                token = CURRENT.set(side)
                try:
                    results.append(json.loads(json.dumps(op(side), default=str)))
                finally:
                    CURRENT.reset(token)
            where = f"{scenario.name}, operation {index} ({label!r})"
            tested, model = results
            assert normalise(tested) == normalise(model), (
                f"{where} returned differently:\n{_diff(normalise(model), normalise(tested))}"
            )
            tested_view, model_view = observe(sides[0]), observe(sides[1])
            assert tested_view == model_view, (
                f"{where}: the store under test shows something else than the memory "
                f"store:\n{_diff(model_view, tested_view)}"
            )
    finally:
        model_store.close()


class _ReadGate:
    """A store proxy whose first ``read`` in each worker thread waits for the other
    worker's, so both plan from the same journal and one commit must conflict."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._barrier = threading.Barrier(2)
        self._waited: set[str] = set()
        self.armed = False
        self.conflicts_forced = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def read(self, run_id: str, after_seq: int = 0) -> Any:
        facts = self._store.read(run_id, after_seq)
        self._gate()
        return facts

    def read_runs(self, after: Mapping[str, int | None]) -> Any:
        runs = read_runs(self._store, after)  # the store's own batched read, if any
        self._gate()
        return runs

    def read_claimed(self, leases: Sequence[Lease], after: Mapping[str, int | None]) -> Any:
        runs = read_claimed(self._store, leases, after)  # the store's own, if any
        self._gate()
        return runs

    def _gate(self) -> None:
        me = threading.current_thread().name
        if self.armed and me.startswith("branch-") and me not in self._waited:
            self._waited.add(me)
            self._barrier.wait(30)
            self.conflicts_forced = True


class _Branches(Workflow, name="conformance.Branches"):
    go = manual()
    left = step(branch)
    right = step(branch)
    both = step(join, after=[left, right])


@since("1.0")
class RuntimeSuite(SuiteBase):
    """The engine on the store under test matches the engine on the memory store."""

    @pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
    def test_a_reference_workflow_runs_as_on_the_memory_store(
        self, store: Store, clock: AdvancingClock, scenario: Scenario
    ) -> None:
        run_side_by_side(scenario, store, clock)

    def test_an_idle_engine_executes_nothing(self, store: Store) -> None:
        engine = Squidie(store, workflows=WORKFLOWS)
        assert engine.execute_next(owner_id="worker", heartbeat_interval=0) is None

    def test_parallel_branches_replan_after_a_conflict(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        # Two workers run the two entry branches at once; the second to commit finds
        # the journal moved (AppendConflict), re-reads it and commits on top. Both
        # outcomes land once and the join is scheduled exactly once.
        gate = _ReadGate(store)
        engine = Squidie(gate, workflows=[_Branches])
        run = engine.start(_Branches, None, {}, idempotency_key="branches")
        leases = store.claim("worker", lease_for=120.0, limit=2)
        assert sorted(lease.dispatch.step for lease in leases) == ["left", "right"]
        outcomes: list[str] = []

        def work(index: int) -> None:
            outcomes.append(engine.run_lease(leases[index], lease_for=120.0,
                                             heartbeat_interval=0).outcome)

        threads = [threading.Thread(target=work, args=(i,), name=f"branch-{i}")
                   for i in range(2)]
        gate.armed = True
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert gate.conflicts_forced, "both workers should have read the same journal"
        assert sorted(outcomes) == ["ok", "ok"]
        while engine.execute_next(owner_id="worker", heartbeat_interval=0):
            pass
        facts = store.read(run.run_id)
        succeeded = sorted(f.body["step"] for f in facts if f.type == "attempt_succeeded")
        assert succeeded == ["both", "left", "right"]
        scheduled = [f.body["step"] for f in facts if f.type == "dispatch_scheduled"]
        assert sorted(scheduled) == ["both", "left", "right"]
        assert engine.inspect_run(run.run_id)["status"] == "completed"
