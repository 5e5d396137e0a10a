"""Squidie's plugin hooks, all in one typed module.

A distribution extends Squidie by exposing a module through the ``squidie`` entry-point
group whose functions are marked with ``hookimpl``::

    # pyproject.toml
    [project.entry-points.squidie]
    mystore = "my_package._squidie_plugin"

    # my_package/_squidie_plugin.py
    from squidie_core.hookspecs import BackendInfo, hookimpl

    @hookimpl
    def squidie_register_backends():
        return [BackendInfo(name="mystore", schemes=("mystore",),
                            factory="my_package.store:open_store")]

Hooks are registration-only: they are called once when plugins load, never on a hot
path. Keep the plugin module free of heavy imports; ``factory`` is imported only when a
store with one of its schemes is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pluggy

from squidie_core.storage import Capabilities

__all__ = ["PROJECT", "BackendInfo", "Spec", "hookimpl", "hookspec"]

PROJECT = "squidie"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class BackendInfo:
    """How to open one kind of store.

    Attributes:
        name: A short backend name (``memory``, ``sql``, ``redis``...).
        schemes: The URL schemes it handles (``postgresql``, ``sqlite``...).
        factory: ``"module:function"``; called as ``function(url, **options)`` and
            returning a ``Store``. Imported lazily.
        requires: Driver modules that must be importable (checked before importing
            ``factory``, so a missing driver gets a clear "install the extra" error).
        extra: The ``pip install 'squidie[extra]'`` that provides ``requires``.
        description: One line for ``squidie backends``.
        capabilities: What its stores declare, for listings (the store's own attribute
            is authoritative).
        install: ``"module:function"`` called as ``function(url, **options)`` by
            ``squidie install``: create or upgrade what the store needs, idempotently,
            returning a one-line summary. ``None``: nothing to install.
        doctor: ``"module:function"`` called as ``function(url, **options)`` by
            ``squidie doctor``: a list of findings, each a dict with ``level`` (``ok``,
            ``info``, ``warning`` or ``error``), ``check`` and ``detail``.
    """

    name: str
    schemes: tuple[str, ...]
    factory: str
    requires: tuple[str, ...] = ()
    extra: str | None = None
    description: str = ""
    capabilities: Capabilities | None = None
    install: str | None = None
    doctor: str | None = None


class Spec:
    """The hook specifications (namespace for ``PluginManager.add_hookspecs``)."""

    @hookspec
    def squidie_register_backends(self) -> list[BackendInfo]:  # type: ignore[empty-body]
        """Return the storage backends this plugin provides."""

    @hookspec
    def squidie_register_instrumentation(self) -> list[Any]:  # type: ignore[empty-body]
        """Return instrumentation objects to attach to every engine.

        Each object may define any of ``on_event(event: dict)``; it is called after a
        successful commit only, once per event, and must be cheap and not raise.
        """
