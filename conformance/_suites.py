"""The suites a store's test class mixes in, grouped by protocol, and all of them."""

from __future__ import annotations

from conformance._appends import AppendSuite
from conformance._batch_reads import BatchReadSuite
from conformance._capabilities import CapabilitySuite
from conformance._checkpoints import CheckpointSuite
from conformance._claims import ClaimSuite
from conformance._commit import AtomicCommitSuite
from conformance._concurrency import ConcurrencySuite
from conformance._conflicts import ConflictSuite
from conformance._end_to_end import RuntimeSuite
from conformance._enqueue import EnqueueSuite
from conformance._fencing import FencingSuite
from conformance._group_commit import GroupCommitSuite
from conformance._heartbeats import HeartbeatSuite
from conformance._history import HistorySuite
from conformance._idempotency import IdempotencySuite
from conformance._index import RunIndexSuite
from conformance._property import PropertySuite
from conformance._settle import SettleSuite
from conformance._terminal import TerminalSuite

__all__ = [
    "AtomicCommitSuite",
    "CapabilitySuite",
    "CommitSuite",
    "ConcurrencySuite",
    "DeliverySuite",
    "GroupCommitSuite",
    "HistorySuite",
    "JournalSuite",
    "PropertySuite",
    "RuntimeSuite",
    "StoreSuite",
]


class JournalSuite(AppendSuite, ConflictSuite, CheckpointSuite, RunIndexSuite, BatchReadSuite):
    """The ``JournalStore`` protocol: appends, conflicts, checkpoints, the run index, and
    batched reads."""


class DeliverySuite(
    EnqueueSuite, ClaimSuite, HeartbeatSuite, FencingSuite, SettleSuite, IdempotencySuite
):
    """The ``LeaseDelivery`` protocol: enqueue, claims, heartbeats, fencing, settling."""


class CommitSuite(AtomicCommitSuite, GroupCommitSuite, TerminalSuite):
    """The atomic ``commit``, the group commit, and the fencing of runs that have ended."""


class StoreSuite(
    JournalSuite,
    DeliverySuite,
    CommitSuite,
    CapabilitySuite,
    ConcurrencySuite,
    RuntimeSuite,
    HistorySuite,
    PropertySuite,
):
    """Every suite: what a complete ``Store`` must pass."""
