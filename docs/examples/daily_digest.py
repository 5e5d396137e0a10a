"""The seed's daily digest: a workflow started by a cron trigger.

The workflow declares its schedule; a host scheduler (``squidie scheduler`` or your own)
delivers each window as ``Payload.cron(...)`` to ``Runner.perform``. Starts are
idempotent per window: a duplicate delivery returns the existing run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from squidie_core import COMPLETE, StepContext, Workflow, cron, field, step, transition


def build_digest(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    window = input["schedule"]["window"]
    return {"digest_for": window, "audience": input["audience"]}


class DailyDigest(Workflow):
    """Build the digest every weekday at 09:00 UTC."""

    daily_digest = cron(
        "0 9 * * 1-5",
        timezone="Etc/UTC",
        idempotency="return_existing_run",
        audience=field(str, default="everyone"),
    )
    build = step(build_digest, output="digest")
    transitions = [transition(build, on="ok", to=COMPLETE)]
