"""Functions run in child processes by the concurrency tests (spawn start method).

The parent puts this directory on ``sys.path`` (the conftest does), and ``spawn`` hands
its ``sys.path`` to the children, so they import this module by name.
"""

from __future__ import annotations

import random
import time
from typing import Any

from squidie_core import open_store

__all__ = ["claim_until_empty", "drain_workflow"]


def claim_until_empty(url: str, owner: str, seed: int,
                      start: Any = None) -> list[tuple[str, int]]:
    """Claim (random batch sizes) and complete until nothing is visible; return (key, fence).

    ``start``: a barrier (a manager's proxy) every worker passes after its first claim,
    before completing anything: every worker holds leases at once, however long each
    took to spawn and however a busy SQLite favours the writer that just committed
    (its busy handler polls, so one process looping on claims can starve the others).
    """
    rng = random.Random(seed)
    store = open_store(url)
    got: list[tuple[str, int]] = []
    try:
        while True:
            leases = store.claim(owner, lease_for=600, limit=rng.randint(1, 8))
            if start is not None:
                start.wait(60)
                start = None
            if not leases:
                return got
            for lease in leases:
                got.append((lease.key, lease.fence))
                store.complete(lease)
    finally:
        store.close()


def drain_workflow(url: str, owner: str, deadline_s: float) -> dict[str, Any]:
    """Run ``execute_next`` until the store has no pending work; return counts."""
    from three_steps import ThreeSteps

    from squidie_core import Squidie

    engine = Squidie.from_url(url, workflows=[ThreeSteps])
    outcomes: dict[str, int] = {}
    deadline = time.monotonic() + deadline_s
    try:
        while time.monotonic() < deadline:
            result = engine.execute_next(owner_id=owner, heartbeat_interval=0)
            if result is not None:
                outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
                continue
            depth = engine.store.depth(["default"])["default"]
            if depth.visible == depth.scheduled == depth.claimed == 0:
                return outcomes
            time.sleep(0.005)  # poll: other workers still hold leases
        outcomes["timed_out"] = 1
        return outcomes
    finally:
        engine.close()
