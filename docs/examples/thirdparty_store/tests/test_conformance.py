"""tinystore passes the Squidie storage conformance suite, every case of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance import StoreFixtures, StoreSuite
from squidie_core import ManualClock, open_store
from squidie_core.storage import Store


class TinyStoreFixtures(StoreFixtures):
    """A fresh state file per case; the store opened through discovery, like a user."""

    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        # Other processes (and the durability cases) open the same file from this URL.
        return f"tinystore://{tmp_path / 'state.json'}"

    @pytest.fixture
    def store(self, clock: ManualClock, store_url: str) -> Iterator[Store]:
        store = open_store(store_url, clock=clock)
        yield store
        store.close()


class TestTinyStore(StoreSuite, TinyStoreFixtures):
    """Nothing to write: every case comes from the suite."""
