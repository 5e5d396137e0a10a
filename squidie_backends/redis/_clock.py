"""The Redis store's one clock: the server's ``TIME``, plus an offset tests can advance.

Every lease and visibility decision is made inside a script from ``redis.call('TIME')``
plus ``offset`` (passed as an argument to every script), so workers on machines whose
clocks disagree still agree on when a lease lapses. ``offset`` is 0 in production; tests
move it forward with ``advance`` to expire leases and reach delayed dispatches without
sleeping. It is a client-side value, not a key: a key would have to live in the slot of
every script on Redis Cluster.

``now()`` is what the runtime stamps facts and index rows with. It does not decide
anything, so it need not cost a round trip each time: it reads ``TIME`` once per
``sync_interval`` seconds and extrapolates in between with the client's monotonic clock
(drift over one interval is microseconds). ``sync_interval=0`` reads ``TIME`` on every
call. Returned values never go backwards within one clock object.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["RedisClock"]


class RedisClock:
    """The server's ``TIME`` plus a test offset, in epoch seconds.

    Args:
        server_time: Returns the server's ``TIME`` as ``(seconds, microseconds)``.
        sync_interval: Seconds between two ``TIME`` round trips of ``now()`` (0: always).
    """

    def __init__(
        self, server_time: Callable[[], tuple[int, int]], *, sync_interval: float = 1.0
    ) -> None:
        self._server_time = server_time
        self._sync_interval = max(float(sync_interval), 0.0)
        self._lock = threading.Lock()
        self._offset_us = 0
        self._base_us: int | None = None
        self._base_mono = 0.0
        self._last = 0.0

    @property
    def offset(self) -> float:
        """Seconds added to the server's time (0 in production)."""
        return self._offset_us / 1e6

    @property
    def offset_us(self) -> int:
        """The offset in microseconds, as scripts take it."""
        return self._offset_us

    def _sync(self) -> None:
        seconds, micros = self._server_time()
        # The server read TIME somewhere inside the round trip; anchoring the reading at
        # the round trip's end means now() may lag the server by up to one round trip but
        # never runs ahead of it. Ahead would be wrong: a caller moving past a lease's
        # expiry by now() + a margin could still be short of it on the server (seen under
        # heavy load, when a round trip takes longer than the margin).
        self._base_us = seconds * 1_000_000 + micros
        self._base_mono = time.monotonic()

    def server_now(self) -> float:
        """Return the server's ``TIME`` plus the offset (always one round trip)."""
        seconds, micros = self._server_time()
        with self._lock:
            return (seconds * 1_000_000 + micros + self._offset_us) / 1e6

    def now(self) -> float:
        """Return the store clock's time in epoch seconds (see the module docstring)."""
        with self._lock:
            mono = time.monotonic()
            if self._base_us is None or mono - self._base_mono >= self._sync_interval:
                self._sync()
                mono = time.monotonic()
            assert self._base_us is not None
            elapsed_us = round((mono - self._base_mono) * 1e6)
            value = (self._base_us + elapsed_us + self._offset_us) / 1e6
            value = max(value, self._last)
            self._last = value
            return value

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (tests only) and return the new time.

        Raises:
            ValueError: ``seconds`` is negative (the clock only moves forward).
        """
        if seconds < 0:
            raise ValueError("the store clock only moves forward")
        with self._lock:
            self._offset_us += round(seconds * 1e6)
        return self.now()

    def __repr__(self) -> str:
        return f"RedisClock(offset={self.offset!r})"
