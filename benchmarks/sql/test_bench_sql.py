"""Micro-benchmarks of the SQL store's hot operations (``make bench``): append, claim,
commit (settling a lease, appending two facts and enqueueing the next dispatch), the
group commit of 16 such commits, and a lone step of the engine."""

from __future__ import annotations

import itertools
from typing import Any

from benchmarks.sql._common import load_backlog
from squidie_backends.sql import SQLStore
from squidie_core.storage import Commit, Dispatch, Fact, Lease, RunEntry


def _entry(run_id: str, seq: int) -> RunEntry:
    return RunEntry(run_id, "W", "go", "running", "default", 0.0, 0.0, seq)


def test_append(benchmark: Any, bench_store: SQLStore) -> None:
    head = itertools.count(0)

    def append() -> None:
        seq = next(head)
        bench_store.append("r", [Fact(seq + 1, "note", 0.0, {"n": seq})], seq)

    benchmark.pedantic(append, rounds=300, warmup_rounds=10)


def test_claim(benchmark: Any, bench_store: SQLStore) -> None:
    load_backlog(bench_store, 5_000, now=bench_store.clock.now() - 60)
    benchmark.pedantic(lambda: bench_store.claim("w", lease_for=600), rounds=300,
                       warmup_rounds=10)


def test_commit(benchmark: Any, bench_store: SQLStore) -> None:
    load_backlog(bench_store, 1_000, now=bench_store.clock.now() - 60)
    runs = itertools.count(1)

    def setup() -> tuple[tuple[Lease], dict[str, Any]]:
        [lease] = bench_store.claim("w", lease_for=600)
        return (lease,), {}

    def commit(lease: Lease) -> None:
        run_id = lease.dispatch.run_id
        nxt = Dispatch(key=f"{run_id}:t:{next(runs)}", run_id=run_id, workflow="W", step="t",
                       attempt=1)
        bench_store.commit(Commit(
            run_id, 0, [Fact(1, "attempt_succeeded", 0.0, {"output": {"x": 1}}),
                        Fact(2, "dispatch_scheduled", 0.0, {"step": "t"})],
            _entry(run_id, 2), enqueue=[nxt], settle=lease,
        ))

    benchmark.pedantic(commit, setup=setup, rounds=300, warmup_rounds=0)


def test_group_commit_of_16(benchmark: Any, bench_store: SQLStore) -> None:
    """``commit_many`` of 16 such commits (what a worker's batch commits); per step,
    divide by 16 and compare with ``test_commit``."""
    load_backlog(bench_store, 1_000, now=bench_store.clock.now() - 60)
    runs = itertools.count(1)

    def setup() -> tuple[tuple[list[Lease]], dict[str, Any]]:
        return (bench_store.claim("w", lease_for=600, limit=16),), {}

    def commit_group(leases: list[Lease]) -> None:
        commits = []
        for lease in leases:
            run_id = lease.dispatch.run_id
            nxt = Dispatch(key=f"{run_id}:t:{next(runs)}", run_id=run_id, workflow="W",
                           step="t", attempt=1)
            commits.append(Commit(
                run_id, 0, [Fact(1, "attempt_succeeded", 0.0, {"output": {"x": 1}}),
                            Fact(2, "dispatch_scheduled", 0.0, {"step": "t"})],
                _entry(run_id, 2), enqueue=[nxt], settle=lease,
            ))
        results = bench_store.commit_many(commits)
        assert all(not isinstance(r, Exception) for r in results), results

    benchmark.pedantic(commit_group, setup=setup, rounds=60, warmup_rounds=0)


def test_lone_step(benchmark: Any, bench_store: SQLStore) -> None:
    """One ``execute_next`` of a run another engine started (W3's worker side: claim,
    load, step, commit; no state cached for the run)."""
    from benchmarks._flows import Single
    from squidie_core import Squidie

    starter = Squidie(bench_store, workflows=[Single])
    worker = Squidie(bench_store, workflows=[Single])

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        starter.start(Single, "go", {})
        return (), {}

    def step() -> None:
        assert worker.execute_next(owner_id="w", heartbeat_interval=0) is not None

    benchmark.pedantic(step, setup=setup, rounds=300, warmup_rounds=10)
