"""The backends ``python -m benchmarks`` measures: URLs, reachability, settings, cleanup.

Each target names one backend with one durability setting, so every figure in the table
says which setting produced it (SQLite ``synchronous=FULL`` vs ``NORMAL``; the Redis
server's persistence; PostgreSQL's ``fsync``/``synchronous_commit``; MariaDB's
``innodb_flush_log_at_trx_commit``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TARGETS", "Target"]

POSTGRES_URL = os.environ.get("SQUIDIE_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("SQUIDIE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("SQUIDIE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Target:
    """One backend with one setting.

    Attributes:
        name: The table's row label (and the ``--backends`` choice).
        kind: ``sqlite``, ``postgresql``, ``mysql``, ``redis`` or ``fdb``.
        query: Extra URL options (the durability setting).
        in_process: The store lives in this process only (the FDB simulator): workers
            are threads of the measuring process, and figures are relative only.
    """

    name: str
    kind: str
    query: dict[str, str] = field(default_factory=dict)
    in_process: bool = False

    def new_url(self, directory: str) -> str:
        """A URL of a fresh, empty store (unique prefix, namespace or file)."""
        tag = uuid.uuid4().hex[:8]
        if self.kind == "sqlite":
            base, params = f"sqlite:///{directory}/bench-{tag}.db", {"prefix": f"b{tag}_"}
        elif self.kind == "postgresql":
            base, params = POSTGRES_URL, {"prefix": f"b{tag}_"}
        elif self.kind == "mysql":
            base, params = MYSQL_URL, {"prefix": f"b{tag}_"}
        elif self.kind == "redis":
            base, params = REDIS_URL, {"namespace": f"bench{tag}"}
        else:
            base, params = "fdb+sim://", {"namespace": f"bench{tag}"}
        params.update(self.query)
        sep = "&" if "?" in base else "?"
        return base + sep + "&".join(f"{k}={v}" for k, v in params.items())

    def drop(self, url: str) -> None:
        """Delete what a benchmark left in ``url``'s store."""
        if self.kind in ("postgresql", "mysql", "sqlite"):
            from squidie_backends.sql import uninstall

            uninstall(url)
        elif self.kind == "redis":
            import redis

            namespace = url.split("namespace=")[1].split("&", maxsplit=1)[0]
            client = redis.Redis.from_url(REDIS_URL)
            try:
                batch: list[Any] = []
                for key in client.scan_iter(match=f"{namespace}:*", count=5000):
                    batch.append(key)
                    if len(batch) >= 5000:
                        client.unlink(*batch)
                        batch = []
                if batch:
                    client.unlink(*batch)
            finally:
                client.close()

    def reachable(self) -> str | None:
        """``None`` when the backend answers, else why it cannot be measured."""
        try:
            if self.kind == "postgresql":
                import psycopg

                psycopg.connect(_pg_dsn(), connect_timeout=3).close()
            elif self.kind == "mysql":
                import pymysql

                pymysql.connect(**_mysql_args(), connect_timeout=3).close()
            elif self.kind == "redis":
                import redis

                redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
            elif self.kind == "fdb":
                import fdb  # noqa: F401
        except Exception as exc:  # any failure means "not here", said in the table
            return f"{type(exc).__name__}: {exc}"
        return None

    def settings(self) -> str:
        """The durability setting this target's figures were produced with."""
        try:
            return _SETTINGS[self.kind](self)
        except Exception as exc:  # reported, never fatal
            return f"unknown ({type(exc).__name__})"


def _pg_dsn() -> str:
    return POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")


def _mysql_args() -> dict[str, Any]:
    from urllib.parse import urlsplit

    parts = urlsplit(MYSQL_URL)
    return {"host": parts.hostname or "127.0.0.1", "port": parts.port or 3306,
            "user": parts.username or "root", "password": parts.password or "",
            "database": parts.path.lstrip("/") or "test"}


def _sqlite_settings(target: Target) -> str:
    return f"WAL, synchronous={target.query.get('synchronous', 'full').upper()}"


def _pg_settings(target: Target) -> str:
    import psycopg

    with psycopg.connect(_pg_dsn()) as conn:
        values = {name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                  for name in ("fsync", "synchronous_commit")}
    values["synchronous_commit"] = target.query.get("synchronous_commit",
                                                    values["synchronous_commit"])
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _mysql_settings(target: Target) -> str:
    import pymysql

    conn = pymysql.connect(**_mysql_args())
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@innodb_flush_log_at_trx_commit, @@sync_binlog")
            flush, sync = cur.fetchone()
    finally:
        conn.close()
    return f"innodb_flush_log_at_trx_commit={flush}, sync_binlog={sync}"


def _redis_settings(target: Target) -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        aof = client.config_get("appendonly").get("appendonly")
        fsync = client.config_get("appendfsync").get("appendfsync")
        save = client.config_get("save").get("save")
    finally:
        client.close()
    if aof == "yes":
        return f"AOF appendfsync={fsync}"
    return "no AOF" + (f", RDB save '{save}'" if save else ", no persistence")


_SETTINGS: dict[str, Callable[[Target], str]] = {
    "sqlite": _sqlite_settings,
    "postgresql": _pg_settings,
    "mysql": _mysql_settings,
    "redis": _redis_settings,
    "fdb": lambda target: "simulator (in-process, relative only)",
}

TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("sqlite", "sqlite"),
    Target("sqlite-normal", "sqlite", {"synchronous": "normal"}),
    # Wake-ups off: the A/B of the data_version watcher (idle workers poll instead).
    Target("sqlite-poll", "sqlite", {"notify": "false"}),
    Target("postgresql", "postgresql"),
    Target("mysql", "mysql"),
    Target("redis", "redis"),
    Target("fdb-sim", "fdb", in_process=True),
]}
