"""The cron scheduler: turns the cron triggers of registered workflows into runs.

Each tick the scheduler computes, per cron trigger, the fire times that fell due since
its last tick (in the trigger's timezone, DST included, with ``cronsim``) and delivers
each as ``Payload.cron(workflow, trigger, intended_window=(previous fire, fire))`` to
``Runner.perform``. The run id is derived from the window, so any number of scheduler
processes can run at once and every window still starts exactly one run: the first
delivery creates it, the others find it.

Misfires (windows that fell due while no scheduler ran) follow ``misfire``:

- ``"skip"``: start from the current time; missed windows are not run.
- ``"catch_up"`` (default): on start, deliver missed windows from the last
  ``catch_up_window`` seconds (at most ``max_catch_up`` per trigger, the most recent).

Time is the store's clock, so tests drive the scheduler with a ``ManualClock``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from cronsim import CronSim

from squidie_core._cron import Payload, Runner
from squidie_core._definition import TriggerSpec, WorkflowDefinition
from squidie_core._runtime import Squidie, StartResult

__all__ = ["CronTrigger", "Scheduler", "due_windows"]

log = logging.getLogger("squidie.scheduler")


@dataclass(frozen=True)
class CronTrigger:
    """One cron trigger of one registered workflow."""

    workflow: WorkflowDefinition
    trigger: TriggerSpec

    @property
    def label(self) -> str:
        """``workflow.trigger``."""
        return f"{self.workflow.name}.{self.trigger.name}"


def due_windows(
    expression: str, timezone: str, after: datetime, until: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """Yield ``(previous fire, fire)`` for every fire time in ``(after, until]``.

    Args:
        expression: A cron expression.
        timezone: The IANA zone the expression is read in.
        after: Exclusive lower bound (aware datetime).
        until: Inclusive upper bound (aware datetime).
    """
    zone = ZoneInfo(timezone)
    start = after.astimezone(zone)
    for fire in CronSim(expression, start):
        if fire > until:
            return
        previous = next(CronSim(expression, fire, reverse=True))
        yield previous.astimezone(UTC), fire.astimezone(UTC)


class Scheduler:
    """Delivers due cron windows of the engine's registered workflows.

    Args:
        engine: The engine whose registered workflows' cron triggers are scheduled.
        tick: Seconds between ticks of ``run``.
        misfire: ``"catch_up"`` or ``"skip"`` (see the module docstring).
        catch_up_window: How far back ``catch_up`` looks on start, in seconds.
        max_catch_up: The most missed windows delivered per trigger on start.
    """

    def __init__(
        self,
        engine: Squidie,
        *,
        tick: float = 1.0,
        misfire: Literal["catch_up", "skip"] = "catch_up",
        catch_up_window: float = 3600.0,
        max_catch_up: int = 10,
    ) -> None:
        if misfire not in ("catch_up", "skip"):
            raise ValueError("misfire must be 'catch_up' or 'skip'")
        self.engine = engine
        self.runner = Runner(engine)
        self.tick = tick
        self.misfire = misfire
        self.catch_up_window = catch_up_window
        self.max_catch_up = max_catch_up
        self._last: dict[str, datetime] = {}
        self._stop = threading.Event()

    def triggers(self) -> list[CronTrigger]:
        """Every cron trigger of the registered workflows."""
        return [
            CronTrigger(definition, spec)
            for definition in self.engine.workflows.values()
            for spec in definition.triggers.values()
            if spec.kind == "cron"
        ]

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.engine.clock.now(), UTC)

    def run_once(self) -> list[StartResult]:
        """Deliver every window due since the last call; return the runs it created.

        The first call per trigger applies the misfire policy.
        """
        now = self._now()
        started: list[StartResult] = []
        for cron in self.triggers():
            last = self._last.get(cron.label)
            first = last is None
            if last is None:
                back = self.catch_up_window if self.misfire == "catch_up" else 0.0
                last = datetime.fromtimestamp(now.timestamp() - back, UTC)
            windows = list(due_windows(str(cron.trigger.expression),
                                       str(cron.trigger.timezone), last, now))
            if first and len(windows) > self.max_catch_up:
                skipped = len(windows) - self.max_catch_up
                log.warning("%s: %d missed window(s) beyond max_catch_up skipped",
                            cron.label, skipped)
                windows = windows[-self.max_catch_up:]
            for window in windows:
                result = self._deliver(cron, window)
                if result is not None and result.created:
                    started.append(result)
            self._last[cron.label] = now
        return started

    def _deliver(self, cron: CronTrigger, window: tuple[datetime, datetime]) -> Any:
        payload = Payload.cron(cron.workflow.name, str(cron.trigger.name),
                               intended_window=window)
        try:
            result = self.runner.perform(payload)
        except Exception as exc:  # one bad trigger must not stop the others
            log.error("%s window %s: %s", cron.label, window[1].isoformat(), exc)
            return None
        if result is not None and result.created:
            log.info("%s window ending %s started run %s", cron.label,
                     window[1].isoformat(), result.run_id,
                     extra={"run_id": result.run_id, "workflow": cron.workflow.name})
        return result

    def stop(self) -> None:
        """Make ``run`` return after its current tick."""
        self._stop.set()

    def run(self) -> None:
        """Tick until ``stop()``."""
        log.info("scheduler serving %d cron trigger(s)", len(self.triggers()))
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # the store is down: try again next tick
                log.warning("scheduler tick failed: %s", exc)
            self._stop.wait(self.tick)
