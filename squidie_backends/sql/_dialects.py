"""The narrow hooks where SQLite, PostgreSQL and MySQL/MariaDB differ.

Everything else in the store is one code path over SQLAlchemy Core. A dialect answers:

- how to build its engine (driver, pool, per-connection settings);
- how to open a read or a write transaction (``BEGIN IMMEDIATE`` on SQLite);
- how to lock the rows a claim takes (``FOR UPDATE SKIP LOCKED``; nothing on SQLite,
  whose write transactions are already serialised) and the run rows an enqueue reads
  (``FOR SHARE``);
- how to upsert (``ON CONFLICT`` / ``ON DUPLICATE KEY UPDATE``);
- which driver errors are a unique violation, and which are transient;
- how to serialise concurrent schema installs (an advisory lock).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL

from squidie_core.errors import StoreError

__all__ = ["Dialect", "DriverRead", "MySQLDialect", "PostgresDialect", "SQLiteDialect",
           "dialect_for", "read_each"]


def _orig(exc: BaseException) -> BaseException:
    """The driver exception behind a SQLAlchemy wrapper (or ``exc`` itself)."""
    return getattr(exc, "orig", None) or exc


#: A statement in the driver's own form: its text and its parameters, as
#: ``Connection.exec_driver_sql`` takes them.
DriverRead = tuple[str, Any]


def read_each(conn: sa.Connection, reads: Sequence[DriverRead]) -> list[list[Any]]:
    """The rows of ``reads``, run one by one on ``conn``, one list per read."""
    return [list(conn.exec_driver_sql(sql, params)) for sql, params in reads]


class Dialect:
    """The hooks; subclasses override what differs. See the module docstring."""

    name: ClassVar[str] = "sql"
    #: The SQLAlchemy driver the public scheme is normalised to.
    driver: ClassVar[str] = ""
    #: Whether a claim locks its rows with ``FOR UPDATE SKIP LOCKED``.
    skip_locked: ClassVar[bool] = True
    #: The multi-row writes (``SQLStore._writes`` kinds) sent as the driver's
    #: ``executemany`` of their one-row statement rather than as one statement built per
    #: number of rows: where that costs no round trip per row, it saves compiling a
    #: statement for every row count a batch happens to have (a 64-row one takes
    #: SQLAlchemy 4 to 25 ms).
    many_rows: ClassVar[frozenset[str]] = frozenset()

    @property
    def pipelines(self) -> bool:
        """Whether the driver sends several statements in one round trip (a psycopg
        pipeline: PostgreSQL, with libpq 14 or newer)."""
        return False

    @staticmethod
    def queue_read(raw: Any, read: DriverRead) -> Any:
        """Send ``read`` in the pipeline open on the driver connection ``raw``; its
        cursor, whose rows are named tuples once the pipeline has synced (only where
        ``pipelines``)."""
        raise NotImplementedError("no pipelines on this dialect")

    # ------------------------------------------------------------------ engine

    def engine_url(self, url: URL) -> URL:
        """Return ``url`` with the driver this dialect uses."""
        return url.set(drivername=self.driver)

    def engine_kwargs(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for ``sqlalchemy.create_engine``."""
        # Every use of a connection ends its transaction itself (commit or rollback), so
        # the pool's extra rollback on check-in is a wasted round trip.
        return {"pool_size": int(options.get("pool_size", 5)), "max_overflow": 10,
                "pool_recycle": 3600, "pool_reset_on_return": None}

    def prepare_engine(self, engine: sa.Engine, options: Mapping[str, Any]) -> None:
        """Attach per-connection settings to a new engine (default: nothing)."""

    def check_server(self, conn: sa.Connection) -> None:
        """Raise ``StoreError`` if the server lacks what the store needs (default: fine)."""

    # ------------------------------------------------------------------ transactions

    @contextlib.contextmanager
    def transaction(self, conn: sa.Connection, *, write: bool, batch: bool = False,
                    reads: Sequence[DriverRead] = ()) -> Iterator[list[list[Any]]]:
        """Run the body in one transaction, committed on success, rolled back on error.

        ``batch``: the body looks up many keys at once (a batch's reads, a group commit);
        a dialect may steer its planner towards the indexes for it. ``reads``: driver
        statements (text and parameters) run first, in order; the block gets their rows,
        one list per read, each row by attribute and by position. A dialect may send them
        with the transaction's start (PostgreSQL: one round trip for all of them).
        """
        with conn.begin():
            yield read_each(conn, reads)

    @contextlib.contextmanager
    def autocommit(self, conn: sa.Connection) -> Iterator[None]:
        """Inside a transaction not yet started at the server: each statement of the
        block commits on its own, saving the ``BEGIN`` and ``COMMIT`` round trips, and
        the enclosing transaction's commit is then a no-op (default: no change, the
        statements run in the transaction). For a block of one statement, or of reads
        that need no more than ``READ COMMITTED`` gives each statement."""
        yield

    def any_of(self, column: sa.ColumnElement[Any], name: str) -> sa.ColumnElement[bool]:
        """``column`` is one of the list bound as ``name``: an ``IN`` list, expanded per
        execution to one parameter per value."""
        return column.in_(sa.bindparam(name, expanding=True))

    def lock_claim(self, select: sa.Select[Any]) -> sa.Select[Any]:
        """Lock the rows a claim selects, skipping rows other claimers hold."""
        return select.with_for_update(skip_locked=True)

    def lock_shared(self, select: sa.Select[Any]) -> sa.Select[Any]:
        """Take a shared lock on the rows read (a run row an enqueue depends on)."""
        return select.with_for_update(read=True)

    def lock_update(self, select: sa.Select[Any]) -> sa.Select[Any]:
        """Lock the rows read for update, waiting for other holders (the leases a group
        commit settles)."""
        return select.with_for_update()

    @contextlib.contextmanager
    def install_lock(self, conn: sa.Connection) -> Iterator[None]:
        """Serialise schema installs and upgrades (default: no lock)."""
        yield

    # ------------------------------------------------------------------ statements

    def upsert(
        self,
        table: sa.Table,
        row: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        key: Sequence[str],
        *,
        guard: str | None = None,
    ) -> sa.Insert:
        """Insert ``row`` (or several rows, one ``VALUES`` list each, with distinct keys),
        or update the existing row with the same ``key``.

        With ``guard``, the existing row is updated only when ``row[guard]`` is at least
        the stored value (a newer checkpoint replaces an older one, never the reverse).
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ errors

    def is_unique_violation(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a primary-key or unique-index violation."""
        raise NotImplementedError

    def is_transient(self, exc: BaseException) -> bool:
        """Whether retrying the whole transaction may succeed (busy, deadlock, reset)."""
        return bool(getattr(exc, "connection_invalidated", False))


