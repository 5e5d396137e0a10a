"""The fixtures a store under test provides to the conformance suite.

A third party writes::

    class MyFixtures(StoreFixtures):
        @pytest.fixture
        def store(self, clock):
            store = MyStore(clock=clock)
            yield store
            store.close()

    class TestMyStore(JournalSuite, DeliverySuite, RuntimeSuite, MyFixtures):
        pass

Fixtures (override in your class):

``clock``
    An object with ``now() -> float`` and ``advance(seconds) -> None`` that moves the
    store's own clock. The default is a fresh ``ManualClock``; a server-clock store
    returns its clock's controllable form (for example an offset the server adds to its
    ``TIME``), typically built from ``store``.
``store``
    A fresh, empty ``Store`` using that clock, closed after the test. Required.
``store_url``
    A URL that ``squidie_core.open_store(url)`` in *another process* opens as the same
    store (options as URL query parameters), or ``None`` (the default) when the store
    cannot be shared between processes. Only cases needing the ``multi_process`` or
    ``durable`` capability use it (worker processes, a second client); those clients
    run on real time (the store's own system or server clock), not on ``clock``.

Class attribute (optional):

``known_failures``
    ``{case name: reason}`` of cases this store is known to fail. Each becomes a strict
    xfail: reported as a known failure while it fails, and a failure the day it passes
    (so the entry gets removed). A name is a case's function name (every parametrisation)
    or its full name with the parameters (``"test_x[commit]"``); a name that matches no
    case is an error. Required behaviour stays required: a known failure is a debt, not
    a capability.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import pytest

from squidie_core import ManualClock
from squidie_core.storage import Store

__all__ = ["StoreFixtures"]


class StoreFixtures:
    """Base of every fixtures mixin; see the module docstring."""

    known_failures: ClassVar[Mapping[str, str]] = {}

    @pytest.fixture
    def clock(self) -> ManualClock:
        """A clock the test can advance; must be the store's clock."""
        return ManualClock()

    @pytest.fixture
    def store(self, clock: ManualClock) -> Store:
        """A fresh, empty store on ``clock``. Override this."""
        raise NotImplementedError("override the `store` fixture in your fixtures class")

    @pytest.fixture
    def store_url(self) -> str | None:
        """A URL opening the same store from another process, or ``None``."""
        return None
