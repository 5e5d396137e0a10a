"""Entry-point module of the memory backend: declares it, imports nothing heavy."""

from __future__ import annotations

from typing import Any

from squidie_core.hookspecs import BackendInfo, hookimpl
from squidie_core.storage import Capabilities


@hookimpl
def squidie_register_backends() -> list[BackendInfo]:
    """Declare the ``memory://`` backend."""
    return [
        BackendInfo(
            name="memory",
            schemes=("memory",),
            factory="squidie_backends.memory._plugin:open_store",
            description="In-process reference store (not durable, one process)",
            capabilities=Capabilities(priorities=True, wake_up=True, embedded=True,
                                      visibility_precision=0.0),
        )
    ]


def open_store(url: str, **options: Any) -> Any:
    """Open a new, empty memory store (``options``: ``clock``)."""
    from squidie_backends.memory._store import MemoryStore

    return MemoryStore(**options)
