"""``RedisFixtures`` used the way the conformance suite uses it."""

from __future__ import annotations

import multiprocessing

import _redis_workers as workers
import pytest
from _redis_data import dispatch
from _redis_fixtures import RedisFixtures

from squidie_backends.redis import RedisClock, RedisStore
from squidie_core import open_store
from squidie_core.storage import Store

pytestmark = pytest.mark.redis


class TestRedisFixtures(RedisFixtures):
    def test_store_is_a_fresh_empty_store(self, store: RedisStore) -> None:
        assert isinstance(store, Store)
        assert store.depth() == {} and store.list_runs().items == []

    def test_clock_is_the_stores_and_moves_its_decisions(self, store: RedisStore,
                                                         clock: RedisClock) -> None:
        assert clock is store.clock
        store.enqueue([dispatch("r", delay=60)])
        assert store.claim("w", lease_for=10) == []
        clock.advance(61)
        assert len(store.claim("w", lease_for=10)) == 1

    def test_store_url_opens_the_same_store(self, store: RedisStore, store_url: str) -> None:
        store.enqueue([dispatch("r")])
        other = open_store(store_url)
        try:
            assert [x.key for x in other.claim("w", lease_for=10)] == ["r:s:1"]
        finally:
            other.close()

    def test_store_url_works_from_another_process(self, store: RedisStore,
                                                  store_url: str) -> None:
        store.enqueue([dispatch(f"r{i}") for i in range(5)])
        ctx = multiprocessing.get_context("spawn")
        start, results = ctx.Event(), ctx.Queue()
        proc = ctx.Process(target=workers.drain, args=(store_url, "child", start, results))
        proc.start()
        start.set()
        owner, claims, done = results.get(timeout=60)
        proc.join(30)
        assert (owner, claims, len(done)) == ("child", 5, 5)
        assert store.depth()["default"].visible == 0
