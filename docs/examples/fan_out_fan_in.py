"""Fan-out / fan-in with ``after=``: two branches run in parallel, a join waits for both.

In dependency mode there are no transitions: a step runs once every step in its
``after=`` succeeded, and the run completes when every step has.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from squidie_core import StepContext, Workflow, field, manual, step


def split(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    words = input["text"].split()
    half = len(words) // 2
    return {"left_words": words[:half], "right_words": words[half:]}


def count_left(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"left_count": len(input["left_words"])}


def count_right(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"right_count": len(input["right_words"])}


def join(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"total": input["left_count"] + input["right_count"]}


class WordCount(Workflow):
    """Count words in two halves, in parallel, then add them up."""

    count = manual(text=field(str))

    split = step(split)
    left = step(count_left, after=[split])
    right = step(count_right, after=[split])
    total = step(join, after=[left, right])
