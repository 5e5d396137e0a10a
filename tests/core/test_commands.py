"""Operator commands, child runs and cron deliveries through the public API."""

from __future__ import annotations

from datetime import UTC, datetime

import _flows as f
import pytest

from squidie_core import InvalidTransitionError, Payload, Runner
from squidie_core.errors import (
    IdempotencyConflict,
    InvalidArgument,
    RunNotFound,
    RunTerminalError,
)
from squidie_core.testing import Harness


@pytest.fixture(autouse=True)
def _reset() -> None:
    f.reset()


def fact_types(h: Harness, run_id: str) -> list[str]:
    return [x.type for x in h.store.read(run_id)]


# --------------------------------------------------------------------------- approvals


def parked_approval() -> tuple[Harness, str]:
    h = Harness(f.Approval)
    run = h.start(f.Approval)
    h.drain()
    return h, run.run_id


def test_approval_parks_the_run() -> None:
    h, run_id = parked_approval()
    view = h.inspect(run_id)
    assert view["status"] == "paused"
    assert view["parked"]["step"] == "council" and view["parked"]["kind"] == "approval"
    explain = h.explain(run_id)
    assert explain["reason"] == "manual_intervention_required"
    assert explain["next_actions"] == ["resolve_manual_step"]
    assert explain["details"]["commands"] == ["approve", "reject"]
    assert h.drain() == []


def test_approve_follows_ok_and_stores_the_decision() -> None:
    h, run_id = parked_approval()
    result = h.approve(run_id, actor="ops_123", comment="verified",
                       metadata={"ticket": 7, "password": "hunter2"})
    assert result.command == "approve" and not result.duplicate
    h.drain()
    view = h.inspect(run_id)
    assert view["status"] == "completed"
    decision = view["context"]["approval"]
    assert (decision["approved"], decision["actor"], decision["comment"]) == (
        True, "ops_123", "verified")
    assert decision["metadata"] == {"ticket": 7, "password": "[REDACTED]"}
    assert "proceed" in view["attempts"] and "decline" not in view["attempts"]
    commands = [c["command"] for c in view["commands"]]
    assert commands == ["start", "approve"]
    # The secret never reached storage, anywhere.
    assert all("hunter2" not in x.to_json() for x in h.store.read(run_id))


def test_reject_follows_error_with_recovery_marker() -> None:
    h, run_id = parked_approval()
    h.reject(run_id, actor="ops_9", comment="fraud risk")
    h.drain()
    view = h.inspect(run_id)
    assert view["status"] == "completed"
    assert view["context"]["recovered"] is True
    assert view["recovery"] == [{"step": "council", "marker": "compensation", "to": "decline"}]
    assert view["attempts"]["council"]["last_error"]["message"] == "fraud risk"


@pytest.mark.parametrize("actor", [None, "", "   ", 42])
def test_approval_requires_an_actor(actor: object) -> None:
    h, run_id = parked_approval()
    seq = h.store.head(run_id)
    with pytest.raises(InvalidArgument) as info:
        h.engine.approve(run_id, actor=actor)  # type: ignore[arg-type]
    assert info.value.argument == "actor"
    with pytest.raises(InvalidArgument):
        h.engine.reject(run_id, actor=actor)  # type: ignore[arg-type]
    assert h.store.head(run_id) == seq  # nothing written


def test_wrong_command_for_the_state_is_refused() -> None:
    h, run_id = parked_approval()
    seq = h.store.head(run_id)
    with pytest.raises(InvalidTransitionError) as info:
        h.resume(run_id)
    assert info.value.code == "invalid_transition" and info.value.status == "paused"
    assert h.store.head(run_id) == seq
    hold = h.engine.start(f.Hold).run_id
    h.engine.register(f.Hold)
    h.drain()
    for command in (h.approve, h.reject):
        with pytest.raises(InvalidTransitionError):
            command(hold)
    running = h.start(f.Three).run_id
    with pytest.raises(InvalidTransitionError):
        h.approve(running)


def test_idempotent_commands_return_the_first_result() -> None:
    h, run_id = parked_approval()
    first = h.approve(run_id, idempotency_key="approve-1")
    again = h.approve(run_id, idempotency_key="approve-1")
    assert again.duplicate and again.seq == first.seq
    receipts = [x for x in h.store.read(run_id) if x.type == "command_received"]
    assert len(receipts) == 2  # start + one approve
    with pytest.raises(IdempotencyConflict):
        h.cancel(run_id, idempotency_key="approve-1")


