"""Decisions: given a definition, a run's state and an event, which facts and dispatches follow.

Every function here works on a ``Plan``: a working copy of the run state plus the facts
and dispatches decided so far. Each fact is folded into the working copy as soon as it is
added, so later decisions in the same plan see its effect (a step's output is in the
context before its ``ok`` conditions are evaluated). Nothing here does I/O; the runtime
commits a plan atomically, or re-plans from fresh state after a conflict.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from squidie_core._definition import COMPLETE, Edge, StepSpec, WorkflowDefinition
from squidie_core._facts import COMPENSATE_SUFFIX, RunState
from squidie_core._steps import Outcome
from squidie_core.storage import Dispatch, Fact, RunEntry

__all__ = ["Plan"]


class Plan:
    """Facts and dispatches decided for one run, folded into a working state as they go.

    Args:
        definition: The run's workflow.
        state: The run's current state (copied; the original is not touched).
        now: The store clock's time, stamped on every fact.
        max_deliveries: The delivery limit for dispatches this plan enqueues.
        rng: Randomness for backoff jitter.
    """

    def __init__(
        self,
        definition: WorkflowDefinition,
        state: RunState,
        *,
        now: float,
        max_deliveries: int,
        rng: random.Random,
        copy_state: bool = True,
    ) -> None:
        self.definition = definition
        self.base_seq = state.seq
        self.state = state.copy() if copy_state else state
        self.now = now
        self.max_deliveries = max_deliveries
        self.rng = rng
        self.facts: list[Fact] = []
        self.dispatches: list[Dispatch] = []
        #: Identifies the API call this plan serves (in its receipt fact), if any.
        self.request_id: str | None = None

    # ------------------------------------------------------------------ recording

    def add(self, fact_type: str, body: Mapping[str, Any]) -> None:
        """Record a fact and fold it into the working state."""
        fact = Fact(seq=self.state.seq + 1, type=fact_type, at=self.now, body=dict(body))
        self.facts.append(fact)
        self.state.apply(fact)

    def run_entry(self) -> RunEntry:
        """The run's index row as of this plan."""
        s = self.state
        return RunEntry(
            run_id=s.run_id,
            workflow=s.workflow,
            trigger=s.trigger,
            status=s.status,
            queue=s.queue,
            created_at=s.created_at,
            updated_at=s.updated_at,
            last_seq=s.seq,
            parent_run_id=(s.parent or {}).get("run_id"),
        )

    # ------------------------------------------------------------------ scheduling

    def spec(self, step: str) -> StepSpec:
        """The spec behind a step name (a compensation runs its step's ``compensate``)."""
        return self.definition.steps[step.removesuffix(COMPENSATE_SUFFIX)]

    def schedule(self, step: str, *, attempt: int = 1, delay: float = 0.0, reason: str) -> None:
        """Make ``step`` the run's next work: a dispatch, a timer, or a parked step."""
        spec = self.spec(step)
        if not step.endswith(COMPENSATE_SUFFIX):
            if spec.kind == "pause":
                self.add("paused", {"step": step})
                return
            if spec.kind == "approval":
                self.add("approval_requested", {"step": step})
                return
            if spec.kind == "wait" and attempt == 1:
                duration = float(spec.duration or 0.0)
                self.add("wait_started",
                         {"step": step, "duration": duration, "until": self.now + duration})
                delay = duration
        key = Dispatch.make_key(self.state.run_id, step, attempt)
        self.add(
            "dispatch_scheduled",
            {"step": step, "attempt": attempt, "key": key, "visible_at": self.now + delay,
             "delay": delay, "reason": reason},
        )
        self.dispatches.append(
            Dispatch(
                key=key,
                run_id=self.state.run_id,
                workflow=self.state.workflow,
                step=step,
                attempt=attempt,
                queue=self.state.queue,
                priority=self.state.priority,
                delay=delay,
                max_deliveries=self.max_deliveries,
            )
        )

    def schedule_entries(self) -> None:
        """Schedule the workflow's entry step(s) of a new run."""
        for entry in self.definition.entries:
            self.schedule(entry, reason="entry")

    # ------------------------------------------------------------------ outcomes

    def step_outcome(
        self,
        step: str,
        attempt: int,
        outcome: Outcome,
        *,
        owner: str,
        fence: int,
        started_at: float,
        duration: float,
    ) -> None:
        """Record an attempt's outcome and decide what follows."""
        self.add(
            "attempt_started",
            {"step": step, "attempt": attempt, "owner": owner, "fence": fence,
             "started_at": started_at},
        )
        if step.endswith(COMPENSATE_SUFFIX):
            self._compensation_outcome(step, attempt, outcome, duration)
            return
        spec = self.definition.steps[step]
        if outcome.kind == "ok":
            if spec.kind == "wait":
                self.add("wait_elapsed", {"step": step})
            self.add(
                "attempt_succeeded",
                {"step": step, "attempt": attempt, "output": outcome.output or {},
                 "into": spec.output, "irreversible": spec.irreversible,
                 "duration": duration},
            )
            self.route(step, "ok")
            return
        if self._retry(step, attempt, outcome, duration, spec):
            return
        self.route(step, "error", error=outcome.error)

    def _retry(
        self, step: str, attempt: int, outcome: Outcome, duration: float, spec: StepSpec
    ) -> bool:
        retry = outcome.kind == "retry" and attempt < spec.retry.max_attempts
        retry = retry and self.state.failing is None
        self.add(
            "attempt_failed",
            {"step": step, "attempt": attempt, "error": outcome.error or {},
             "retryable": outcome.retryable, "exhausted": outcome.retryable and not retry,
             "duration": duration},
        )
        if not retry:
            return False
        if outcome.retry_after is not None:
            delay = outcome.retry_after
        else:
            delay = spec.retry.backoff.delay(attempt, self.rng)
        self.add("retry_scheduled", {"step": step, "attempt": attempt + 1, "delay": delay})
        self.schedule(step, attempt=attempt + 1, delay=delay, reason="retry")
        return True

    def _compensation_outcome(
        self, step: str, attempt: int, outcome: Outcome, duration: float
    ) -> None:
        spec = self.spec(step)
        if outcome.kind == "ok":
            self.add(
                "attempt_succeeded",
                {"step": step, "attempt": attempt, "output": outcome.output or {},
                 "into": None, "duration": duration},
            )
            self._next_compensation()
            return
        if self._retry(step, attempt, outcome, duration, spec):
            return
        comp = self.state.compensation or {}
        self.add(
            "run_failed",
            {"reason": "compensation_failed", "step": step, "error": outcome.error or {},
             "failed_step": comp.get("failed_step"),
             "compensated": list(comp.get("done", []))},
        )

    # ------------------------------------------------------------------ routing

    def route(self, step: str, on: str, *, error: Mapping[str, Any] | None = None) -> None:
        """Follow ``step``'s ``on`` outcome: the next step, completion, or failure."""
        if self.state.failing is not None:
            self._settle_failure()
            return
        if self.definition.mode == "dependencies":
            self._route_dependencies(step, on, error)
            return
        context: Mapping[str, Any] = self.state.context
        if on == "error":
            context = {**self.state.context, "error": dict(error or {})}
        edge = self.select(step, on, context)
        if edge is None:
            if on == "ok":
                self.fail(step, {"type": "NoRoute",
                                 "message": f"no transition condition matched after {step!r}"},
                          reason="no_matching_transition")
            else:
                self.fail(step, error)
            return
        self.add("transition_taken", {"from": step, "on": on, "to": edge.to})
        if edge.recovery:
            self.add("recovery_entered", {"step": step, "marker": edge.recovery, "to": edge.to})
        if edge.to == COMPLETE:
            self.add("run_completed", {"reason": "completed"})
        else:
            self.schedule(edge.to, reason="transition")

    def select(self, step: str, on: str, context: Mapping[str, Any]) -> Edge | None:
        """The first matching edge (conditional ones in order, the unconditional last)."""
        for edge in self.definition.routes(step, on):
            if edge.condition is None or edge.condition.matches(context):
                return edge
        return None

    def _route_dependencies(
        self, step: str, on: str, error: Mapping[str, Any] | None
    ) -> None:
        if on == "error":
            self.fail(step, error)
            return
        steps = self.state.steps
        for dependent in self.definition.dependents(step):
            if dependent in steps and steps[dependent]["status"] != "waiting":
                continue
            deps = self.definition.dependencies(dependent)
            if all(steps.get(d, {}).get("status") == "completed" for d in deps):
                # A join takes every one of its dependency edges, not just the last one.
                for dep in deps:
                    self.add("transition_taken", {"from": dep, "on": "ok", "to": dependent})
                self.schedule(dependent, reason="dependencies_met")
        if (
            not self.state.pending
            and self.state.parked is None
            and all(steps.get(n, {}).get("status") == "completed" for n in self.definition.steps)
        ):
            self.add("run_completed", {"reason": "completed"})

    # ------------------------------------------------------------------ failure

    def fail(self, step: str, error: Mapping[str, Any] | None, *, reason: str = "step_failed"
             ) -> None:
        """Fail the run from ``step``: wait for running branches, compensate, then fail."""
        error = dict(error or {})
        if self.state.pending:
            self.add("run_failing", {"step": step, "error": error, "reason": reason})
            return
        self._finish_failure(step, error, reason)

    def _settle_failure(self) -> None:
        failing = self.state.failing or {}
        if not self.state.pending:
            self._finish_failure(failing.get("step", "?"), failing.get("error", {}),
                                 failing.get("reason", "step_failed"))

    def _finish_failure(self, step: str, error: Mapping[str, Any], reason: str) -> None:
        order: list[str] = []
        for name in reversed(self.state.completed_order):
            spec = self.definition.steps.get(name)
            if spec is not None and spec.compensate is not None and name not in order:
                order.append(name)
        if order:
            self.add(
                "compensation_started",
                {"steps": order, "failed_step": step, "error": dict(error), "reason": reason},
            )
            self.schedule(order[0] + COMPENSATE_SUFFIX, reason="compensation")
            return
        self.add("run_failed", {"reason": reason, "step": step, "error": dict(error)})

    def _next_compensation(self) -> None:
        comp = self.state.compensation or {}
        remaining = [s for s in comp.get("steps", []) if s not in comp.get("done", [])]
        if remaining:
            self.schedule(remaining[0] + COMPENSATE_SUFFIX, reason="compensation")
            return
        self.add(
            "run_failed",
            {"reason": comp.get("reason", "step_failed"), "step": comp.get("failed_step"),
             "error": comp.get("error", {}), "compensated": list(comp.get("done", []))},
        )
