"""Workflows the dashboard tests drive: retries, a child run, an approval, a pause.

Also imported by the browser test's server subprocess (``--app dash_flows``), so it has
no test-only imports.
"""

from __future__ import annotations

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
    pause,
    step,
    transition,
)


def prepare(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    if ctx.attempt == 1:
        raise RuntimeError("the first attempt always fails (to show a retry)")
    return {"prepared": input["title"], "secret_note": input.get("note", "")}


def leaf_work(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"leaf": input["n"] * 2}


class Leaf(Workflow):
    """A child run started by ``Review``."""

    go = manual(n=field(int))
    work = step(leaf_work)
    transitions = [transition(work, on="ok", to=COMPLETE)]


def spawn(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    child = ctx.start_child_run(Leaf, {"n": 21}, child_key="leaf")
    return {"child": child.run_id}


def publish(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"published": True}


def notify(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"notified": True}


class Review(Workflow):
    """Prepare (retried once), start a child, wait for approval, then publish."""

    submit = manual(title=field(str), note=field(str, default=""))
    prepare = step(prepare, retry=RetryPolicy(max_attempts=3, backoff=Backoff.fixed(0.05)))
    spawn = step(spawn)
    review = approval_step(output="decision")
    publish = step(publish)
    notify = step(notify)
    transitions = [
        transition(prepare, on="ok", to=spawn),
        transition(spawn, on="ok", to=review),
        transition(review, on="ok", to=publish),
        transition(review, on="error", to=notify),
        transition(publish, on="ok", to=COMPLETE),
        transition(notify, on="ok", to=COMPLETE),
    ]


class Hold(Workflow):
    """Stops at a pause until an operator resumes it."""

    go = manual(label=field(str, default="hold"))
    hold = pause()
    finish = step(publish)
    transitions = [transition(hold, on="ok", to=finish), transition(finish, on="ok", to=COMPLETE)]


WORKFLOWS = [Review, Leaf, Hold]