def test_pause_and_resume() -> None:
    h = Harness(f.Hold)
    run = h.start(f.Hold)
    h.drain()
    assert h.inspect(run.run_id)["parked"]["kind"] == "pause"
    h.resume(run.run_id, actor="ops", comment="go on")
    h.drain()
    view = h.inspect(run.run_id)
    assert view["status"] == "completed"
    assert view["context"]["resumed_by"]["actor"] == "ops"
    assert "resumed" in fact_types(h, run.run_id)


# --------------------------------------------------------------------------- cancel


def test_cancel_appends_receipt_and_terminal_fact_atomically() -> None:
    h = Harness(f.Three)
    run = h.start(f.Three)
    h.step()
    before = h.store.head(run.run_id)
    result = h.cancel(run.run_id, actor="ops", reason="customer asked")
    assert result.status == "cancelled"
    new = h.store.read(run.run_id, after_seq=before)
    assert [x.type for x in new] == ["command_received", "run_cancelled"]
    assert h.step() is None  # the pending dispatch cannot be claimed any more
    records = h.store.dispatches(run.run_id)
    assert [r.state for r in records] == ["completed", "failed"]
    assert records[-1].reason == "run_terminal"
    with pytest.raises(RunTerminalError):
        h.cancel(run.run_id)
    explain = h.explain(run.run_id)
    assert explain["reason"] == "terminal"
    assert explain["next_actions"] == ["inspect_terminal_run", "replay_run"]


def test_commands_on_unknown_runs() -> None:
    h = Harness(f.Three)
    for call in (h.cancel, h.approve, h.resume):
        with pytest.raises(RunNotFound):
            call("no-such-run")
    with pytest.raises(RunNotFound):
        h.inspect("no-such-run")


# --------------------------------------------------------------------------- replay


def test_replay_links_new_run_to_source() -> None:
    h = Harness(f.Three)
    run = h.start(f.Three, "go", {"counter": 3})
    with pytest.raises(InvalidTransitionError):
        h.engine.replay(run.run_id)  # not finished yet
    h.drain()
    replayed = h.engine.replay(run.run_id, actor="ops")
    assert replayed.created and replayed.run_id != run.run_id
    view = h.inspect(replayed.run_id)
    assert view["replayed_from_run_id"] == run.run_id
    assert view["payload"] == {"counter": 3}
    source = h.inspect(run.run_id)
    assert source["replays"] == [replayed.run_id]
    assert source["commands"][-1]["command"] == "replay"
    h.drain()
    assert h.inspect(replayed.run_id)["status"] == "completed"


def test_replay_refused_after_an_irreversible_step_unless_allowed() -> None:
    h = Harness(f.Payment)
    run = h.start(f.Payment)
    h.drain()
    explain = h.explain(run.run_id)
    assert explain["next_actions"] == ["inspect_terminal_run"]  # no replay_run offered
    with pytest.raises(InvalidTransitionError) as info:
        h.engine.replay(run.run_id)
    assert "irreversible" in str(info.value) and "pay" in str(info.value)
    assert h.inspect(run.run_id)["replays"] == []
    allowed = h.engine.replay(run.run_id, allow_irreversible=True)
    assert allowed.created


def test_idempotent_replay() -> None:
    h = Harness(f.Three)
    run = h.start(f.Three)
    h.drain()
    one = h.engine.replay(run.run_id, idempotency_key="r-1")
    two = h.engine.replay(run.run_id, idempotency_key="r-1")
    assert one.run_id == two.run_id and not two.created
    assert h.inspect(run.run_id)["replays"] == [one.run_id]


# --------------------------------------------------------------------------- children


def test_children_are_linked_and_idempotent_under_a_step_retry() -> None:
    h = Harness(f.Party, f.Three)
    f.FAIL["invite"] = True  # the first attempt starts children, then crashes
    run = h.start(f.Party, "plan", {"guests": ["sam", "pippin"]})
    first = h.step()
    assert first is not None and first.outcome == "retry"
    children_after_first = {c["run_id"] for c in h.inspect(run.run_id)["children"]}
    assert len(children_after_first) == 2
    h.advance_time(1)
    done = h.drain()
    assert [(r.attempt, r.outcome) for r in done if r.step == "invite"] == [(2, "ok")]
    view = h.inspect(run.run_id)
    assert view["status"] == "completed"
    assert {c["run_id"] for c in view["children"]} == children_after_first
    assert set(view["context"]["children"]) == children_after_first
    starts = [x for x in h.store.read(run.run_id) if x.type == "child_run_started"]
    assert [x.body["created"] for x in starts] == [True, True, False, False]
    for child_id in children_after_first:
        child = h.inspect(child_id)
        assert child["parent"]["run_id"] == run.run_id
        assert child["parent"]["step"] == "invite"
        assert child["metadata"]["api_key"] == "[REDACTED]"
        assert len([x for x in h.store.read(child_id) if x.type == "run_started"]) == 1
    assert all(h.inspect(c)["status"] == "completed" for c in children_after_first)
    graph = h.graph(run.run_id)
    assert {c["run_id"] for c in graph["children"]} == children_after_first


