"""The memory store runs the public conformance suite, imported as a user would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance import StoreFixtures, StoreSuite
from squidie_core import ManualClock, open_store
from squidie_core.storage import Store


class MemoryFixtures(StoreFixtures):
    """A fresh ``memory://`` store on the test's ``ManualClock``, opened through discovery."""

    @pytest.fixture
    def store(self, clock: ManualClock) -> Iterator[Store]:
        store = open_store("memory://", clock=clock)
        yield store
        store.close()


class TestMemoryStore(StoreSuite, MemoryFixtures):
    """The reference store passes every case it supports."""
