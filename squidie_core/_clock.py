"""Clocks: the one source of "now" behind every lease and visibility decision.

A store owns exactly one clock (``store.clock``) and the runtime reads the same one, so
a lease decision never mixes two sources of time. In-process stores take an injected
clock; server-clock stores (Redis ``TIME``) expose the server's.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """A source of the current time as float seconds since the Unix epoch."""

    def now(self) -> float:
        """Return the current time in seconds since the epoch."""
        ...


class SystemClock:
    """The process's wall clock (``time.time()``)."""

    def now(self) -> float:
        """Return ``time.time()``."""
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that only moves when told to: for tests and simulations.

    Thread-safe. Starts at ``start`` (default 1,700,000,000: a fixed, realistic epoch so
    that timestamps in test output are stable).
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        """Return the clock's current time."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (never backwards) and return the new time."""
        if seconds < 0:
            raise ValueError("a ManualClock only moves forward")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, when: float) -> None:
        """Jump to ``when`` (must not be earlier than now)."""
        with self._lock:
            if when < self._now:
                raise ValueError("a ManualClock only moves forward")
            self._now = float(when)

    def __repr__(self) -> str:
        return f"ManualClock({self._now!r})"