_I = TypeVar("_I", bound=sa.Insert)


def _insert(make: Callable[[sa.Table], _I], table: sa.Table,
            row: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> tuple[_I, list[str]]:
    """A dialect's ``INSERT`` of one row or several, and the row's column names. One row
    keeps the one-row form: SQLAlchemy caches it, not the multi-row one."""
    rows = [dict(row)] if isinstance(row, Mapping) else [dict(r) for r in row]
    return make(table).values(rows if len(rows) > 1 else rows[0]), list(rows[0])


class _WriterQueue:
    """The in-process writer lock of one SQLite database file."""

    __slots__ = ("lock",)

    def __init__(self) -> None:
        self.lock = threading.Lock()


_WRITERS: dict[str, _WriterQueue] = {}
_WRITERS_GUARD = threading.Lock()


def _writer_for(database: str) -> _WriterQueue:
    """The writer queue of a SQLite database file (one per real path)."""
    key = os.path.realpath(database)
    with _WRITERS_GUARD:
        return _WRITERS.setdefault(key, _WriterQueue())


def _fresh_writers_after_fork() -> None:
    # A child of fork() has none of its parent's threads: a lock one of them held would
    # stay held for ever, and every write of the child wait out the busy timeout.
    global _WRITERS_GUARD
    _WRITERS_GUARD = threading.Lock()
    for queue in _WRITERS.values():
        queue.lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_writers_after_fork)


