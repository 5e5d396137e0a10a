"""The Squidie storage conformance suite: one contract, every store.

A store's test module mixes the suites into one class with a fixtures class that builds
the store under test (see ``StoreFixtures`` and ``docs/conformance.md``)::

    # conftest.py (top level)
    pytest_plugins = ["conformance.pytest_plugin"]

    # test_my_store.py
    from conformance import StoreFixtures, StoreSuite

    class MyFixtures(StoreFixtures):
        @pytest.fixture
        def store(self, clock):
            store = MyStore(clock=clock)
            yield store
            store.close()

    class TestMyStore(StoreSuite, MyFixtures):
        pass

Public surface:

- suites by protocol: ``JournalSuite``, ``DeliverySuite``, ``CommitSuite``,
  ``CapabilitySuite``, ``ConcurrencySuite``, ``RuntimeSuite``, ``HistorySuite``,
  ``PropertySuite``, and ``StoreSuite`` (all of them);
- suites by area (what the protocol suites combine): ``AppendSuite``, ``BatchReadSuite``,
  ``ConflictSuite``, ``CheckpointSuite``, ``RunIndexSuite``, ``EnqueueSuite``,
  ``ClaimSuite``, ``HeartbeatSuite``, ``FencingSuite``, ``SettleSuite``,
  ``IdempotencySuite``, ``AtomicCommitSuite``, ``GroupCommitSuite``, ``TerminalSuite``;
- ``StoreFixtures``: the fixtures a store provides (``clock``, ``store``, ``store_url``)
  and its ``known_failures``;
- ``SUITE_VERSION``; markers ``requires`` (capability-gated cases) and ``since``;
  ``NotSupported``;
- the history checker: ``check_history``, ``HistoryReport``, ``Violation``;
- the runner: ``python -m conformance STORE_URL`` (``conformance._runner.main``).

The pytest plugin is ``conformance.pytest_plugin``; it is never loaded automatically.
"""

from conformance._appends import AppendSuite
from conformance._batch_reads import BatchReadSuite
from conformance._capabilities import CapabilitySuite
from conformance._checker import HistoryReport, Violation, check_history
from conformance._checkpoints import CheckpointSuite
from conformance._claims import ClaimSuite
from conformance._concurrency import ConcurrencySuite
from conformance._conflicts import ConflictSuite
from conformance._end_to_end import RuntimeSuite
from conformance._enqueue import EnqueueSuite
from conformance._fencing import FencingSuite
from conformance._fixtures import StoreFixtures
from conformance._group_commit import GroupCommitSuite
from conformance._heartbeats import HeartbeatSuite
from conformance._history import HistorySuite
from conformance._idempotency import IdempotencySuite
from conformance._index import RunIndexSuite
from conformance._markers import NotSupported, requires, since
from conformance._property import PropertySuite
from conformance._settle import SettleSuite
from conformance._suites import (
    AtomicCommitSuite,
    CommitSuite,
    DeliverySuite,
    JournalSuite,
    StoreSuite,
)
from conformance._terminal import TerminalSuite
from conformance._version import SUITE_VERSION

__all__ = [
    "SUITE_VERSION",
    "AppendSuite",
    "AtomicCommitSuite",
    "BatchReadSuite",
    "CapabilitySuite",
    "CheckpointSuite",
    "ClaimSuite",
    "CommitSuite",
    "ConcurrencySuite",
    "ConflictSuite",
    "DeliverySuite",
    "EnqueueSuite",
    "FencingSuite",
    "GroupCommitSuite",
    "HeartbeatSuite",
    "HistoryReport",
    "HistorySuite",
    "IdempotencySuite",
    "JournalSuite",
    "NotSupported",
    "PropertySuite",
    "RunIndexSuite",
    "RuntimeSuite",
    "SettleSuite",
    "StoreFixtures",
    "StoreSuite",
    "TerminalSuite",
    "Violation",
    "check_history",
    "requires",
    "since",
]
