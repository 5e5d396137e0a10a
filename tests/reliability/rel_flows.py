"""Workflows the reliability campaigns run in real ``squidie worker`` subprocesses.

Imported by the workers with ``SQUIDIE_APP=rel_flows`` (the campaign puts this directory
on ``PYTHONPATH``). Each step sleeps a random, short time so that a worker is likely to
be killed or paused in the middle of one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any

from squidie_core import (
    COMPLETE,
    Backoff,
    RetryPolicy,
    StepContext,
    Workflow,
    field,
    manual,
    step,
    transition,
)

_RETRY = RetryPolicy(max_attempts=4, backoff=Backoff.fixed(0.1))


def work(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    time.sleep(random.uniform(0.1, 0.5))
    return {f"{ctx.step}_attempt": ctx.attempt}


class Crashy(Workflow):
    go = manual(n=field(int, default=0))
    a = step(work, retry=_RETRY)
    b = step(work, retry=_RETRY)
    c = step(work, retry=_RETRY)
    transitions = [
        transition(a, on="ok", to=b),
        transition(b, on="ok", to=c),
        transition(c, on="ok", to=COMPLETE),
    ]


def quick(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"n": int(input.get("n", 0)) + 1}


class Quick(Workflow):
    """Two instant steps: what the load campaign runs by the thousand."""

    go = manual(n=field(int, default=0))
    one = step(quick)
    two = step(quick)
    transitions = [transition(one, on="ok", to=two), transition(two, on="ok", to=COMPLETE)]
