"""The step contract: what a step receives, what it may return, and how that is read.

A step is a ``Step`` subclass with ``run(self, input, ctx)`` or a plain function
``fn(input, ctx)``, sync or async. Its result is normalised into an ``Outcome``:

==============================================  =========  ===============================
the step...                                     outcome    then
==============================================  =========  ===============================
returns a mapping (or ``None``)                 ``ok``     follow the ``ok`` route
returns ``Error(reason)``                       ``error``  no retry; failure routing
raises ``NonRetryableError``                    ``error``  no retry; failure routing
returns something that is not JSON data         ``error``  no retry (``StepOutputError``)
returns ``Retry(reason, after=s)``              ``retry``  retry after ``s`` if attempts
                                                           remain, else failure routing
raises any other exception                      ``retry``  retry with the backoff
==============================================  =========  ===============================
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, cast

from squidie_core._json import json_problem
from squidie_core.errors import StepOutputError

if TYPE_CHECKING:
    from squidie_core._runtime import StartResult

__all__ = [
    "Error",
    "NonRetryableError",
    "Outcome",
    "Retry",
    "Step",
    "StepContext",
    "call_step",
    "normalize_outcome",
]

TRACEBACK_LIMIT = 4000


class Step:
    """Base class for a workflow step; override ``run``.

    Example::

        class PackLembas(Step):
            def run(self, input, ctx):
                return {"lembas": 3, "packed_by": input["bearer"]}

    ``run`` may be ``async def``. A new instance is made for every attempt, so instance
    attributes never leak between attempts.
    """

    def run(self, input: Mapping[str, Any], ctx: StepContext) -> Any:
        """Do the step's work and return a mapping (``ok``), ``Error`` or ``Retry``."""
        raise NotImplementedError


@dataclass(frozen=True)
class Error:
    """Return this from a step for a failure that retrying cannot fix.

    Skips any remaining attempts and goes straight to failure routing (an ``error``
    transition, or compensation and a failed run).

    Attributes:
        reason: A short explanation, stored in the journal.
        details: Optional JSON data stored with it.
    """

    reason: str
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Retry:
    """Return this from a step to ask for another attempt.

    Attributes:
        reason: Why, stored in the journal.
        after: Seconds until the next attempt, overriding the step's backoff.
    """

    reason: str
    after: float | None = None


class NonRetryableError(Exception):
    """Raise this (or a subclass) from a step for a failure that retrying cannot fix."""


@dataclass(frozen=True)
class Outcome:
    """A step attempt's normalised result.

    Attributes:
        kind: ``ok``, ``error`` (not retryable) or ``retry``.
        output: The JSON output of an ``ok`` outcome.
        error: ``{"type", "message", "traceback"?, "details"?}`` of a failure.
        retry_after: The step's own delay for a ``retry`` outcome.
    """

    kind: Literal["ok", "error", "retry"]
    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        """Whether another attempt may fix this failure."""
        return self.kind == "retry"


