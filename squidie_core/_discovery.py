"""Finding and loading storage adapters through pluggy and the ``squidie`` entry points.

Loading is explicit (the first call that needs plugins), lazy (an adapter's driver and
store module are imported only when a URL with its scheme is opened) and idempotent.

Environment:
    SQUIDIE_LOAD_PLUGINS: comma-separated entry-point names; only these are loaded.
    SQUIDIE_DISABLE_PLUGINS: comma-separated entry-point names never loaded.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

import pluggy

from squidie_core import hookspecs
from squidie_core.errors import MissingDriver, PluginError, UnknownBackend
from squidie_core.hookspecs import BackendInfo

__all__ = ["LoadedBackend", "PluginRegistry", "open_store", "registry", "scheme_of"]

ENTRY_POINT_GROUP = "squidie"


@dataclass(frozen=True)
class LoadedBackend:
    """A backend found by discovery.

    Attributes:
        info: What the plugin declared.
        plugin: The entry-point (or registration) name that provided it.
        distribution: The distribution it came from (``None`` for in-process plugins).
    """

    info: BackendInfo
    plugin: str
    distribution: str | None

    def driver_missing(self) -> str | None:
        """Return the first required driver module that is not importable, if any."""
        for module in self.info.requires:
            if importlib.util.find_spec(module.split(".")[0]) is None:
                return module
            try:
                if importlib.util.find_spec(module) is None:
                    return module
            except ModuleNotFoundError:
                return module
        return None


def _names(variable: str) -> set[str] | None:
    raw = os.environ.get(variable)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


class PluginRegistry:
    """A typed facade over a pluggy ``PluginManager`` for Squidie's hooks."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs.Spec)
        self._loaded = False
        self._lock = threading.RLock()
        self._sources: dict[str, str | None] = {}
        self._skipped: dict[str, str] = {}

    def load(self) -> None:
        """Load entry-point plugins once (honouring the allow and block lists)."""
        with self._lock:
            if self._loaded:
                return
            allow = _names("SQUIDIE_LOAD_PLUGINS")
            block = _names("SQUIDIE_DISABLE_PLUGINS") or set()
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                if (allow is not None and ep.name not in allow) or ep.name in block:
                    self._skipped[ep.name] = "disabled by SQUIDIE_LOAD/DISABLE_PLUGINS"
                    continue
                if self._pm.get_plugin(ep.name) is not None:
                    continue
                try:
                    module = ep.load()
                except Exception as exc:  # a broken third-party plugin must not stop us
                    self._skipped[ep.name] = f"failed to import: {exc}"
                    continue
                dist = ep.dist.name if ep.dist is not None else None
                self._pm.register(module, name=ep.name)
                self._sources[ep.name] = dist
            self._pm.check_pending()
            self._loaded = True

    def register(self, plugin: ModuleType | object, name: str | None = None) -> None:
        """Register an in-process plugin (a module or object with ``hookimpl`` functions)."""
        with self._lock:
            try:
                registered = self._pm.register(plugin, name=name)
            except ValueError as exc:  # pluggy: the name is taken
                raise PluginError(f"plugin {name or plugin!r} is already registered") from exc
            if registered is None:
                raise PluginError(f"plugin {name or plugin!r} is already registered")
            self._sources[registered] = None
            self._pm.check_pending()

    def unregister(self, name: str) -> None:
        """Remove a plugin registered under ``name``."""
        with self._lock:
            self._pm.unregister(name=name)
            self._sources.pop(name, None)

    @property
    def skipped(self) -> dict[str, str]:
        """Entry points that were not loaded, with the reason."""
        return dict(self._skipped)

    def backends(self) -> list[LoadedBackend]:
        """Return every backend the loaded plugins declare."""
        self.load()
        found: list[LoadedBackend] = []
        for impl in self._pm.hook.squidie_register_backends.get_hookimpls():
            infos: Iterable[BackendInfo] = cast("Iterable[BackendInfo]", impl.function() or ())
            for info in infos:
                if not isinstance(info, BackendInfo):
                    raise PluginError(
                        f"plugin {impl.plugin_name!r} returned {info!r}, not a BackendInfo"
                    )
                found.append(
                    LoadedBackend(info, impl.plugin_name, self._sources.get(impl.plugin_name))
                )
        return found

    def instrumentation(self) -> list[Any]:
        """Return the instrumentation objects every plugin provides."""
        self.load()
        return [obj for group in self._pm.hook.squidie_register_instrumentation() for obj in group]

    def backend_for(self, url: str) -> LoadedBackend:
        """Return the backend that handles ``url``'s scheme."""
        scheme = scheme_of(url)
        by_scheme: dict[str, LoadedBackend] = {}
        for backend in self.backends():
            for s in backend.info.schemes:
                by_scheme.setdefault(s, backend)
        if scheme in by_scheme:
            return by_scheme[scheme]
        base = scheme.split("+", 1)[0]
        if base in by_scheme:
            return by_scheme[base]
        raise UnknownBackend(scheme, list(by_scheme))

    def admin(self, url: str, action: str) -> Any | None:
        """Return the backend's ``install`` or ``doctor`` function for ``url``, if any.

        Raises:
            UnknownBackend, MissingDriver: as for ``open_store``.
        """
        backend = self.backend_for(url)
        missing = backend.driver_missing()
        if missing is not None:
            raise MissingDriver(backend.info.name, missing, backend.info.extra or backend.info.name)
        target = getattr(backend.info, action)
        return None if target is None else self._load(backend, target)

    @staticmethod
    def _load(backend: LoadedBackend, target: str) -> Any:
        module_name, _, attr = target.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"backend {backend.info.name!r} entry {target!r} cannot be loaded: {exc}"
            ) from exc

    def open_store(self, url: str, **options: Any) -> Any:
        """Open a store for ``url`` with the adapter registered for its scheme.

        Raises:
            UnknownBackend: no adapter handles the scheme (with "did you mean").
            MissingDriver: the adapter's driver is not installed (names the extra).
        """
        backend = self.backend_for(url)
        missing = backend.driver_missing()
        if missing is not None:
            raise MissingDriver(backend.info.name, missing, backend.info.extra or backend.info.name)
        return self._load(backend, backend.info.factory)(url, **options)


def scheme_of(url: str) -> str:
    """Return the lower-cased scheme of a store URL (``"postgresql+psycopg"`` stays whole)."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        scheme, sep, _ = url.partition(":")
    if not sep or not scheme:
        raise UnknownBackend(url, [])
    return scheme.lower()


_default: PluginRegistry | None = None
_default_lock = threading.Lock()


def registry() -> PluginRegistry:
    """Return the process-wide plugin registry."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PluginRegistry()
        return _default


def open_store(url: str, **options: Any) -> Any:
    """Open a store by URL through the process-wide registry; see ``PluginRegistry``."""
    return registry().open_store(url, **options)
