"""Workflows run by real ``squidie worker`` / ``scheduler`` subprocesses in host tests.

Imported by the subprocesses with ``--app app_flows`` (the test puts this directory on
``PYTHONPATH``). Steps that take time sleep for real: they are what a worker is killed
in the middle of.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from squidie_core import (
    COMPLETE,
    Backoff,
    RetryPolicy,
    StepContext,
    Workflow,
    approval_step,
    cron,
    field,
    manual,
    step,
    transition,
    wait,
)


def incr(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    time.sleep(0.01)
    return {"counter": int(input.get("counter", 0)) + 1}


class Chain(Workflow):
    go = manual(counter=field(int, default=0))
    one = step(incr)
    two = step(incr)
    three = step(incr)
    transitions = [
        transition(one, on="ok", to=two),
        transition(two, on="ok", to=three),
        transition(three, on="ok", to=COMPLETE),
    ]


def slow(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    time.sleep(1.5)  # long enough to be killed in the middle of
    return {"slow_attempt": ctx.attempt}


class Slow(Workflow):
    go = manual()
    crawl = step(slow)
    transitions = [transition(crawl, on="ok", to=COMPLETE)]


def flaky(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    if ctx.attempt == 1:
        raise RuntimeError("first attempts always fail here")
    return {"flaky_attempt": ctx.attempt}


class Flaky(Workflow):
    go = manual()
    work = step(flaky, retry=RetryPolicy(max_attempts=3, backoff=Backoff.fixed(0.3)))
    transitions = [transition(work, on="ok", to=COMPLETE)]


class Sleepy(Workflow):
    go = manual()
    nap = wait(1.0)
    after = step(incr)
    transitions = [transition(nap, on="ok", to=after), transition(after, on="ok", to=COMPLETE)]


class Gate(Workflow):
    go = manual()
    prepare = step(incr)
    council = approval_step(output="approval")
    proceed = step(incr)
    transitions = [
        transition(prepare, on="ok", to=council),
        transition(council, on="ok", to=proceed),
        transition(council, on="error", to=COMPLETE),
        transition(proceed, on="ok", to=COMPLETE),
    ]


def fan_out(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    ids = [ctx.start_child_run(Chain, {"counter": 100}, child_key=f"c{i}").run_id
           for i in range(2)]
    return {"children": ids}


class Parent(Workflow):
    go = manual()
    spawn = step(fan_out)
    transitions = [transition(spawn, on="ok", to=COMPLETE)]


class Ticker(Workflow):
    every_two_seconds = cron("*/2 * * * * *", timezone="Etc/UTC",
                             idempotency="return_existing_run")
    tick = step(incr)
    transitions = [transition(tick, on="ok", to=COMPLETE)]