class StepContext:
    """What a step knows about the attempt it runs in.

    Attributes:
        run_id: The run's id.
        workflow: The workflow name.
        step: The step name.
        attempt: The attempt number, from 1.
        idempotency_key: Stable for this step attempt across redeliveries; pass it to
            external services so a rerun after a crash is not a second side effect.
        state: The run state (payload plus outputs), read-only.

    The lease's fencing token is never exposed to step code.
    """

    __slots__ = ("_start_child", "attempt", "idempotency_key", "run_id", "state", "step",
                 "workflow")

    def __init__(
        self,
        *,
        run_id: str,
        workflow: str,
        step: str,
        attempt: int,
        state: Mapping[str, Any],
        start_child: Callable[..., StartResult] | None = None,
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.step = step
        self.attempt = attempt
        self.idempotency_key = f"{run_id}:{step}:{attempt}"
        self.state: Mapping[str, Any] = MappingProxyType(dict(state))
        self._start_child = start_child

    def start_child_run(
        self,
        workflow: Any,
        payload: Mapping[str, Any] | None = None,
        *,
        child_key: str,
        trigger: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> StartResult:
        """Start a child run linked to this run and step, idempotently.

        The child's run id is derived from (child workflow, trigger, this run, this step,
        ``child_key``), so a retried step gets the same child back instead of a second one.

        Args:
            workflow: The child workflow class (or its registered name).
            payload: The child's payload, validated against its trigger.
            child_key: Required; unique per child within this step.
            trigger: The child's trigger; default its only manual trigger.
            metadata: Stored (redacted) with the child's start receipt.

        Returns:
            The child's ``StartResult`` (``created`` is ``False`` when it already existed).
        """
        if self._start_child is None:
            raise RuntimeError("this context cannot start child runs")
        return self._start_child(
            workflow, payload, child_key=child_key, trigger=trigger, metadata=metadata
        )

    def __repr__(self) -> str:
        return f"StepContext(run_id={self.run_id!r}, step={self.step!r}, attempt={self.attempt})"


def call_step(
    impl: Any,
    input: Mapping[str, Any],
    ctx: StepContext,
    *,
    run_async: Callable[[Coroutine[Any, Any, Any]], Any] | None = None,
) -> Any:
    """Run a step implementation (class or function, sync or async) and return its value.

    Args:
        impl: A ``Step`` subclass or a function.
        input: The step's input.
        ctx: The step's context.
        run_async: Runs a coroutine to completion (a worker's shared event loop); by
            default a private loop is used for the call.

    Exceptions propagate to the caller, which normalises them.
    """
    fn: Any = impl
    if inspect.isclass(impl):
        fn = cast(Any, impl)().run
    result = fn(input, ctx)
    if inspect.isawaitable(result):
        if run_async is not None:
            async def awaited() -> Any:
                return await result

            return run_async(awaited())
        result = _run_awaitable(result)
    return result


def _run_awaitable(awaitable: Any) -> Any:
    async def runner() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(runner())
    # Called from inside a running loop (a sync API used from async code): run the step's
    # coroutine on a private loop in a helper thread rather than deadlocking this one.
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, runner()).result()


def _error_info(exc: BaseException) -> dict[str, Any]:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if len(text) > TRACEBACK_LIMIT:
        text = "…" + text[-TRACEBACK_LIMIT:]
    return {"type": type(exc).__name__, "message": str(exc)[:2000], "traceback": text}


def normalize_outcome(step: str, value: Any = None, exc: BaseException | None = None) -> Outcome:
    """Turn what a step returned (or raised) into an ``Outcome``; see the module table."""
    if exc is not None:
        info = _error_info(exc)
        if isinstance(exc, NonRetryableError):
            return Outcome("error", error=info)
        return Outcome("retry", error=info)
    if value is None:
        return Outcome("ok", output={})
    if isinstance(value, Error):
        failure: dict[str, Any] = {"type": "Error", "message": str(value.reason)}
        if value.details is not None:
            problem = json_problem(value.details)
            failure["details"] = dict(value.details) if problem is None else repr(value.details)
        return Outcome("error", error=failure)
    if isinstance(value, Retry):
        after = value.after
        if after is not None and (isinstance(after, bool) or not isinstance(after, int | float)
                                  or after < 0):
            err = StepOutputError(step, f"Retry(after=) must be seconds >= 0, not {after!r}")
            return Outcome("error", error={"type": "StepOutputError", "message": str(err)})
        return Outcome(
            "retry",
            error={"type": "Retry", "message": str(value.reason)},
            retry_after=None if after is None else float(after),
        )
    if isinstance(value, Mapping):
        problem = json_problem(value)
        if problem is None:
            return Outcome("ok", output=_plain(value))
        err = StepOutputError(step, problem)
        return Outcome("error", error={"type": "StepOutputError", "message": str(err)})
    err = StepOutputError(
        step,
        f"expected a mapping, Error or Retry, got {type(value).__name__}",
    )
    return Outcome("error", error={"type": "StepOutputError", "message": str(err)})


def _plain(value: Any) -> Any:
    """Copy JSON-shaped data into plain dicts and lists (tuples become lists)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
