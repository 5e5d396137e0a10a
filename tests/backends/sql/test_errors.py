"""The one driver-error boundary: every known driver exception maps to a Squidie error."""

from __future__ import annotations

import inspect
import sqlite3
from types import ModuleType

import psycopg
import psycopg.errors
import pymysql
import pymysql.err
import pytest
import sqlalchemy as sa

from squidie_backends.sql import SQLStore
from squidie_backends.sql._dialects import MySQLDialect, PostgresDialect, SQLiteDialect
from squidie_backends.sql._errors import category_of, map_errors, translate
from squidie_core.errors import (
    BackendUnavailable,
    ConflictError,
    InvalidArgument,
    SquidieError,
    StoreError,
)

EXPECTED = {
    "IntegrityError": ConflictError,
    "DataError": InvalidArgument,
    "OperationalError": BackendUnavailable,
    "InterfaceError": BackendUnavailable,
}


def _exception_classes(*modules: ModuleType) -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module in modules:
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Exception) and obj.__module__.split(".")[0] in (
                "sqlite3", "psycopg", "pymysql", "_sqlite3",
            ):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    # psycopg.Rollback is control flow (it ends a psycopg ``transaction()`` block), never
    # raised out of a query; the store does not use psycopg's transaction blocks.
    found.pop("psycopg.Rollback", None)
    return list(found.values())


DRIVER_CLASSES = _exception_classes(sqlite3, psycopg, psycopg.errors, pymysql, pymysql.err)


def _make(cls: type[BaseException]) -> BaseException:
    try:
        return cls("boom")
    except TypeError:
        return cls.__new__(cls)


def test_the_driver_classes_are_really_enumerated() -> None:
    names = {c.__name__ for c in DRIVER_CLASSES}
    assert {"UniqueViolation", "DeadlockDetected", "SerializationFailure"} <= names
    assert len(DRIVER_CLASSES) > 200  # psycopg.errors has one class per SQLSTATE


