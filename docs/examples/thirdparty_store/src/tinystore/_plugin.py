"""Entry-point module: declares the ``tinystore://`` backend and imports nothing heavy."""

from __future__ import annotations

from squidie_core.hookspecs import BackendInfo, hookimpl
from squidie_core.storage import Capabilities


@hookimpl
def squidie_register_backends() -> list[BackendInfo]:
    """Declare the ``tinystore`` backend to Squidie's discovery."""
    return [
        BackendInfo(
            name="tinystore",
            schemes=("tinystore",),
            factory="tinystore._store:open_store",
            description="One JSON file, locked per operation (an example third-party store)",
            capabilities=Capabilities(durable=True, multi_process=True,
                                      visibility_precision=0.0),
        )
    ]
