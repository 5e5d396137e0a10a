"""The store clock: the server's TIME plus a test offset."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from squidie_backends.redis import RedisClock, RedisStore

pytestmark = pytest.mark.redis


def server_now(store: RedisStore) -> float:
    seconds, micros = store._client.time()
    return seconds + micros / 1e6


def test_now_is_the_servers_time(store: RedisStore) -> None:
    before = server_now(store)
    now = store.clock.now()
    after = server_now(store)
    assert before - 0.05 <= now <= after + 0.05


def test_advance_moves_the_clock_and_every_script(store: RedisStore) -> None:
    start = store.clock.now()
    assert store.clock.advance(3600) >= start + 3600
    assert store.clock.offset == 3600.0
    assert store.clock.server_now() >= server_now(store) + 3599
    with pytest.raises(ValueError):
        store.clock.advance(-1)


def test_now_never_goes_backwards() -> None:
    ticks = iter([(100, 0), (99, 0), (98, 500_000), (101, 0)])
    clock = RedisClock(lambda: next(ticks), sync_interval=0)
    values = [clock.now() for _ in range(4)]
    assert values == sorted(values) and values[0] >= 100 and values[-1] >= 101


def test_sync_interval_bounds_round_trips() -> None:
    calls = []

    def time_source() -> tuple[int, int]:
        calls.append(1)
        return 1_700_000_000, 0

    every = RedisClock(time_source, sync_interval=0)
    for _ in range(5):
        every.now()
    assert len(calls) == 5
    calls.clear()
    cached = RedisClock(time_source, sync_interval=3600)
    values = [cached.now() for _ in range(5)]
    assert len(calls) == 1 and values == sorted(values)


def test_the_offset_is_per_store_object(open_store: Callable[..., RedisStore]) -> None:
    a, b = open_store(), open_store()
    a.clock.advance(1000)
    assert a.clock.now() - b.clock.now() == pytest.approx(1000, abs=1)


def test_now_never_runs_ahead_of_the_server_after_a_slow_round_trip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reading taken late in a slow round trip must not be extrapolated from its start."""
    from squidie_backends.redis import _clock

    mono = [100.0]
    monkeypatch.setattr(_clock.time, "monotonic", lambda: mono[0])

    def slow_time() -> tuple[int, int]:
        mono[0] += 0.2  # the request waits 200 ms before the server reads TIME...
        server_us = round((1000.0 + (mono[0] - 100.0)) * 1e6)
        return divmod(server_us, 1_000_000)  # ...and the reply returns at once

    clock = RedisClock(slow_time, sync_interval=60)
    value = clock.now()
    server = 1000.0 + (mono[0] - 100.0)  # the server's time at this instant
    assert value <= server + 1e-6, (value, server)
