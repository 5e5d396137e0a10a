"""The worked third-party store (docs/examples/thirdparty_store) is found and conforms.

``squidie-tinystore`` is its own distribution, installed into the environment by
``make`` (``pip install -e docs/examples/thirdparty_store``). Discovery must find it
through its ``squidie`` entry point, and it must pass the whole suite, including the
multi-process and durability cases that the memory store reports as not supported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance import StoreFixtures, StoreSuite
from conformance._runner import main
from squidie_core import ManualClock, open_store
from squidie_core._discovery import registry
from squidie_core.storage import Store

INSTALL = "pip install -e docs/examples/thirdparty_store (make does it)"


def _tinystore() -> object:
    found = [b for b in registry().backends() if b.info.name == "tinystore"]
    if not found:
        pytest.fail(f"the tinystore example is not installed: {INSTALL}", pytrace=False)
    return found[0]


def test_discovery_finds_the_third_party_store_through_its_entry_point() -> None:
    backend = _tinystore()
    assert backend.distribution == "squidie-tinystore"  # type: ignore[attr-defined]
    assert backend.plugin == "tinystore"  # type: ignore[attr-defined]
    assert backend.info.schemes == ("tinystore",)  # type: ignore[attr-defined]
    assert backend.info.capabilities.multi_process  # type: ignore[attr-defined]


def test_the_runner_checks_the_third_party_store_by_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _tinystore()
    url = f"tinystore://{tmp_path}/state-{{unique}}.json"
    status = main([url, "--json", "-k", "processes or durable or same_store or Append"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0, [r for r in report["results"] if r["outcome"] != "passed"]
    assert report["distribution"] == "squidie-tinystore"
    assert report["not_supported"] == 0
    assert report["passed"] >= 10
    # {unique} gave every case its own file.
    assert len(list(tmp_path.glob("state-t*.json"))) >= report["passed"]


class TinyStoreFixtures(StoreFixtures):
    """What the example's own tests/test_conformance.py declares, verbatim."""

    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"tinystore://{tmp_path / 'state.json'}"

    @pytest.fixture
    def store(self, clock: ManualClock, store_url: str) -> Iterator[Store]:
        store = open_store(store_url, clock=clock)
        yield store
        store.close()


class TestTinyStore(StoreSuite, TinyStoreFixtures):
    """The third-party store passes every case it supports (all but priorities, wake-up)."""
