"""Fixtures of the SQL micro-benchmarks: one fresh store per dialect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.sql._common import store_url
from squidie_backends.sql import SQLStore, uninstall


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def bench_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStore]:
    """A fresh store with the dialect's default durability."""
    url = store_url(str(request.param), str(tmp_path))
    store = SQLStore(url)
    yield store
    store.close()
    uninstall(url)