class SQLiteDialect(Dialect):
    """SQLite through the standard library's ``sqlite3`` (file databases only).

    WAL mode, ``synchronous=FULL`` by default (``NORMAL`` on request), and every write
    transaction opened with ``BEGIN IMMEDIATE`` so that writers queue on the busy timeout
    instead of deadlocking on a lock upgrade; the writers of one process on one file
    queue on a lock of their own first. Reads open a deferred transaction: in WAL mode
    they see one snapshot and never block a writer.
    """

    name = "sqlite"
    driver = "sqlite+pysqlite"
    skip_locked = False
    # In process: an ``executemany`` is one C loop over one prepared statement.
    many_rows = frozenset({"facts", "dispatches", "runs", "checkpoints", "settle", "take",
                           "fail_others"})

    # SQLITE_BUSY, SQLITE_LOCKED, SQLITE_PROTOCOL (extended codes masked). PROTOCOL is
    # WAL's "locking protocol" race, seen when a process is killed mid-transaction while
    # others contend for the wal-index: retrying the transaction succeeds.
    _BUSY = frozenset({5, 6, 15})
    _UNIQUE = frozenset({1555, 2067})  # SQLITE_CONSTRAINT_PRIMARYKEY, _UNIQUE

    def check_server(self, conn: sa.Connection) -> None:
        # A batch's reads walk their runs with json_each (built in since SQLite 3.38,
        # and in most earlier builds as JSON1).
        try:
            conn.exec_driver_sql("SELECT count(*) FROM json_each('[]')").scalar()
            conn.rollback()  # the probe's autobegun transaction
        except sa.exc.OperationalError as exc:
            version = ".".join(map(str, conn.dialect.server_version_info or ()))
            raise StoreError(
                "the SQL store needs SQLite's JSON functions (json_each: SQLite 3.38 or "
                f"newer, or an earlier build with JSON1); this SQLite is {version}"
            ) from exc

    def engine_kwargs(self, options: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "pool_size": int(options.get("pool_size", 5)),
            "max_overflow": 10,
            "pool_reset_on_return": None,
            "connect_args": {
                "check_same_thread": False,
                "timeout": float(options.get("busy_timeout", 10.0)),
                "isolation_level": None,  # we issue BEGIN ourselves
            },
        }

    def __init__(self) -> None:
        # Writers in this process queue here, not on SQLite's busy handler, which polls:
        # it sleeps 1, 2, 5, 10 ms... between tries, so a slot that found the lock taken
        # by a commit of a millisecond slept for several. One lock per database file,
        # shared by every store of the process on that file.
        self._writer = _WriterQueue()
        self._writer_wait = 10.0

    def prepare_engine(self, engine: sa.Engine, options: Mapping[str, Any]) -> None:
        synchronous = str(options.get("synchronous", "full")).upper()
        self._writer_wait = float(options.get("busy_timeout", 10.0))
        self._writer = _writer_for(str(engine.url.database))

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            try:
                mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"SQLite refused WAL mode (journal_mode is {mode})")
                cursor.execute(f"PRAGMA synchronous={synchronous}")
                cursor.execute("PRAGMA foreign_keys=OFF")
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            # Straight to the driver: a BEGIN through SQLAlchemy's statement machinery
            # cost as much Python as a start's INSERT. The mode is consumed, so a later
            # implicit begin on this pooled connection is DEFERRED again.
            mode = conn.info.pop("squidie_begin", "DEFERRED")
            conn.connection.driver_connection.execute(f"BEGIN {mode}")  # type: ignore[union-attr]

    @contextlib.contextmanager
    def transaction(self, conn: sa.Connection, *, write: bool, batch: bool = False,
                    reads: Sequence[DriverRead] = ()) -> Iterator[list[list[Any]]]:
        conn.info["squidie_begin"] = "IMMEDIATE" if write else "DEFERRED"
        # A writer that waited out the busy timeout here goes on to SQLite's own wait
        # (and its error) rather than failing on the queue: never worse than before.
        lock = self._writer.lock
        queued = write and lock.acquire(timeout=self._writer_wait)
        try:
            with conn.begin():
                yield read_each(conn, reads)
        finally:
            if queued:
                lock.release()

    def lock_claim(self, select: sa.Select[Any]) -> sa.Select[Any]:
        return select  # the write transaction already holds the database's write lock

    def lock_shared(self, select: sa.Select[Any]) -> sa.Select[Any]:
        return select

    def lock_update(self, select: sa.Select[Any]) -> sa.Select[Any]:
        return select

    @contextlib.contextmanager
    def install_lock(self, conn: sa.Connection) -> Iterator[None]:
        # DDL is transactional in SQLite: the IMMEDIATE transaction is the lock.
        yield

    def upsert(
        self,
        table: sa.Table,
        row: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        key: Sequence[str],
        *,
        guard: str | None = None,
    ) -> sa.Insert:
        stmt, columns = _insert(sqlite_dialect.insert, table, row)
        updates = {c: stmt.excluded[c] for c in columns if c not in key}
        where = table.c[guard] <= stmt.excluded[guard] if guard else None
        return stmt.on_conflict_do_update(index_elements=list(key), set_=updates, where=where)

    @staticmethod
    def _code(exc: BaseException) -> int | None:
        code = getattr(_orig(exc), "sqlite_errorcode", None)
        return int(code) if code is not None else None

    def is_unique_violation(self, exc: BaseException) -> bool:
        code = self._code(exc)
        if code is not None:
            return code in self._UNIQUE
        return "UNIQUE constraint failed" in str(_orig(exc))

    def is_transient(self, exc: BaseException) -> bool:
        code = self._code(exc)
        if code is not None and (code & 0xFF) in self._BUSY:
            return True
        text = str(_orig(exc)).lower()
        return ("database is locked" in text or "database is busy" in text
                or "locking protocol" in text)


