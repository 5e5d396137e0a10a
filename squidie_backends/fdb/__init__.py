"""The FoundationDB backend (``fdb://``) and its simulator (``fdb+sim://``).

Public surface:

- ``FDBStore`` — the store; ``open_store(url, **options)`` opens one from a URL;
- the simulator (a test tool): ``SIM`` (a stand-in for the ``fdb`` module),
  ``SimCluster``, ``SimDatabase``, ``FaultPlan``, ``FaultRates``, ``shared_cluster``,
  ``forget_cluster``, ``enable_versionstamps``.

See ``docs/backends/fdb.md``.
"""

from squidie_backends.fdb._connect import open_store
from squidie_backends.fdb._sim import (
    SIM,
    FaultPlan,
    FaultRates,
    SimCluster,
    SimDatabase,
    enable_versionstamps,
    forget_cluster,
    shared_cluster,
)
from squidie_backends.fdb._store import FDBStore

__all__ = [
    "SIM",
    "FDBStore",
    "FaultPlan",
    "FaultRates",
    "SimCluster",
    "SimDatabase",
    "enable_versionstamps",
    "forget_cluster",
    "open_store",
    "shared_cluster",
]
