"""The workflows of ``python -m benchmarks`` (importable by spawned worker processes).

W1 runs ``Three``: three sequential steps, each taking a dict and returning it with its
counter incremented. W2 and W3 run ``Single``: one no-op step (a "job").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from squidie_core import COMPLETE, StepContext, Workflow, field, manual, step, transition

__all__ = ["Single", "Three"]


def _bump(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"n": int(input.get("n", 0)) + 1}


def _noop(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {}


class Three(Workflow):
    """Three sequential trivial steps (W1)."""

    go = manual(n=field(int, default=0))
    a = step(_bump)
    b = step(_bump)
    c = step(_bump)
    transitions = [
        transition(a, on="ok", to=b),
        transition(b, on="ok", to=c),
        transition(c, on="ok", to=COMPLETE),
    ]


class Single(Workflow):
    """One no-op step (W2 and W3)."""

    go = manual()
    only = step(_noop)
    transitions = [transition(only, on="ok", to=COMPLETE)]
