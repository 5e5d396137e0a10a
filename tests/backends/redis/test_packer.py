"""The store's command packer: the bytes redis-py would send, with less Python per call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from redis._parsers.encoders import Encoder
from redis.connection import PythonRespSerializer

from squidie_backends.redis import RedisStore
from squidie_backends.redis._packer import command_packer

REFERENCE = PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode)


def wire(chunks: list[Any]) -> bytes:
    return b"".join(bytes(c) for c in chunks)


@pytest.mark.parametrize(
    "command",
    [
        ("EVALSHA", "ab" * 20, 2, "squidie:{q:default}:disp", "k", -12, "ünïcode ✓"),
        ("HSET", b"raw-key", b"\x00\xff", 0, 2**63),
        ("SET", "x" * 10_000, "y"),  # past redis-py's chunking threshold
        ("SCRIPT LOAD", "return 1"),  # a two-word command name
        ("ZADD", "z", 1.5, "m"),  # a float: redis-py's own formatting
        ("GET", memoryview(b"key")),
    ],
)
def test_it_sends_the_bytes_redis_py_would(command: tuple[Any, ...]) -> None:
    packer = command_packer()
    assert packer is not None, "hiredis is part of the redis extra"
    assert wire(packer.pack(*command)) == wire(REFERENCE.pack(*command))


@pytest.mark.parametrize("bad", [None, True, object()])
def test_a_value_redis_py_refuses_is_refused_as_redis_py_refuses_it(bad: object) -> None:
    packer = command_packer()
    assert packer is not None
    with pytest.raises(redis.exceptions.DataError) as ours:
        packer.pack("SET", "k", bad)
    with pytest.raises(redis.exceptions.DataError) as theirs:
        REFERENCE.pack("SET", "k", bad)
    assert str(ours.value) == str(theirs.value)


def test_the_stores_connections_use_it(open_store: Callable[..., RedisStore]) -> None:
    store = open_store()
    for client in (store._client, store._blocking):
        connection = client.connection_pool.get_connection()
        try:
            assert type(connection._command_packer).__name__ == "_HiredisPacker"
        finally:
            client.connection_pool.release(connection)