class PostgresDialect(Dialect):
    """PostgreSQL through psycopg 3, in READ COMMITTED."""

    name = "postgresql"
    driver = "postgresql+psycopg"

    # serialization_failure, deadlock_detected, lock_not_available, admin/crash shutdown,
    # cannot_connect_now, and the connection-exception class 08.
    _TRANSIENT = frozenset({"40001", "40P01", "55P03", "57P01", "57P02", "57P03"})

    def engine_kwargs(self, options: Mapping[str, Any]) -> dict[str, Any]:
        kwargs = super().engine_kwargs(options)
        kwargs["isolation_level"] = "READ COMMITTED"
        return kwargs

    def prepare_engine(self, engine: sa.Engine, options: Mapping[str, Any]) -> None:
        mode = options.get("synchronous_commit")
        if mode is None:
            return  # the server's setting (on, unless the DBA changed it)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cursor:
                cursor.execute(f"SET synchronous_commit TO {mode}")
            dbapi_conn.commit()

    def check_server(self, conn: sa.Connection) -> None:
        version = conn.dialect.server_version_info or (0,)
        if tuple(version) < (9, 5):
            raise StoreError("the SQL store needs PostgreSQL 9.5 or newer (SKIP LOCKED)")

    @functools.cached_property
    def pipelines(self) -> bool:
        import psycopg

        return bool(psycopg.Pipeline.is_supported())

    @contextlib.contextmanager
    def transaction(self, conn: sa.Connection, *, write: bool, batch: bool = False,
                    reads: Sequence[DriverRead] = ()) -> Iterator[list[list[Any]]]:
        with conn.begin():
            if not write and not batch:
                # A read of one or two statements: in READ COMMITTED each statement
                # reads its own snapshot inside a transaction too, so autocommit changes
                # nothing it sees and saves two round trips of three.
                with self.autocommit(conn):
                    yield read_each(conn, reads)
                return
            if not batch:
                yield read_each(conn, reads)
                return
            # A batch looks up 16 or more keys by index (`key = ANY(...)`). Until
            # autovacuum first analyses a table, PostgreSQL has no statistics and prices
            # those lookups above a sequential scan of the whole table; a freshly
            # installed store then scans its tables on every batch (measured: 2 ms
            # instead of 0.3 ms per statement at 3,000 rows, growing with the table).
            # Every statement of a batch has an index to use.
            raw = conn.connection.driver_connection
            assert raw is not None
            if not self.pipelines:
                raw.execute("SET LOCAL enable_seqscan = off")
                yield read_each(conn, reads)
                return
            if write or not reads:
                # Pipelined, the setting and the reads travel with the transaction's
                # BEGIN: one round trip for all of them.
                with raw.pipeline():
                    raw.execute("SET LOCAL enable_seqscan = off")
                    cursors = [self.queue_read(raw, read) for read in reads]
                yield [cursor.fetchall() for cursor in cursors]
                return
            # A batch of reads and nothing else: no BEGIN and no COMMIT of their own.
            # Autocommitted in one pipeline, the statements up to its sync are one
            # implicit transaction, which the setting lasts for (``set_config``'s
            # ``is_local``; ``SET LOCAL`` would warn outside a ``BEGIN``): one round trip
            # instead of three.
            with self.autocommit(conn):
                with raw.pipeline():
                    raw.execute("SELECT set_config('enable_seqscan', 'off', true)")
                    cursors = [self.queue_read(raw, read) for read in reads]
                yield [cursor.fetchall() for cursor in cursors]

    @staticmethod
    def queue_read(raw: Any, read: DriverRead) -> Any:
        """Send ``read`` in the pipeline open on ``raw``; its cursor, whose rows are
        named tuples once the pipeline has synced."""
        from psycopg.rows import namedtuple_row

        cursor = raw.cursor(row_factory=namedtuple_row)
        cursor.execute(*read)
        return cursor

    @contextlib.contextmanager
    def autocommit(self, conn: sa.Connection) -> Iterator[None]:
        import psycopg

        raw = conn.connection.driver_connection
        if raw is None or raw.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            yield  # a statement ran already: the rest joins its transaction
            return
        raw.autocommit = True
        try:
            yield
        finally:
            try:
                raw.autocommit = False
            except psycopg.Error:
                # Broken mid-statement: never back to the pool in autocommit.
                conn.invalidate()

    def any_of(self, column: sa.ColumnElement[Any], name: str) -> sa.ColumnElement[bool]:
        # One array parameter: the statement's text is the same for any number of values,
        # so psycopg caches its conversion and the server prepares it (an expanded ``IN``
        # list of 64 keys is a new text of over 4 KB, which psycopg parses again on
        # every execution).
        return column == sa.any_(sa.bindparam(name, type_=pg_dialect.ARRAY(column.type)))

    @contextlib.contextmanager
    def install_lock(self, conn: sa.Connection) -> Iterator[None]:
        # A transaction-scoped advisory lock: released by the install's commit.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": 0x5C51D1E})
        yield

    def upsert(
        self,
        table: sa.Table,
        row: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        key: Sequence[str],
        *,
        guard: str | None = None,
    ) -> sa.Insert:
        stmt, columns = _insert(pg_dialect.insert, table, row)
        updates = {c: stmt.excluded[c] for c in columns if c not in key}
        where = table.c[guard] <= stmt.excluded[guard] if guard else None
        return stmt.on_conflict_do_update(index_elements=list(key), set_=updates, where=where)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return getattr(_orig(exc), "sqlstate", None) == "23505"

    def is_transient(self, exc: BaseException) -> bool:
        if super().is_transient(exc):
            return True
        orig = _orig(exc)
        state = getattr(orig, "sqlstate", None)
        if state is not None:
            return state in self._TRANSIENT or state.startswith("08")
        # No SQLSTATE: the connection failed before or while talking to the server.
        return type(orig).__name__ in ("OperationalError", "InterfaceError")


