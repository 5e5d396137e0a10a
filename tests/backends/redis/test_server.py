"""Against a private server: authentication, credentials kept out of errors and reprs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _redis_data import dispatch
from _redis_server import RedisServer

from squidie_backends.redis import RedisStore
from squidie_core.errors import BackendUnavailable, StoreError

pytestmark = pytest.mark.redis

SECRET = "pw-7f3c9e-Top-Secret"


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, "--requirepass", SECRET).start()
    yield server
    server.stop()


def test_an_authenticated_store_never_shows_its_password(
    auth_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{auth_server.port}/0?namespace=auth"
    store = RedisStore(url)
    store.enqueue([dispatch("r")])
    assert len(store.claim("w", lease_for=10)) == 1
    assert SECRET not in repr(store) and SECRET not in repr(store.clock)
    expected = f"RedisStore(url='redis://127.0.0.1:{auth_server.port}/0', namespace='auth')"
    assert repr(store) == expected
    store.close()
    assert SECRET not in caplog.text


def test_a_wrong_password_fails_without_echoing_it(auth_server: RedisServer) -> None:
    wrong = "not-the-pw-3141592"
    with pytest.raises(StoreError) as info:
        RedisStore(f"redis://:{wrong}@127.0.0.1:{auth_server.port}/0")
    assert wrong not in str(info.value)
    assert wrong not in repr(info.value.to_dict())
    assert "password" in str(info.value)  # says what to check


def test_an_unreachable_server_is_backend_unavailable(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)  # never started: nothing listens on its port
    with pytest.raises(BackendUnavailable) as info:
        RedisStore(f"redis://:{SECRET}@127.0.0.1:{server.port}/0", retries=1,
                   socket_connect_timeout=0.5)
    assert SECRET not in str(info.value)


def test_a_server_going_away_mid_use_is_backend_unavailable(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    try:
        store = RedisStore(server.url, retries=1, retry_backoff_cap=0.01,
                           socket_connect_timeout=0.5)
        store.enqueue([dispatch("r")])
        server.kill()
        with pytest.raises(BackendUnavailable):
            store.claim("w", lease_for=10)
        server.start()  # same port, no persistence: empty, but the store reconnects
        assert store.claim("w", lease_for=10) == []
        store.close()
    finally:
        server.stop()  # the restarted server too: no redis-server outlives the test
