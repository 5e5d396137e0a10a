"""Workflows used by the Redis store's runtime, multi-process and durability tests.

Importable by worker processes started with ``spawn`` (the directory is on sys.path).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from squidie_core import (
    COMPLETE,
    Backoff,
    RetryPolicy,
    StepContext,
    Workflow,
    approval_step,
    field,
    manual,
    step,
    transition,
    wait,
)

#: Shared test controls: events a step waits on, counters of calls.
CONTROL: dict[str, Any] = {}


def _a(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"a": input.get("n", 0) + 1}


def _b(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"b": input["a"] * 2}


def _c(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"c": input["b"] + 1}


class ThreeSteps(Workflow):
    """a -> b -> c -> complete."""

    go = manual(n=field(int, default=0))
    a = step(_a)
    b = step(_b)
    c = step(_c)
    transitions = [
        transition(a, on="ok", to=b),
        transition(b, on="ok", to=c),
        transition(c, on="ok", to=COMPLETE),
    ]


def _only(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"done": True}


class OneStep(Workflow):
    """A single step."""

    go = manual(n=field(int, default=0))
    only = step(_only)
    transitions = [transition(only, on="ok", to=COMPLETE)]


def _flaky(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return {"attempts": ctx.attempt}


class Flaky(Workflow):
    """Fails once; retried after a fixed 5 s backoff."""

    go = manual()
    flaky = step(_flaky, retry=RetryPolicy(max_attempts=3, backoff=Backoff.fixed(5.0)))
    transitions = [transition(flaky, on="ok", to=COMPLETE)]


class WaitThenStep(Workflow):
    """A durable 60 s timer, then a step."""

    go = manual()
    pause_a_minute = wait(60.0)
    only = step(_only)
    transitions = [
        transition(pause_a_minute, on="ok", to=only),
        transition(only, on="ok", to=COMPLETE),
    ]


class Approval(Workflow):
    """An approval, then a step on approve."""

    go = manual()
    ask = approval_step(output="decision")
    only = step(_only)
    rejected = step(_only)
    transitions = [
        transition(ask, on="ok", to=only),
        transition(ask, on="error", to=rejected),
        transition(only, on="ok", to=COMPLETE),
        transition(rejected, on="ok", to=COMPLETE),
    ]


def _blocking(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    started: threading.Event = CONTROL["started"]
    release: threading.Event = CONTROL["release"]
    started.set()
    release.wait(30)
    return {"blocked": True}


class Blocking(Workflow):
    """A step that waits for the test to release it (in-process only)."""

    go = manual()
    slow = step(_blocking)
    transitions = [transition(slow, on="ok", to=COMPLETE)]


class OtherQueue(Workflow, queue="reports"):
    """A single step on the ``reports`` queue."""

    go = manual()
    only = step(_only)
    transitions = [transition(only, on="ok", to=COMPLETE)]
