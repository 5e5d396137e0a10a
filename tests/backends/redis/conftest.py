"""Fixtures of the Redis store's own tests (real server on 127.0.0.1:6379).

Makes this directory's helper modules (``_redis_fixtures``, ``_redis_flows``) importable,
also from worker processes started with ``spawn``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from _redis_fixtures import namespace_url, purge_namespace  # noqa: E402

from squidie_backends.redis import RedisStore  # noqa: E402


@pytest.fixture
def store_url(redis_url: str, unique_name: str) -> Iterator[str]:
    """A URL of a fresh namespace, purged after the test."""
    yield namespace_url(redis_url, unique_name)
    purge_namespace(redis_url, unique_name)


@pytest.fixture
def open_store(store_url: str) -> Iterator[Callable[..., RedisStore]]:
    """Open stores on this test's namespace (all closed after the test)."""
    opened: list[RedisStore] = []

    def make(**options: Any) -> RedisStore:
        store = RedisStore(store_url, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[..., RedisStore]) -> RedisStore:
    """A fresh store in its own namespace."""
    return open_store()
