"""The SQL store against the memory store (the reference): same operations, same results.

A seeded random sequence of enqueues, claims, heartbeats, settlements, commits (some
terminal, some stale), clock advances, dead letters and re-drives is applied to both
stores; after every operation the outcome (value or error class) and, periodically, every
listing must be equal. Tokens differ between the stores, so leases are compared by key,
owner, fence, delivery and expiry, and each store keeps its own tokens.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from sql_helpers import T0

from squidie_backends.memory import MemoryStore
from squidie_backends.sql import SQLStore
from squidie_core import ManualClock
from squidie_core.errors import SquidieError
from squidie_core.storage import Commit, Dispatch, Fact, Lease, RunEntry

RUNS = ["r1", "r2", "r3", "r4"]


def _shape(value: Any) -> Any:
    if isinstance(value, Lease):
        return ("lease", value.key, value.owner_id, value.fence, value.delivery,
                value.expires_at)
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if hasattr(value, "items") and hasattr(value, "next_cursor"):  # Page
        return ("page", [_shape(i) for i in value.items], value.next_cursor is None)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


class _Pair:
    def __init__(self, sql: SQLStore, clock: ManualClock) -> None:
        self.stores: tuple[Any, Any] = (MemoryStore(clock=clock), sql)
        self.leases: list[tuple[Lease, Lease]] = []
        self.heads = dict.fromkeys(RUNS, 0)

    def both(self, op: str, fn: Any) -> Any:
        results = []
        for store in self.stores:
            try:
                results.append(("ok", fn(store)))
            except SquidieError as exc:
                results.append(("error", type(exc).__name__))
        shaped = [(kind, _shape(v)) for kind, v in results]
        assert shaped[0] == shaped[1], f"{op}: memory {shaped[0]} != sql {shaped[1]}"
        return results


def _dispatch(rng: random.Random) -> Dispatch:
    run_id = rng.choice(RUNS)
    step = rng.choice("abc")
    attempt = rng.randint(1, 2)
    return Dispatch(
        key=Dispatch.make_key(run_id, step, attempt), run_id=run_id, workflow="W", step=step,
        attempt=attempt, queue=rng.choice(["default", "default", "q"]),
        priority=rng.choice([0, 0, 1]), delay=rng.choice([0.0, 0.0, 3.0]),
        max_deliveries=rng.choice([1, 2, 5]),
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sql_store_matches_the_memory_store(sql_store: SQLStore, clock: ManualClock,
                                            seed: int) -> None:
    rng = random.Random(seed)
    pair = _Pair(sql_store, clock)
    for step in range(160):
        roll = rng.random()
        if roll < 0.15:
            batch = [_dispatch(rng) for _ in range(rng.randint(1, 3))]
            pair.both("enqueue", lambda s, b=batch: s.enqueue(b))
        elif roll < 0.35:
            limit = rng.randint(1, 3)
            queues = rng.choice([["default"], ["q"], ["default", "q"]])
            owner = rng.choice(["A", "B"])
            lease_for = rng_lease(seed, step)
            results = pair.both("claim", lambda s, o=owner, li=limit, q=queues, lf=lease_for:
                                s.claim(o, lease_for=lf, limit=li, queues=q))
            if results[0][0] == "ok":
                pair.leases += list(zip(results[0][1], results[1][1], strict=True))
        elif roll < 0.55 and pair.leases:
            index = rng.randrange(len(pair.leases))
            action = rng.choice(["heartbeat", "complete", "retry", "dead_letter"])

            def act(s: Any, i: int = index, a: str = action) -> Any:
                lease = pair.leases[i][0 if s is pair.stores[0] else 1]
                if a == "heartbeat":
                    return s.heartbeat(lease, lease_for=5.0)
                if a == "complete":
                    return s.complete(lease)
                if a == "retry":
                    return s.retry(lease, delay=1.0, reason="again")
                return s.dead_letter(lease, "poison")

            pair.both(action, act)
        elif roll < 0.75:
            run_id = rng.choice(RUNS)
            stale = rng.random() < 0.2
            expected = max(pair.heads[run_id] - (1 if stale else 0), 0)
            status = rng.choice(["running"] * 4 + ["completed", "cancelled"])
            enqueue = [d for d in (_dispatch(rng) for _ in range(2)) if d.run_id == run_id]
            settle_index = rng.randrange(len(pair.leases)) if pair.leases and rng.random() < 0.6 \
                else None
            n = rng.randint(1, 2)
            new = [Fact(expected + i + 1, "f", clock.now(), {"step": step, "i": i})
                   for i in range(n)]
            entry = RunEntry(run_id, "W", "manual", status, "default", T0, clock.now(),
                             expected + n)

            def commit(s: Any, idx: int | None = settle_index, run_id: str = run_id,
                       expected: int = expected, new: list[Fact] = new,
                       entry: RunEntry = entry, enqueue: list[Dispatch] = enqueue) -> Any:
                lease = None
                if idx is not None:
                    lease = pair.leases[idx][0 if s is pair.stores[0] else 1]
                    if lease.dispatch.run_id != run_id:
                        lease = None
                return s.commit(Commit(run_id, expected, new, entry, enqueue=enqueue,
                                       settle=lease))

            results = pair.both("commit", commit)
            if results[0][0] == "ok":
                pair.heads[run_id] = results[0][1].last_seq
        elif roll < 0.85:
            clock.advance(rng.choice([0.5, 1.0, 3.0, 6.0]))
        elif roll < 0.92:
            dead = pair.stores[0].dead_letters(limit=50).items
            key = rng.choice(dead).dispatch.key if dead and rng.random() < 0.8 else "r1:a:9"
            pair.both("redrive", lambda s, k=key: s.redrive(k))
        else:
            pair.both("depth", lambda s: s.depth())
            pair.both("dead_letters", lambda s: s.dead_letters(limit=3))
        if step % 10 == 0:
            for run_id in RUNS:
                pair.both("dispatches", lambda s, r=run_id: s.dispatches(r))
                pair.both("read", lambda s, r=run_id: s.read(r))
            pair.both("list_runs", lambda s: s.list_runs(limit=10))
            pair.both("depth", lambda s: s.depth(["default", "q"]))


def rng_lease(seed: int, step: int) -> float:
    """Lease lengths that make some leases expire between operations."""
    return float(random.Random(seed * 1000 + step).choice([2, 4, 30]))
