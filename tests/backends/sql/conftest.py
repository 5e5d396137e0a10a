"""SQL store tests: fixtures per dialect.

``sql_store`` is parametrized over SQLite (a WAL file), PostgreSQL and MariaDB, so every
test using it runs on the three; the fixture classes the conformance suite uses live in
``sql_fixtures`` (importable because this directory is put on ``sys.path``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from squidie_backends.sql import SQLStore, uninstall  # noqa: E402
from squidie_core import ManualClock  # noqa: E402

DIALECTS = ["sqlite", "postgresql", "mysql"]


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    """The dialect under test."""
    return str(request.param)


@pytest.fixture
def base_url(dialect: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of the dialect under test (servers must be up)."""
    if dialect == "sqlite":
        return f"sqlite:///{tmp_path / 'squidie.db'}"
    fixture = "postgres_url" if dialect == "postgresql" else "mysql_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def store_url(base_url: str, unique_name: str) -> str:
    """A URL for a store of its own (unique table prefix)."""
    return f"{base_url}?prefix={unique_name}_"


@pytest.fixture
def clock() -> ManualClock:
    """The store's clock."""
    return ManualClock()


@pytest.fixture
def open_store(store_url: str, clock: ManualClock) -> Iterator[Callable[..., SQLStore]]:
    """Open (more) stores on the same tables; every one is closed and the tables dropped."""
    opened: list[SQLStore] = []

    def factory(**options: object) -> SQLStore:
        options.setdefault("clock", clock)
        store = SQLStore(store_url, **options)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()
    uninstall(store_url)


@pytest.fixture
def sql_store(open_store: Callable[..., SQLStore]) -> SQLStore:
    """A fresh store on the dialect under test, with the ``clock`` fixture's clock."""
    return open_store()
