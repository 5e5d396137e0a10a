"""Ceilings: the raw backend operations one durable step needs, in a tight loop.

Each function returns jobs per second for "insert a job, claim it, complete it", one job
at a time with the driver alone (no Squidie code), on a scratch table or key namespace
that is dropped afterwards. A Squidie figure divided by its ceiling says how much of what
the backend itself allows the engine delivers.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

from benchmarks._targets import REDIS_URL, Target, _mysql_args, _pg_dsn

__all__ = ["ceiling"]


def _pg(n: int) -> dict[str, float]:
    import psycopg

    table = f"bench_ceiling_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_pg_dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, queue text NOT NULL, "
                     "visible_at double precision NOT NULL, owner text, body jsonb)")
        conn.execute(f"CREATE INDEX ON {table} (queue, visible_at) WHERE owner IS NULL")
        try:
            t = time.perf_counter()
            for _ in range(n):
                conn.execute(f"INSERT INTO {table} (queue, visible_at, body) "
                             "VALUES ('q', extract(epoch from now()), '{}')")
                (job,) = conn.execute(
                    f"UPDATE {table} SET owner = 'w' WHERE id = (SELECT id FROM {table} "
                    "WHERE queue = 'q' AND owner IS NULL ORDER BY visible_at "
                    "FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id").fetchone()  # type: ignore[misc]
                conn.execute(f"DELETE FROM {table} WHERE id = %s", (job,))
            took = time.perf_counter() - t
        finally:
            conn.execute(f"DROP TABLE {table}")
    return {"jobs_per_s": n / took}


def _mysql(n: int) -> dict[str, float]:
    import pymysql

    table = f"bench_ceiling_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(**_mysql_args(), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id bigint AUTO_INCREMENT PRIMARY KEY, "
                        "queue varchar(64) NOT NULL, visible_at double NOT NULL, "
                        "owner varchar(64), body json, KEY (queue, owner, visible_at))")
            try:
                t = time.perf_counter()
                for _ in range(n):
                    cur.execute(f"INSERT INTO {table} (queue, visible_at, body) "
                                "VALUES ('q', UNIX_TIMESTAMP(NOW(6)), '{}')")
                    conn.begin()
                    cur.execute(f"SELECT id FROM {table} WHERE queue = 'q' AND owner IS NULL "
                                "ORDER BY visible_at LIMIT 1 FOR UPDATE SKIP LOCKED")
                    (job,) = cur.fetchone()
                    cur.execute(f"UPDATE {table} SET owner = 'w' WHERE id = %s", (job,))
                    conn.commit()
                    cur.execute(f"DELETE FROM {table} WHERE id = %s", (job,))
                took = time.perf_counter() - t
            finally:
                cur.execute(f"DROP TABLE {table}")
    finally:
        conn.close()
    return {"jobs_per_s": n / took}


def _sqlite(n: int, directory: str, synchronous: str) -> dict[str, float]:
    path = f"{directory}/ceiling-{uuid.uuid4().hex[:8]}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, "
                     "visible_at REAL NOT NULL, owner TEXT, body TEXT)")
        conn.execute("CREATE INDEX jobs_visible ON jobs (queue, visible_at) "
                     "WHERE owner IS NULL")
        t = time.perf_counter()
        for _ in range(n):
            conn.execute("INSERT INTO jobs (queue, visible_at, body) VALUES ('q', ?, '{}')",
                         (time.time(),))
            conn.execute("BEGIN IMMEDIATE")
            (job,) = conn.execute("SELECT id FROM jobs WHERE queue = 'q' AND owner IS NULL "
                                  "ORDER BY visible_at LIMIT 1").fetchone()
            conn.execute("UPDATE jobs SET owner = 'w' WHERE id = ?", (job,))
            conn.execute("COMMIT")
            conn.execute("DELETE FROM jobs WHERE id = ?", (job,))
        took = time.perf_counter() - t
    finally:
        conn.close()
    return {"jobs_per_s": n / took}


def _redis(n: int) -> dict[str, float]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    stream = f"benchceiling{uuid.uuid4().hex[:8]}:s"
    client.xgroup_create(stream, "g", id="0", mkstream=True)
    try:
        t = time.perf_counter()
        for _ in range(n):
            client.xadd(stream, {"b": "{}"})
            reply: Any = client.xreadgroup("g", "w", {stream: ">"}, count=1)
            entries = reply[0][1]
            client.xack(stream, "g", entries[0][0])
        single = n / (time.perf_counter() - t)
        batch = 100
        t = time.perf_counter()
        for _ in range(max(n // batch, 1)):
            pipe = client.pipeline(transaction=False)
            for _ in range(batch):
                pipe.xadd(stream, {"b": "{}"})
            pipe.execute()
            reply = client.xreadgroup("g", "w", {stream: ">"}, count=batch)
            entries = reply[0][1]
            client.xack(stream, "g", *[e[0] for e in entries])
        piped = max(n // batch, 1) * batch / (time.perf_counter() - t)
    finally:
        client.delete(stream)
        client.close()
    return {"jobs_per_s": single, "pipelined_jobs_per_s": piped}


def ceiling(target: Target, directory: str, n: int) -> dict[str, float] | None:
    """Raw jobs/s for ``target``'s backend (``None`` for the FDB simulator)."""
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "postgresql": lambda: _pg(n),
        "mysql": lambda: _mysql(n),
        "sqlite": lambda: _sqlite(n, directory, target.query.get("synchronous", "full")),
        "redis": lambda: _redis(n),
    }
    runner = runners.get(target.kind)
    return runner() if runner else None
