"""``RedisFixtures``: the conformance suite's fixtures for the Redis store.

Usage (what the conformance wiring does)::

    from _redis_fixtures import RedisFixtures

    class TestRedisStore(JournalSuite, DeliverySuite, RuntimeSuite, RedisFixtures):
        pass

Each test gets its own namespace (``unique_name``) on the test server, deleted after the
test. ``clock`` is the store's own server clock (``TIME`` plus an offset the test
advances). ``store_url`` carries the namespace as a query parameter, so another process
opening it sees the same store.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from conformance._fixtures import StoreFixtures
from squidie_backends.redis import RedisClock, RedisStore

__all__ = ["RedisFixtures", "namespace_url", "purge_namespace"]


def namespace_url(redis_url: str, namespace: str) -> str:
    """The store URL of ``namespace`` on the server at ``redis_url``."""
    sep = "&" if "?" in redis_url else "?"
    return f"{redis_url}{sep}namespace={namespace}"


def purge_namespace(redis_url: str, namespace: str) -> int:
    """Delete every key of ``namespace``; return how many."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.unlink(*keys[i : i + 500])
        return len(keys)
    finally:
        client.close()


class RedisFixtures(StoreFixtures):
    """Fixtures opening a fresh Redis store per test (see the module docstring)."""

    @pytest.fixture
    def store(self, redis_url: str, unique_name: str) -> Iterator[RedisStore]:  # type: ignore[override]
        """A fresh, empty store in its own namespace, deleted after the test.

        Its clock reads the server's ``TIME`` on every ``now()`` (``clock_sync=0``). The
        cases compare the clock with the server's own timestamps to the millisecond, and
        an interpolated clock lags the server by up to one round trip (by design: never
        ahead of it), which under load exceeds a millisecond (seen once, with the suite
        on two processes).
        """
        store = RedisStore(namespace_url(redis_url, unique_name), clock_sync=0)
        try:
            yield store
        finally:
            store.close()
            purge_namespace(redis_url, unique_name)

    @pytest.fixture
    def clock(self, store: RedisStore) -> RedisClock:  # type: ignore[override]
        """The store's server clock; ``advance`` moves the offset the scripts add."""
        return store.clock

    @pytest.fixture
    def store_url(self, redis_url: str, unique_name: str) -> str:
        """The URL reopening this test's store (namespace as a query parameter)."""
        return namespace_url(redis_url, unique_name)
