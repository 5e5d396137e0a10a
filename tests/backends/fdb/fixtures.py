"""Fixtures classes for running the conformance suite (and our own tests) on FDB stores.

- ``FDBSimFixtures``: a fresh simulated cluster per test, no faults.
- ``FDBSimFaultyFixtures``: the same with seeded fault injection on (1020/1007 before
  commit, 1021 applied, dropped or landing late, 1031 landing late, recoveries, paused
  clients). The seed is fixed (7) so CI is reproducible; ``SQUIDIE_FDB_SEEDS`` runs many
  seeds, e.g. ``SQUIDIE_FDB_SEEDS=1-50`` or ``SQUIDIE_FDB_SEEDS=3,9,27`` (each test then
  runs once per seed), and ``SQUIDIE_FDB_FAULTS=4`` multiplies every fault rate.
- ``FDBClusterFixtures``: a real cluster named by ``SQUIDIE_FDB_CLUSTER_FILE``, one
  namespace per test, cleared afterwards. Use it only when that variable is set (test
  modules define their ``Test...`` class conditionally, so nothing is collected, and
  nothing skipped, without a cluster).

Usage::

    from tests.backends.fdb.fixtures import FDBSimFaultyFixtures

    class TestFDBSimFaulty(JournalSuite, DeliverySuite, RuntimeSuite, FDBSimFaultyFixtures):
        pass
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from conformance._fixtures import StoreFixtures
from squidie_backends.fdb import FDBStore, open_store
from squidie_core import ManualClock

__all__ = [
    "CLUSTER_FILE",
    "DEFAULT_SEEDS",
    "FAULT_SCALE",
    "FDBClusterFixtures",
    "FDBSimFaultyFixtures",
    "FDBSimFixtures",
    "fault_seeds",
]

#: The real cluster to test against, if any.
CLUSTER_FILE = os.environ.get("SQUIDIE_FDB_CLUSTER_FILE") or None
#: The fault seeds CI runs.
DEFAULT_SEEDS = (7,)
#: The fault-rate multiplier (1: ``FaultRates()``'s defaults).
FAULT_SCALE = float(os.environ.get("SQUIDIE_FDB_FAULTS", "1") or 1)


def fault_seeds() -> list[int]:
    """The seeds named by ``SQUIDIE_FDB_SEEDS`` (``"1-50"``, ``"3,9,27"``), or ``[7]``."""
    raw = os.environ.get("SQUIDIE_FDB_SEEDS", "").strip()
    if not raw:
        return list(DEFAULT_SEEDS)
    seeds: list[int] = []
    for chunk in raw.split(","):
        part = chunk.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            seeds.extend(range(int(lo), int(hi) + 1))
        elif part:
            seeds.append(int(part))
    return seeds


def _settle(store: FDBStore) -> None:
    """Land every lost commit still in flight, so nothing leaks into the next test."""
    cluster = getattr(store.database, "cluster", None)
    if cluster is not None:
        cluster.land_pending()


class FDBSimFixtures(StoreFixtures):
    """A fresh simulated FoundationDB per test (``fdb+sim://``), no faults."""

    @pytest.fixture
    def store(self, clock: ManualClock) -> Iterator[FDBStore]:
        store = open_store("fdb+sim://", clock=clock)
        yield store
        store.close()


class FDBSimFaultyFixtures(StoreFixtures):
    """A fresh simulated FoundationDB per test with seeded fault injection on."""

    @pytest.fixture(params=fault_seeds(), ids=lambda seed: f"seed{seed}")
    def store(self, request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[FDBStore]:
        store = open_store("fdb+sim://", clock=clock, faults=FAULT_SCALE, seed=request.param)
        yield store
        _settle(store)
        store.close()


class FDBClusterFixtures(StoreFixtures):
    """A real cluster (``SQUIDIE_FDB_CLUSTER_FILE``), one namespace per test."""

    @pytest.fixture
    def namespace(self) -> str:
        """A namespace unique to the test."""
        return "test-" + uuid.uuid4().hex[:12]

    @pytest.fixture
    def store(self, clock: ManualClock, namespace: str) -> Iterator[FDBStore]:
        assert CLUSTER_FILE, "FDBClusterFixtures needs SQUIDIE_FDB_CLUSTER_FILE"
        store = open_store(f"fdb://{CLUSTER_FILE}", clock=clock, namespace=namespace)
        yield store
        store.clear_namespace()
        store.close()

    @pytest.fixture
    def store_url(self, namespace: str) -> str | None:
        return f"fdb://{CLUSTER_FILE}?namespace={namespace}"
