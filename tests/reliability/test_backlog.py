"""Backlog (``make soak``): claim latency with 1,000,000 pending dispatches, against the
same store nearly empty.

Each backend gets a fresh store; 300 claims are timed with a few hundred dispatches
pending, then the backlog is filled to 1,000,000 visible dispatches and 300 claims are
timed again. The figures are recorded, not asserted (timing lives in reports, not in
assertions): ``docs/reliability.md`` states the ratio of the medians against the 2x
target. What is asserted: every claim returned the earliest visible dispatch it could
and each was delivered once.

Redis runs on a server of its own (a million entries do not belong on the shared
server); FoundationDB's simulator is an in-memory Python model whose latency says
nothing about a cluster, so it is left out here (see ``benchmarks/`` for FDB claims).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _harness import HERE, cleanup_store, record, store_url_for

from squidie_core import open_store
from squidie_core.storage import Dispatch, Store

BACKLOG = int(os.environ.get("SQUIDIE_BACKLOG", "1000000"))  # lower for a dry run
SAMPLES = 300
BATCH = 2_000


def fill(store: Store, start: int, stop: int) -> None:
    for lo in range(start, stop, BATCH):
        store.enqueue([Dispatch(key=f"b{i:07d}:s:1", run_id=f"b{i:07d}", workflow="Backlog",
                                step="s", attempt=1)
                       for i in range(lo, min(lo + BATCH, stop))])


def time_claims(store: Store) -> list[float]:
    times: list[float] = []
    seen: set[str] = set()
    for _ in range(SAMPLES):
        t0 = time.perf_counter()
        leases = store.claim("backlog", lease_for=300, limit=1)
        times.append(time.perf_counter() - t0)
        assert len(leases) == 1
        assert leases[0].key not in seen
        seen.add(leases[0].key)
        store.complete(leases[0])
    return times


@pytest.fixture(params=["sqlite", "postgresql", "mysql", "redis"])
def backlog_store(request: pytest.FixtureRequest, tmp_path: Path,
                  unique_name: str) -> Iterator[tuple[str, Store]]:
    backend = str(request.param)
    server = None
    if backend == "sqlite":
        base = f"sqlite:///{tmp_path / 'backlog.db'}"
    elif backend == "redis":
        import sys

        sys.path.insert(0, str(HERE.parent / "backends" / "redis"))
        from _redis_server import RedisServer

        (tmp_path / "redis").mkdir()
        server = RedisServer(tmp_path / "redis", "--appendonly", "no").start()
        base = server.url
    else:
        base = str(request.getfixturevalue(
            "postgres_url" if backend == "postgresql" else "mysql_url"))
    url = store_url_for(backend, base, unique_name)
    store = open_store(url)
    try:
        yield backend, store
    finally:
        store.close()
        if server is not None:
            server.stop()
        else:
            cleanup_store(backend, url, base, unique_name)


@pytest.mark.soak
def test_claim_latency_with_a_million_pending(backlog_store: tuple[str, Store]) -> None:
    backend, store = backlog_store
    fill(store, 0, 2 * SAMPLES)
    empty = time_claims(store)
    t0 = time.monotonic()
    fill(store, 2 * SAMPLES, BACKLOG)
    fill_s = time.monotonic() - t0
    full = time_claims(store)
    p50e, p50f = statistics.median(empty), statistics.median(full)
    record("backlog", backend, suite="soak", pending=BACKLOG, fill_s=round(fill_s, 1),
           claim_p50_empty_ms=round(p50e * 1000, 3), claim_p50_full_ms=round(p50f * 1000, 3),
           claim_p99_empty_ms=round(sorted(empty)[int(0.99 * SAMPLES)] * 1000, 3),
           claim_p99_full_ms=round(sorted(full)[int(0.99 * SAMPLES)] * 1000, 3),
           ratio_p50=round(p50f / p50e, 2))
