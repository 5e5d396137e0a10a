"""The SQL store's schema: one ``MetaData`` for every dialect, and versioned migrations.

Tables (every name carries the store's ``prefix``, default ``squidie_``, and lives in the
optional ``schema``):

``{prefix}schema``
    One row per component: the schema version installed (``squidie``) and when.
``{prefix}facts``
    The journal. Primary key ``(run_id, seq)``: two writers appending the same sequence
    collide on it, which is what turns a race into an ``AppendConflict``.
``{prefix}checkpoints``
    One folded state per run, replaced only by a newer (higher ``seq``) one.
``{prefix}runs``
    The run index behind ``list_runs``: one row per run, with indexes for
    ``(created_at, run_id)`` alone and behind ``workflow``, ``status`` or both, so every
    listing is an index range scan read newest first.
``{prefix}dispatches``
    Delivery. ``lane`` is the queue while the dispatch is deliverable (pending, or claimed
    under a lease that will expire) and ``NULL`` once settled; ``eligible_at`` is when it
    becomes claimable (``visible_at`` when pending, the lease's expiry when claimed). The
    claim index ``(lane, priority, eligible_at, dkey)`` (partial, ``lane IS NOT NULL``, where
    the dialect has partial indexes) therefore holds only live work, in claim order:
    finished dispatches never slow a claim down, however many accumulate.
``{prefix}counters``
    Monotonic counters (the dead-letter order).

Migrations are a list of ``Migration`` steps, each with ``up`` and ``down``; ``install``
applies the pending ones under an install lock and records the version. The rules for
writing a new one (so upgrades stay online) are in ``docs/backends/sql.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

__all__ = [
    "COMPONENT",
    "ID_LENGTH",
    "KEY_LENGTH",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "Tables",
    "build_tables",
    "check_prefix",
]

#: The version of the schema this code writes and reads.
SCHEMA_VERSION = 1
#: The component name recorded in the ``schema`` table.
COMPONENT = "squidie"
#: Longest run id, workflow, step, trigger, queue or owner id accepted.
ID_LENGTH = 255
#: Longest dispatch key accepted.
KEY_LENGTH = 600
#: Longest queue name (``squidie_core.storage.QUEUE_NAME``).
QUEUE_LENGTH = 128

_PREFIX = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]{0,29})?$")


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is a safe table-name prefix, else raise ``ValueError``.

    Empty, or letters, digits and underscores starting with a letter or underscore, at
    most 30 characters (so every table and index name stays under PostgreSQL's 63 and
    MySQL's 64).
    """
    if not _PREFIX.match(prefix):
        raise ValueError(
            f"prefix {prefix!r} must be letters, digits and '_' (not starting with a digit), "
            "at most 30 characters"
        )
    return prefix


def _queue() -> sa.types.TypeEngine[str]:
    """A queue name: ASCII by contract (``QUEUE_NAME``), so the claim index stays within
    MySQL's 3,072-byte key limit next to a full-length dispatch key."""
    return (
        sa.String(QUEUE_LENGTH)
        .with_variant(postgresql.VARCHAR(QUEUE_LENGTH, collation="C"), "postgresql")
        .with_variant(
            mysql.VARCHAR(QUEUE_LENGTH, charset="ascii", collation="ascii_bin"),
            "mysql", "mariadb",
        )
    )


def _ident(length: int) -> sa.types.TypeEngine[str]:
    """A string compared byte for byte on every dialect (ids must never fold case)."""
    return (
        sa.String(length)
        .with_variant(postgresql.VARCHAR(length, collation="C"), "postgresql")
        .with_variant(
            mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
        )
    )


def _text() -> sa.types.TypeEngine[str]:
    """Unbounded text (MySQL's ``TEXT`` stops at 64 KiB, so use ``LONGTEXT`` there)."""
    return sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: the rowid alias


@dataclass(frozen=True)
class Tables:
    """The store's tables for one ``prefix`` and ``schema``.

    Attributes:
        metadata: The ``MetaData`` holding them.
        prefix: The table-name prefix.
        schema: The database schema (``None``: the connection's default).
        version: ``{prefix}schema``.
        facts: ``{prefix}facts``.
        checkpoints: ``{prefix}checkpoints``.
        runs: ``{prefix}runs``.
        dispatches: ``{prefix}dispatches``.
        counters: ``{prefix}counters``.
    """

    metadata: sa.MetaData
    prefix: str
    schema: str | None
    version: sa.Table
    facts: sa.Table
    checkpoints: sa.Table
    runs: sa.Table
    dispatches: sa.Table
    counters: sa.Table

    @property
    def data_tables(self) -> tuple[sa.Table, ...]:
        """Every table but the version table, in creation order."""
        return (self.facts, self.checkpoints, self.runs, self.dispatches, self.counters)


