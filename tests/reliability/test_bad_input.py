"""The bad-input catalogue, on every backend: each bad input gets a clear error (nothing
written) or an anomaly on that run only, and a bystander run is not affected.

Parametrised over SQLite, PostgreSQL, MariaDB, Redis and FoundationDB (simulator). The
memory store's versions of several cases live in ``tests/core`` (``test_runtime.py``,
``test_commands.py``, ``test_steps.py``); this module runs them against the durable
backends, and adds what only a real store has: hand-edited rows and keys, and hostile
strings reaching SQL statements and Lua scripts.

Every case ends with the bystander run driven to completion and ``check_history`` on
the bystander (the victim's history is checked too where it must stay clean).
"""

from __future__ import annotations

import pytest
from _bench import BadOutput, Bench, ChangingV1, ChangingV2, Gate, Good

from conformance import check_history
from squidie_core import Squidie
from squidie_core.errors import (
    CorruptDataError,
    IdempotencyConflict,
    InvalidArgument,
    InvalidTransitionError,
    PayloadError,
    RunNotFound,
    RunTerminalError,
    SquidieError,
    TriggerNotFound,
    ValueTooLarge,
    WorkflowNotFound,
)

HOSTILE = [
    "x'; DROP TABLE squidie_facts; --",
    "\" OR 1=1; --",
    "]]) redis.call('FLUSHALL') --[[",
    "') ; return redis.call('KEYS', '*') --",
    "{default}:j:*",
    "a\x00b",
    "../../etc/passwd",
    "%00%27",
]


def runs_of(engine: Squidie) -> int:
    return len(engine.list_runs(limit=1000).items)


# --------------------------------------------------------------------------- payloads


INVALID_PAYLOADS = [{"n": "seven"}, {"n": 1.5}, {"nope": 1}, {"n": None},
                    {"note": ["not", "a", "string"]}]


def test_invalid_payloads_are_refused_before_writing(bench: Bench) -> None:
    for payload in INVALID_PAYLOADS:
        with pytest.raises(PayloadError):
            bench.engine.start(Good, None, payload)
    assert runs_of(bench.engine) == 0
    bench.assert_bystander_fine(bench.bystander())


def test_an_oversized_payload_is_refused_before_writing(bench: Bench) -> None:
    with pytest.raises((PayloadError, ValueTooLarge)) as info:
        bench.engine.start(Good, None, {"note": "x" * 2_000_000})
    assert "limit" in str(info.value)
    assert runs_of(bench.engine) == 0
    bench.assert_bystander_fine(bench.bystander())


def test_a_non_json_step_output_fails_that_run_only(bench: Bench) -> None:
    victim = bench.engine.start(BadOutput).run_id
    other = bench.bystander()
    bench.drain()
    view = bench.engine.inspect_run(victim)
    assert view["status"] == "failed"
    assert view["reason"]["error"]["type"] == "StepOutputError"
    check_history(bench.engine.store, [victim]).assert_ok()
    bench.assert_bystander_fine(other)


@pytest.mark.parametrize("workflow,trigger,error", [
    ("rel.Nope", None, WorkflowNotFound), ("rel.Good", "nope", TriggerNotFound)])
