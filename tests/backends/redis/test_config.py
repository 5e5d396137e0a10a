"""Opening a Redis store: URL options, keyword options, discovery, the public surface."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from _redis_data import dispatch

import squidie_backends.redis as public
from squidie_backends.redis import RedisStore
from squidie_backends.redis._config import RedisConfig
from squidie_backends.redis._plugin import CAPABILITIES as PLUGIN_CAPABILITIES
from squidie_backends.redis._store import CAPABILITIES
from squidie_core import open_store
from squidie_core._discovery import registry
from squidie_core.errors import InvalidArgument, SchemaVersionError, StoreError

pytestmark = pytest.mark.redis


def test_public_surface() -> None:
    assert public.__all__ == ["Finding", "RedisClock", "RedisStore", "doctor"]
    for name in public.__all__:
        assert getattr(public, name).__module__.startswith("squidie_backends.redis._")


def test_discovery_opens_a_redis_store_for_both_schemes(store_url: str) -> None:
    store = open_store(store_url)
    try:
        assert isinstance(store, RedisStore) and store.name == "redis"
    finally:
        store.close()
    backend = registry().backend_for("rediss://example:6380/0")
    assert backend.info.name == "redis" and backend.info.extra == "redis"
    assert backend.info.requires == ("redis",)
    assert backend.info.capabilities == CAPABILITIES == PLUGIN_CAPABILITIES


def test_capabilities() -> None:
    c = RedisStore.capabilities
    assert (c.durable, c.multi_process, c.multi_node, c.server_clock, c.wake_up) == (
        True, True, True, True, True)
    assert c.priorities is False


def test_url_options_and_keyword_options() -> None:
    config = RedisConfig.parse(
        "redis://h:6380/2?namespace=app&socket_timeout=2.5&retries=7&client_name=me",
        {"retries": 1},
    )
    assert (config.namespace, config.socket_timeout, config.retries) == ("app", 2.5, 1)
    assert config.url == "redis://h:6380/2?client_name=me"
    assert RedisConfig.parse("rediss://h", {}).redacted_url() == "rediss://h"


@pytest.mark.parametrize(("url", "options", "argument"), [
    ("redis://h?namespce=x", {}, "namespce"),
    ("redis://h", {"socket_timeut": 1}, "socket_timeut"),
    ("redis://h?retries=lots", {}, "retries"),
    ("redis://h", {"retries": 1.5}, "retries"),
    ("redis://h", {"socket_timeout": 0}, "socket_timeout"),
    ("redis://h", {"max_connections": 0}, "max_connections"),
    ("http://h", {}, "url"),
])
def test_bad_options_are_refused_clearly(url: str, options: dict[str, object],
                                         argument: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        RedisConfig.parse(url, options)
    assert info.value.argument == argument


def test_unknown_options_get_a_did_you_mean() -> None:
    with pytest.raises(InvalidArgument, match="did you mean 'namespace'"):
        RedisConfig.parse("redis://h?namespce=x", {})


@pytest.mark.parametrize("namespace", ["", "a:b", "{x}", "a b", "x" * 65])
def test_namespaces_that_would_break_keys_are_refused(redis_url: str, namespace: str) -> None:
    with pytest.raises(InvalidArgument):
        RedisStore(redis_url, namespace=namespace)


def test_a_url_alone_reopens_the_same_store(
    store_url: str, open_store: Callable[..., RedisStore]
) -> None:
    first = open_store()
    first.enqueue([dispatch("r")])
    second = RedisStore(store_url)
    try:
        assert [x.key for x in second.claim("w", lease_for=10)] == ["r:s:1"]
    finally:
        second.close()


def test_namespaces_do_not_see_each_other(redis_url: str, unique_name: str) -> None:
    from _redis_fixtures import purge_namespace

    a = RedisStore(redis_url, namespace=unique_name + "a")
    b = RedisStore(redis_url, namespace=unique_name + "b")
    try:
        a.enqueue([dispatch("r")])
        assert b.claim("w", lease_for=10) == []
        assert b.depth() == {}
    finally:
        a.close()
        b.close()
        purge_namespace(redis_url, unique_name + "a")
        purge_namespace(redis_url, unique_name + "b")


def test_another_key_layout_is_refused(store_url: str, unique_name: str) -> None:
    client = redis.Redis.from_url(store_url.split("?", maxsplit=1)[0])
    client.set(f"{unique_name}:layout", "999")
    with pytest.raises(SchemaVersionError):
        RedisStore(store_url)
    client.close()


def test_servers_older_than_7_are_refused(store_url: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis.Redis, "info", lambda self, *a, **k: {"redis_version": "6.2.14"})
    with pytest.raises(StoreError, match=r"7\.0 or newer"):
        RedisStore(store_url)


def test_a_closed_store_refuses_work(store: RedisStore) -> None:
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.claim("w", lease_for=10)
    assert store.wait_for_work(["default"], 5) is False
