"""The runtime through its public API on the memory store: starts, steps, routing,
retries, waits, compensation and the dependency mode."""

from __future__ import annotations

from typing import Any

import _flows as f
import pytest

from squidie_core import PayloadError, Squidie, WorkflowNotFound
from squidie_core.errors import (
    IdempotencyConflict,
    InvalidArgument,
    TriggerNotFound,
    ValueTooLarge,
)
from squidie_core.testing import Harness


@pytest.fixture(autouse=True)
def _reset() -> None:
    f.reset()


def types(h: Harness, run_id: str) -> list[str]:
    return [fact.type for fact in h.store.read(run_id)]


def test_start_writes_run_receipt_and_entry_dispatch() -> None:
    h = Harness(f.Three)
    run = h.start(f.Three, "go", {"counter": 5})
    assert run.created and run.status == "started" and run.workflow == "Three"
    facts = h.store.read(run.run_id)
    assert [x.type for x in facts] == ["run_started", "command_received", "dispatch_scheduled"]
    assert [x.seq for x in facts] == [1, 2, 3]
    started = facts[0].body
    assert started["payload"] == {"counter": 5}
    assert started["version"] == f.Three.definition().fingerprint
    assert facts[2].body["key"] == f"{run.run_id}:one:1"
    assert h.store.get_run(run.run_id) is not None


def test_default_trigger_and_unknown_trigger() -> None:
    h = Harness(f.Three)
    assert h.start(f.Three).trigger == "go"
    with pytest.raises(TriggerNotFound):
        h.start(f.Three, "og")
    with pytest.raises(TriggerNotFound):  # cron triggers are not started by hand
        h.start(f.Nightly, "nightly")
    with pytest.raises(InvalidArgument):  # two cron triggers, no manual one
        h.start(f.Nightly)


def test_invalid_payload_writes_nothing() -> None:
    h = Harness(f.Three)
    with pytest.raises(PayloadError):
        h.start(f.Three, "go", {"counter": "seven", "extra": 1})
    assert h.engine.list_runs().items == []
    assert h.store.depth() == {}


def test_oversized_payload_refused_before_writing() -> None:
    h = Harness(f.Party, max_value_bytes=1000)
    with pytest.raises(ValueTooLarge) as info:
        h.start(f.Party, "plan", {"guests": ["x" * 50] * 100})
    assert info.value.limit == 1000 and info.value.size > 1000
    assert h.engine.list_runs().items == []


def test_unknown_workflow_name() -> None:
    h = Harness(f.Three)
    with pytest.raises(WorkflowNotFound) as info:
        h.start("Thre")
    assert "did you mean 'Three'" in str(info.value)


def test_three_steps_run_to_completion_with_outputs_merged() -> None:
    h = Harness(f.Three)
    run = h.start(f.Three, "go", {"counter": 1})
    results = h.drain()
    assert [(r.step, r.outcome) for r in results] == [("one", "ok"), ("two", "ok"),
                                                      ("three", "ok")]
    assert results[-1].run_status == "completed"
    view = h.inspect(run.run_id)
    assert view["status"] == "completed"
    assert view["context"]["counter"] == 4
    assert view["payload"] == {"counter": 1}
    assert types(h, run.run_id)[-1] == "run_completed"
    assert h.step() is None


def test_status_progression() -> None:
    h = Harness(f.Three)
    run = h.start(f.Three)
    assert h.inspect(run.run_id)["status"] == "started"
    h.step()
    assert h.inspect(run.run_id)["status"] == "running"
    h.drain()
    assert h.inspect(run.run_id)["status"] == "completed"


def test_idempotent_start_returns_first_run_and_writes_nothing_more() -> None:
    h = Harness(f.Three)
    first = h.start(f.Three, "go", {"counter": 1}, idempotency_key="order-1")
    again = h.start(f.Three, "go", {"counter": 1}, idempotency_key="order-1")
    assert again.run_id == first.run_id and not again.created and first.created
    assert len(h.store.read(first.run_id)) == 3
    with pytest.raises(IdempotencyConflict):
        h.start(f.Three, "go", {"counter": 2}, idempotency_key="order-1")
    other = h.start(f.Three, "go", {"counter": 1}, idempotency_key="order-2")
    assert other.run_id != first.run_id


def test_conditional_routing() -> None:
    h = Harness(f.Branch)
    cases = {
        ("vip", 1): "vip",
        ("normal", 60): "gold",
        ("normal", 10): "basic",
        ("vip", 90): "vip",  # declared first wins
    }
    for (kind, points), tier in cases.items():
        run = h.start(f.Branch, "go", {"points": points, "kind": kind})
        h.drain()
        view = h.inspect(run.run_id)
        assert view["context"]["tier"] == tier, (kind, points)
        graph = h.graph(run.run_id)
        selected = [e["id"] for e in graph["edges"] if e["status"] == "selected"]
        assert f"rate:ok:{tier}" in selected