def test_child_run_ids_are_deterministic() -> None:
    from squidie_core._runtime import derived_run_id

    h = Harness(f.Party, f.Three)
    run = h.start(f.Party, "plan", {"guests": ["sam"]})
    h.step()
    child = h.inspect(run.run_id)["children"][0]["run_id"]
    assert child == derived_run_id("child", "Three", "go", run.run_id, "invite", "guest-sam")


def test_a_terminal_parent_cannot_start_children() -> None:
    from typing import Any

    from squidie_core import COMPLETE, Workflow, field, manual, step, transition

    gate: dict[str, Any] = {}

    def late_child(input: Any, ctx: Any) -> dict[str, Any]:
        gate["cancel"]()  # the parent is cancelled while this step runs
        ctx.start_child_run(f.Three, {}, child_key="k")
        return {}

    class Parent(Workflow):
        go = manual(x=field(int, default=0))
        s = step(late_child)
        transitions = [transition(s, on="ok", to=COMPLETE)]

    h = Harness(Parent, f.Three)
    run = h.start(Parent)
    gate["cancel"] = lambda: h.cancel(run.run_id)
    result = h.step()
    assert result is not None
    view = h.inspect(run.run_id)
    assert view["status"] == "cancelled"
    assert view["children"] == []
    assert h.engine.list_runs(workflow="Three").items == []


def test_child_key_is_required() -> None:
    from typing import Any

    from squidie_core import COMPLETE, Workflow, manual, step, transition

    def no_key(input: Any, ctx: Any) -> dict[str, Any]:
        ctx.start_child_run(f.Three, {}, child_key="")
        return {}

    class Parent(Workflow):
        go = manual()
        s = step(no_key)
        transitions = [transition(s, on="ok", to=COMPLETE)]

    h = Harness(Parent, f.Three)
    run = h.start(Parent)
    h.drain()
    assert h.inspect(run.run_id)["reason"]["error"]["type"] == "InvalidArgument"


# --------------------------------------------------------------------------- cron


WINDOW = (datetime(2026, 11, 24, 1, 0, tzinfo=UTC), datetime(2026, 11, 24, 2, 0, tzinfo=UTC))


def test_cron_delivery_and_duplicate_returns_existing_run() -> None:
    h = Harness(f.Nightly)
    runner = Runner(h.engine)
    first = runner.perform(Payload.cron(f.Nightly, "nightly", intended_window=WINDOW))
    assert first is not None and first.created
    again = runner.perform(Payload.cron(f.Nightly, "nightly", intended_window=WINDOW))
    assert again is not None and again.run_id == first.run_id and not again.created
    view = h.inspect(first.run_id)
    schedule = view["context"]["schedule"]
    assert schedule["expression"] == "0 2 * * *" and schedule["timezone"] == "Europe/Paris"
    assert schedule["window"] == [w.isoformat() for w in WINDOW]
    assert schedule["received_at"].startswith("2023-11-14")
    assert [c["command"] for c in view["commands"]] == ["cron_start"]
    other = runner.perform(Payload.cron(f.Nightly, "nightly", signal_id="manual-rerun"))
    assert other is not None and other.run_id != first.run_id


def test_cron_skip_duplicate() -> None:
    h = Harness(f.Nightly)
    runner = Runner(h.engine)
    first = runner.perform(Payload.cron(f.Nightly, "skipper", signal_id="2026-11-24"))
    assert first is not None and first.created
    assert runner.perform(Payload.cron(f.Nightly, "skipper", signal_id="2026-11-24")) is None
    assert len(h.engine.list_runs(workflow="Nightly").items) == 1


def test_cron_needs_a_signal_id_or_a_complete_window() -> None:
    h = Harness(f.Nightly)
    with pytest.raises(InvalidArgument) as info:
        Runner(h.engine).perform(Payload.cron(f.Nightly, "nightly"))
    assert "signal_id" in str(info.value)
    with pytest.raises(InvalidArgument):
        Runner(h.engine).perform(
            Payload.cron(f.Nightly, "nightly", intended_window=(WINDOW[0],))  # type: ignore[arg-type]
        )


def test_runner_rejects_anything_but_a_cron_payload() -> None:
    h = Harness(f.Nightly)
    for bad in ({"workflow": "Nightly"}, Payload("step", f.Nightly, "nightly"), None):
        with pytest.raises(InvalidArgument) as info:
            Runner(h.engine).perform(bad)
        assert "Payload.cron" in str(info.value)
    with pytest.raises(InvalidArgument):
        h.engine.start_cron(f.Three, "go", signal_id="x")
