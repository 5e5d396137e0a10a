"""Seeded, reproducible fault injection for the simulator.

A ``FaultPlan`` belongs to one simulated client (``SimDatabase``). Every decision is one
draw from a ``random.Random(seed)``, so a single-threaded workload sees exactly the same
faults for the same seed; under threads the draws follow the interleaving.

What can be injected, and what FoundationDB behaviour each one stands for:

========================  ======  =========================================================
outcome                   code    meaning
========================  ======  =========================================================
``not_committed``         1020    refused before commit (as if a conflict was detected)
``too_old``               1007    refused before commit (read version fell out of the window)
``unknown_applied``       1021    the commit was applied, but the reply was lost
``unknown_dropped``       1021    the reply was lost and the commit was not applied
``unknown_late``          1021    the commit is still in flight: it lands (or conflicts)
                                  a few commits later, after the client has moved on
``timeout_late``          1031    the transaction's timeout fired during commit (only when
                                  a timeout is set); the commit may still land later
``version_jump``          1007    a recovery: versions jump ~100 s, every transaction in
                                  flight becomes too old
``pause`` (reads)         1007    the client paused past 5 s: the transaction is too old
``future_version``        1009    a storage server is behind the read version (retryable)
========================  ======  =========================================================

Commit faults are drawn once per commit of a transaction that writes; read faults once
per attempt, when it takes its read version (they then fire on its first read).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, fields

__all__ = ["COMMIT_OUTCOMES", "READ_OUTCOMES", "FaultPlan", "FaultRates"]

COMMIT_OUTCOMES = (
    "not_committed",
    "too_old",
    "unknown_applied",
    "unknown_dropped",
    "unknown_late",
    "timeout_late",
    "version_jump",
)
READ_OUTCOMES = ("pause", "future_version")


@dataclass(frozen=True)
class FaultRates:
    """Probabilities of each fault, per commit (or per read for the read faults).

    The defaults make roughly one write transaction in ten fail once: enough to exercise
    every retry path in a short test, few enough that a workload still makes progress.
    """

    not_committed: float = 0.02
    too_old: float = 0.01
    unknown_applied: float = 0.02
    unknown_dropped: float = 0.02
    unknown_late: float = 0.01
    timeout_late: float = 0.01
    version_jump: float = 0.002
    pause: float = 0.005
    future_version: float = 0.005

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault rate {f.name}={value} is not a probability")
        if sum(getattr(self, name) for name in COMMIT_OUTCOMES) > 1.0:
            raise ValueError("commit fault rates add up to more than 1")
        if sum(getattr(self, name) for name in READ_OUTCOMES) > 1.0:
            raise ValueError("read fault rates add up to more than 1")

    @classmethod
    def none(cls) -> FaultRates:
        """No faults at all."""
        return cls(**{f.name: 0.0 for f in fields(cls)})

    def scaled(self, factor: float) -> FaultRates:
        """Every rate multiplied by ``factor`` (capped so they remain probabilities)."""
        return FaultRates(**{f.name: min(getattr(self, f.name) * factor, 0.14)
                             for f in fields(self)})


class FaultPlan:
    """The faults one simulated client suffers, drawn from a seeded generator.

    Args:
        seed: The seed; the same seed gives the same draws in the same order.
        rates: The probabilities (default ``FaultRates()``).

    Attributes:
        injected: How many faults of each kind were injected so far.
    """

    def __init__(self, seed: int, rates: FaultRates | None = None) -> None:
        self.seed = seed
        self.rates = rates or FaultRates()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()

    def _draw(self, names: tuple[str, ...]) -> str | None:
        with self._lock:
            roll = self._rng.random()
            edge = 0.0
            for name in names:
                edge += getattr(self.rates, name)
                if roll < edge:
                    self.injected[name] += 1
                    return name
            return None

    def on_commit(self, *, has_timeout: bool) -> str | None:
        """Return the fault to inject into this commit, if any (see ``COMMIT_OUTCOMES``)."""
        outcome = self._draw(COMMIT_OUTCOMES)
        if outcome == "timeout_late" and not has_timeout:
            # FoundationDB raises transaction_timed_out only when a timeout is set.
            with self._lock:
                self.injected["timeout_late"] -= 1
            return None
        return outcome

    def on_read(self) -> str | None:
        """Return the fault for the attempt taking a read version (``READ_OUTCOMES``)."""
        return self._draw(READ_OUTCOMES)

    def landing_delay(self) -> int:
        """How many later commits a lost commit waits before it lands (0 to 3)."""
        with self._lock:
            return self._rng.randint(0, 3)

    def backoff(self, ceiling: float) -> float:
        """A jittered backoff in ``[0, ceiling]`` (drawn so it is reproducible too)."""
        with self._lock:
            return self._rng.uniform(0.0, ceiling)

    def __repr__(self) -> str:
        return f"FaultPlan(seed={self.seed}, injected={dict(self.injected)})"
