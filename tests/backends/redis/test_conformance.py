"""The Redis store runs the public conformance suite, imported as a user would.

Twice: on an injected ``ManualClock`` the whole suite runs, including the cases that
compare the store step by step with the memory model; on the server's ``TIME`` (what
production uses) every suite runs except those model comparisons, because real time
passes between two operations on a server clock, so dispatches the model sees become
visible at the same instant (ordered by key) are a few microseconds apart there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _redis_fixtures import RedisFixtures, namespace_url, purge_namespace

from conformance import (
    CapabilitySuite,
    CommitSuite,
    ConcurrencySuite,
    DeliverySuite,
    HistorySuite,
    JournalSuite,
    StoreSuite,
)
from squidie_backends.redis import RedisStore
from squidie_core import ManualClock


class InjectedClockFixtures(RedisFixtures):
    """A fresh namespace on the test server, deciding with the test's ``ManualClock``."""

    @pytest.fixture
    def clock(self) -> ManualClock:  # type: ignore[override]
        return ManualClock()

    @pytest.fixture
    def store(  # type: ignore[override]
        self, redis_url: str, unique_name: str, clock: ManualClock
    ) -> Iterator[RedisStore]:
        store = RedisStore(namespace_url(redis_url, unique_name), clock=clock)
        try:
            yield store
        finally:
            store.close()
            purge_namespace(redis_url, unique_name)

    @pytest.fixture
    def store_url(self) -> None:  # type: ignore[override]
        return None  # an in-process clock cannot be shared with another process


class TestRedisConformance(StoreSuite, InjectedClockFixtures):
    """Every case, on an injected clock."""


class TestRedisServerClockConformance(
    JournalSuite, DeliverySuite, CommitSuite, CapabilitySuite, ConcurrencySuite, HistorySuite,
    RedisFixtures,
):
    """The server's TIME: every suite but the step-by-step model comparisons."""
