"""Reliability campaigns: fixtures per backend, and ``soak`` deselection.

``campaign_url`` is parametrised over every backend that runs in worker subprocesses
(SQLite, PostgreSQL, MariaDB, Redis); each test gets its own table prefix or key
namespace on the shared servers, removed afterwards. FoundationDB is exercised in
process, through its simulator (``test_fdb_faults.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for path in (HERE, ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from _bench import BACKENDS as BENCH_BACKENDS  # noqa: E402
from _bench import Bench, bench_url  # noqa: E402
from _harness import cleanup_store, store_url_for  # noqa: E402

BACKENDS = ["sqlite", "postgresql", "mysql", "redis"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave this directory's ``soak`` campaigns out unless ``-m`` asks for them."""
    if "soak" in (config.getoption("markexpr") or ""):
        return
    keep, drop = [], []
    for item in items:
        soak = item.get_closest_marker("soak") is not None
        (drop if soak and HERE in Path(str(item.fspath)).resolve().parents else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test."""
    return str(request.param)


@pytest.fixture
def campaign_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path,
                 unique_name: str) -> Iterator[str]:
    """A fresh store URL on ``backend`` that other processes can open; dropped after."""
    if backend == "sqlite":
        base = f"sqlite:///{tmp_path / 'campaign.db'}"
    else:
        fixture = {"postgresql": "postgres_url", "mysql": "mysql_url", "redis": "redis_url"}
        base = str(request.getfixturevalue(fixture[backend]))
    url = store_url_for(backend, base, unique_name)
    try:
        yield url
    finally:
        cleanup_store(backend, url, base, unique_name)


@pytest.fixture(params=BENCH_BACKENDS)
def bench(request: pytest.FixtureRequest, tmp_path: Path, unique_name: str) -> Iterator[Bench]:
    """An in-process engine on each backend (``_bench.Bench``), cleaned up after."""
    backend = str(request.param)
    if backend == "sqlite":
        base = f"sqlite:///{tmp_path / 'bench.db'}"
    elif backend == "fdb":
        base = "fdb+sim://"
    else:
        fixture = {"postgresql": "postgres_url", "mysql": "mysql_url", "redis": "redis_url"}
        base = str(request.getfixturevalue(fixture[backend]))
    url = bench_url(backend, base, unique_name)
    b = Bench(backend, url)
    try:
        yield b
    finally:
        b.close()
        if backend != "fdb":
            cleanup_store(backend, url, base, unique_name)
