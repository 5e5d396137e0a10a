"""Step outcome normalisation: mapping, Error, Retry, exceptions, non-JSON output."""

from __future__ import annotations

import asyncio
from typing import Any

from squidie_core import Error, NonRetryableError, Retry, Step, StepContext, normalize_outcome
from squidie_core._steps import TRACEBACK_LIMIT, call_step


def ctx() -> StepContext:
    return StepContext(run_id="r1", workflow="W", step="s", attempt=2, state={"a": 1})


def test_mapping_is_ok() -> None:
    out = normalize_outcome("s", {"n": 1, "nested": {"t": (1, 2)}})
    assert out.kind == "ok" and out.output == {"n": 1, "nested": {"t": [1, 2]}}
    assert not out.retryable


def test_none_is_ok_with_empty_output() -> None:
    assert normalize_outcome("s", None).output == {}


def test_error_value_is_terminal() -> None:
    out = normalize_outcome("s", Error("card declined", details={"code": 51}))
    assert out.kind == "error" and not out.retryable
    assert out.error == {"type": "Error", "message": "card declined", "details": {"code": 51}}


def test_retry_value_is_retryable_with_after() -> None:
    out = normalize_outcome("s", Retry("rate limited", after=30))
    assert out.kind == "retry" and out.retryable and out.retry_after == 30.0
    assert normalize_outcome("s", Retry("again")).retry_after is None
    bad = normalize_outcome("s", Retry("x", after=-1))
    assert bad.kind == "error" and bad.error and bad.error["type"] == "StepOutputError"


def test_raised_exception_is_retryable_with_bounded_traceback() -> None:
    try:
        raise ValueError("boom " + "x" * 10_000)
    except ValueError as exc:
        out = normalize_outcome("s", exc=exc)
    assert out.kind == "retry"
    assert out.error is not None
    assert out.error["type"] == "ValueError"
    assert out.error["message"].startswith("boom")
    assert len(out.error["message"]) <= 2000
    assert len(out.error["traceback"]) <= TRACEBACK_LIMIT + 1


def test_non_retryable_exception() -> None:
    class Fatal(NonRetryableError):
        pass

    out = normalize_outcome("s", exc=Fatal("no"))
    assert out.kind == "error" and out.error and out.error["type"] == "Fatal"


def test_non_json_output_is_a_clear_error() -> None:
    for value in ({"when": object()}, {"x": float("inf")}, {1: "a"}, {"s": {1, 2}}):
        out = normalize_outcome("s", value)
        assert out.kind == "error" and not out.retryable
        assert out.error and out.error["type"] == "StepOutputError"
        assert "step 's' returned an invalid output" in out.error["message"]
    wrong = normalize_outcome("s", [1, 2])
    assert wrong.error and "expected a mapping, Error or Retry, got list" in wrong.error["message"]


def test_call_step_sync_async_class_and_function() -> None:
    class Sync(Step):
        def run(self, input: Any, ctx: StepContext) -> dict[str, Any]:
            return {"got": input["v"], "attempt": ctx.attempt}

    class Async(Step):
        async def run(self, input: Any, ctx: StepContext) -> dict[str, Any]:
            await asyncio.sleep(0)
            return {"async": True}

    def fn(input: Any, ctx: StepContext) -> dict[str, Any]:
        return {"key": ctx.idempotency_key}

    async def afn(input: Any, ctx: StepContext) -> dict[str, Any]:
        return {"a": 1}

    assert call_step(Sync, {"v": 3}, ctx()) == {"got": 3, "attempt": 2}
    assert call_step(Async, {}, ctx()) == {"async": True}
    assert call_step(fn, {}, ctx()) == {"key": "r1:s:2"}
    assert call_step(afn, {}, ctx()) == {"a": 1}

    async def inside_loop() -> Any:
        return call_step(afn, {}, ctx())

    assert asyncio.run(inside_loop()) == {"a": 1}


def test_context_state_is_read_only_and_hides_the_token() -> None:
    c = ctx()
    try:
        c.state["a"] = 2  # type: ignore[index]
    except TypeError:
        pass
    else:
        raise AssertionError("state must be read-only")
    assert not any("token" in name for name in dir(c))
