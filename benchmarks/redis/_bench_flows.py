"""Workflows of the Redis benchmarks (importable by spawned worker processes)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from squidie_core import COMPLETE, StepContext, Workflow, field, manual, step, transition


def _noop(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {}


def _stamp(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    # Enqueue-to-start latency: the run's start time travels in the payload.
    return {"latency": time.time() - input["t0"]}


class Three(Workflow):
    """Three no-op steps."""

    go = manual(t0=field(float, default=0.0))
    a = step(_noop)
    b = step(_noop)
    c = step(_noop)
    transitions = [
        transition(a, on="ok", to=b),
        transition(b, on="ok", to=c),
        transition(c, on="ok", to=COMPLETE),
    ]


class Single(Workflow):
    """One no-op step (a "job")."""

    go = manual(t0=field(float, default=0.0))
    only = step(_noop)
    transitions = [transition(only, on="ok", to=COMPLETE)]


class Stamped(Workflow):
    """One step recording how long after ``start`` it began."""

    go = manual(t0=field(float, default=0.0))
    only = step(_stamp, input=["t0"], output="stamp")
    transitions = [transition(only, on="ok", to=COMPLETE)]
