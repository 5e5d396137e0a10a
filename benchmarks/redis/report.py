"""Redis store benchmark report: runs/s, jobs/s and enqueue-to-start latency.

    python benchmarks/redis/report.py [--url redis://127.0.0.1:6379/0] [--workers 4]

* W1 runs/s: N three-step runs started up front, drained by W worker processes.
* W2 jobs/s: N single-step runs started up front, drained by W worker processes.
* W3 latency: runs started one by one at a steady rate while W idle workers wait
  (``wait_for_work``); the time from ``start()`` to the step beginning, p50 and p99.

Each workload uses its own namespace, deleted afterwards. Numbers are measured, never
asserted; they depend on the machine (and the Redis server sharing it).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench_flows as flows
import redis

from squidie_backends.redis import RedisStore
from squidie_core import Squidie

WORKFLOWS = {"Three": flows.Three, "Single": flows.Single, "Stamped": flows.Stamped}


def _worker(url: str, workflow: str, start: Any, stop: Any, results: Any) -> None:
    store = RedisStore(url)
    engine = Squidie(store, workflows=[WORKFLOWS[workflow]])
    done = 0
    start.wait(60)
    while not stop.is_set():
        if engine.execute_next(owner_id=f"bench-{uuid.uuid4().hex[:6]}",
                               heartbeat_interval=0) is None:
            store.wait_for_work(["default"], 0.05)
        else:
            done += 1
    engine.close()
    results.put(done)


def _purge(url: str, namespace: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    for i in range(0, len(keys), 1000):
        client.unlink(*keys[i : i + 1000])
    client.close()


def _drain(url: str, workflow: str, runs: int, workers: int) -> dict[str, float]:
    namespace = "bench" + uuid.uuid4().hex[:8]
    store_url = f"{url}?namespace={namespace}"
    store = RedisStore(store_url)
    engine = Squidie(store, workflows=[WORKFLOWS[workflow]])
    t = time.perf_counter()
    for _ in range(runs):
        engine.start(WORKFLOWS[workflow])
    start_rate = runs / (time.perf_counter() - t)
    ctx = multiprocessing.get_context("spawn")
    start, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(store_url, workflow, start, stop, results))
             for _ in range(workers)]
    for p in procs:
        p.start()
    time.sleep(1.5)  # let the workers import and connect before the clock starts
    t0 = time.perf_counter()
    start.set()
    while True:
        depth = store.depth(["default"])["default"]
        if depth.visible + depth.scheduled + depth.claimed == 0:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    stop.set()
    steps = sum(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
    engine.close()
    _purge(url, namespace)
    return {"runs": runs, "steps": steps, "seconds": round(elapsed, 3),
            "runs_per_s": round(runs / elapsed, 1), "steps_per_s": round(steps / elapsed, 1),
            "starts_per_s": round(start_rate, 1)}


def _latency(url: str, runs: int, workers: int, rate: float) -> dict[str, float]:
    namespace = "bench" + uuid.uuid4().hex[:8]
    store_url = f"{url}?namespace={namespace}"
    store = RedisStore(store_url)
    engine = Squidie(store, workflows=[flows.Stamped])
    ctx = multiprocessing.get_context("spawn")
    start, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(store_url, "Stamped", start, stop, results))
             for _ in range(workers)]
    for p in procs:
        p.start()
    start.set()
    time.sleep(1.5)  # workers idle in wait_for_work before the first start
    ids = []
    next_at = time.perf_counter()
    for _ in range(runs):
        ids.append(engine.start(flows.Stamped, payload={"t0": time.time()}).run_id)
        next_at += 1 / rate
        time.sleep(max(next_at - time.perf_counter(), 0))
    deadline = time.monotonic() + 60
    while store.depth(["default"])["default"].visible + store.depth(["default"])[
            "default"].claimed and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    for _ in procs:
        results.get(timeout=60)
    for p in procs:
        p.join(30)
    latencies = sorted(engine.load(r).context["stamp"]["latency"] * 1000 for r in ids)
    engine.close()
    _purge(url, namespace)
    q = statistics.quantiles(latencies, n=100)
    return {"runs": runs, "rate_per_s": rate, "p50_ms": round(q[49], 3),
            "p99_ms": round(q[98], 3), "max_ms": round(latencies[-1], 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=2000, help="W1 three-step runs")
    parser.add_argument("--jobs", type=int, default=5000, help="W2 single-step runs")
    parser.add_argument("--latency-runs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="W3 starts per second")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = {
        "W1_three_step": _drain(args.url, "Three", args.runs, args.workers),
        "W2_single_step": _drain(args.url, "Single", args.jobs, args.workers),
        "W3_latency": _latency(args.url, args.latency_runs, args.workers, args.rate),
        "workers": args.workers,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        w1, w2, w3 = report["W1_three_step"], report["W2_single_step"], report["W3_latency"]
        print(f"workers: {args.workers} processes")
        print(f"W1 three-step: {w1['runs_per_s']} runs/s ({w1['steps_per_s']} steps/s, "
              f"{w1['runs']} runs in {w1['seconds']} s)")
        print(f"W2 single-step: {w2['runs_per_s']} jobs/s ({w2['runs']} jobs in "
              f"{w2['seconds']} s); starts: {w2['starts_per_s']}/s from one client")
        print(f"W3 enqueue-to-start at {w3['rate_per_s']}/s: p50 {w3['p50_ms']} ms, "
              f"p99 {w3['p99_ms']} ms, max {w3['max_ms']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
