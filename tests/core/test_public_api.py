"""Each package states its public surface with ``__all__``, and it is exact."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "squidie_core",
    "squidie_core.errors",
    "squidie_core.storage",
    "squidie_core.hookspecs",
    "squidie_core.testing",
    "squidie_core.dashboard",
    "squidie_backends",
    "squidie_backends.memory",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert len(exported) == len(module.__all__), "duplicates in __all__"
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.__all__ names missing {symbol}"
    is_package = hasattr(module, "__path__")

    def published_here(value: object) -> bool:
        origin = getattr(value, "__module__", None)
        if origin == name:
            return True  # defined in this module
        # A package re-exports what its private modules define.
        return bool(is_package and origin and origin.startswith(name + "._"))

    public = {
        n for n, v in vars(module).items()
        if not n.startswith("_") and not isinstance(v, type(importlib)) and published_here(v)
    }
    assert public <= exported, f"{name} defines unlisted public names: {public - exported}"


def test_errors_have_stable_codes_and_docs() -> None:
    from squidie_core import errors

    codes = set()
    for name in errors.__all__:
        cls = getattr(errors, name)
        if not isinstance(cls, type) or not issubclass(cls, errors.SquidieError):
            continue
        assert cls.__doc__ and "Raised when" in cls.__doc__, name
        assert cls.code not in codes, f"duplicate code {cls.code}"
        codes.add(cls.code)
    assert issubclass(errors.RunNotFound, LookupError)
    assert issubclass(errors.PayloadError, ValueError)
    assert issubclass(errors.BackendUnavailable, ConnectionError)


def test_error_to_dict_carries_the_fields() -> None:
    from squidie_core.errors import AppendConflict

    data = AppendConflict("r1", 3, 5).to_dict()
    assert data["code"] == "append_conflict"
    assert (data["run_id"], data["expected_seq"], data["actual_seq"]) == ("r1", 3, 5)


def test_capabilities_are_documented_data() -> None:
    from squidie_core.storage import Capabilities

    docs = Capabilities.describe()
    flags = set(Capabilities().to_dict())
    assert set(docs) == flags
    assert all(docs.values())
    assert not any(v for v in Capabilities().to_dict().values() if isinstance(v, bool))


DOCUMENTED = [*PACKAGES, "conformance", "squidie_backends.sql", "squidie_backends.redis",
              "squidie_backends.fdb"]


@pytest.mark.parametrize("name", DOCUMENTED)
def test_every_public_name_and_method_has_a_docstring(name: str) -> None:
    import inspect

    from squidie_core.storage import Store

    # A store's contract methods are documented once, on the contract; a conformance
    # case is named by the behaviour it checks.
    contract = {n for n in dir(Store) if not n.startswith("_")}
    module = importlib.import_module(name)
    missing: list[str] = []
    for symbol in module.__all__:
        value = getattr(module, symbol)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue  # constants are documented where they are defined
        if not inspect.getdoc(value):
            missing.append(symbol)
        if inspect.isclass(value):
            for attr, member in vars(value).items():
                if attr.startswith(("_", "test_")) or not inspect.isfunction(member):
                    continue
                if attr in contract:
                    continue
                if not inspect.getdoc(member):
                    missing.append(f"{symbol}.{attr}")
    assert not missing, f"{name}: public API without docstrings: {missing}"
