"""Wake-ups: PostgreSQL's LISTEN/NOTIFY and SQLite's data_version watcher tell idle
workers that work arrived.

A hint, never needed for correctness: these tests check that it is sent when it should
be, not sent when the committing worker claims next anyway, survives its connection
being killed, and really shortens an idle worker's wait (its poll is set far beyond
the test's deadline).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import psycopg
import pytest
from _helpers import until
from three_steps import ThreeSteps

from squidie_backends.sql import SQLStore, uninstall
from squidie_backends.sql._notify import SqliteWakeUps
from squidie_core import Squidie, Worker
from squidie_core.errors import CapabilityNotSupported, InvalidArgument
from squidie_core.storage import Dispatch


@pytest.fixture
def pg_url(postgres_url: str, unique_name: str) -> Iterator[str]:
    url = f"{postgres_url}?prefix={unique_name}_&application_name={unique_name}"
    yield url
    uninstall(url)


def _listener(postgres_url: str, unique_name: str) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(postgres_url, autocommit=True)
    conn.execute(f'LISTEN "public.{unique_name}_wake"')
    return conn


def _payloads(conn: psycopg.Connection[tuple[object, ...]], timeout: float) -> list[str]:
    return [n.payload for n in conn.notifies(timeout=timeout)]


def _dispatch(run_id: str, *, queue: str = "default", delay: float = 0.0) -> Dispatch:
    return Dispatch(key=Dispatch.make_key(run_id, "s", 1), run_id=run_id, workflow="W",
                    step="s", attempt=1, queue=queue, delay=delay)


def _wait_listening(store: SQLStore) -> None:
    store.wait_for_work(["default"], 0.0)  # starts the listener thread
    assert store._wake is not None and store._wake.listening.wait(30)


def test_starts_notify_and_a_worker_s_own_commits_do_not(
        pg_url: str, postgres_url: str, unique_name: str) -> None:
    engine = Squidie.from_url(pg_url, workflows=[ThreeSteps])
    listener = _listener(postgres_url, unique_name)
    try:
        engine.start(ThreeSteps, "go", {"n": 1})
        assert _payloads(listener, 0.5) == ["default"]  # delivered at the start's commit
        assert engine.execute_next(owner_id="w") is not None  # commits the 2nd dispatch
        assert _payloads(listener, 0.5) == []  # the committing worker claims it itself
        engine.store.enqueue([_dispatch("r-x", queue="emails")])
        engine.store.enqueue([_dispatch("r-y", queue="later", delay=60)])
        assert _payloads(listener, 0.5) == ["emails"]  # delayed work announces nothing
    finally:
        listener.close()
        engine.close()


def test_a_waiter_wakes_on_another_store_s_start(pg_url: str) -> None:
    waiting, starting = SQLStore(pg_url), Squidie.from_url(pg_url, workflows=[ThreeSteps])
    try:
        _wait_listening(waiting)
        woke: list[bool] = []
        thread = threading.Thread(target=lambda: woke.append(
            waiting.wait_for_work(["default"], 30.0)))
        thread.start()
        starting.start(ThreeSteps, "go", {"n": 1})
        thread.join(30)
        assert woke == [True]  # False would mean it waited out the 30 s
        assert waiting.wait_for_work(["other"], 0.2) is False  # another queue: no hint
    finally:
        waiting.close()
        starting.close()


def test_the_listener_survives_its_connection_being_killed(
        pg_url: str, postgres_url: str, unique_name: str) -> None:
    store = SQLStore(pg_url)
    try:
        _wait_listening(store)
        assert store._wake is not None
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s AND query ILIKE 'LISTEN%%'",
                (unique_name,)).fetchone()
        assert killed is not None and killed[0] == 1
        wake = store._wake
        # It notices within 0.5 s, then reconnects.
        until(lambda: wake.connections >= 2, 20, "the listener to reconnect")
        assert wake.listening.wait(10)
        woke: list[bool] = []
        thread = threading.Thread(target=lambda: woke.append(
            store.wait_for_work(["default"], 30.0)))
        thread.start()
        store.enqueue([_dispatch("r-1")])
        thread.join(30)
        assert woke == [True]
    finally:
        store.close()


def _an_idle_worker_completes_a_run(engine: Squidie, starter: Squidie,
                                    waiting: Callable[[], bool]) -> None:
    """A worker whose poll is far beyond the deadline completes a run started elsewhere."""
    worker = Worker(engine, concurrency=1, poll_interval=600.0, max_poll_interval=600.0,
                    lease_for=30)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        until(waiting, 30, "the worker to wait for work")
        run = starter.start(ThreeSteps, "go", {"n": 1})
        until(lambda: (entry := starter.store.get_run(run.run_id)) is not None
              and entry.status == "completed",
              60, "the run to complete (polling alone would wait 300-600 s)")
    finally:
        worker.stop()
        thread.join(30)


def test_an_idle_worker_is_woken_well_before_its_poll(pg_url: str) -> None:
    engine = Squidie.from_url(pg_url, workflows=[ThreeSteps])
    try:
        assert isinstance(engine.store, SQLStore) and engine.store._wake is not None
        wake = engine.store._wake
        _an_idle_worker_completes_a_run(engine, engine, wake.listening.is_set)  # type: ignore[union-attr]
    finally:
        engine.close()


def test_notify_can_be_turned_off_and_mariadb_has_none(
        pg_url: str, mysql_url: str, tmp_path: object) -> None:
    for url in (pg_url, f"sqlite:///{tmp_path}/off.db"):
        store = SQLStore(url, notify=False)
        try:
            assert store.capabilities.wake_up is False
            with pytest.raises(CapabilityNotSupported):
                store.wait_for_work(["default"], 0.01)
        finally:
            store.close()
    with pytest.raises(InvalidArgument, match="notify"):
        SQLStore(mysql_url, notify=True)


# --------------------------------------------------------------------------- SQLite


def test_a_sqlite_waiter_wakes_on_another_connection_s_commit(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/wake.db"
    waiting, starting = SQLStore(url), Squidie.from_url(url, workflows=[ThreeSteps])
    try:
        assert waiting.capabilities.wake_up is True
        assert waiting.wait_for_work(["default"], 0.05) is False  # nothing committed
        assert waiting._wake is not None and waiting._wake.watching.wait(10)  # type: ignore[union-attr]
        woke: list[bool] = []
        thread = threading.Thread(target=lambda: woke.append(
            waiting.wait_for_work(["default"], 30.0)))
        thread.start()
        until(lambda: waiting._wake._waiters == 1, 10, "the waiter")  # type: ignore[union-attr]
        starting.start(ThreeSteps, "go", {"n": 1})
        thread.join(30)
        assert woke == [True]  # False would mean it waited out the 30 s
    finally:
        waiting.close()
        starting.close()


def test_a_sqlite_commit_during_a_claim_wakes_the_next_wait(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/race.db"
    waiting, other = SQLStore(url), SQLStore(url)
    try:
        assert waiting.wait_for_work(["default"], 0.05) is False  # starts the watcher
        assert isinstance(waiting._wake, SqliteWakeUps) and waiting._wake.watching.wait(10)
        assert waiting.claim("w", lease_for=30) == []
        # Work arrives after the claim looked and before the slot waits: the wait must
        # not sleep through it.
        other.enqueue([_dispatch("r-late")])
        woke: list[bool] = []
        waiter = threading.Thread(target=lambda: woke.append(
            waiting.wait_for_work(["default"], 30.0)))
        waiter.start()
        waiter.join(30)
        assert woke == [True]
    finally:
        waiting.close()
        other.close()


def test_an_idle_sqlite_worker_is_woken_well_before_its_poll(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/idle.db"
    engine = Squidie.from_url(url, workflows=[ThreeSteps])
    starter = Squidie.from_url(url, workflows=[ThreeSteps])
    try:
        assert isinstance(engine.store, SQLStore)
        wake = engine.store._wake
        assert isinstance(wake, SqliteWakeUps)
        _an_idle_worker_completes_a_run(engine, starter, lambda: wake._waiters == 1)
    finally:
        engine.close()
        starter.close()
