"""Four worker processes drain 2,000 runs of a 3-step workflow through the real engine.

On PostgreSQL and on SQLite (one WAL file shared by the processes). Afterwards the
journal is the judge: every step attempt has exactly one ``attempt_succeeded`` fact and
every run completed. Real processes need real time, so the store uses the system clock;
workers poll with a deadline.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sql_workers import drain_workflow
from three_steps import ThreeSteps

from squidie_backends.sql import SQLStore, uninstall
from squidie_core import Squidie

RUNS = 2000
WORKERS = 4


@pytest.fixture(params=["sqlite", "postgresql"])
def drain_url(request: pytest.FixtureRequest, tmp_path: Path, unique_name: str) -> str:
    if request.param == "sqlite":
        # synchronous=normal / synchronous_commit=off: durable against a process crash
        # (what matters to exactly-once here), not a power cut; without an fsync per
        # commit the test stays within its time budget on this machine's disk.
        return f"sqlite:///{tmp_path / 'drain.db'}?synchronous=normal&prefix={unique_name}_"
    return (f"{request.getfixturevalue('postgres_url')}?synchronous_commit=off"
            f"&prefix={unique_name}_")


def test_four_processes_drain_2000_runs_exactly_once(drain_url: str) -> None:
    store = SQLStore(drain_url)
    engine = Squidie(store, workflows=[ThreeSteps])
    try:
        t0 = time.monotonic()
        with ThreadPoolExecutor(WORKERS) as starters:
            run_ids = list(starters.map(
                lambda i: engine.start(ThreeSteps, "go", {"n": i}).run_id, range(RUNS)
            ))
        started = time.monotonic() - t0
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(WORKERS) as pool:
            outcomes = pool.starmap(
                drain_workflow, [(drain_url, f"worker-{i}", 120.0) for i in range(WORKERS)]
            )
        drained = time.monotonic() - t0 - started
        assert not any("timed_out" in o for o in outcomes), outcomes
        assert sum(1 for o in outcomes if o.get("ok")) >= 2, outcomes  # work was shared
        for run_id in run_ids:
            journal = store.read(run_id)
            succeeded = Counter(
                (f.body["step"], f.body["attempt"])
                for f in journal if f.type == "attempt_succeeded"
            )
            assert succeeded == {("fetch", 1): 1, ("transform", 1): 1, ("store", 1): 1}, run_id
            assert journal[-1].type == "run_completed"
            assert [f.seq for f in journal] == list(range(1, len(journal) + 1))
        completed = store.list_runs(status="completed", limit=1000)
        assert len(completed.items) == 1000 and completed.next_cursor is not None
        print(f"\n{store.name}: started {RUNS} runs in {started:.1f}s, "
              f"drained with {WORKERS} processes in {drained:.1f}s; outcomes {outcomes}")
    finally:
        engine.close()
        uninstall(drain_url)
