"""Server faults under running workers: the workers recover on their own and lose nothing.

- PostgreSQL (shared server): our sessions terminated server-side with
  ``pg_terminate_backend`` (only those with our ``application_name``).
- PostgreSQL (a server this test owns): crashed (``pg_ctl stop -m immediate``) and
  started again mid-run.
- MariaDB (shared server): our connections ``KILL``ed.
- Redis (a server this test owns, ``appendonly yes``, ``appendfsync everysec``): the
  server SIGKILLed and restarted from its AOF mid-run.

Faults are injected while a worker is mid-step; the next fault waits until a run
completed after the previous one (the workers came back by themselves: bounded retry
with backoff in the store, then the worker loop's backoff). Each campaign ends with
``check_history`` over durable facts. Every wait polls durable state with a deadline.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import rel_flows
from _harness import (
    HERE,
    Workers,
    all_ended,
    cleanup_store,
    holders,
    percentile,
    record,
    store_url_for,
    verdict,
)
from _helpers import until
from _servers import OwnPostgres, kill_mariadb, terminate_postgres

from squidie_core import Squidie

sys.path.insert(0, str(HERE.parent / "backends" / "redis"))
from _redis_server import RedisServer

RUNS = 24
FAULTS = 3
WORKER_ARGS = ["--concurrency", "2", "--lease-for", "2", "--heartbeat", "0.5",
               "--poll", "0.02", "--max-poll", "0.1", "--grace", "5"]


def tolerant(predicate: Callable[[], Any]) -> Callable[[], Any]:
    """``predicate``, with the store's errors during an outage read as "not yet"."""
    def wrapped() -> Any:
        try:
            return predicate()
        except Exception:
            return False
    return wrapped


def completed(engine: Squidie, run_ids: list[str]) -> int:
    return sum(1 for r in run_ids
               if (row := engine.store.get_run(r)) is not None and row.status == "completed")


def fault_campaign(url: str, logs: Path, inject: Callable[[Workers], int], *,
                   runs: int = RUNS, faults: int = FAULTS) -> dict[str, Any]:
    """Run ``runs`` runs on 2 workers, calling ``inject`` ``faults`` times mid-step."""
    engine = Squidie.from_url(url, workflows=[rel_flows.Crashy])
    workers = Workers(url, logs)
    try:
        run_ids = [engine.start(rel_flows.Crashy, None, {"n": i}).run_id for i in range(runs)]
        for _ in range(2):
            workers.spawn(*WORKER_ARGS)
        hits = 0
        resumes: list[float] = []
        injected = 0
        for _ in range(faults):
            before = until(tolerant(lambda: holders(engine.store, run_ids)
                                    and completed(engine, run_ids) + 1), 60,
                           "a worker to be mid-step") - 1
            if before == runs:
                break
            hits += inject(workers)
            injected += 1
            at = time.monotonic()
            until(tolerant(lambda b=before: completed(engine, run_ids) > b), 60,
                  "a run to complete after the fault")
            resumes.append(time.monotonic() - at)
        until(tolerant(lambda: all_ended(engine, run_ids)), 120, "every run to end")
        workers.stop_all()
        assert all(p.returncode == 0 for p in workers.procs.values()), workers.logs_text()
        report, figures = verdict(engine, run_ids)
        report.assert_ok()
        assert figures["completed"] == runs, figures
        assert injected >= 2, "the work ran out before the faults"
        errors = workers.logs_text().count("retrying in")
        return {**figures, "faults": injected, "hits": hits, "worker_backoffs": errors,
                "resume_p50_s": percentile(resumes, 0.5),
                "resume_p99_s": percentile(resumes, 0.99)}
    finally:
        workers.stop_all()
        engine.close()


@pytest.fixture
def named(unique_name: str) -> str:
    return unique_name


def test_postgres_sessions_terminated_server_side(postgres_url: str, named: str,
                                                  tmp_path: Path) -> None:
    url = store_url_for("postgresql", postgres_url, named)
    try:
        figures = fault_campaign(url, tmp_path,
                                 lambda _: terminate_postgres(postgres_url, named))
    finally:
        cleanup_store("postgresql", url, postgres_url, named)
    assert figures["hits"] > 0, figures  # sessions really were terminated
    record("pg_terminate_backend", "postgresql", suite="fast", **figures)


def test_postgres_server_crashed_and_restarted(tmp_path: Path, named: str) -> None:
    server = OwnPostgres().init().start()

    def crash_and_restart(_: Workers) -> int:
        server.crash()
        server.start()  # WAL recovery on the same data directory
        return 1

    try:
        url = store_url_for("postgresql", server.url, named)
        figures = fault_campaign(url, tmp_path, crash_and_restart, faults=3)
    finally:
        server.stop()
    record("postgres_restart", "postgresql", suite="fast", **figures)


def test_mariadb_connections_killed(mysql_url: str, named: str, tmp_path: Path) -> None:
    url = store_url_for("mysql", mysql_url, named)
    def kill(workers: Workers) -> int:
        pids = [os.getpid()] + [p.pid for p in workers.procs.values() if p.poll() is None]
        return kill_mariadb(pids)

    try:
        figures = fault_campaign(url, tmp_path, kill)
    finally:
        cleanup_store("mysql", url, mysql_url, named)
    assert figures["hits"] > 0, figures
    record("mariadb_kill", "mysql", suite="fast", **figures)


def test_redis_server_killed_and_restarted_from_its_aof(tmp_path: Path, named: str) -> None:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory, "--appendonly", "yes", "--appendfsync", "everysec").start()
    logs = tmp_path / "logs"
    logs.mkdir()

    def kill_and_restart(_: Workers) -> int:
        server.kill()  # SIGKILL: no shutdown, no final fsync
        server.start()  # reloads the AOF on the same port
        return 1

    try:
        figures = fault_campaign(store_url_for("redis", server.url, named), logs,
                                 kill_and_restart)
    finally:
        server.stop()
    record("redis_restart", "redis", suite="fast", **figures)