def test_retry_with_exponential_backoff_through_delayed_visibility() -> None:
    h = Harness(f.Flaky)
    f.FAIL["flaky"] = ["raise", "raise"]
    run = h.start(f.Flaky)
    first = h.step()
    assert first is not None and first.outcome == "retry"
    assert h.step() is None  # not visible before the backoff
    explain = h.explain(run.run_id)
    assert explain["reason"] == "attempt_scheduled_for_later"
    assert explain["next_actions"] == ["wait_until_attempt_visible"]
    h.advance_time(9.9)
    assert h.step() is None
    h.advance_time(0.1)  # min * 2**0 = 10 s
    second = h.step()
    assert second is not None and (second.attempt, second.outcome) == (2, "retry")
    h.advance_time(14.9)
    assert h.step() is None
    h.advance_time(0.1)  # min(10 * 2**1, max 15) = 15 s
    third = h.step()
    assert third is not None and (third.attempt, third.outcome) == (3, "ok")
    attempts = h.inspect(run.run_id)["attempts"]["work"]
    assert [a["outcome"] for a in attempts["history"]] == ["retry", "retry", "ok"]
    delays = [x.body["delay"] for x in h.store.read(run.run_id) if x.type == "retry_scheduled"]
    assert delays == [10.0, 15.0]


def test_retry_after_overrides_backoff() -> None:
    h = Harness(f.Flaky)
    f.FAIL["flaky"] = ["retry_after"]
    run = h.start(f.Flaky)
    assert h.step().outcome == "retry"  # type: ignore[union-attr]
    h.advance_time(41)
    assert h.step() is None
    h.advance_time(1)
    assert h.step().outcome == "ok"  # type: ignore[union-attr]
    assert h.inspect(run.run_id)["status"] == "completed"


def test_error_value_skips_retries_and_fails_run() -> None:
    h = Harness(f.Flaky)
    f.FAIL["flaky"] = ["error"]
    run = h.start(f.Flaky)
    result = h.step()
    assert result is not None and result.outcome == "error" and result.run_status == "failed"
    view = h.inspect(run.run_id)
    assert view["reason"]["reason"] == "step_failed"
    assert view["reason"]["error"]["message"] == "fatal"
    assert f.CALLS["flaky"] == 1


def test_exhausted_retries_fail_the_run() -> None:
    h = Harness(f.Flaky)
    f.FAIL["flaky"] = ["raise", "raise", "raise"]
    run = h.start(f.Flaky)
    for _ in range(3):
        h.advance_time(100)
        h.step()
    view = h.inspect(run.run_id)
    assert view["status"] == "failed"
    assert view["reason"]["error"]["type"] == "RuntimeError"
    failed = [x.body for x in h.store.read(run.run_id) if x.type == "attempt_failed"]
    assert [b["exhausted"] for b in failed] == [False, False, True]


def test_error_route_records_recovery_marker() -> None:
    h = Harness(f.FlakyWithRoute)
    f.FAIL["flaky"] = ["raise", "raise"]
    run = h.start(f.FlakyWithRoute)
    h.drain()
    h.advance_time(1)
    h.drain()
    view = h.inspect(run.run_id)
    assert view["status"] == "completed"
    assert view["context"]["recovered"] is True
    assert view["recovery"] == [{"step": "work", "marker": "undo", "to": "fallback"}]
    assert "recovery_entered" in types(h, run.run_id)


def test_compensation_in_reverse_completion_order_then_failed() -> None:
    h = Harness(f.Saga)
    run = h.start(f.Saga, "order", {"amount": 5})
    h.drain()
    view = h.inspect(run.run_id)
    assert view["status"] == "failed"
    assert view["reason"]["reason"] == "step_failed"
    assert view["reason"]["step"] == "ship"
    assert view["reason"]["compensated"] == ["charge", "reserve"]
    executed = [x.body["step"] for x in h.store.read(run.run_id)
                if x.type == "attempt_succeeded"]
    assert executed == ["reserve", "charge", "charge.compensate", "reserve.compensate"]
    assert f.CALLS == {"reserve": 1, "charge": 1, "ship": 1, "refund": 1, "release": 1}


def test_wait_is_delayed_visibility_not_a_sleep() -> None:
    h = Harness(f.Timer)
    run = h.start(f.Timer)
    h.drain()
    assert h.inspect(run.run_id)["attempts"]["nap"]["status"] == "waiting_timer"
    explain = h.explain(run.run_id)
    assert (explain["reason"], explain["step"]) == ("attempt_scheduled_for_later", "nap")
    h.advance_time(59)
    assert h.drain() == []
    h.advance_time(1)
    assert [r.step for r in h.drain()] == ["nap", "after"]
    assert h.inspect(run.run_id)["status"] == "completed"
    assert "wait_started" in types(h, run.run_id) and "wait_elapsed" in types(h, run.run_id)


