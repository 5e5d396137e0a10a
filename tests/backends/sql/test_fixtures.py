"""The fixture classes the conformance suite will use work as documented."""

from __future__ import annotations

from sql_fixtures import MySQLFixtures, PostgresFixtures, SQLiteFixtures
from sql_helpers import dispatch, start

from squidie_backends.sql import SQLStore
from squidie_core import ManualClock
from squidie_core._discovery import registry


class _Checks:
    def test_store_is_fresh_on_the_clock_and_url_reopens_it(
        self, store: SQLStore, clock: ManualClock, store_url: str,
    ) -> None:
        assert store.clock is clock
        assert store.list_runs().items == [] and store.depth() == {}
        start(store, "r", dispatch("r"))
        other = SQLStore(store_url)  # what another process does with the URL
        try:
            assert other.head("r") == 1
            assert other.prefix == store.prefix
        finally:
            other.close()


class TestSQLiteFixtures(_Checks, SQLiteFixtures):
    pass


class TestPostgresFixtures(_Checks, PostgresFixtures):
    pass


class TestMySQLFixtures(_Checks, MySQLFixtures):
    pass


def test_declared_capabilities_match_the_stores() -> None:
    from squidie_backends.sql._store import capabilities_for

    for backend in registry().backends():
        if backend.plugin == "sql":
            assert backend.info.capabilities == capabilities_for(backend.info.name)
