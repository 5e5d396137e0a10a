"""Shared helpers of the SQL benchmarks: URLs per dialect and fast backlog loading."""

from __future__ import annotations

import os
import uuid
from typing import Any

import sqlalchemy as sa

from squidie_backends.sql import SQLStore

URLS = {
    "sqlite": None,  # a file under the caller's directory
    "postgresql": os.environ.get("SQUIDIE_TEST_POSTGRES_URL",
                                 "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": os.environ.get("SQUIDIE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}


def store_url(dialect: str, directory: str, **query: str) -> str:
    """A URL for a fresh store (unique prefix) on ``dialect``."""
    base = URLS[dialect] or f"sqlite:///{directory}/bench-{uuid.uuid4().hex[:6]}.db"
    params = {"prefix": f"b{uuid.uuid4().hex[:8]}_", **query}
    return base + "?" + "&".join(f"{k}={v}" for k, v in params.items())


def load_backlog(store: SQLStore, count: int, *, queue: str = "default", now: float = 0.0,
                 key_prefix: str = "bk") -> None:
    """Insert ``count`` visible dispatches in one ``INSERT ... SELECT`` (server-side rows).

    A recursive CTE generates the numbers on every dialect, so a million rows load without
    a million round trips.
    """
    d = store.tables.dispatches
    numbers = sa.select(sa.literal(1).label("x")).cte("numbers", recursive=True)
    numbers = numbers.union_all(sa.select(numbers.c.x + 1).where(numbers.c.x < count))
    key = sa.literal(f"{key_prefix}") + sa.cast(numbers.c.x, sa.String)
    rows = sa.select(
        key + sa.literal(":s:1"), key, sa.literal("W"), sa.literal("s"), sa.literal(1),
        sa.literal(queue), sa.literal(0), sa.literal(5), sa.literal(0.0), sa.literal("pending"),
        sa.literal(now) + numbers.c.x * 1e-6, sa.literal(queue),
        sa.literal(now) + numbers.c.x * 1e-6, sa.literal(0), sa.literal(0), sa.literal(""),
    )
    columns = ["dkey", "run_id", "workflow", "step", "attempt", "queue", "priority",
               "max_deliveries", "delay", "state", "visible_at", "lane", "eligible_at",
               "deliveries", "fence", "history"]
    with store._engine.begin() as conn:
        if store.name == "mysql":
            conn.exec_driver_sql(f"SET SESSION max_recursive_iterations = {count + 1}")
        conn.execute(sa.insert(d).from_select(columns, rows))
    settle_after_bulk_load(store, d.name)


def settle_after_bulk_load(store: SQLStore, table: str) -> None:
    """Settle the database after a bulk load so a measurement does not pay for it:
    statistics, the visibility map, and the checkpoint the load's WAL triggers."""
    raw = store._engine.raw_connection()  # a driver connection, outside any transaction
    try:
        dbapi: Any = raw.driver_connection
        if store.name == "postgresql":
            dbapi.autocommit = True  # VACUUM refuses to run in a transaction
            statements = [f"VACUUM ANALYZE {table}", "CHECKPOINT"]
        elif store.name == "mysql":
            statements = [f"ANALYZE TABLE {table}"]
        else:  # sqlite3 here runs without implicit transactions (isolation_level=None)
            statements = ["ANALYZE", "PRAGMA wal_checkpoint(TRUNCATE)"]
        cursor = dbapi.cursor()
        for statement in statements:
            cursor.execute(statement)
            if cursor.description:
                cursor.fetchall()
        cursor.close()
        if store.name == "postgresql":
            dbapi.autocommit = False
    finally:
        raw.close()