def test_log_step_writes_to_the_workflow_logger(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(f.Hold)
    run = h.start(f.Hold)
    h.drain()
    h.resume(run.run_id, actor="ops")
    with caplog.at_level("INFO", logger="squidie.workflow"):
        h.drain()
    assert "resumed after 1 steps" in caplog.text
    assert h.inspect(run.run_id)["status"] == "completed"


def test_dependency_mode_joins_after_every_dependency() -> None:
    h = Harness(f.FanOut)
    run = h.start(f.FanOut)
    first = h.step()
    assert first is not None and first.step == "split"
    pending = {p["step"] for p in h.inspect(run.run_id)["pending"]}
    assert pending == {"left", "right"}
    h.step()
    assert {p["step"] for p in h.inspect(run.run_id)["pending"]} == {"right"} or \
        {p["step"] for p in h.inspect(run.run_id)["pending"]} == {"left"}
    h.drain()
    view = h.inspect(run.run_id)
    assert view["status"] == "completed"
    assert f.CALLS["join"] == 1
    assert set(view["context"]) == {"split", "left", "right", "join"}


def test_dependency_mode_failure_waits_for_branches_then_compensates() -> None:
    h = Harness(f.FanOut)
    f.FAIL["right"] = True
    run = h.start(f.FanOut)
    h.step()  # split
    results: list[Any] = h.drain()
    view = h.inspect(run.run_id)
    assert view["status"] == "failed"
    assert "join" not in f.CALLS
    assert f.CALLS.get("undo_left") == 1  # left completed: it was compensated
    assert view["reason"]["step"] == "right"
    assert {r.step for r in results} >= {"left", "right"}


def test_non_json_output_fails_the_attempt_clearly() -> None:
    from squidie_core import COMPLETE, Workflow, manual, step, transition

    def bad(input: Any, ctx: Any) -> Any:
        return {"when": object()}

    class Bad(Workflow):
        go = manual()
        s = step(bad, retry=3)
        transitions = [transition(s, on="ok", to=COMPLETE)]

    h = Harness(Bad)
    run = h.start(Bad)
    result = h.step()
    assert result is not None and result.outcome == "error"  # not retried
    error = h.inspect(run.run_id)["reason"]["error"]
    assert error["type"] == "StepOutputError" and "$.when" in error["message"]


def test_oversized_output_is_a_terminal_error() -> None:
    from squidie_core import COMPLETE, Workflow, manual, step, transition

    def big(input: Any, ctx: Any) -> dict[str, Any]:
        return {"blob": "x" * 5000}

    class Big(Workflow):
        go = manual()
        s = step(big)
        transitions = [transition(s, on="ok", to=COMPLETE)]

    h = Harness(Big, max_value_bytes=2000)
    run = h.start(Big)
    h.drain()
    assert h.inspect(run.run_id)["reason"]["error"]["type"] == "ValueTooLarge"


def test_async_steps_run() -> None:
    from squidie_core import COMPLETE, Workflow, manual, step, transition

    async def fetch(input: Any, ctx: Any) -> dict[str, Any]:
        return {"fetched": ctx.attempt}

    class Async(Workflow):
        go = manual()
        s = step(fetch)
        transitions = [transition(s, on="ok", to=COMPLETE)]

    h = Harness(Async)
    run = h.start(Async)
    h.drain()
    assert h.inspect(run.run_id)["context"] == {"fetched": 1}


def test_input_mapping_selects_paths() -> None:
    from squidie_core import COMPLETE, Workflow, field, manual, step, transition

    seen: list[dict[str, Any]] = []

    def look(input: Any, ctx: Any) -> dict[str, Any]:
        seen.append(dict(input))
        return {}

    class Mapped(Workflow):
        go = manual(profile=field(dict), ring_id=field(str))
        s = step(look, input={"who": "profile.name", "ring": "ring_id", "nope": "x.y"})
        transitions = [transition(s, on="ok", to=COMPLETE)]

    h = Harness(Mapped)
    h.start(Mapped, "go", {"profile": {"name": "Sam"}, "ring_id": "r"})
    h.drain()
    assert seen == [{"who": "Sam", "ring": "r"}]


def test_engine_from_url_and_registration() -> None:
    engine = Squidie.from_url("memory://", workflows=[f.Three])
    assert "Three" in engine.workflows
    run = engine.start(f.Three)
    while engine.execute_next(owner_id="w", heartbeat_interval=0):
        pass
    assert engine.inspect_run(run.run_id)["status"] == "completed"
    with pytest.raises(ValueError):
        from squidie_core import COMPLETE, Workflow, manual, step, transition

        class Impostor(Workflow, name="Three"):
            go = manual()
            s = step(f.incr)
            transitions = [transition(s, on="ok", to=COMPLETE)]

        engine.register(Impostor)
    engine.close()
