"""A 3-step workflow for the multi-process tests (importable in child processes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from squidie_core import COMPLETE, StepContext, Workflow, field, manual, step, transition


def fetch(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """First step: derive a value from the payload."""
    return {"fetched": int(input["n"]) * 2}


def transform(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Second step: use the first step's output."""
    return {"transformed": int(input["fetched"]) + 1}


def store(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Third step: finish."""
    return {"stored": True}


class ThreeSteps(Workflow):
    """fetch -> transform -> store -> complete."""

    go = manual(n=field(int))

    fetch = step(fetch)
    transform = step(transform)
    store = step(store)

    transitions = [
        transition(fetch, on="ok", to=transform),
        transition(transform, on="ok", to=store),
        transition(store, on="ok", to=COMPLETE),
    ]
