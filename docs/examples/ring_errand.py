"""The seed's RingErrand, in Squidie's Python DSL.

Run it end to end (this is what ``make demo`` does)::

    python docs/examples/ring_errand.py                 # embedded store
    python docs/examples/ring_errand.py memory://       # or any store URL

It packs, waits for Gandalf (a durable timer), asks the council for approval, crosses
Moria (which fails once and is retried with backoff) and reaches Mordor. A rejection
would take the error route to ``walk_home_awkwardly``, marked as a compensation path.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from squidie_core import (
    COMPLETE,
    Backoff,
    RetryPolicy,
    Step,
    StepContext,
    Workflow,
    approval_step,
    field,
    manual,
    step,
    transition,
    wait,
)


class PackLembas(Step):
    """Pack provisions for the bearer."""

    def run(self, input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
        return {"lembas": 3, "packed_by": input["bearer"]}


class UnpackLembas(Step):
    """Compensation of PackLembas: put the provisions back."""

    def run(self, input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
        return {"lembas": 0}


class CrossMoria(Step):
    """Fails on the first attempt (a Balrog), succeeds when retried."""

    def run(self, input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
        if ctx.attempt == 1:
            raise RuntimeError("a Balrog blocks the bridge")
        return {"crossed_moria": True, "attempts_needed": ctx.attempt}


def reach_mordor(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A plain function works as a step too."""
    return {"destroyed": input["ring_id"], "by": input["bearer"]}


def walk_home_awkwardly(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """The error route after the council says no."""
    return {"went_home": True}


class RingErrand(Workflow):
    """Destroy the ring, with provisions, a timer, a council and a retry."""

    leave_shire = manual(
        bearer=field(str, default="Frodo"),
        ring_id=field(str),
    )

    pack_lembas = step(PackLembas, compensate=UnpackLembas)
    wait_for_gandalf = wait(1.0)
    wait_for_council = approval_step(output="approval")
    cross_moria = step(
        CrossMoria,
        retry=RetryPolicy(
            max_attempts=3, backoff=Backoff.exponential(min=0.2, max=2.0, jitter=0.1)
        ),
    )
    reach_mordor = step(reach_mordor, input=["ring_id", "bearer"], irreversible=True)
    walk_home_awkwardly = step(walk_home_awkwardly)

    transitions = [
        transition(pack_lembas, on="ok", to=wait_for_gandalf),
        transition(wait_for_gandalf, on="ok", to=wait_for_council),
        transition(wait_for_council, on="ok", to=cross_moria),
        transition(wait_for_council, on="error", to=walk_home_awkwardly,
                   recovery="compensation"),
        transition(cross_moria, on="ok", to=reach_mordor),
        transition(reach_mordor, on="ok", to=COMPLETE),
        transition(walk_home_awkwardly, on="ok", to=COMPLETE),
    ]


DEFAULT_STORE = "sqlite:///squidie-demo.db"


def main(url: str | None = None) -> int:
    """Run one RingErrand end to end on ``url`` and print what happened."""
    import json
    import time

    from squidie_core import Squidie
    from squidie_core._discovery import registry

    if url is None:
        schemes = {s for b in registry().backends() for s in b.info.schemes}
        url = DEFAULT_STORE if "sqlite" in schemes else "memory://"
    print(f"store: {url}")
    engine = Squidie.from_url(url, workflows=[RingErrand])
    run = engine.start(RingErrand, "leave_shire", {"ring_id": "one-ring"})
    print(f"started run {run.run_id} ({run.status})")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = engine.inspect_run(run.run_id)
        if state["status"] in ("completed", "failed", "cancelled"):
            break
        if state["status"] == "paused":
            print("  the council is asked; approving as 'elrond'")
            engine.approve(run.run_id, actor="elrond", comment="one does simply walk")
            continue
        result = engine.execute_next(owner_id="demo-worker")
        if result is None:
            time.sleep(0.05)  # a real worker polls with back-off; see `squidie worker`
            continue
        print(f"  {result.step} attempt {result.attempt}: {result.outcome}")
    final = engine.inspect_run(run.run_id)
    print(f"run {final['status']}")
    print(json.dumps(engine.explain_run(run.run_id), indent=2))
    engine.close()
    return 0 if final["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