@pytest.mark.parametrize("cls", DRIVER_CLASSES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_every_driver_exception_is_mapped(cls: type[BaseException]) -> None:
    exc = _make(cls)
    category = category_of(exc)
    assert category is not None, f"{cls} has no PEP 249 category: it would escape unmapped"
    for raised in (exc, sa.exc.DBAPIError.instance("SELECT 1", {}, exc, Exception)):
        with pytest.raises(SquidieError) as info, map_errors("test"):
            raise raised
        assert info.value.__cause__ is raised
        assert isinstance(info.value, EXPECTED.get(category, StoreError))


@pytest.mark.parametrize("cls", [
    sa.exc.TimeoutError, sa.exc.DisconnectionError, sa.exc.ResourceClosedError,
    sa.exc.ArgumentError, sa.exc.CompileError, sa.exc.NoSuchTableError,
])
def test_sqlalchemy_errors_are_mapped(cls: type[BaseException]) -> None:
    with pytest.raises(SquidieError) as info, map_errors("test"):
        raise cls("boom")
    unavailable = cls in (sa.exc.TimeoutError, sa.exc.DisconnectionError)
    assert isinstance(info.value, BackendUnavailable if unavailable else StoreError)


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(KeyError), map_errors("test"):
        raise KeyError("not a database problem")
    with pytest.raises(UserWarning), map_errors("test"):
        raise UserWarning("builtin warnings are not PEP 249 warnings")


def test_messages_hide_secrets_and_statements() -> None:
    orig = psycopg.OperationalError('connection failed: password "hunter2" rejected')
    wrapped = sa.exc.DBAPIError.instance("SELECT secret_column", {"p": "x"}, orig, Exception)
    error = translate(wrapped, "postgresql", secrets=("hunter2",))
    assert "hunter2" not in str(error) and "***" in str(error)
    assert "secret_column" not in str(error)


def test_unique_and_transient_detection_per_dialect() -> None:
    pg, my, lite = PostgresDialect(), MySQLDialect(), SQLiteDialect()
    assert pg.is_unique_violation(psycopg.errors.UniqueViolation("dup"))
    assert not pg.is_unique_violation(psycopg.errors.ForeignKeyViolation("fk"))
    for transient in (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected,
                      psycopg.errors.AdminShutdown):
        assert pg.is_transient(transient("x"))
    assert pg.is_transient(psycopg.OperationalError("connection reset"))
    assert not pg.is_transient(psycopg.errors.UniqueViolation("dup"))
    assert my.is_unique_violation(pymysql.err.IntegrityError(1062, "Duplicate entry"))
    assert my.is_transient(pymysql.err.OperationalError(1213, "Deadlock found"))
    assert my.is_transient(pymysql.err.OperationalError(2013, "Lost connection"))
    assert not my.is_transient(pymysql.err.ProgrammingError(1146, "no table"))
    busy = sqlite3.OperationalError("database is locked")
    assert lite.is_transient(busy)
    # Regression (reliability campaign): WAL's SQLITE_PROTOCOL under crashes/contention.
    protocol = sqlite3.OperationalError("locking protocol")
    assert lite.is_transient(protocol)
    protocol.sqlite_errorcode = 15  # type: ignore[attr-defined]
    assert lite.is_transient(protocol)
    assert lite.is_unique_violation(sqlite3.IntegrityError("UNIQUE constraint failed: t.k"))
    assert not lite.is_transient(sqlite3.OperationalError("no such table: x"))


def test_real_unreachable_server_is_backend_unavailable() -> None:
    url = "postgresql://squidie:s3cr3t-pw@127.0.0.1:1/none?connect_timeout=1"
    with pytest.raises(BackendUnavailable) as info:
        SQLStore(url, retry_attempts=2)
    assert "s3cr3t-pw" not in str(info.value)
    assert "s3cr3t-pw" not in repr(info.value.to_dict())


def test_real_sqlite_busy_is_retried_then_unavailable(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/busy.db?busy_timeout=0.05&retry_attempts=2"
    store = SQLStore(url)
    blocker = sqlite3.connect(f"{tmp_path}/busy.db", isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(BackendUnavailable, match="locked"):
            store.append("r", [], 0)
        blocker.execute("ROLLBACK")
        assert store.append("r", [], 0) == 0  # and works again once the lock is gone
    finally:
        blocker.close()
        store.close()


@pytest.mark.parametrize("stores", [1, 2], ids=["one store", "two stores on one file"])
def test_sqlite_writers_in_one_process_queue_in_process_not_on_the_busy_handler(
        tmp_path: object, stores: int) -> None:
    """A second writer waits for the first without sending BEGIN: no busy polling."""
    import threading

    from sqlalchemy import event

    opened = [SQLStore(f"sqlite:///{tmp_path}/queue.db") for _ in range(stores)]
    sent: list[tuple[str, str]] = []  # (thread, statement) as SQLite starts running it

    def trace(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.set_trace_callback(
            lambda sql: sent.append((threading.current_thread().name, sql)))

    for store in opened:
        event.listen(store._engine, "connect", trace)
        store._engine.dispose()  # every connection from now on is traced
    holding, release = threading.Event(), threading.Event()

    def write(hold: bool) -> None:
        store = opened[-1] if not hold else opened[0]
        dialect, engine = store._config.dialect, store._engine
        with engine.connect() as conn, dialect.transaction(conn, write=True):
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
            if hold:
                holding.set()
                release.wait(10)

    def begins() -> list[str]:
        return [name for name, sql in sent if sql.startswith("BEGIN")]

    first = threading.Thread(target=write, args=(True,), name="first")
    second = threading.Thread(target=write, args=(False,), name="second")
    try:
        first.start()
        assert holding.wait(10)
        second.start()
        second.join(0.3)  # on SQLite's busy handler it would have sent BEGIN by now
        assert second.is_alive() and begins() == ["first"]
    finally:
        release.set()
        first.join(10)
        second.join(10)
        for store in opened:
            store.close()
    assert begins() == ["first", "second"]


def test_a_forked_child_does_not_inherit_a_held_sqlite_writer_lock(tmp_path: object) -> None:
    """A thread of the parent holds the writer queue at fork(): the child, which has no
    such thread, finds the queue free instead of waiting out the busy timeout."""
    import os
    import threading

    store = SQLStore(f"sqlite:///{tmp_path}/fork.db")
    queue = store._config.dialect._writer  # type: ignore[attr-defined]
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with queue.lock:
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10) and queue.lock.locked()
        pid = os.fork()
        if pid == 0:  # the child: no pytest, no store use, just the verdict
            os._exit(0 if queue.lock.acquire(blocking=False) else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert queue.lock.locked()  # the parent's own lock is untouched
    finally:
        release.set()
        holder.join(10)
        store.close()
