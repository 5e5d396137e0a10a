"""A test harness for workflow authors: an isolated engine on the memory store.

Time is frozen: nothing becomes visible and no lease expires until the test advances
the clock, so waits, retries with backoff and lease expiry are tested without sleeping::

    from squidie_core.testing import Harness

    def test_ring_errand():
        h = Harness(RingErrand)
        run = h.start(RingErrand, "leave_shire", {"ring_id": "one-ring"})
        h.drain()
        assert h.inspect(run.run_id)["status"] == "completed"
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from squidie_core._clock import ManualClock
from squidie_core._runtime import CommandResult, ExecuteResult, Squidie, StartResult

__all__ = ["Harness"]


class Harness:
    """An engine on a fresh memory store with a ``ManualClock``.

    Args:
        *workflows: Workflow classes to register.
        start: The clock's starting time (epoch seconds).
        seed: Seed of the engine's randomness (backoff jitter).
        **engine_options: Passed to ``Squidie``.

    Attributes:
        clock: The frozen clock; see ``advance_time``.
        store: The memory store (opened as ``memory://``).
        engine: The ``Squidie`` engine.
    """

    def __init__(
        self, *workflows: Any, start: float = 1_700_000_000.0, seed: int = 0,
        **engine_options: Any,
    ) -> None:
        # Through discovery, like any store: the core imports no adapter.
        from squidie_core._discovery import open_store

        self.clock = ManualClock(start)
        self.store = open_store("memory://", clock=self.clock)
        self.engine = Squidie(
            self.store, workflows=workflows, rng=random.Random(seed), **engine_options
        )

    def start(
        self, workflow: Any, trigger: str | None = None, payload: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> StartResult:
        """Start a run (see ``Squidie.start``)."""
        return self.engine.start(workflow, trigger, payload, **options)

    def step(self, owner_id: str = "harness") -> ExecuteResult | None:
        """Execute one visible dispatch, if any (heartbeats off: time is frozen)."""
        return self.engine.execute_next(owner_id=owner_id, heartbeat_interval=0)

    def drain(self, max_steps: int = 1000, owner_id: str = "harness") -> list[ExecuteResult]:
        """Execute visible dispatches until none is left (without advancing time).

        Raises:
            RuntimeError: more than ``max_steps`` were executed (a runaway workflow).
        """
        done: list[ExecuteResult] = []
        while (result := self.step(owner_id)) is not None:
            done.append(result)
            if len(done) > max_steps:
                raise RuntimeError(f"drain exceeded max_steps={max_steps}")
        return done

    def advance_time(self, seconds: float) -> float:
        """Move the clock forward (waits, backoff and leases see it); return the time."""
        return self.clock.advance(seconds)

    def approve(self, run_id: str, actor: str = "tester", **options: Any) -> CommandResult:
        """Approve the run's waiting approval step."""
        return self.engine.approve(run_id, actor=actor, **options)

    def reject(self, run_id: str, actor: str = "tester", **options: Any) -> CommandResult:
        """Reject the run's waiting approval step."""
        return self.engine.reject(run_id, actor=actor, **options)

    def resume(self, run_id: str, actor: str = "tester", **options: Any) -> CommandResult:
        """Resume the run's pause step."""
        return self.engine.resume(run_id, actor=actor, **options)

    def cancel(self, run_id: str, **options: Any) -> CommandResult:
        """Cancel the run."""
        return self.engine.cancel(run_id, **options)

    def inspect(self, run_id: str, include_history: bool = False) -> dict[str, Any]:
        """``Squidie.inspect_run``."""
        return self.engine.inspect_run(run_id, include_history=include_history)

    def explain(self, run_id: str) -> dict[str, Any]:
        """``Squidie.explain_run``."""
        return self.engine.explain_run(run_id)

    def graph(self, run_id: str) -> dict[str, Any]:
        """``Squidie.inspect_run_graph``."""
        return self.engine.inspect_run_graph(run_id)

    def delete_checkpoints(self) -> int:
        """Delete every checkpoint; results must not change (state rebuilds from facts)."""
        return int(self.store.delete_checkpoints())

    def inject_append_conflict(self, count: int = 1) -> None:
        """Make the next ``count`` commits conflict (nothing written); the engine re-plans."""
        self.store.inject_append_conflict(count)
