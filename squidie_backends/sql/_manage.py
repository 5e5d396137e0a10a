"""Schema management: install/upgrade, downgrade, uninstall and the drift report.

These are the functions ``squidie install --store URL`` and ``squidie doctor --store URL``
call. Every one takes the store's URL and the same options as the store (``prefix``,
``schema``...), so it manages exactly the tables that store would use.

Installs are idempotent and safe to run concurrently: the version is read and the
pending migrations applied under an install lock (a transaction-scoped advisory lock on
PostgreSQL, ``GET_LOCK`` on MySQL/MariaDB, the ``BEGIN IMMEDIATE`` write lock on
SQLite), so two processes installing at once apply each migration exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from squidie_backends.sql._config import Config, make_engine, parse_config
from squidie_backends.sql._errors import map_errors
from squidie_backends.sql._schema import (
    COMPONENT,
    MIGRATIONS,
    SCHEMA_VERSION,
    Migration,
    Tables,
    build_tables,
)
from squidie_core.errors import InvalidArgument, SchemaVersionError

__all__ = [
    "SchemaReport",
    "apply_migrations",
    "doctor",
    "downgrade",
    "install",
    "read_version",
    "uninstall",
]


@dataclass(frozen=True)
class SchemaReport:
    """What ``doctor`` found: the recorded version and any drift from the definition.

    Attributes:
        url: The store URL, password hidden.
        installed_version: The version recorded in the database (0: not installed).
        expected_version: The version this code speaks.
        missing_tables: Tables the definition has and the database lacks.
        missing_columns: ``table.column`` the definition has and the database lacks.
        unexpected_columns: ``table.column`` the database has and the definition lacks.
        missing_indexes: Indexes the definition has and the database lacks.
    """

    url: str
    installed_version: int
    expected_version: int
    missing_tables: tuple[str, ...] = ()
    missing_columns: tuple[str, ...] = ()
    unexpected_columns: tuple[str, ...] = ()
    missing_indexes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Whether the schema is installed at the expected version with no drift."""
        return not self.problems()

    def problems(self) -> list[str]:
        """Return one line per problem found (empty when ``ok``)."""
        found: list[str] = []
        if self.installed_version == 0:
            found.append("schema not installed: run `squidie install --store URL`")
        elif self.installed_version < self.expected_version:
            found.append(
                f"schema version {self.installed_version} is older than "
                f"{self.expected_version}: run `squidie install --store URL` to upgrade"
            )
        elif self.installed_version > self.expected_version:
            found.append(
                f"schema version {self.installed_version} is newer than this code "
                f"({self.expected_version}): upgrade squidie"
            )
        found += [f"missing table {t}" for t in self.missing_tables]
        found += [f"missing column {c}" for c in self.missing_columns]
        found += [f"unexpected column {c}" for c in self.unexpected_columns]
        found += [f"missing index {i}" for i in self.missing_indexes]
        return found

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "url": self.url,
            "installed_version": self.installed_version,
            "expected_version": self.expected_version,
            "ok": self.ok,
            "problems": self.problems(),
            "missing_tables": list(self.missing_tables),
            "missing_columns": list(self.missing_columns),
            "unexpected_columns": list(self.unexpected_columns),
            "missing_indexes": list(self.missing_indexes),
        }


def read_version(conn: sa.Connection, tables: Tables) -> int:
    """Return the recorded schema version (0 when the version table does not exist)."""
    if not sa.inspect(conn).has_table(tables.version.name, schema=tables.schema):
        return 0
    value = conn.execute(
        sa.select(tables.version.c.version).where(tables.version.c.component == COMPONENT)
    ).scalar()
    return int(value or 0)


def _record(conn: sa.Connection, tables: Tables, version: int) -> None:
    now = time.time()  # bookkeeping only: no lease or visibility decision reads it
    t = tables.version
    updated = conn.execute(
        sa.update(t).where(t.c.component == COMPONENT).values(version=version, updated_at=now)
    )
    if updated.rowcount == 0:
        conn.execute(sa.insert(t).values(component=COMPONENT, version=version,
                                         installed_at=now, updated_at=now))