class MySQLDialect(Dialect):
    """MariaDB (10.6+) or MySQL (8.0.1+) through PyMySQL, in READ COMMITTED."""

    name = "mysql"
    driver = "mysql+pymysql"
    # PyMySQL's ``executemany`` of an ``INSERT ... VALUES (...)`` sends one multi-row
    # statement (up to 1 MB); of an UPDATE, one round trip per row: inserts only.
    many_rows = frozenset({"facts", "dispatches", "runs", "checkpoints"})

    # lock wait timeout, deadlock, can't connect, server gone away, lost connection,
    # connection killed, lost connection (read).
    _TRANSIENT = frozenset({1205, 1213, 2003, 2006, 2013, 2055, 1927, 4031})

    def engine_url(self, url: URL) -> URL:
        query = dict(url.query)
        query.setdefault("charset", "utf8mb4")
        return url.set(drivername=self.driver, query=query)

    def engine_kwargs(self, options: Mapping[str, Any]) -> dict[str, Any]:
        kwargs = super().engine_kwargs(options)
        kwargs["isolation_level"] = "READ COMMITTED"
        return kwargs

    def check_server(self, conn: sa.Connection) -> None:
        version = tuple(conn.dialect.server_version_info or (0,))
        mariadb = bool(getattr(conn.dialect, "is_mariadb", False))
        needed = (10, 6) if mariadb else (8, 0, 1)
        if version < needed:
            product = "MariaDB 10.6" if mariadb else "MySQL 8.0.1"
            raise StoreError(
                f"the SQL store needs {product} or newer (SELECT ... FOR UPDATE SKIP LOCKED); "
                f"this server is {'.'.join(map(str, version))}"
            )

    @contextlib.contextmanager
    def install_lock(self, conn: sa.Connection) -> Iterator[None]:
        # MySQL DDL commits implicitly, so a transaction cannot serialise installs: take a
        # named session lock instead and release it afterwards.
        got = conn.execute(sa.text("SELECT GET_LOCK('squidie_install', 60)")).scalar()
        if got != 1:
            raise StoreError("could not take the schema install lock within 60 s")
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT RELEASE_LOCK('squidie_install')"))

    def upsert(
        self,
        table: sa.Table,
        row: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        key: Sequence[str],
        *,
        guard: str | None = None,
    ) -> sa.Insert:
        stmt, columns = _insert(mysql_dialect.insert, table, row)
        cols = [c for c in columns if c not in key]
        if guard is None:
            return stmt.on_duplicate_key_update([(c, stmt.inserted[c]) for c in cols])
        newer = stmt.inserted[guard] >= table.c[guard]
        # Assignments apply left to right: update the guard column last.
        ordered = [c for c in cols if c != guard] + [guard]
        return stmt.on_duplicate_key_update(
            [(c, sa.case((newer, stmt.inserted[c]), else_=table.c[c])) for c in ordered]
        )

    @staticmethod
    def _errno(exc: BaseException) -> int | None:
        args = getattr(_orig(exc), "args", ())
        return args[0] if args and isinstance(args[0], int) else None

    def is_unique_violation(self, exc: BaseException) -> bool:
        return self._errno(exc) == 1062

    def is_transient(self, exc: BaseException) -> bool:
        return super().is_transient(exc) or self._errno(exc) in self._TRANSIENT


_BY_SCHEME: dict[str, type[Dialect]] = {
    "sqlite": SQLiteDialect,
    "postgresql": PostgresDialect,
    "postgres": PostgresDialect,
    "mysql": MySQLDialect,
    "mariadb": MySQLDialect,
}


def dialect_for(scheme: str) -> Dialect:
    """Return the dialect for a URL scheme (``postgresql+psycopg`` counts as ``postgresql``).

    Raises:
        ValueError: the scheme is not one the SQL store handles.
    """
    base = scheme.lower().split("+", 1)[0]
    if base not in _BY_SCHEME:
        raise ValueError(f"the SQL store does not handle scheme {scheme!r}")
    return _BY_SCHEME[base]()
