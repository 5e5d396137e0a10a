"""Four worker processes drain 2,000 three-step runs; every step commits exactly once."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter

import _redis_flows as flows
import _redis_workers as workers
import pytest

from squidie_backends.redis import RedisStore
from squidie_core import Squidie

pytestmark = pytest.mark.redis

RUNS = 2000
WORKERS = 4


def test_four_processes_drain_2000_runs_exactly_once(store: RedisStore, store_url: str) -> None:
    engine = Squidie(store, workflows=[flows.ThreeSteps])
    runs = [engine.start(flows.ThreeSteps, payload={"n": i}).run_id for i in range(RUNS)]
    ctx = multiprocessing.get_context("spawn")
    start, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=workers.run_engine,
                         args=(store_url, f"proc-{n}", start, stop, results))
             for n in range(WORKERS)]
    for p in procs:
        p.start()
    start.set()
    deadline = time.monotonic() + 120
    try:
        while True:
            depth = store.depth(["default"])["default"]
            if depth.visible + depth.scheduled + depth.claimed == 0:
                break
            assert time.monotonic() < deadline, f"not drained: {depth}"
            store.wait_for_work(["default"], 0.5)  # a real wait on real processes
            time.sleep(0.05)
    finally:
        stop.set()
    reports = dict(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    executed = Counter[str]()
    for outcomes in reports.values():
        executed.update(outcomes)
    assert executed["ok"] == RUNS * 3
    assert all(sum(o.values()) > 0 for o in reports.values()), "every process took work"
    completed = 0
    cursor = None
    while True:
        page = store.list_runs(status="completed", limit=1000, cursor=cursor)
        completed += len(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert completed == RUNS
    for run_id in runs:
        journal = store.read(run_id)
        succeeded = Counter((f.body["step"], f.body["attempt"]) for f in journal
                            if f.type == "attempt_succeeded")
        assert succeeded == Counter({("a", 1): 1, ("b", 1): 1, ("c", 1): 1}), run_id
        assert journal[-1].type == "run_completed"
