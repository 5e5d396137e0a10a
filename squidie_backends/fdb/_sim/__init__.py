"""An in-process FoundationDB simulator with the Python binding's API (a test tool).

No FoundationDB server or ``libfdb_c`` can be installed where Squidie is developed, so
the FDB adapter is tested against this simulation. It is meant to be *at least as strict*
as FoundationDB, never more permissive: MVCC reads at the read version, read-your-writes,
read- and write-conflict ranges as the client computes them, commit checks in
FoundationDB's order (size, age, conflicts), versionstamps substituted at commit by the
real ``fdb.tuple`` code, FoundationDB's limits and error codes, ``on_error`` and
``@transactional`` behaving like the binding's, and seeded fault injection.

``SIM`` is a stand-in for the ``fdb`` module after ``fdb.api_version(...)``: it has
``open``, ``transactional``, ``FDBError``, ``KeySelector``, ``StreamingMode``, ``tuple``
(the real ``fdb.tuple``) and ``Subspace`` (the real one). ``SIM.open(name)`` with a name
returns a client of the process-wide cluster of that name (so several stores can share
one simulated database); without a name, a new private cluster.

It is not a FoundationDB: no durability, one process, no watches, no tenants, no
``get_key``/"last less than" selectors. See ``docs/backends/fdb.md``.
"""

from __future__ import annotations

import threading
import types
from typing import Any

import fdb
import fdb.tuple
from fdb.subspace_impl import Subspace

from squidie_backends.fdb._sim._cluster import (
    MVCC_WINDOW,
    RECOVERY_JUMP,
    VERSIONS_PER_SECOND,
    SimCluster,
)
from squidie_backends.fdb._sim._errors import (
    ERRORS,
    MAYBE_COMMITTED,
    RETRYABLE,
    RETRYABLE_NOT_COMMITTED,
    FDBError,
)
from squidie_backends.fdb._sim._faults import FaultPlan, FaultRates
from squidie_backends.fdb._sim._transaction import (
    KeySelector,
    KeyValue,
    SimDatabase,
    SimTransaction,
    SimValue,
    StreamingMode,
    transactional,
)

__all__ = [
    "ERRORS",
    "MAYBE_COMMITTED",
    "MVCC_WINDOW",
    "RECOVERY_JUMP",
    "RETRYABLE",
    "RETRYABLE_NOT_COMMITTED",
    "SIM",
    "VERSIONS_PER_SECOND",
    "FDBError",
    "FaultPlan",
    "FaultRates",
    "KeySelector",
    "KeyValue",
    "SimAPI",
    "SimCluster",
    "SimDatabase",
    "SimTransaction",
    "SimValue",
    "StreamingMode",
    "enable_versionstamps",
    "forget_cluster",
    "shared_cluster",
    "transactional",
]

_clusters: dict[str, SimCluster] = {}
_clusters_lock = threading.Lock()


def shared_cluster(name: str) -> SimCluster:
    """The process-wide simulated cluster called ``name`` (created on first use)."""
    with _clusters_lock:
        cluster = _clusters.get(name)
        if cluster is None:
            cluster = _clusters[name] = SimCluster(name)
        return cluster


def forget_cluster(name: str) -> bool:
    """Drop the shared cluster called ``name`` (its clients keep their reference)."""
    with _clusters_lock:
        return _clusters.pop(name, None) is not None


class _NeverAValue:
    """Stands for ``fdb.impl.Value``: no object ever is one."""


def enable_versionstamps() -> None:
    """Let ``fdb.tuple`` pack ``Versionstamp``s without ``libfdb_c``.

    ``fdb.tuple.Versionstamp.to_bytes`` checks ``isinstance(v, fdb.impl.Value)``, and
    ``fdb.impl`` cannot be imported without the C library. This gives ``fdb`` a minimal
    ``impl`` attribute whose ``Value`` nothing is an instance of, so the binding's own
    code produces the bytes. It does nothing when the real ``fdb.impl`` is loaded, and a
    later real ``import fdb.impl`` replaces the stand-in.
    """
    if "impl" in vars(fdb):
        return
    standin = types.ModuleType("fdb.impl", "Squidie's stand-in; see enable_versionstamps")
    standin.Value = _NeverAValue  # type: ignore[attr-defined]
    fdb.impl = standin


class SimAPI:
    """The part of the ``fdb`` module a client uses, backed by the simulator.

    Attributes:
        FDBError: The error class every failure raises.
        KeySelector: Key selectors.
        StreamingMode: Streaming modes (ignored).
        tuple: The real ``fdb.tuple`` module.
        Subspace: The real ``fdb.subspace_impl.Subspace``.
    """

    FDBError = FDBError
    KeySelector = KeySelector
    StreamingMode = StreamingMode
    tuple = fdb.tuple
    Subspace = Subspace
    transactional = staticmethod(transactional)

    def __init__(self) -> None:
        self._version: int | None = None

    def api_version(self, version: int) -> None:
        """Select the API version (the simulator behaves as 7.3+ for any version >= 630)."""
        if version < 630:
            raise RuntimeError("the simulator implements API version 630 and later")
        if self._version is not None and self._version != version:
            raise RuntimeError(f"FDB API already loaded at version {self._version}")
        self._version = version

    def get_api_version(self) -> int:
        """The selected API version."""
        if self._version is None:
            raise RuntimeError("API version is not set")
        return self._version

    def open(
        self,
        cluster_file: str | None = None,
        *,
        faults: FaultPlan | None = None,
        backoff_scale: float = 0.05,
    ) -> SimDatabase:
        """Open a simulated database.

        Args:
            cluster_file: A cluster *name*: every ``open`` with the same name in this
                process shares one ``SimCluster``. ``None``: a new private cluster.
            faults: The faults this client suffers.
            backoff_scale: Multiplies ``on_error``'s backoff.
        """
        enable_versionstamps()
        cluster = SimCluster() if cluster_file is None else shared_cluster(cluster_file)
        return SimDatabase(cluster, faults, backoff_scale)

    def __repr__(self) -> str:
        return "<fdb simulator>"


#: The simulated ``fdb`` module.
SIM: Any = SimAPI()