def build_tables(prefix: str = "squidie_", schema: str | None = None) -> Tables:
    """Build the schema definition for one ``prefix`` and ``schema``.

    Raises:
        ValueError: the prefix is not a safe identifier prefix.
    """
    p = check_prefix(prefix)
    md = sa.MetaData(schema=schema)
    mysql_opts: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin",
                  "mysql_engine": "InnoDB"}

    version = sa.Table(
        f"{p}schema", md,
        sa.Column("component", _ident(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("installed_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        **mysql_opts,
    )
    facts = sa.Table(
        f"{p}facts", md,
        sa.Column("run_id", _ident(ID_LENGTH), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("type", _ident(64), nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("body", _text(), nullable=False),
        **mysql_opts,
    )
    checkpoints = sa.Table(
        f"{p}checkpoints", md,
        sa.Column("run_id", _ident(ID_LENGTH), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("data", _text(), nullable=False),
        **mysql_opts,
    )
    runs = sa.Table(
        f"{p}runs", md,
        sa.Column("run_id", _ident(ID_LENGTH), primary_key=True),
        sa.Column("workflow", _ident(ID_LENGTH), nullable=False),
        sa.Column("trigger", _ident(ID_LENGTH), nullable=False),
        sa.Column("status", _ident(16), nullable=False),
        sa.Column("queue", _queue(), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("parent_run_id", _ident(ID_LENGTH), nullable=True),
        sa.Index(f"{p}runs_created", "created_at", "run_id"),
        sa.Index(f"{p}runs_workflow", "workflow", "created_at", "run_id"),
        sa.Index(f"{p}runs_status", "status", "created_at", "run_id"),
        sa.Index(f"{p}runs_workflow_status", "workflow", "status", "created_at", "run_id"),
        **mysql_opts,
    )
    live = sa.text("lane IS NOT NULL")
    dead = sa.text("dead_order IS NOT NULL")
    dispatches = sa.Table(
        f"{p}dispatches", md,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("dkey", _ident(KEY_LENGTH), nullable=False),
        sa.Column("run_id", _ident(ID_LENGTH), nullable=False),
        sa.Column("workflow", _ident(ID_LENGTH), nullable=False),
        sa.Column("step", _ident(ID_LENGTH), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("queue", _queue(), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("max_deliveries", sa.Integer, nullable=False),
        sa.Column("delay", sa.Double, nullable=False),
        # pending | claimed | completed | failed | dead_lettered
        sa.Column("state", _ident(16), nullable=False),
        sa.Column("visible_at", sa.Double, nullable=False),
        sa.Column("lane", _queue(), nullable=True),
        sa.Column("eligible_at", sa.Double, nullable=True),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("fence", sa.BigInteger, nullable=False),
        sa.Column("owner_id", _ident(ID_LENGTH), nullable=True),
        sa.Column("token_hash", _ident(64), nullable=True),
        sa.Column("lease_expires_at", sa.Double, nullable=True),
        sa.Column("reason", _text(), nullable=True),
        sa.Column("dead_order", sa.BigInteger, nullable=True),
        # One JSON object per line, oldest first.
        sa.Column("history", _text(), nullable=False),
        sa.Index(f"{p}dispatches_key", "dkey", unique=True),
        sa.Index(f"{p}dispatches_run", "run_id", "id"),
        sa.Index(
            f"{p}dispatches_claim", "lane", "priority", "eligible_at", "dkey",
            postgresql_where=live, sqlite_where=live,
        ),
        sa.Index(
            f"{p}dispatches_dead", "dead_order",
            postgresql_where=dead, sqlite_where=dead,
        ),
        # Not partial: it also serves the loose scan for distinct queue names (``depth``).
        sa.Index(f"{p}dispatches_queue", "queue", "dead_order"),
        **mysql_opts,
    )
    counters = sa.Table(
        f"{p}counters", md,
        sa.Column("name", _ident(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
        **mysql_opts,
    )
    return Tables(md, p, schema, version, facts, checkpoints, runs, dispatches, counters)


# --------------------------------------------------------------------------- migrations


@dataclass(frozen=True)
class Migration:
    """One schema version step.

    Attributes:
        version: The version this step brings the schema to.
        description: One line for ``doctor`` and logs.
        up: Applies the step (``up(conn, tables)``); idempotent where the dialect allows.
        down: Reverts it.
    """

    version: int
    description: str
    up: Callable[[sa.Connection, Tables], None]
    down: Callable[[sa.Connection, Tables], None]


def _v1_up(conn: sa.Connection, t: Tables) -> None:
    for table in t.data_tables:
        table.create(conn, checkfirst=True)
    exists = conn.execute(
        sa.select(t.counters.c.name).where(t.counters.c.name == "dead_order")
    ).first()
    if exists is None:
        conn.execute(sa.insert(t.counters).values(name="dead_order", value=0))


def _v1_down(conn: sa.Connection, t: Tables) -> None:
    for table in reversed(t.data_tables):
        table.drop(conn, checkfirst=True)


#: Every migration, in version order; the last one's version is ``SCHEMA_VERSION``.
MIGRATIONS: Sequence[Migration] = (
    Migration(1, "journal, checkpoints, run index, dispatches, counters", _v1_up, _v1_down),
)
