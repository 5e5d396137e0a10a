"""The SQL stores run the public conformance suite, imported as a user would."""

from __future__ import annotations

from sql_fixtures import MySQLFixtures, PostgresFixtures, SQLiteFixtures

from conformance import StoreSuite


class TestSQLiteConformance(StoreSuite, SQLiteFixtures):
    """SQLite (a WAL file per test)."""


class TestPostgresConformance(StoreSuite, PostgresFixtures):
    """PostgreSQL on the test server."""


class TestMySQLConformance(StoreSuite, MySQLFixtures):
    """MariaDB on the test server."""
