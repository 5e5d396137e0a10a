"""Micro-benchmarks of the Redis store's hot operations (one round trip each).

Run with ``make bench`` (``pytest benchmarks --benchmark-enable``). Measured, never
asserted.
"""

from __future__ import annotations

import itertools

import pytest

from squidie_backends.redis import RedisStore
from squidie_core.storage import Commit, Dispatch, Fact, RunEntry

pytestmark = pytest.mark.redis


def _dispatch(run: str, step: str = "s", queue: str = "default") -> Dispatch:
    return Dispatch(key=f"{run}:{step}:1", run_id=run, workflow="wf", step=step, attempt=1,
                    queue=queue)


def _row(run: str, seq: int, status: str = "running") -> RunEntry:
    return RunEntry(run, "wf", "manual", status, "default", 1.0, 2.0, seq)


def test_enqueue_one(benchmark: pytest.FixtureRequest, redis_store: RedisStore) -> None:
    counter = itertools.count()
    benchmark(lambda: redis_store.enqueue([_dispatch(f"r{next(counter)}")]))


def test_append_one_fact(benchmark: pytest.FixtureRequest, redis_store: RedisStore) -> None:
    seq = itertools.count()

    def append() -> None:
        n = next(seq)
        redis_store.append("r", [Fact(n + 1, "note", 1.0, {"n": n})], n)

    benchmark(append)


def test_claim_and_complete(benchmark: pytest.FixtureRequest, redis_store: RedisStore) -> None:
    redis_store.enqueue([_dispatch(f"r{i}") for i in range(20_000)])

    def cycle() -> None:
        [lease] = redis_store.claim("w", lease_for=60)
        redis_store.complete(lease)

    benchmark.pedantic(cycle, rounds=2000, iterations=1)


def test_claim_batch_of_50(benchmark: pytest.FixtureRequest, redis_store: RedisStore) -> None:
    redis_store.enqueue([_dispatch(f"r{i}") for i in range(20_000)])
    benchmark.pedantic(lambda: redis_store.claim("w", lease_for=60, limit=50),
                       rounds=200, iterations=1)


def test_commit_settle_and_enqueue_next(
    benchmark: pytest.FixtureRequest, redis_store: RedisStore
) -> None:
    """The worker's hot path: facts + settle the lease + enqueue the next step."""
    runs = [f"r{i}" for i in range(2000)]
    for run in runs:
        redis_store.commit(Commit(run, 0, [Fact(1, "run_started", 1.0, {})], _row(run, 1),
                                  enqueue=[_dispatch(run, "a")]))
    leases = iter(redis_store.claim("w", lease_for=600, limit=2000))

    def setup() -> tuple[tuple[Commit], dict[str, object]]:
        lease = next(leases)
        run = lease.dispatch.run_id
        facts = [Fact(2, "attempt_started", 1.0, {}), Fact(3, "attempt_succeeded", 1.0, {}),
                 Fact(4, "dispatch_scheduled", 1.0, {})]
        return (Commit(run, 1, facts, _row(run, 4), enqueue=[_dispatch(run, "b")],
                       settle=lease),), {}

    benchmark.pedantic(redis_store.commit, setup=setup, rounds=2000, iterations=1)


def test_read_a_ten_fact_journal(benchmark: pytest.FixtureRequest,
                                 redis_store: RedisStore) -> None:
    redis_store.append("r", [Fact(i, "note", 1.0, {"i": i}) for i in range(1, 11)], 0)
    benchmark(lambda: redis_store.read("r"))
