"""Top-level functions run in worker processes (importable under ``spawn``)."""

from __future__ import annotations

from typing import Any

from squidie_backends.redis import RedisStore
from squidie_core.errors import AppendConflict, LeaseLostError
from squidie_core.storage import Commit, Fact, RunEntry


def drain(url: str, owner: str, start: Any, results: Any) -> None:
    """Claim and complete until the queue is empty; report (key, fence) completed."""
    store = RedisStore(url)
    start.wait(30)
    done: list[tuple[str, int]] = []
    claims = 0
    while True:
        leases = store.claim(owner, lease_for=60, limit=3)
        if not leases:
            break
        claims += len(leases)
        for lease in leases:
            try:
                store.complete(lease)
                done.append((lease.key, lease.fence))
            except LeaseLostError:
                pass
    store.close()
    results.put((owner, claims, done))


def race_commit(url: str, index: int, start: Any, results: Any) -> None:
    """Commit one fact at sequence 1 of run "r"; report whether it won."""
    store = RedisStore(url)
    fact = Fact(2, "writer", 1.0, {"writer": index})
    row = RunEntry("r", "wf", "manual", "running", "default", 1.0, 2.0, 2)
    start.wait(30)
    try:
        store.commit(Commit("r", 1, [fact], row))
        results.put((index, "won"))
    except AppendConflict:
        results.put((index, "conflict"))
    finally:
        store.close()


def run_engine(url: str, owner: str, start: Any, stop: Any, results: Any) -> None:
    """Execute steps of ``ThreeSteps`` runs until told to stop; report what it did."""
    import _redis_flows as flows

    from squidie_core import Squidie

    store = RedisStore(url)
    engine = Squidie(store, workflows=[flows.ThreeSteps])
    outcomes: dict[str, int] = {}
    start.wait(30)
    while not stop.is_set():
        result = engine.execute_next(owner_id=owner, lease_for=60, heartbeat_interval=0)
        if result is None:
            store.wait_for_work(["default"], 0.2)
            continue
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
    engine.close()
    results.put((owner, outcomes))