def apply_migrations(
    config: Config,
    engine: sa.Engine,
    *,
    target: int | None = None,
    allow_down: bool = False,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> int:
    """Move the schema up or down to ``target`` (default: the latest) under the lock.

    Returns:
        The version recorded afterwards.

    Raises:
        SchemaVersionError: the database records a version newer than ``migrations``.
        InvalidArgument: ``target`` is not a known version, or is below the installed
            one without ``allow_down``.
    """
    latest = migrations[-1].version if migrations else 0
    goal = latest if target is None else target
    if not 0 <= goal <= latest:
        raise InvalidArgument("target", f"must be from 0 to {latest}")
    tables = build_tables(config.prefix, config.schema)
    dialect = config.dialect
    # Several processes may install at once (workers started together with
    # auto_install): a busy database or a deadlock is retried, whole.
    retrying = Retrying(retry=retry_if_exception(dialect.is_transient),
                        stop=stop_after_attempt(int(config.options["retry_attempts"])),
                        wait=wait_random_exponential(multiplier=0.05, max=1.0), reraise=True)
    with map_errors(dialect.name, config.secrets):
        for attempt in retrying:
            with attempt, engine.connect() as conn:
                dialect.check_server(conn)
                return _migrate(conn, config, tables, goal=goal, latest=latest,
                                allow_down=allow_down, migrations=migrations)
    raise AssertionError("unreachable: tenacity re-raises the last error")


def _migrate(conn: sa.Connection, config: Config, tables: Tables, *, goal: int,
             latest: int, allow_down: bool, migrations: Sequence[Migration]) -> int:
    """One attempt of ``apply_migrations``, in one transaction under the install lock."""
    dialect = config.dialect
    with dialect.transaction(conn, write=True), dialect.install_lock(conn):
        if config.schema is not None:
            conn.execute(sa.schema.CreateSchema(config.schema, if_not_exists=True))
        current = read_version(conn, tables)
        if current > latest:
            raise SchemaVersionError(
                f"the store at {config.public_url} has schema version {current}; this "
                f"code understands up to {latest}: upgrade squidie"
            )
        if goal > current:
            tables.version.create(conn, checkfirst=True)
            for migration in migrations:
                if current < migration.version <= goal:
                    migration.up(conn, tables)
                    _record(conn, tables, migration.version)
        elif goal < current:
            if not allow_down:
                raise InvalidArgument(
                    "target", f"the schema is at {current}, above {goal}; use downgrade"
                )
            for migration in reversed(migrations):
                if goal < migration.version <= current:
                    migration.down(conn, tables)
                    _record(conn, tables, migration.version - 1)
            if goal == 0:
                tables.version.drop(conn, checkfirst=True)
        return goal


def _with_engine(url: str, options: dict[str, Any]) -> tuple[Config, sa.Engine]:
    config = parse_config(url, options)
    return config, make_engine(config)


def install(url: str, *, target: int | None = None, **options: Any) -> int:
    """Create or upgrade the store's schema, idempotently; return the version installed.

    Args:
        url: The store URL (its query options, such as ``prefix``, apply).
        target: Stop at this version (default: the latest, ``SCHEMA_VERSION``).
        **options: Store options (``prefix``, ``schema``...).

    Raises:
        SchemaVersionError: the database already has a newer schema than this code.
    """
    config, engine = _with_engine(url, options)
    try:
        return apply_migrations(config, engine, target=target)
    finally:
        engine.dispose()


def downgrade(url: str, target: int, **options: Any) -> int:
    """Revert the schema to ``target`` (0 removes every table); return the version left.

    Downgrading drops what newer versions added, data included.
    """
    config, engine = _with_engine(url, options)
    try:
        return apply_migrations(config, engine, target=target, allow_down=True)
    finally:
        engine.dispose()


def uninstall(url: str, **options: Any) -> None:
    """Drop every table of the store (the whole schema, data included)."""
    downgrade(url, 0, **options)


def doctor(url: str, **options: Any) -> SchemaReport:
    """Compare the database with the schema definition and report any drift.

    Reports the recorded version and missing tables, columns and indexes (by name;
    column types are not compared). Changes nothing.
    """
    config, engine = _with_engine(url, options)
    tables = build_tables(config.prefix, config.schema)
    try:
        with map_errors(config.dialect.name, config.secrets), engine.connect() as conn:
            inspector = sa.inspect(conn)
            existing = set(inspector.get_table_names(schema=config.schema))
            version = read_version(conn, tables) if tables.version.name in existing else 0
            missing_tables: list[str] = []
            missing_columns: list[str] = []
            unexpected: list[str] = []
            missing_indexes: list[str] = []
            for table in (tables.version, *tables.data_tables):
                if table.name not in existing:
                    missing_tables.append(table.name)
                    continue
                have = {c["name"] for c in inspector.get_columns(table.name,
                                                                 schema=config.schema)}
                want = {c.name for c in table.columns}
                missing_columns += [f"{table.name}.{c}" for c in sorted(want - have)]
                unexpected += [f"{table.name}.{c}" for c in sorted(have - want)]
                indexes = {i["name"] for i in inspector.get_indexes(table.name,
                                                                   schema=config.schema)}
                missing_indexes += sorted(
                    str(i.name) for i in table.indexes if i.name not in indexes
                )
        return SchemaReport(
            url=config.public_url,
            installed_version=version,
            expected_version=SCHEMA_VERSION,
            missing_tables=tuple(missing_tables),
            missing_columns=tuple(missing_columns),
            unexpected_columns=tuple(unexpected),
            missing_indexes=tuple(missing_indexes),
        )
    finally:
        engine.dispose()
