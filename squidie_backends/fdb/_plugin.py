"""Entry-point module of the FoundationDB backend: declares it, imports nothing heavy.

Two schemes: ``fdb`` (a real cluster) and ``fdb+sim`` (the in-process simulator, a test
tool). Both need the ``foundationdb`` package: the simulator runs the binding's own
tuple-layer code.
"""

from __future__ import annotations

from typing import Any

from squidie_core.hookspecs import BackendInfo, hookimpl
from squidie_core.storage import Capabilities

_LIMITS: dict[str, Any] = {
    "priorities": True, "visibility_precision": 0.0, "max_value_bytes": 2_000_000,
}


@hookimpl
def squidie_register_backends() -> list[BackendInfo]:
    """Declare the ``fdb://`` and ``fdb+sim://`` backends."""
    return [
        BackendInfo(
            name="fdb",
            schemes=("fdb",),
            factory="squidie_backends.fdb._plugin:open_store",
            requires=("fdb",),
            extra="fdb",
            description="FoundationDB cluster via the official bindings (needs libfdb_c)",
            capabilities=Capabilities(durable=True, multi_process=True, multi_node=True,
                                      **_LIMITS),
        ),
        BackendInfo(
            name="fdb-sim",
            schemes=("fdb+sim",),
            factory="squidie_backends.fdb._plugin:open_store",
            requires=("fdb",),
            extra="fdb",
            description="In-process FoundationDB simulator (a test tool; not durable)",
            capabilities=Capabilities(**_LIMITS),
        ),
    ]


def open_store(url: str, **options: Any) -> Any:
    """Open an FDB store (see ``squidie_backends.fdb._connect``)."""
    from squidie_backends.fdb._connect import open_store as _open

    return _open(url, **options)
