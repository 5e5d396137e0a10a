"""Fixture classes that run a SQL store under the conformance suite (and our own tests).

``SQLiteFixtures``, ``PostgresFixtures`` and ``MySQLFixtures`` subclass
``conformance._fixtures.StoreFixtures``: ``store`` is a fresh ``SQLStore`` on the injected
``clock``, isolated from every other test by a ``unique_name`` table prefix (and, for
SQLite, its own database file), and dropped afterwards; ``store_url`` is a URL that opens
the very same store in another process (the prefix travels as a query parameter)::

    class TestSQLiteConformance(JournalSuite, DeliverySuite, SQLiteFixtures):
        pass
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance._fixtures import StoreFixtures
from squidie_backends.sql import SQLStore, uninstall
from squidie_core import ManualClock

__all__ = ["MySQLFixtures", "PostgresFixtures", "SQLFixtures", "SQLiteFixtures"]


class SQLFixtures(StoreFixtures):
    """Shared part: subclasses provide ``base_url``."""

    @pytest.fixture
    def base_url(self) -> str:
        """The database URL without store options. Override."""
        raise NotImplementedError

    @pytest.fixture
    def store_url(self, base_url: str, unique_name: str) -> str:
        """The same store, openable from another process."""
        sep = "&" if "?" in base_url else "?"
        return f"{base_url}{sep}prefix={unique_name}_"

    @pytest.fixture
    def store(self, clock: ManualClock, store_url: str) -> Iterator[SQLStore]:
        """A fresh store on ``clock``, its tables dropped after the test."""
        store = SQLStore(store_url, clock=clock)
        try:
            yield store
        finally:
            store.close()
            uninstall(store_url)


class SQLiteFixtures(SQLFixtures):
    """A SQLite file in WAL mode, one file per test."""

    @pytest.fixture
    def base_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'squidie.db'}"


class PostgresFixtures(SQLFixtures):
    """The PostgreSQL test server (``postgres_url``)."""

    @pytest.fixture
    def base_url(self, postgres_url: str) -> str:
        return postgres_url


class MySQLFixtures(SQLFixtures):
    """The MariaDB/MySQL test server (``mysql_url``)."""

    @pytest.fixture
    def base_url(self, mysql_url: str) -> str:
        return mysql_url
