"""Claim latency at a 1,000 vs 1,000,000 pending-dispatch backlog, and runs/s, per dialect.

Run it (never part of ``make test``)::

    python -m benchmarks.sql.backlog                       # every dialect, 1k and 1M
    python -m benchmarks.sql.backlog --dialects sqlite --sizes 1000 100000

For each dialect and backlog size: bulk-load the backlog with one ``INSERT ... SELECT``,
then time ``claim(limit=1)`` (each claim is one transaction: select with SKIP LOCKED /
under BEGIN IMMEDIATE, update, commit) for ``--claims`` claims per size, alternating
between the sizes, and report the median and 95th percentile. Then time claims that
find nothing next to the largest backlog scheduled for later (an idle worker polling
beside delayed work). Finally start ``--runs`` runs of a 3-step workflow and drain them
with one worker (``execute_next``), reporting runs/s of the drain, also with the relaxed
durability settings (``synchronous=normal`` / ``synchronous_commit=off``). Results are
printed one per line, and as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.sql._common import load_backlog, store_url
from squidie_backends.sql import SQLStore, uninstall
from squidie_core import Squidie

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "backends" / "sql"))


def claim_latency(dialect: str, sizes: list[int], claims: int, directory: str, *,
                  scheduled: bool = False, **query: str) -> list[dict[str, Any]]:
    """Median and p95 claim latency with each backlog size pending, measured interleaved.

    One store per size is loaded first; then claims alternate between the stores (one on
    each, in turn), so that a change of load on the machine during the run affects every
    size alike instead of biasing the comparison.

    With ``scheduled``, the whole backlog becomes visible only in an hour: every claim
    finds nothing, which measures what an idle worker's poll costs next to a big backlog
    of delayed work (retries with backoff, waits).
    """
    urls = [store_url(dialect, directory, **query) for _ in sizes]
    stores = [SQLStore(url) for url in urls]
    try:
        loaded = []
        for store, size in zip(stores, sizes, strict=True):
            t0 = time.perf_counter()
            load_backlog(store, size, now=time.time() + (3600 if scheduled else -3600))
            loaded.append(time.perf_counter() - t0)
        for store in stores:
            for _ in range(20):  # warm the pool and the statement caches
                store.claim("bench", lease_for=600)
        samples: list[list[float]] = [[] for _ in sizes]
        for _ in range(claims):
            for store, bucket in zip(stores, samples, strict=True):
                t = time.perf_counter()
                got = store.claim("bench", lease_for=600)
                bucket.append(time.perf_counter() - t)
                assert len(got) == (0 if scheduled else 1)
        results = []
        for size, took, bucket in zip(sizes, loaded, samples, strict=True):
            bucket.sort()
            results.append({
                "dialect": dialect, "backlog": size, "load_s": round(took, 1),
                "visible": not scheduled,
                "claim_p50_ms": round(statistics.median(bucket) * 1000, 3),
                "claim_p95_ms": round(bucket[int(len(bucket) * 0.95)] * 1000, 3),
            })
        return results
    finally:
        for store, url in zip(stores, urls, strict=True):
            store.close()
            uninstall(url)


def runs_per_second(dialect: str, runs: int, directory: str, **query: str) -> dict[str, Any]:
    """Drain ``runs`` runs of a 3-step workflow with one worker; runs/s of the drain."""
    from three_steps import ThreeSteps  # type: ignore[import-not-found]

    url = store_url(dialect, directory, **query)
    engine = Squidie.from_url(url, workflows=[ThreeSteps])
    try:
        t0 = time.perf_counter()
        for i in range(runs):
            engine.start(ThreeSteps, "go", {"n": i})
        started = time.perf_counter() - t0
        t1 = time.perf_counter()
        steps = 0
        while engine.execute_next(owner_id="bench", heartbeat_interval=0) is not None:
            steps += 1
        drained = time.perf_counter() - t1
        assert steps == 3 * runs, steps
        return {"dialect": dialect, "runs": runs, "starts_per_s": round(runs / started, 1),
                "runs_per_s": round(runs / drained, 1),
                "steps_per_s": round(steps / drained, 1), **query}
    finally:
        engine.close()
        uninstall(url)


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dialects", nargs="+", default=["sqlite", "postgresql", "mysql"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000, 1_000_000])
    parser.add_argument("--claims", type=int, default=300)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--scheduled", action=argparse.BooleanOptionalAction, default=True,
                        help="also time empty claims next to the largest backlog, all "
                             "scheduled for later")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as directory:
        for dialect in args.dialects:
            for found in claim_latency(dialect, args.sizes, args.claims, directory):
                results.append(found)
                print(found, flush=True)
            if args.scheduled:
                for found in claim_latency(dialect, [max(args.sizes)], args.claims, directory,
                                           scheduled=True):
                    results.append(found)
                    print(found, flush=True)
            results.append(runs_per_second(dialect, args.runs, directory))
            print(results[-1], flush=True)
            relaxed = ({"synchronous": "normal"} if dialect == "sqlite"
                       else {"synchronous_commit": "off"} if dialect == "postgresql" else {})
            if relaxed:
                results.append(runs_per_second(dialect, args.runs, directory, **relaxed))
                print(results[-1], flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
