"""The SQL store: SQLite (embedded default), PostgreSQL and MariaDB/MySQL via SQLAlchemy Core.

Features: the whole storage contract in one schema for every dialect — a journal with
``(run_id, seq)`` conflicts, checkpoints, an indexed run listing, fenced leases claimed
with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL, MariaDB ≥ 10.6, MySQL ≥ 8.0.1) or under
SQLite's ``BEGIN IMMEDIATE`` write lock in WAL mode, delayed visibility, lease expiry
without a sweeper, priorities, dead letters and re-drive, and the atomic commit as one
database transaction. Transient errors are retried with bounded jittered backoff.

URLs::

    sqlite:///relative/path.db          sqlite:////absolute/path.db
    postgresql://user:password@host:5432/dbname      (also postgres://)
    mysql://user:password@host:3306/dbname           (also mariadb://)

Options (keyword arguments or URL query parameters; keywords win):

- ``prefix`` — table-name prefix (default ``squidie_``), to live beside an app's tables;
- ``schema`` — database schema (PostgreSQL) or database (MySQL) holding the tables;
- ``synchronous`` — SQLite durability: ``full`` (default) or ``normal``;
- ``auto_install`` — create or upgrade the schema on open (default ``true``);
- ``busy_timeout`` — SQLite seconds to wait for the write lock (default 10);
- ``pool_size`` — connections kept per process (default 5);
- ``retry_attempts`` — attempts per operation on transient errors (default 6).

In-memory SQLite (``sqlite://``) is refused: use ``memory://`` for a throwaway store.
The clock is injected (``clock=``, default the system clock) and passed to every query
as a parameter; the database's ``now()`` is never used. See ``docs/backends/sql.md``.

Public surface: ``SQLStore``, ``install``, ``downgrade``, ``uninstall``, ``doctor``,
``SchemaReport``, ``SCHEMA_VERSION``.
"""

from squidie_backends.sql._manage import SchemaReport, doctor, downgrade, install, uninstall
from squidie_backends.sql._schema import SCHEMA_VERSION
from squidie_backends.sql._store import SQLStore

__all__ = [
    "SCHEMA_VERSION",
    "SQLStore",
    "SchemaReport",
    "doctor",
    "downgrade",
    "install",
    "uninstall",
]
