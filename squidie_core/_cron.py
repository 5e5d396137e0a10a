"""Cron delivery: what a host scheduler hands to the runtime for one window.

The scheduler (ours, ``squidie scheduler``, or the host's own) computes due windows of
a workflow's cron triggers and delivers ``Payload.cron(...)`` to ``Runner.perform``.
Starts are idempotent per signal id (default: the window), so several schedulers may
deliver the same window and exactly one run starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from squidie_core.errors import InvalidArgument

if TYPE_CHECKING:
    from squidie_core._runtime import Squidie, StartResult

__all__ = ["Payload", "Runner"]


@dataclass(frozen=True)
class Payload:
    """A unit of work delivered by a host scheduler. Only cron payloads are accepted.

    Attributes:
        kind: ``"cron"``.
        workflow: The workflow class or registered name.
        trigger: The cron trigger's name.
        signal_id: A stable id of this delivery (default: derived from the window).
        intended_window: ``(start, end)`` of the window this run covers.
    """

    kind: str
    workflow: Any
    trigger: str
    signal_id: str | None = None
    intended_window: tuple[datetime, datetime] | None = None

    @classmethod
    def cron(
        cls,
        workflow: Any,
        trigger: str,
        *,
        signal_id: str | None = None,
        intended_window: tuple[datetime, datetime] | None = None,
    ) -> Payload:
        """Build the payload of one cron window."""
        return cls("cron", workflow, trigger, signal_id, intended_window)


class Runner:
    """Applies scheduler payloads to an engine.

    Args:
        engine: The engine that starts the runs.
    """

    def __init__(self, engine: Squidie) -> None:
        self.engine = engine

    def perform(self, payload: Any) -> StartResult | None:
        """Start (or find) the run of a cron payload.

        Returns:
            The run (``created=False`` for a duplicate with ``return_existing_run``), or
            ``None`` for a duplicate skipped by ``skip_duplicate``.

        Raises:
            InvalidArgument: the payload is not a cron payload, or carries neither a
                signal id nor a complete window.
        """
        if not isinstance(payload, Payload) or payload.kind != "cron":
            raise InvalidArgument(
                "payload",
                f"Runner.perform accepts Payload.cron(...) only, not {payload!r}; step and "
                "compensation payloads are not part of the journal runtime contract",
            )
        return self.engine.start_cron(
            payload.workflow,
            payload.trigger,
            signal_id=payload.signal_id,
            intended_window=payload.intended_window,
        )