def test_unknown_workflow_and_trigger_names(bench: Bench, workflow: str, trigger: str | None,
                                            error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        bench.engine.start(workflow, trigger, {})
    assert (trigger or workflow) in str(info.value)
    assert runs_of(bench.engine) == 0
    bench.assert_bystander_fine(bench.bystander())


# --------------------------------------------------------------------------- stored data


def test_a_hand_edited_journal_entry_is_an_anomaly_of_that_run_only(bench: Bench) -> None:
    victim = bench.engine.start(Good).run_id
    other = bench.bystander()
    bench.corrupt_first_fact(victim)
    with pytest.raises(CorruptDataError) as info:
        bench.engine.inspect_run(victim)
    assert victim in str(info.value) or "journal" in str(info.value)
    # Regression: a worker claiming the victim's dispatch used to raise CorruptDataError
    # on every delivery; now the attempt is dead-lettered with the reason, once.
    bench.drain()
    (record,) = bench.engine.store.dispatches(victim)
    assert record.state == "dead_lettered", record
    assert (record.reason or "").startswith("corrupt_journal"), record.reason
    bench.assert_bystander_fine(other)


def test_a_definition_changed_under_running_runs(bench: Bench) -> None:
    run_id = bench.engine.start(ChangingV1).run_id
    bench.engine.execute_next(owner_id="cat-worker", lease_for=30)  # "first" committed
    other = bench.bystander()
    # Redeploy: the new code no longer has the step the run waits for.
    redeployed = bench.open([Good, ChangingV2])
    try:
        bench.drain(redeployed)
        view = redeployed.inspect_run(run_id)
        # That run is parked in a clear, explainable state; nothing else is disturbed.
        assert view["status"] not in ("completed",), view["status"]
        assert view["anomalies"] or view["status"] == "failed" or \
            any(r.state == "dead_lettered" for r in redeployed.store.dispatches(run_id)), view
        check_history(redeployed.store, [run_id], allow_dead_letters=True).assert_ok()
        assert redeployed.load(other).status == "completed"
    finally:
        if bench.backend != "fdb":
            redeployed.close()


# --------------------------------------------------------------------------- commands


def test_wrong_state_commands_are_refused(bench: Bench) -> None:
    done = bench.bystander()
    bench.drain()
    gate = bench.engine.start(Gate).run_id
    bench.drain()
    assert bench.engine.load(gate).status == "paused"
    with pytest.raises(InvalidTransitionError):
        bench.engine.resume(gate, actor="ops")  # an approval is not a pause
    with pytest.raises(RunTerminalError):
        bench.engine.cancel(done, actor="ops")
    with pytest.raises(InvalidTransitionError):
        bench.engine.approve(done, actor="ops")
    with pytest.raises(RunNotFound):
        bench.engine.approve("no-such-run", actor="ops")
    check_history(bench.engine.store, [done, gate]).assert_ok()
    bench.assert_bystander_fine(bench.bystander())


def test_duplicate_commands_with_one_idempotency_key(bench: Bench) -> None:
    first = bench.engine.start(Good, None, {"n": 1}, idempotency_key="dup-1")
    again = bench.engine.start(Good, None, {"n": 1}, idempotency_key="dup-1")
    assert again.run_id == first.run_id and not again.created
    gate = bench.engine.start(Gate).run_id
    bench.drain()
    a = bench.engine.approve(gate, actor="ops", idempotency_key="ok-1")
    b = bench.engine.approve(gate, actor="ops", idempotency_key="ok-1")
    assert b.duplicate and not a.duplicate and a.run_id == b.run_id
    receipts = [f for f in bench.engine.store.read(gate) if f.type == "command_received"]
    assert sum(1 for f in receipts if f.body.get("command") == "approve") == 1
    with pytest.raises((IdempotencyConflict, InvalidTransitionError)):
        bench.engine.reject(gate, actor="ops", idempotency_key="ok-1")
    assert runs_of(bench.engine) == 2
    bench.drain()
    check_history(bench.engine.store, [first.run_id, gate]).assert_ok()


# --------------------------------------------------------------------------- hostile ids


def test_hostile_strings_in_ids_are_data_or_refused(bench: Bench) -> None:
    other = bench.bystander()
    for hostile in HOSTILE:
        try_hostile(bench, hostile)
    # Whatever was accepted was stored as data: the bystander, the store's tables or
    # keys, and every other run are intact.
    bench.assert_bystander_fine(other)
    for row in bench.engine.list_runs(limit=100).items:
        check_history(bench.engine.store, [row.run_id]).assert_ok()
    notes = [bench.engine.inspect_run(r.run_id)["payload"].get("note")
             for r in bench.engine.list_runs(limit=100).items]
    for hostile in HOSTILE:
        assert notes.count(hostile) <= 1  # the idempotency key held, stored verbatim


def try_hostile(bench: Bench, hostile: str) -> list[str]:
    """Use ``hostile`` as every kind of id; each use works or is a clear error."""
    outcomes: list[str] = []
    for attempt in (
        lambda: bench.engine.inspect_run(hostile),
        lambda: bench.engine.cancel(hostile, actor="ops"),
        lambda: bench.engine.start(Good, None, {"note": hostile}, idempotency_key=hostile),
        lambda: bench.engine.start(Good, None, {}, queue=hostile),
        lambda: bench.engine.execute_next(owner_id=hostile, lease_for=30),
        lambda: bench.engine.list_runs(workflow=hostile),
    ):
        try:
            attempt()
            outcomes.append("ok")
        except (RunNotFound, InvalidArgument, WorkflowNotFound) as exc:
            outcomes.append(type(exc).__name__)
            assert isinstance(exc, SquidieError)
    return outcomes
