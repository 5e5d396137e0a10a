"""Fixtures of the Redis micro-benchmarks (``make bench``; never part of ``make test``).

The server is ``SQUIDIE_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``); each
benchmark gets its own namespace, deleted afterwards.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from squidie_backends.redis import RedisStore  # noqa: E402

REDIS_URL = os.environ.get("SQUIDIE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_store() -> Iterator[RedisStore]:
    namespace = "bench" + uuid.uuid4().hex[:8]
    store = RedisStore(f"{REDIS_URL}?namespace={namespace}")
    yield store
    store.close()
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    for i in range(0, len(keys), 1000):
        client.unlink(*keys[i : i + 1000])
    client.close()
