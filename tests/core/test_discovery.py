"""Backend discovery through pluggy and the ``squidie`` entry points."""

from __future__ import annotations

import subprocess
import sys
import types
from typing import Any

import pluggy
import pytest

from squidie_core import open_store
from squidie_core._discovery import PluginRegistry, scheme_of
from squidie_core.errors import MissingDriver, PluginError, UnknownBackend
from squidie_core.hookspecs import BackendInfo, hookimpl


def plugin(*infos: BackendInfo, name: str = "fake") -> types.ModuleType:
    module = types.ModuleType(name)

    @hookimpl
    def squidie_register_backends() -> list[BackendInfo]:
        return list(infos)

    module.squidie_register_backends = squidie_register_backends  # type: ignore[attr-defined]
    return module


def test_memory_backend_found_through_its_entry_point() -> None:
    registry = PluginRegistry()
    found = {b.info.name: b for b in registry.backends()}
    assert "memory" in found
    assert found["memory"].distribution == "squidie"
    assert found["memory"].plugin == "memory"
    store = registry.open_store("memory://")
    assert store.name == "memory"


def test_open_store_through_the_default_registry() -> None:
    from squidie_core import ManualClock

    clock = ManualClock(5.0)
    store = open_store("memory://", clock=clock)
    assert store.clock is clock


def test_unknown_scheme_suggests_a_close_one() -> None:
    with pytest.raises(UnknownBackend) as info:
        open_store("memroy://")
    assert "did you mean 'memory'" in str(info.value)
    assert info.value.code == "unknown_backend"
    with pytest.raises(UnknownBackend):
        open_store("no-scheme-at-all")


def test_scheme_parsing() -> None:
    assert scheme_of("PostgreSQL://u@h/db") == "postgresql"
    assert scheme_of("fdb+sim://?seed=1") == "fdb+sim"
    assert scheme_of("sqlite:///x.db") == "sqlite"


def test_missing_driver_names_the_extra() -> None:
    registry = PluginRegistry()
    registry.register(plugin(BackendInfo(
        name="exotic", schemes=("exotic",), factory="nowhere:nothing",
        requires=("definitely_not_installed_driver_xyz",), extra="exotic")), name="fake")
    with pytest.raises(MissingDriver) as info:
        registry.open_store("exotic://host")
    assert "pip install 'squidie[exotic]'" in str(info.value)
    assert isinstance(info.value, ImportError)


def test_plus_suffixed_schemes_fall_back_to_their_base() -> None:
    registry = PluginRegistry()
    registry.register(plugin(BackendInfo(
        name="echo", schemes=("echo",), factory="tests_support_echo:open_store")), name="e")
    assert registry.backend_for("echo+driver://x").info.name == "echo"


def test_factory_is_imported_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    factory_module = types.ModuleType("lazy_factory_mod")
    factory_module.open_store = lambda url, **o: opened.append(url) or "a store"  # type: ignore[attr-defined]
    registry = PluginRegistry()
    registry.register(plugin(BackendInfo(
        name="lazy", schemes=("lazy",), factory="lazy_factory_mod:open_store")), name="lazy")
    registry.backends()
    assert opened == []
    monkeypatch.setitem(sys.modules, "lazy_factory_mod", factory_module)
    assert registry.open_store("lazy://x") == "a store"
    assert opened == ["lazy://x"]


def test_broken_factory_is_a_plugin_error() -> None:
    registry = PluginRegistry()
    registry.register(plugin(BackendInfo(
        name="broken", schemes=("broken",), factory="no_such_module_abc:open")), name="b")
    with pytest.raises(PluginError) as info:
        registry.open_store("broken://")
    assert "cannot be loaded" in str(info.value)


def test_bad_hook_return_is_a_plugin_error() -> None:
    module = types.ModuleType("bad")

    @hookimpl
    def squidie_register_backends() -> list[Any]:
        return ["not a BackendInfo"]

    module.squidie_register_backends = squidie_register_backends  # type: ignore[attr-defined]
    registry = PluginRegistry()
    registry.register(module, name="bad")
    with pytest.raises(PluginError):
        registry.backends()


def test_misspelled_hook_is_caught_by_check_pending() -> None:
    module = types.ModuleType("typo")

    @hookimpl
    def squidie_register_backend() -> list[Any]:  # missing the final "s"
        return []

    module.squidie_register_backend = squidie_register_backend  # type: ignore[attr-defined]
    registry = PluginRegistry()
    with pytest.raises(pluggy.PluginValidationError):
        registry.register(module, name="typo")


def test_registering_twice_is_refused() -> None:
    registry = PluginRegistry()
    module = plugin(name="twice")
    registry.register(module, name="twice")
    with pytest.raises(PluginError):
        registry.register(module, name="twice")
    registry.unregister("twice")
    registry.register(module, name="twice")


def _names_in_subprocess(env: dict[str, str]) -> str:
    code = (
        "from squidie_core._discovery import PluginRegistry\n"
        "r = PluginRegistry()\n"
        "print(sorted(b.info.name for b in r.backends()), sorted(r.skipped))\n"
    )
    import os

    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_environment_allow_and_block_lists() -> None:
    assert "'memory'" not in _names_in_subprocess({"SQUIDIE_DISABLE_PLUGINS": "memory"}).split(
        "]")[0]
    allowed = _names_in_subprocess({"SQUIDIE_LOAD_PLUGINS": "memory"})
    assert allowed.startswith("['memory']")
