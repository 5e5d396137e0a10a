"""The two markers every conformance case carries, and the "not supported" outcome.

``requires("multi_process")`` marks a case that needs an optional behaviour a store
declares in ``store.capabilities`` (see ``squidie_core.storage.Capabilities``). When the
store does not declare it, ``conformance.pytest_plugin`` reports the case as
*not supported*: a distinct outcome, never "passed". Required behaviour is never a
capability, so it can never be reported that way.

``since("1.0")`` records the suite version that introduced a case. A suite decorates its
class with it, which marks every case defined in that class body that has no ``since`` of
its own; a case added later carries its own. Marks always land on the functions, never on
the class: a user's ``class TestMyStore(JournalSuite, DeliverySuite, ...)`` merges the
class-level marks of every mixin, which would give each case every other suite's marks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

import pytest

from squidie_core.storage import Capabilities

__all__ = ["REQUIRES", "SINCE", "NotSupported", "requires", "since"]

#: Name of the marker ``requires`` applies.
REQUIRES = "conformance_requires"
#: Name of the marker ``since`` applies.
SINCE = "conformance_since"

_FLAGS = tuple(f.name for f in fields(Capabilities) if f.type in (bool, "bool"))


def requires(*capabilities: str) -> pytest.MarkDecorator:
    """Mark a case as needing optional store behaviours (boolean ``Capabilities`` fields).

    Args:
        *capabilities: Capability names, e.g. ``"multi_process"``, ``"durable"``.

    Returns:
        The ``conformance_requires`` marker.

    Raises:
        ValueError: a name is not a boolean capability (a typo would otherwise make the
            case silently "not supported" everywhere).
    """
    if not capabilities:
        raise ValueError("requires() needs at least one capability name")
    unknown = [c for c in capabilities if c not in _FLAGS]
    if unknown:
        raise ValueError(
            f"unknown capability {', '.join(map(repr, unknown))}; "
            f"boolean capabilities are: {', '.join(_FLAGS)}"
        )
    return pytest.mark.conformance_requires(*capabilities)


_T = TypeVar("_T")


def since(version: str) -> Callable[[_T], _T]:
    """Record the suite version that introduced a case, or every case of a suite class.

    Applied to a function, it adds the ``conformance_since`` marker. Applied to a class,
    it adds the marker to each ``test*`` function defined in that class body that does
    not already carry one.

    Args:
        version: A ``SUITE_VERSION`` string such as ``"1.0"``.
    """
    parts = version.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"suite versions look like '1.0', not {version!r}")
    mark = getattr(pytest.mark, SINCE)(version)

    def apply(target: _T) -> _T:
        if isinstance(target, type):
            for name, member in vars(target).items():
                if name.startswith("test") and callable(member) and not _has_since(member):
                    mark(member)
            return target
        return mark(target)  # type: ignore[no-any-return]

    return apply


def _has_since(function: Any) -> bool:
    return any(getattr(m, "name", None) == SINCE for m in getattr(function, "pytestmark", []))


class NotSupported(pytest.skip.Exception):  # type: ignore[misc,name-defined]
    """Raised (by the plugin only) when a case needs a capability the store lacks.

    It is pytest's skip outcome underneath, so the case body does not run; the plugin
    turns its report into "not supported". This is the one place the suite uses pytest's
    skip machinery, and never for required behaviour: the plugin fails any conformance
    case that is skipped for another reason.
    """
