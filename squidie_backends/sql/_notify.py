"""Wake-ups for idle workers, a hint never needed: PostgreSQL ``LISTEN``/``NOTIFY``, and
SQLite's ``data_version``.

PostgreSQL: writers that make a dispatch claimable at once from outside a worker (``enqueue``, and
commits that settle no lease: starts, child starts, approvals, resumes) send
``pg_notify(channel, queue)`` in their transaction (the store's ``_announcements``);
PostgreSQL delivers it at commit.
One listener thread per store holds a dedicated autocommit connection on ``LISTEN
channel`` and bumps a per-queue counter on each notification. ``wait`` blocks until a
counter of the waiter's queues moves past what the waiter last saw, or the timeout.

SQLite: a watcher thread, running only while a worker waits, reads ``PRAGMA
data_version`` on its own connection every 2 ms; the value moves whenever another
connection (any process) commits, and each move wakes the waiters. It cannot tell queues
apart, so any commit wakes every waiter, which then claims and, finding nothing, waits
again.

Missed hints cost latency, never correctness: workers still poll with their capped
backoff, which also finds delayed dispatches and expired leases (those send nothing).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

__all__ = ["PgWakeUps", "SqliteWakeUps", "channel_for"]

log = logging.getLogger("squidie.sql")

_Marks = tuple[int, tuple[int, ...]]


def channel_for(prefix: str, schema: str | None) -> str:
    """The notification channel of a store: one per schema and table prefix."""
    return f"{schema or 'public'}.{prefix}wake"


class _Hints:
    """What both wake-up sources share: the waiters' condition and counters, one
    background thread started by the first wait, and ``close``."""

    def __init__(self, thread_name: str) -> None:
        self._thread_name = thread_name
        self._cond = threading.Condition()
        self._epoch = 0
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._local = threading.local()

    def _background(self) -> None:
        raise NotImplementedError

    def _start(self) -> None:
        with self._cond:
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(target=self._background, daemon=True,
                                                name=self._thread_name)
                self._thread.start()

    def close(self) -> None:
        """Wake every waiter and stop the background thread (not joined: it notices
        within its own poll, and a store's ``close`` should not wait for that)."""
        self._closed.set()
        with self._cond:
            self._cond.notify_all()


class PgWakeUps(_Hints):
    """The listening side: a background thread and the per-queue counters it bumps."""

    def __init__(self, engine: sa.Engine, channel: str) -> None:
        super().__init__(f"squidie-listen-{channel}")
        self._engine = engine
        self.channel = channel
        self._counts: dict[str, int] = {}
        # _epoch is bumped on every (re)connect: hints may have been missed.
        #: Set while the listener holds ``LISTEN`` on the channel.
        self.listening = threading.Event()

    # ------------------------------------------------------------------ waiting side

    def _marks(self, queues: Sequence[str]) -> _Marks:
        return self._epoch, tuple(self._counts.get(q, 0) for q in queues)

    def before_claim(self, queues: Sequence[str]) -> None:
        """Remember what this thread has seen, so a hint sent during its claim counts."""
        if self._thread is not None:
            with self._cond:
                self._local.seen = (tuple(queues), self._marks(queues))

    def wait(self, queues: Sequence[str], timeout: float) -> bool:
        """Block up to ``timeout`` s until new work is announced on ``queues``."""
        self._start()
        names = tuple(queues)
        with self._cond:
            seen = getattr(self._local, "seen", None)
            self._local.seen = None
            marks = seen[1] if seen is not None and seen[0] == names else self._marks(names)
            return self._cond.wait_for(
                lambda: self._closed.is_set() or self._marks(names) != marks,
                max(timeout, 0.0),
            ) and not self._closed.is_set()

    @property
    def connections(self) -> int:
        """How many times the listener has connected (reconnects after a drop count)."""
        return self._epoch

    # ------------------------------------------------------------------ listening side

    def _bump(self, queue: str | None) -> None:
        with self._cond:
            if queue is None:
                self._epoch += 1
            else:
                self._counts[queue] = self._counts.get(queue, 0) + 1
            self._cond.notify_all()

    def _connect(self) -> Any:
        dialect = self._engine.dialect
        cargs, cparams = dialect.create_connect_args(self._engine.url)
        conn = dialect.connect(*cargs, **cparams)
        conn.autocommit = True
        return conn

    def _background(self) -> None:  # the listener
        from psycopg import sql

        backoff = 0.1
        while not self._closed.is_set():
            try:
                conn = self._connect()
            except Exception as exc:  # the server is down: try again, backing off
                log.debug("wake-up listener cannot connect: %s", type(exc).__name__)
                self._closed.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            try:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                self.listening.set()
                self._bump(None)
                while not self._closed.is_set():
                    for note in conn.notifies(timeout=0.5):
                        self._bump(note.payload)
            except Exception as exc:  # a dropped connection: reconnect
                if not self._closed.is_set():
                    log.debug("wake-up listener lost its connection: %s", type(exc).__name__)
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):  # closing a broken connection
                    conn.close()

#: How often the SQLite watcher reads ``data_version`` while someone waits.
_SQLITE_POLL = 0.002


class SqliteWakeUps(_Hints):
    """The SQLite watcher: ``data_version`` read every 2 ms while a worker waits."""

    def __init__(self, path: str) -> None:
        super().__init__("squidie-sqlite-watch")
        self._path = path
        self._waiters = 0
        #: Set while the watcher has its connection open.
        self.watching = threading.Event()

    def before_claim(self, queues: Sequence[str]) -> None:
        """Remember what this thread has seen, so a commit during its claim counts."""
        if self._thread is not None:
            with self._cond:
                self._local.seen = self._epoch

    def wait(self, queues: Sequence[str], timeout: float) -> bool:
        """Block up to ``timeout`` s until another connection commits."""
        self._start()
        with self._cond:
            seen = getattr(self._local, "seen", None)
            self._local.seen = None
            mark = self._epoch if seen is None else seen
            self._waiters += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(
                    lambda: self._closed.is_set() or self._epoch != mark, max(timeout, 0.0)
                ) and not self._closed.is_set()
            finally:
                self._waiters -= 1

    def _background(self) -> None:  # the watcher
        try:
            conn = sqlite3.connect(self._path, check_same_thread=False, timeout=1.0)
        except sqlite3.Error as exc:  # waiters fall back to their poll
            log.debug("wake-up watcher cannot open the database: %s", exc)
            return
        try:
            # The baseline, read before anyone is told the watcher runs, and kept across
            # idle spells: a commit made while nobody waited (during a worker's claim,
            # say) still wakes the next wait.
            last: Any = None
            with contextlib.suppress(sqlite3.Error):
                (last,) = conn.execute("PRAGMA data_version").fetchone()
            self.watching.set()
            while not self._closed.is_set():
                with self._cond:
                    while self._waiters == 0 and not self._closed.is_set():
                        self._cond.wait(1.0)
                if self._closed.wait(_SQLITE_POLL):
                    return
                try:
                    (version,) = conn.execute("PRAGMA data_version").fetchone()
                except sqlite3.Error as exc:  # busy or gone for a moment: look again
                    log.debug("wake-up watcher cannot read data_version: %s", exc)
                    continue
                if last is not None and version != last:
                    with self._cond:
                        self._epoch += 1
                        self._cond.notify_all()
                last = version
        finally:
            self.watching.clear()
            conn.close()
