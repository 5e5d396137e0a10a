"""The journal runtime: starting runs, executing attempts, and applying operator commands.

The engine (``Squidie``) owns no state of its own: every decision is read from the store
(checkpoint plus facts since), planned (``_planner``) and committed atomically with the
lease that justified it. Two workers racing on one run cannot both win: the journal's
expected sequence makes the slower commit conflict, and it re-plans from fresh facts.
A worker that lost its lease cannot commit at all.

A cancel racing a running step::

    worker A (runs step s)              store                    operator
    claim s:1 (fence 1)   ---------->
    ... step running ...                                <------  cancel(run)
                                       receipt + run_cancelled
                                       appended; s:1 failed
                                       (reason run_terminal)
    commit(settle=s:1) ------------>   token not current:
                                       LeaseLostError
    result discarded, logged
"""

from __future__ import annotations

import contextlib
import copy
import logging
import random
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from squidie_core import _json
from squidie_core._definition import WorkflowDefinition, lookup_path
from squidie_core._facts import COMPENSATE_SUFFIX, RunState, fold
from squidie_core._payload import validate_payload
from squidie_core._planner import Plan
from squidie_core._redact import redact
from squidie_core._steps import Outcome, StepContext, call_step, normalize_outcome
from squidie_core._telemetry import Telemetry, events_for
from squidie_core._workflow import definition_of
from squidie_core.errors import (
    AppendConflict,
    CapabilityNotSupported,
    CorruptDataError,
    IdempotencyConflict,
    InvalidArgument,
    InvalidTransitionError,
    LeaseLostError,
    RunNotFound,
    RunTerminalError,
    TriggerNotFound,
    ValueTooLarge,
    WorkflowNotFound,
)
from squidie_core.storage import (
    RUN_STATUSES,
    Checkpoint,
    Commit,
    CommitResult,
    Lease,
    Page,
    Store,
    check_queue_name,
    commit_many,
    read_claimed,
    read_runs,
)

__all__ = ["CommandResult", "ExecuteResult", "Squidie", "StartResult"]

log = logging.getLogger("squidie")
workflow_log = logging.getLogger("squidie.workflow")

_NAMESPACE = uuid.UUID("5b1d1e00-59a1-4d1e-9e1e-5ca1ab1e0001")
_CONFLICT_RETRIES = 25
DEFAULT_LEASE = 300.0
MIN_HEARTBEAT = 0.05


def derived_run_id(*parts: str) -> str:
    """A run id derived deterministically from its identifying parts."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


def iso(ts: float | None) -> str | None:
    """Format store-clock seconds as an ISO 8601 UTC string."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class StartResult:
    """What ``start`` (or a cron delivery, a replay, a child start) did.

    Attributes:
        run_id: The run's id.
        workflow: The workflow name.
        trigger: The trigger name.
        status: The run's status after the call.
        created: ``False`` when an idempotent start returned an existing run.
    """

    run_id: str
    workflow: str
    trigger: str
    status: str
    created: bool = True


@dataclass(frozen=True)
class CommandResult:
    """What an operator command did.

    Attributes:
        run_id: The run.
        command: ``approve``, ``reject``, ``resume``, ``cancel`` or ``replay``.
        status: The run's status after the command.
        seq: The sequence of the command's receipt fact.
        duplicate: ``True`` when an idempotency key returned an earlier result.
        result: Command-specific data (``replay``: ``{"run_id": new run}``).
    """

    run_id: str
    command: str
    status: str
    seq: int
    duplicate: bool = False
    result: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ExecuteResult:
    """What one ``execute_next`` did.

    Attributes:
        run_id: The run.
        step: The step attempted.
        attempt: The attempt number.
        dispatch_key: The dispatch executed.
        outcome: ``ok``, ``error`` or ``retry`` when committed; ``lease_lost`` when the
            result was discarded; ``dead_lettered`` or ``skipped`` when the step was not
            run.
        run_status: The run's status after the commit (``None`` if nothing committed).
        error: The error recorded, if any.
        detail: A human-readable note for the non-committed outcomes.
    """

    run_id: str
    step: str
    attempt: int
    dispatch_key: str
    outcome: str
    run_status: str | None = None
    error: Mapping[str, Any] | None = None
    detail: str | None = None


# --------------------------------------------------------------------------- heartbeats


@dataclass(eq=False)
class _Tracked:
    lease: Lease
    lease_for: float
    interval: float
    due: float
    lost: bool = False
    error: str | None = None


@dataclass(eq=False)
class _Ran:
    """A step that ran, with what committing its outcome needs."""

    lease: Lease
    definition: WorkflowDefinition
    state: RunState
    checkpoint_seq: int
    outcome: Outcome
    children: _Children
    started_at: float
    duration: float
    tracked: _Tracked | None = None
    span: Any = None


class _Heartbeater:
    """One daemon thread per engine extending the leases of steps that are running."""

    def __init__(self, store: Store, on_beat: Callable[[Lease], None]) -> None:
        self._store = store
        self._on_beat = on_beat
        self._cond = threading.Condition()
        self._tracked: set[_Tracked] = set()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def track(self, lease: Lease, *, lease_for: float, interval: float) -> _Tracked:
        item = _Tracked(lease, lease_for, interval, time.monotonic() + interval)
        with self._cond:
            self._tracked.add(item)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="squidie-heartbeat", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return item

    def untrack(self, item: _Tracked) -> None:
        with self._cond:
            self._tracked.discard(item)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                now = time.monotonic()
                due = [t for t in self._tracked if t.due <= now]
                if not due:
                    timeout = min((t.due for t in self._tracked), default=now + 5.0) - now
                    self._cond.wait(max(timeout, 0.001))
                    continue
            for item in due:
                self._beat(item)

    def _beat(self, item: _Tracked) -> None:
        try:
            item.lease = self._store.heartbeat(item.lease, lease_for=item.lease_for)
        except LeaseLostError as exc:
            item.lost = True
            item.error = str(exc)
            log.warning(
                "heartbeat found the lease on %s lost (%s); the running step's result "
                "will be discarded", item.lease.key, exc,
                extra={"run_id": item.lease.dispatch.run_id, "step": item.lease.dispatch.step,
                       "attempt": item.lease.dispatch.attempt, "owner": item.lease.owner_id},
            )
            with self._cond:
                self._tracked.discard(item)
            return
        except Exception as exc:  # the backend hiccuped: try again next interval
            log.warning("heartbeat of %s failed: %s", item.lease.key, exc)
        else:
            self._on_beat(item.lease)
        item.due = time.monotonic() + item.interval


# --------------------------------------------------------------------------- engine


@dataclass
class _Children:
    """Children started by one step attempt, recorded with its outcome."""

    started: list[dict[str, Any]] = field(default_factory=list)


class Squidie:
    """The engine: the public API over one store.

    Args:
        store: The store (see ``squidie_core.storage.Store``).
        workflows: Workflow classes this engine can run (more via ``register``).
        max_deliveries: Deliveries of one dispatch before it is dead-lettered.
        checkpoint_every: Write a checkpoint once this many facts accumulated since the
            last one.
        state_cache: Runs whose folded state this engine keeps in memory after
            committing one of their steps (``0`` turns the cache off). A cached state is
            never trusted blindly: the next step of the run reads the journal after the
            cached sequence and folds whatever another process appended meanwhile, so
            a step costs one journal read instead of a checkpoint read plus a replay.
        max_value_bytes: The largest encoded payload or step output accepted.
        rng: Randomness for backoff jitter (inject a seeded one in tests).
        telemetry: Emit OpenTelemetry spans and metrics (when the API is installed).

    Example::

        engine = Squidie.from_url("sqlite:///squidie.db", workflows=[RingErrand])
        run = engine.start(RingErrand, "leave_shire", {"ring_id": "one-ring"})
        while engine.execute_next(owner_id="worker-1"):
            pass
    """

    def __init__(
        self,
        store: Store,
        *,
        workflows: Iterable[Any] = (),
        max_deliveries: int = 5,
        checkpoint_every: int = 32,
        state_cache: int = 4096,
        max_value_bytes: int = 1_048_576,
        rng: random.Random | None = None,
        telemetry: bool = True,
    ) -> None:
        if max_deliveries < 1:
            raise InvalidArgument("max_deliveries", "must be at least 1")
        self.store = store
        self.clock = store.clock
        self.max_deliveries = max_deliveries
        self.checkpoint_every = max(checkpoint_every, 1)
        if state_cache < 0:
            raise InvalidArgument("state_cache", "must be 0 or more")
        self.state_cache = state_cache
        # run id -> (folded state, sequence of its last checkpoint); an entry is popped
        # while a step of its run is in flight, so no two threads share a state object.
        self._states: OrderedDict[str, tuple[RunState, int]] = OrderedDict()
        self._states_lock = threading.Lock()
        store_limit = store.capabilities.max_value_bytes
        self.max_value_bytes = min(max_value_bytes, store_limit or max_value_bytes)
        self.rng = rng or random.Random()
        self._workflows: dict[str, WorkflowDefinition] = {}
        self._registry_lock = threading.Lock()
        self.telemetry = Telemetry(store, enabled=telemetry)
        self._heartbeater = _Heartbeater(store, self._heartbeat_event)
        self._load_instrumentation()
        #: Runs an async step's coroutine; ``None`` runs it on a private loop per call.
        #: The worker sets it to its shared event loop.
        self.async_runner: Callable[[Coroutine[Any, Any, Any]], Any] | None = None
        #: Calls a step's function: ``step_runner((workflow, step), call)`` returns
        #: ``call()``; ``None`` calls it directly. A worker whose slots take turns in the
        #: engine's own work sets it to give up the turn while a step runs.
        self.step_runner: Callable[[tuple[str, str], Callable[[], Any]], Any] | None = None
        for workflow in workflows:
            self.register(workflow)

    @classmethod
    def from_url(cls, url: str, *, workflows: Iterable[Any] = (), **options: Any) -> Squidie:
        """Open the store for ``url`` (through discovery) and return an engine on it.

        Args:
            url: A store URL such as ``"memory://"`` or ``"sqlite:///squidie.db"``.
            workflows: Workflow classes to register.
            **options: Engine options (see the class) and, under ``store_options``, a dict
                passed to the store's factory.
        """
        from squidie_core._discovery import open_store

        store_options = options.pop("store_options", {})
        return cls(open_store(url, **store_options), workflows=workflows, **options)

    def close(self) -> None:
        """Stop the heartbeat thread and close the store."""
        self._heartbeater.stop()
        self.store.close()

    def __enter__(self) -> Squidie:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ registry

    def register(self, *workflows: Any) -> None:
        """Make workflow classes runnable by this engine (by their ``name``).

        Raises:
            ValueError: a different workflow is already registered under the same name.
        """
        with self._registry_lock:
            for workflow in workflows:
                definition = definition_of(workflow)
                known = self._workflows.get(definition.name)
                if known is not None and known.cls is not definition.cls:
                    raise ValueError(
                        f"a different workflow is already registered as {definition.name!r}"
                    )
                self._workflows[definition.name] = definition

    @property
    def workflows(self) -> Mapping[str, WorkflowDefinition]:
        """Registered workflows by name."""
        return dict(self._workflows)

    def definition(self, workflow: Any) -> WorkflowDefinition:
        """Return the definition for a class (registering it) or a registered name."""
        if isinstance(workflow, str):
            found = self._workflows.get(workflow)
            if found is None:
                raise WorkflowNotFound(workflow, list(self._workflows))
            return found
        definition = definition_of(workflow)
        if self._workflows.get(definition.name) is not definition:
            self.register(workflow)
        return definition

    def queues(self) -> list[str]:
        """The queues of registered workflows, plus ``default``."""
        return sorted({"default", *(d.queue for d in self._workflows.values())})

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener(event)`` for every event, after the commit that caused it.

        Events are dicts with ``name`` (see ``squidie_core._telemetry.EVENT_NAMES``),
        ``run_id``, ``workflow``, ``at`` and, where they apply, ``step``, ``attempt``,
        ``outcome``, ``status``. A listener that raises is logged and ignored.
        """
        self.telemetry.listeners.append(listener)

    def _load_instrumentation(self) -> None:
        from squidie_core._discovery import registry

        try:
            plugins = registry().instrumentation()
        except Exception as exc:  # a broken plugin must not stop the engine
            log.warning("instrumentation plugins not loaded: %s", exc)
            return
        for obj in plugins:
            on_event = getattr(obj, "on_event", None)
            if callable(on_event):
                self.telemetry.listeners.append(on_event)

    def _heartbeat_event(self, lease: Lease) -> None:
        if self.telemetry.listeners:
            d = lease.dispatch
            self.telemetry.emit([{"name": "attempt.heartbeat", "run_id": d.run_id,
                                  "workflow": d.workflow, "step": d.step,
                                  "attempt": d.attempt, "at": self.clock.now()}])

    # ------------------------------------------------------------------ state

    def load(self, run_id: str) -> RunState:
        """Return a run's current state (checkpoint plus facts since).

        Raises:
            RunNotFound: the run has no facts.
        """
        return self._load(run_id)[0]

    def _load(self, run_id: str, lease: Lease | None = None) -> tuple[RunState, int]:
        # The checkpoint and the facts after it, in one read where the store can (of a
        # claimed run: with its claim, where the store can).
        after: dict[str, int | None] = {run_id: None}
        checkpoint, facts = (read_runs(self.store, after) if lease is None
                             else read_claimed(self.store, [lease], after))[run_id]
        state: RunState | None = None
        base = 0
        if checkpoint is not None:
            try:
                state, base = _checkpoint_state(run_id, checkpoint), checkpoint.seq
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("ignoring unreadable checkpoint of run %s: %s", run_id, exc)
                state, base = None, 0
                facts = self.store.read(run_id)
        if state is not None and not facts and self.store.head(run_id) < base:
            log.warning("ignoring checkpoint of run %s from beyond its journal", run_id)
            state, base = None, 0
            facts = self.store.read(run_id)
        if state is None:
            if not facts:
                raise RunNotFound(run_id)
            state = RunState(run_id)
        return fold(run_id, facts, state), base

    def _load_cached(self, run_id: str, lease: Lease) -> tuple[RunState, int]:
        """``_load`` of the run of a claimed ``lease``, starting from the state this
        engine cached after the run's last step.

        The journal is still read, after the cached sequence, and those facts folded in:
        the result is what ``_load`` returns, one round trip cheaper.
        """
        with self._states_lock:
            cached = self._states.pop(run_id, None)
        if cached is None:
            return self._load(run_id, lease)
        state, checkpoint_seq = cached
        _, facts = read_claimed(self.store, [lease], {run_id: state.seq})[run_id]
        return fold(run_id, facts, state), checkpoint_seq

    def _load_many(self, leases: Sequence[Lease]) -> dict[str, tuple[RunState, int]]:
        """``_load_cached`` for the runs of several claimed leases (one each) in one read
        (``read_claimed``).

        A run that needs anything unusual (an unreadable checkpoint, a checkpoint with
        nothing after it, no facts, a corrupt fact) is left out: its attempt loads it
        alone, which decides and explains.
        """
        cached: dict[str, tuple[RunState, int]] = {}
        run_ids = [lease.dispatch.run_id for lease in leases]
        with self._states_lock:
            for run_id in run_ids:
                hit = self._states.pop(run_id, None)
                if hit is not None:
                    cached[run_id] = hit
        try:
            reads = read_claimed(self.store, leases, {
                run_id: cached[run_id][0].seq if run_id in cached else None
                for run_id in run_ids
            })
        except CorruptDataError:
            reads = {}
        loaded: dict[str, tuple[RunState, int]] = {}
        for run_id, (checkpoint, facts) in reads.items():
            if run_id in cached:
                state, checkpoint_seq = cached[run_id]
                loaded[run_id] = fold(run_id, facts, state), checkpoint_seq
                continue
            if not facts:
                continue
            base, state = 0, RunState(run_id)
            if checkpoint is not None:
                try:
                    state, base = _checkpoint_state(run_id, checkpoint), checkpoint.seq
                except (ValueError, TypeError, KeyError):
                    continue
            loaded[run_id] = fold(run_id, facts, state), base
        # What was cached but not loaded here goes back, for the attempt's own load.
        with self._states_lock:
            for run_id, hit in cached.items():
                if run_id not in loaded:
                    self._states[run_id] = hit
        return loaded

    def _remember(self, state: RunState, checkpoint_seq: int) -> None:
        """Cache a run's state after a successful commit (dropped once the run ends)."""
        if self.state_cache == 0 or state.terminal:
            return
        with self._states_lock:
            self._states[state.run_id] = (state, checkpoint_seq)
            while len(self._states) > self.state_cache:
                self._states.popitem(last=False)

    def _checkpoint_due(self, state: RunState, checkpoint_seq: int) -> bool:
        return state.seq - checkpoint_seq >= self.checkpoint_every

    def _plan(self, definition: WorkflowDefinition, state: RunState) -> Plan:
        return Plan(
            definition,
            state,
            now=self.clock.now(),
            max_deliveries=self.max_deliveries,
            rng=self.rng,
            copy_state=False,
        )

    def _commit_of(self, plan: Plan, checkpoint_seq: int, settle: Lease | None) -> Commit:
        state = plan.state
        checkpoint = None
        if self._checkpoint_due(state, checkpoint_seq):
            checkpoint = Checkpoint(seq=state.seq, data=state.encode())
        return Commit(
            run_id=state.run_id,
            expected_seq=plan.base_seq,
            facts=plan.facts,
            run=plan.run_entry(),
            enqueue=plan.dispatches,
            settle=settle,
            checkpoint=checkpoint,
        )

    def _after_commit(self, plan: Plan, result: CommitResult, outcome: str) -> None:
        state = plan.state
        telemetry = self.telemetry
        telemetry.count_commit(state.workflow, outcome)
        if not result.replayed and telemetry.wants_events():
            telemetry.emit(events_for(state.run_id, state.workflow, state.status, plan.facts))

    def _commit(
        self, plan: Plan, *, checkpoint_seq: int, settle: Lease | None = None,
        outcome: str = "command",
    ) -> CommitResult:
        result = self.store.commit(self._commit_of(plan, checkpoint_seq, settle))
        self._after_commit(plan, result, outcome)
        return result

    def _check_size(self, what: str, value: Any) -> None:
        size = len(_json.dumps(value).encode())
        if size > self.max_value_bytes:
            raise ValueTooLarge(what, size, self.max_value_bytes)

    # ------------------------------------------------------------------ start

    def start(
        self,
        workflow: Any,
        trigger: str | None = None,
        payload: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        queue: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        actor: str | None = None,
        priority: int = 0,
    ) -> StartResult:
        """Start a run through a manual trigger.

        The payload is validated before anything is written. With an
        ``idempotency_key`` the run id is derived from (workflow, trigger, key): a second
        start returns the first run (``created=False``) and writes nothing.

        Args:
            workflow: The workflow class (registered on first use) or registered name.
            trigger: The trigger name; default the workflow's only manual trigger.
            payload: The payload, checked against the trigger's fields.
            idempotency_key: Makes the start idempotent.
            queue: Overrides the workflow's queue for this run.
            metadata: Stored (redacted) with the start receipt.
            actor: Who started it, for the command history.
            priority: Claim order among visible dispatches of the queue (lower first);
                needs a store with the ``priorities`` capability.

        Raises:
            WorkflowNotFound: the workflow is neither a class nor a registered name.
            TriggerNotFound: no manual trigger of that name.
            PayloadError: the payload does not fit the trigger's fields.
            ValueTooLarge: the encoded payload exceeds ``max_value_bytes``.
            IdempotencyConflict: the key was used with a different payload.
            CapabilityNotSupported: a priority on a store without priorities.
        """
        if priority and not self.store.capabilities.priorities:
            raise CapabilityNotSupported(self.store.name, "priorities")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidArgument("priority", "must be an integer")
        definition = self.definition(workflow)
        trigger = self._manual_trigger(definition, trigger)
        if queue is not None:
            check_queue_name(queue)
        data = validate_payload(definition, trigger, payload)
        self._check_size("payload", data)
        if idempotency_key is not None:
            run_id = derived_run_id("start", definition.name, trigger, idempotency_key)
        else:
            run_id = str(uuid.uuid4())
        receipt = {"command": "start", "idempotency_key": idempotency_key, "actor": actor,
                   "metadata": redact(dict(metadata)) if metadata else None}
        return self._create(definition, trigger, data, run_id, receipt=receipt, queue=queue,
                            metadata=metadata, extra={"priority": priority} if priority else None)

    def _manual_trigger(self, definition: WorkflowDefinition, trigger: str | None) -> str:
        if trigger is None:
            manual = [n for n, t in definition.triggers.items() if t.kind == "manual"]
            if len(manual) != 1:
                raise InvalidArgument(
                    "trigger",
                    f"workflow {definition.name!r} has {len(manual)} manual triggers; name one",
                )
            return manual[0]
        spec = definition.trigger(trigger)
        if spec.kind != "manual":
            raise TriggerNotFound(
                definition.name, trigger,
                [n for n, t in definition.triggers.items() if t.kind == "manual"],
            )
        return trigger

    def _create(
        self,
        definition: WorkflowDefinition,
        trigger: str,
        payload: dict[str, Any],
        run_id: str,
        *,
        receipt: dict[str, Any],
        queue: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> StartResult:
        state = RunState(run_id)
        plan = self._plan(definition, state)
        body: dict[str, Any] = {
            "workflow": definition.name,
            "version": definition.fingerprint,
            "trigger": trigger,
            "payload": payload,
            "queue": queue or definition.queue,
        }
        if metadata:
            body["metadata"] = redact(dict(metadata))
        body.update(extra or {})
        link = body.pop("link_trace", None)
        with self.telemetry.new_trace_context(
            "squidie.start", {"squidie.workflow": definition.name, "squidie.trigger": trigger,
                              "squidie.run_id": run_id}, link_from=link,
        ) as carrier:
            if carrier:
                body["trace"] = carrier
            return self._create_in_span(plan, body, receipt, run_id=run_id,
                                        definition=definition, trigger=trigger,
                                        payload=payload)

    def _create_in_span(
        self,
        plan: Plan,
        body: dict[str, Any],
        receipt: dict[str, Any],
        *,
        run_id: str,
        definition: WorkflowDefinition,
        trigger: str,
        payload: dict[str, Any],
    ) -> StartResult:
        plan.add("run_started", body)
        # A request id, made before any retry, tells a second identical start apart from a
        # resend of the first (which the store recognises and answers as a replay).
        receipt = {"request_id": uuid.uuid4().hex, **receipt}
        plan.add("command_received", {k: v for k, v in receipt.items() if v is not None})
        plan.schedule_entries()
        try:
            self._commit(plan, checkpoint_seq=0, outcome="start")
        except AppendConflict:
            existing = self.load(run_id)
            same = (existing.workflow, existing.trigger, existing.payload) == (
                definition.name, trigger, payload
            )
            if not same:
                raise IdempotencyConflict(
                    run_id, "a run with this identity exists with a different payload"
                ) from None
            return StartResult(run_id, definition.name, trigger, existing.status, created=False)
        return StartResult(run_id, definition.name, trigger, plan.state.status)

    def start_cron(
        self,
        workflow: Any,
        trigger: str,
        *,
        signal_id: str | None = None,
        intended_window: tuple[datetime, datetime] | None = None,
    ) -> StartResult | None:
        """Start the run of one cron window, idempotently.

        The run id is derived from (workflow, trigger, signal id), the signal id defaulting
        to the window. A duplicate returns the existing run (``return_existing_run``) or
        ``None`` (``skip_duplicate``). Prefer ``Runner.perform(Payload.cron(...))``.

        Raises:
            InvalidArgument: neither a signal id nor a complete window was given.
        """
        definition = self.definition(workflow)
        spec = definition.trigger(trigger)
        if spec.kind != "cron":
            raise InvalidArgument("trigger", f"{trigger!r} is not a cron trigger")
        window: list[str] | None = None
        if intended_window is not None:
            if len(intended_window) != 2 or not all(
                isinstance(w, datetime) for w in intended_window
            ):
                raise InvalidArgument("intended_window", "must be (start, end) datetimes")
            window = [intended_window[0].isoformat(), intended_window[1].isoformat()]
        if signal_id is None:
            if window is None:
                raise InvalidArgument(
                    "signal_id",
                    "an idempotent cron delivery needs a signal_id or a complete "
                    "intended_window",
                )
            signal_id = f"{window[0]}/{window[1]}"
        run_id = derived_run_id("cron", definition.name, trigger, signal_id)
        schedule = {
            "expression": spec.expression,
            "timezone": spec.timezone,
            "window": window,
            "signal_id": signal_id,
            "received_at": iso(self.clock.now()),
        }
        payload = validate_payload(definition, trigger, {})
        receipt = {"command": "cron_start", "signal_id": signal_id}
        if self.store.get_run(run_id) is None:
            result = self._create(definition, trigger, payload, run_id, receipt=receipt,
                                  extra={"signal_id": signal_id, "schedule": schedule})
            if result.created:
                return result
        if spec.idempotency == "skip_duplicate":
            return None
        state = self.load(run_id)
        return StartResult(run_id, definition.name, trigger, state.status, created=False)

    def _start_child(
        self,
        parent: RunState,
        step: str,
        children: _Children,
        workflow: Any,
        payload: Mapping[str, Any] | None,
        *,
        child_key: str,
        trigger: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> StartResult:
        if not isinstance(child_key, str) or not child_key:
            raise InvalidArgument("child_key", "a non-empty child_key is required")
        entry = self.store.get_run(parent.run_id)
        status = entry.status if entry is not None else parent.status
        if status in ("completed", "failed", "cancelled"):
            raise RunTerminalError(parent.run_id, "start_child_run", status,
                                   "a terminal run cannot start children")
        definition = self.definition(workflow)
        trigger = self._manual_trigger(definition, trigger)
        data = validate_payload(definition, trigger, payload)
        self._check_size("payload", data)
        run_id = derived_run_id(
            "child", definition.name, trigger, parent.run_id, step, child_key
        )
        link = {"run_id": parent.run_id, "step": step, "child_key": child_key,
                "workflow": parent.workflow}
        receipt = {"command": "start", "actor": f"run:{parent.run_id}",
                   "metadata": redact(dict(metadata)) if metadata else None}
        result = self._create(definition, trigger, data, run_id, receipt=receipt,
                              metadata=metadata, extra={"parent": link})
        children.started.append(
            {"step": step, "child_run_id": run_id, "workflow": definition.name,
             "child_key": child_key, "trigger": trigger, "created": result.created}
        )
        return result

    # ------------------------------------------------------------------ execute

    def execute_next(
        self,
        *,
        owner_id: str,
        lease_for: float = DEFAULT_LEASE,
        heartbeat_interval: float | None = None,
        queues: Sequence[str] | None = None,
    ) -> ExecuteResult | None:
        """Claim one visible dispatch, run its step, and commit the outcome.

        Args:
            owner_id: Identifies this worker slot in leases and facts.
            lease_for: Seconds the lease lasts between heartbeats.
            heartbeat_interval: Seconds between automatic heartbeats while the step runs
                (default ``lease_for / 3``; at least 0.05; ``0`` disables them).
            queues: Queues to claim from (default: the registered workflows' queues).

        Returns:
            What was done, or ``None`` when no work is visible.
        """
        if not owner_id:
            raise InvalidArgument("owner_id", "must be a non-empty string")
        leases = self.store.claim(
            owner_id, lease_for=lease_for, limit=1, queues=list(queues or self.queues())
        )
        if not leases:
            return None
        return self.run_lease(leases[0], lease_for=lease_for,
                              heartbeat_interval=heartbeat_interval)

    def run_lease(
        self,
        lease: Lease,
        *,
        lease_for: float = DEFAULT_LEASE,
        heartbeat_interval: float | None = None,
    ) -> ExecuteResult:
        """Run the step of an already claimed lease and commit its outcome.

        For hosts that claim in batches themselves; ``execute_next`` is claim plus this.
        """
        ready = self._ready(lease)
        if isinstance(ready, ExecuteResult):
            return ready
        definition, state, checkpoint_seq = ready
        with self.telemetry.span("squidie.execute_next", state.trace,
                                 self._span_attributes(lease, definition)) as span:
            ran = self._run_attempt(lease, definition, state, checkpoint_seq,
                                    lease_for=lease_for, heartbeat_interval=heartbeat_interval)
            result = ran if isinstance(ran, ExecuteResult) else self._commit_outcome(ran)
            if span is not None:
                span.set_attribute("squidie.outcome", result.outcome)
            return result

    def run_leases(
        self,
        leases: Sequence[Lease],
        *,
        lease_for: float = DEFAULT_LEASE,
        heartbeat_interval: float | None = None,
        hold: float = 0.05,
        stop: Callable[[], bool] | None = None,
    ) -> list[ExecuteResult]:
        """Run several claimed leases' steps in turn and commit their outcomes together.

        The group commit: outcomes are held (their leases still heartbeated) and committed
        through the store's ``commit_many`` in one round trip once every step has run, or
        sooner, between two steps, when the oldest held outcome has waited ``hold``
        seconds. Each outcome is still fenced and atomic on its own: a lease lost or a
        conflict affects that attempt alone. Each attempt's span stays open until its
        outcome is committed.

        Args:
            leases: Leases from one ``claim``.
            lease_for: Seconds each lease lasts between heartbeats.
            heartbeat_interval: As for ``execute_next``.
            hold: The longest an outcome waits for the others before being committed.
            stop: Checked before each step; once it returns ``True`` the leases not
                started are put back (``retry`` with no delay) and left out of the result.

        Returns:
            One result per lease run, in order (fewer than ``leases`` after a stop).
        """
        if len(leases) == 1 and not (stop is not None and stop()):
            return [self.run_lease(leases[0], lease_for=lease_for,
                                   heartbeat_interval=heartbeat_interval)]
        results: list[ExecuteResult | _Ran] = []
        held: list[int] = []
        held_since = 0.0
        # Load the batch's runs in one read. A run with two attempts in the batch (parallel
        # branches) is loaded by each attempt itself; the second outcome's commit then
        # conflicts with the first and is re-planned from fresh facts.
        counts = Counter(lease.dispatch.run_id for lease in leases)
        preloaded = self._load_many([lease for lease in leases
                                     if counts[lease.dispatch.run_id] == 1])
        try:
            for index, lease in enumerate(leases):
                if stop is not None and stop():
                    self._put_back(leases[index:], "worker stopping")
                    break
                if held and time.monotonic() - held_since >= hold:
                    self._commit_held(results, held)
                try:
                    ran = self._start_in_batch(
                        lease, preloaded.pop(lease.dispatch.run_id, None),
                        lease_for=lease_for, heartbeat_interval=heartbeat_interval)
                except BaseException:
                    self._put_back(leases[index + 1:], "batch interrupted")
                    raise
                if isinstance(ran, _Ran):
                    if not held:
                        held_since = time.monotonic()
                    held.append(len(results))
                results.append(ran)
        finally:
            self._commit_held(results, held)
        return [r for r in results if isinstance(r, ExecuteResult)]

    def _end_span(self, span: Any, result: ExecuteResult) -> None:
        with self.telemetry.within(span, end=True):
            if span is not None:
                span.set_attribute("squidie.outcome", result.outcome)

    def _start_in_batch(
        self, lease: Lease, loaded: tuple[RunState, int] | None, *, lease_for: float,
        heartbeat_interval: float | None,
    ) -> ExecuteResult | _Ran:
        """Run one step of a batch: its outcome to hold (span still open), or a result."""
        fresh = self._still_held(lease, lease_for)
        if isinstance(fresh, ExecuteResult):
            return fresh
        ready = self._ready(fresh, loaded)
        if isinstance(ready, ExecuteResult):
            return ready
        telemetry = self.telemetry
        span = telemetry.open_span("squidie.execute_next", ready[1].trace,
                                   self._span_attributes(fresh, ready[0]))
        try:
            with telemetry.within(span):
                ran = self._run_attempt(fresh, *ready, lease_for=lease_for,
                                        heartbeat_interval=heartbeat_interval,
                                        keep_tracking=True)
        except BaseException as exc:
            telemetry.end_failed(span, exc)
            raise
        if isinstance(ran, ExecuteResult):
            self._end_span(span, ran)
        else:
            ran.span = span
        return ran

    def _still_held(self, lease: Lease, lease_for: float) -> Lease | ExecuteResult:
        """A lease that waited in its batch for over a third of its time is heartbeated
        before its step starts: the lease extended, or ``lease_lost`` if another worker
        has taken the attempt over (its step is then not run here at all)."""
        if self.clock.now() < lease.expires_at - lease_for * 2 / 3:
            return lease
        try:
            return self.store.heartbeat(lease, lease_for=lease_for)
        except LeaseLostError as exc:
            d = lease.dispatch
            log.warning("lease on %s was lost while it waited in its batch (%s); not run",
                        d.key, exc, extra={"run_id": d.run_id, "step": d.step,
                                           "attempt": d.attempt, "owner": lease.owner_id})
            return ExecuteResult(d.run_id, d.step, d.attempt, d.key, "lease_lost",
                                 detail=str(exc))

    def _commit_held(self, results: list[ExecuteResult | _Ran], held: list[int]) -> None:
        """Commit the held outcomes at ``held`` positions of ``results`` in one group."""
        positions = list(held)
        held.clear()
        if not positions:
            return
        ran: list[tuple[int, _Ran]] = []
        for position in positions:
            item = results[position]
            assert isinstance(item, _Ran)
            if item.tracked is not None:
                self._heartbeater.untrack(item.tracked)
                if item.tracked.lost:  # its heartbeat failed while the outcome was held
                    lost = self._lost_before_commit(
                        item, LeaseLostError(item.lease.key, item.tracked.error or "lost"))
                    self._end_span(item.span, lost)
                    results[position] = lost
                    continue
                item.lease = item.tracked.lease
            ran.append((position, item))
        try:
            plans = [self._plan_outcome(r) for _, r in ran]
            replies = commit_many(self.store, [
                self._commit_of(plan, r.checkpoint_seq, r.lease)
                for plan, (_, r) in zip(plans, ran, strict=True)
            ])
        except BaseException as exc:
            # Not committed (or not known to be): the leases expire and the attempts are
            # delivered again. The spans end with the error.
            for _, r in ran:
                self.telemetry.end_failed(r.span, exc)
            raise
        first_error: Exception | None = None
        for (position, r), plan, reply in zip(ran, plans, replies, strict=True):
            try:
                with self.telemetry.within(r.span, end=True):
                    if isinstance(reply, CommitResult):
                        self._after_commit(plan, reply, r.outcome.kind)
                        result = self._committed(r, plan)
                    elif isinstance(reply, LeaseLostError):
                        result = self._lost_before_commit(r, reply)
                    elif isinstance(reply, AppendConflict):
                        result = self._after_conflict(r) or self._commit_outcome(r)
                    else:
                        raise reply
                    if r.span is not None:
                        r.span.set_attribute("squidie.outcome", result.outcome)
                results[position] = result
            except Exception as exc:  # the others' results still count; raise at the end
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    def _put_back(self, leases: Sequence[Lease], reason: str) -> None:
        """Release leases never started, to be claimed again at once."""
        for lease in leases:
            try:
                self.store.retry(lease, delay=0.0, reason=reason)
            except Exception as exc:  # its lease expires and it is claimed again later
                log.debug("could not put back %s: %s", lease.key, exc)

    @staticmethod
    def _span_attributes(lease: Lease, definition: WorkflowDefinition) -> dict[str, Any]:
        d = lease.dispatch
        return {"squidie.workflow": definition.name, "squidie.step": d.step,
                "squidie.attempt": d.attempt, "squidie.run_id": d.run_id,
                "squidie.owner": lease.owner_id}

    def _ready(
        self, lease: Lease, loaded: tuple[RunState, int] | None = None
    ) -> ExecuteResult | tuple[WorkflowDefinition, RunState, int]:
        """Load a claimed attempt's run (unless ``loaded``) and check it can run: what to
        run, or why not."""
        d = lease.dispatch
        try:
            state, checkpoint_seq = loaded or self._load_cached(d.run_id, lease)
        except RunNotFound:
            return self._bury(lease, "run_not_found", f"run {d.run_id} has no journal")
        except CorruptDataError as exc:
            # An unreadable journal (a hand-edited row or key) is that run's problem:
            # dead-letter its attempt with the reason instead of failing the worker's
            # slot on every redelivery.
            return self._bury(lease, "corrupt_journal", str(exc))
        definition = self._workflows.get(state.workflow)
        if definition is None:
            return self._bury(
                lease, "unknown_workflow",
                f"workflow {state.workflow!r} is not registered with this worker "
                f"(known: {', '.join(sorted(self._workflows)) or 'none'})",
            )
        if state.anomalies:
            return self._bury(lease, "journal_anomaly",
                              f"journal has {len(state.anomalies)} anomalies")
        if state.terminal or d.key not in state.pending:
            self._settle_obsolete(lease)
            return ExecuteResult(d.run_id, d.step, d.attempt, d.key, "skipped",
                                 state.status, detail="attempt already resolved")
        base_step = d.step.removesuffix(COMPENSATE_SUFFIX)
        if base_step not in definition.steps:
            return self._bury(lease, "unknown_step",
                              f"step {base_step!r} is not in workflow {definition.name!r} "
                              "(the definition changed under this run)")
        return definition, state, checkpoint_seq

    def _run_attempt(
        self,
        lease: Lease,
        definition: WorkflowDefinition,
        state: RunState,
        checkpoint_seq: int,
        *,
        lease_for: float,
        heartbeat_interval: float | None,
        keep_tracking: bool = False,
    ) -> ExecuteResult | _Ran:
        """Run the step (heartbeated): its outcome to commit, or ``lease_lost``.

        With ``keep_tracking`` the lease stays heartbeated after the step, until the held
        outcome is committed.
        """
        d = lease.dispatch
        children = _Children()
        started_at = self.clock.now()
        visible_at = state.pending[d.key]["visible_at"]
        telemetry = self.telemetry
        if telemetry.listeners:
            telemetry.emit([{"name": "attempt.claimed", "run_id": d.run_id,
                             "workflow": d.workflow, "step": d.step, "attempt": d.attempt,
                             "owner": lease.owner_id, "at": started_at}])
        t0 = time.perf_counter()
        interval = lease_for / 3 if heartbeat_interval is None else heartbeat_interval
        tracked = None
        if interval > 0:
            tracked = self._heartbeater.track(
                lease, lease_for=lease_for, interval=max(interval, MIN_HEARTBEAT)
            )
        try:
            with telemetry.child_span("squidie.step", {"squidie.workflow": definition.name,
                                                       "squidie.step": d.step}):
                outcome = self._execute(definition, state, d.step, d.attempt, children)
        finally:
            if tracked is not None and (not keep_tracking or tracked.lost):
                self._heartbeater.untrack(tracked)
        duration = time.perf_counter() - t0
        telemetry.record_step(definition.name, d.step, outcome.kind, duration,
                              started_at - visible_at)
        if tracked is not None and tracked.lost:
            log.warning(
                "lease on %s was lost while the step ran (%s); its result is discarded",
                d.key, tracked.error,
                extra={"run_id": d.run_id, "step": d.step, "attempt": d.attempt,
                       "owner": lease.owner_id},
            )
            return ExecuteResult(d.run_id, d.step, d.attempt, d.key, "lease_lost",
                                 detail=tracked.error)
        return _Ran(tracked.lease if tracked is not None else lease, definition, state,
                    checkpoint_seq, outcome, children, started_at, duration,
                    tracked if keep_tracking else None)

    def _execute(
        self,
        definition: WorkflowDefinition,
        state: RunState,
        step: str,
        attempt: int,
        children: _Children,
    ) -> Outcome:
        base = step.removesuffix(COMPENSATE_SUFFIX)
        spec = definition.steps[base]
        if spec.kind == "wait":
            return Outcome("ok", output={})
        if spec.kind == "log":
            message = str(spec.message)
            with contextlib.suppress(ValueError, IndexError):
                message = message.format_map(_FormatState(state.context))
            workflow_log.log(
                logging.getLevelName(str(spec.level).upper()), message,
                extra={"run_id": state.run_id, "step": step, "workflow": state.workflow},
            )
            return Outcome("ok", output={})
        impl = spec.compensate if step != base else spec.impl
        step_input = self._input(spec.input, state.context)

        def start_child(*args: Any, **kwargs: Any) -> StartResult:
            return self._start_child(state, step, children, *args, **kwargs)

        ctx = StepContext(
            run_id=state.run_id, workflow=state.workflow, step=step, attempt=attempt,
            state=_json.copy(state.context), start_child=start_child,
        )
        run_async, runner = self.async_runner, self.step_runner
        try:
            if runner is None:
                value = call_step(impl, step_input, ctx, run_async=run_async)
            else:
                value = runner((definition.name, step),
                               lambda: call_step(impl, step_input, ctx, run_async=run_async))
        except Exception as exc:
            return normalize_outcome(step, exc=exc)
        outcome = normalize_outcome(step, value)
        if outcome.kind == "ok":
            try:
                self._check_size(f"output of step {step!r}", outcome.output)
            except ValueTooLarge as exc:
                return Outcome("error", error={"type": "ValueTooLarge", "message": str(exc)})
        return outcome

    @staticmethod
    def _input(mapping: Mapping[str, str] | None, context: Mapping[str, Any]) -> dict[str, Any]:
        if mapping is None:
            return _json.copy(dict(context))
        selected: dict[str, Any] = {}
        for key, path in mapping.items():
            found, value = lookup_path(context, path)
            if found:
                selected[key] = _json.copy(value)
        return selected

    def _plan_outcome(self, ran: _Ran) -> Plan:
        d = ran.lease.dispatch
        plan = self._plan(ran.definition, ran.state)
        for child in ran.children.started:
            plan.add("child_run_started", child)
        plan.step_outcome(
            d.step, d.attempt, ran.outcome, owner=ran.lease.owner_id, fence=ran.lease.fence,
            started_at=ran.started_at, duration=round(ran.duration, 6),
        )
        return plan

    def _commit_outcome(self, ran: _Ran) -> ExecuteResult:
        """Commit one outcome, re-planning from fresh facts after each conflict."""
        for _ in range(_CONFLICT_RETRIES):
            plan = self._plan_outcome(ran)
            try:
                self._commit(plan, checkpoint_seq=ran.checkpoint_seq, settle=ran.lease,
                             outcome=ran.outcome.kind)
            except AppendConflict:
                skipped = self._after_conflict(ran)
                if skipped is not None:
                    return skipped
                continue
            except LeaseLostError as exc:
                return self._lost_before_commit(ran, exc)
            return self._committed(ran, plan)
        raise AppendConflict(ran.lease.dispatch.run_id, ran.state.seq, None)

    def _after_conflict(self, ran: _Ran) -> ExecuteResult | None:
        """Someone else appended (a parallel branch, an operator command): re-read the run
        into ``ran``; the result if the attempt no longer needs committing."""
        d = ran.lease.dispatch
        ran.state, ran.checkpoint_seq = self._load(d.run_id)
        if ran.state.terminal or d.key not in ran.state.pending:
            self._settle_obsolete(ran.lease)
            return ExecuteResult(d.run_id, d.step, d.attempt, d.key, "skipped",
                                 ran.state.status, detail="run moved on meanwhile")
        return None

    @staticmethod
    def _lost_before_commit(ran: _Ran, exc: LeaseLostError) -> ExecuteResult:
        d = ran.lease.dispatch
        log.warning(
            "lease on %s was lost before its commit; the result is discarded: %s",
            d.key, exc,
            extra={"run_id": d.run_id, "step": d.step, "attempt": d.attempt,
                   "owner": ran.lease.owner_id},
        )
        return ExecuteResult(d.run_id, d.step, d.attempt, d.key, "lease_lost",
                             detail=str(exc))

    def _committed(self, ran: _Ran, plan: Plan) -> ExecuteResult:
        d = ran.lease.dispatch
        self._remember(plan.state, plan.state.seq
                       if self._checkpoint_due(plan.state, ran.checkpoint_seq)
                       else ran.checkpoint_seq)
        return ExecuteResult(d.run_id, d.step, d.attempt, d.key, ran.outcome.kind,
                             plan.state.status, error=ran.outcome.error)

    def _settle_obsolete(self, lease: Lease) -> None:
        with contextlib.suppress(LeaseLostError):
            self.store.complete(lease)

    def _bury(self, lease: Lease, reason: str, detail: str) -> ExecuteResult:
        d = lease.dispatch
        log.error("dead-lettering %s: %s", d.key, detail,
                  extra={"run_id": d.run_id, "step": d.step, "attempt": d.attempt})
        with contextlib.suppress(LeaseLostError):
            self.store.dead_letter(lease, f"{reason}: {detail}")
        return ExecuteResult(d.run_id, d.step, d.attempt, d.key, "dead_lettered",
                             detail=f"{reason}: {detail}")

    # ------------------------------------------------------------------ commands

    def _command(
        self,
        run_id: str,
        command: str,
        idempotency_key: str | None,
        apply: Callable[[Plan], Mapping[str, Any] | None],
    ) -> CommandResult:
        last: AppendConflict | None = None
        request_id = uuid.uuid4().hex
        for _ in range(_CONFLICT_RETRIES):
            state, checkpoint_seq = self._load(run_id)
            if idempotency_key is not None and idempotency_key in state.receipts:
                receipt = state.receipts[idempotency_key]
                if receipt["command"] != command:
                    raise IdempotencyConflict(
                        idempotency_key, f"it was used for {receipt['command']!r}"
                    )
                return CommandResult(run_id, command, state.status, receipt["seq"],
                                     duplicate=True, result=receipt.get("result"))
            definition = self._workflows.get(state.workflow)
            if definition is None:
                if command != "cancel":
                    raise WorkflowNotFound(state.workflow, list(self._workflows))
                # Cancelling schedules nothing, so it needs no definition: an operator can
                # cancel a run whose workflow code is gone.
                definition = _unknown_definition(state)
            plan = self._plan(definition, state)
            plan.request_id = request_id
            with self.telemetry.span(
                "squidie.command", state.trace,
                {"squidie.command": command, "squidie.workflow": state.workflow,
                 "squidie.run_id": run_id},
            ):
                result = apply(plan)
                try:
                    self._commit(plan, checkpoint_seq=checkpoint_seq)
                except AppendConflict as exc:
                    last = exc
                    continue
            seq = next(f.seq for f in plan.facts if f.type == "command_received")
            return CommandResult(run_id, command, plan.state.status, seq, result=result)
        assert last is not None
        raise last

    @staticmethod
    def _receipt(
        plan: Plan,
        command: str,
        *,
        actor: str | None,
        comment: str | None,
        metadata: Mapping[str, Any] | None,
        idempotency_key: str | None,
        result: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        body: dict[str, Any] = {"command": command, "request_id": plan.request_id}
        for key, value in (("actor", actor), ("comment", comment),
                           ("metadata", redact(dict(metadata)) if metadata else None),
                           ("idempotency_key", idempotency_key), ("result", result),
                           ("reason", reason)):
            if value is not None:
                body[key] = value
        plan.add("command_received", body)

    @staticmethod
    def _require_actor(actor: Any, command: str) -> str:
        if not isinstance(actor, str) or not actor.strip():
            raise InvalidArgument("actor", f"{command} requires an actor (a non-empty string)")
        return actor

    def _parked(self, plan: Plan, command: str, kind: str) -> str:
        state = plan.state
        if state.terminal:
            raise RunTerminalError(state.run_id, command, state.status, "the run has ended")
        parked = state.parked
        if parked is None or parked["kind"] != kind:
            waiting = "nothing" if parked is None else f"a {parked['kind']} step"
            raise InvalidTransitionError(
                state.run_id, command, state.status,
                f"{command} resolves a {kind} step, but the run is waiting for {waiting}",
            )
        return str(parked["step"])

    def _resolve_manual(
        self,
        run_id: str,
        command: str,
        *,
        kind: str,
        fact_type: str,
        on: str,
        decision: Mapping[str, Any],
        actor: str,
        comment: str | None,
        metadata: Mapping[str, Any] | None,
        idempotency_key: str | None,
    ) -> CommandResult:
        """Resolve the parked step of ``kind``: receipt, decision fact, then route ``on``."""
        self._require_actor(actor, command)

        def apply(plan: Plan) -> None:
            step = self._parked(plan, command, kind)
            self._receipt(plan, command, actor=actor, comment=comment, metadata=metadata,
                          idempotency_key=idempotency_key)
            output = {**decision, "actor": actor, "comment": comment,
                      "metadata": redact(dict(metadata or {})), "at": iso(plan.now)}
            plan.add(fact_type, {"step": step, "actor": actor, "comment": comment,
                                 "output": output, "into": plan.definition.steps[step].output})
            error = None
            if on == "error":
                error = {"type": "Rejected", "message": comment or f"rejected by {actor}",
                         "actor": actor}
            plan.route(step, on, error=error)

        return self._command(run_id, command, idempotency_key, apply)

    def approve(
        self,
        run_id: str,
        *,
        actor: str,
        comment: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> CommandResult:
        """Approve the run's waiting approval step; the run follows its ``ok`` route.

        The decision (``approved``, ``actor``, ``comment``, ``metadata``, ``at``) is stored
        under the step's ``output`` key.

        Raises:
            InvalidArgument: no actor. InvalidTransitionError: no approval is waiting.
        """
        return self._resolve_manual(
            run_id, "approve", kind="approval", fact_type="approval_granted", on="ok",
            decision={"approved": True},
            actor=actor, comment=comment, metadata=metadata, idempotency_key=idempotency_key,
        )

    def reject(
        self,
        run_id: str,
        *,
        actor: str,
        comment: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> CommandResult:
        """Reject the run's waiting approval step; the run follows its ``error`` route.

        The decision (``approved: False``, ``actor``, ``comment``...) is stored under the
        step's ``output`` key, as for ``approve``.

        Raises:
            InvalidArgument: no actor. InvalidTransitionError: no approval is waiting.
        """
        return self._resolve_manual(
            run_id, "reject", kind="approval", fact_type="approval_rejected", on="error",
            decision={"approved": False},
            actor=actor, comment=comment, metadata=metadata, idempotency_key=idempotency_key,
        )

    def resume(
        self,
        run_id: str,
        *,
        actor: str,
        comment: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> CommandResult:
        """Resume a run parked at a ``pause()`` step; it follows the pause's ``ok`` route.

        Raises:
            InvalidArgument: no actor. InvalidTransitionError: the run is not at a pause.
        """
        return self._resolve_manual(
            run_id, "resume", kind="pause", fact_type="resumed", on="ok", decision={},
            actor=actor, comment=comment, metadata=metadata, idempotency_key=idempotency_key,
        )

    def cancel(
        self,
        run_id: str,
        *,
        actor: str | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> CommandResult:
        """Cancel a run: its receipt and terminal fact are appended atomically.

        Pending attempts are failed in the store; a step still running cannot commit.

        Raises:
            RunTerminalError: the run already ended.
        """

        def apply(plan: Plan) -> None:
            state = plan.state
            if state.terminal:
                raise RunTerminalError(run_id, "cancel", state.status, "the run has ended")
            self._receipt(plan, "cancel", actor=actor, comment=None, metadata=None,
                          idempotency_key=idempotency_key, reason=reason)
            body: dict[str, Any] = {"reason": "cancelled"}
            if actor:
                body["actor"] = actor
            if reason:
                body["detail"] = reason
            plan.add("run_cancelled", body)

        return self._command(run_id, "cancel", idempotency_key, apply)

    def replay(
        self,
        run_id: str,
        *,
        allow_irreversible: bool = False,
        actor: str | None = None,
        idempotency_key: str | None = None,
    ) -> StartResult:
        """Start a new run from a finished run's trigger and payload.

        The new run records ``replayed_from_run_id``; the source records the replay.

        Raises:
            InvalidTransitionError: the source has not finished, or an irreversible step
                completed and ``allow_irreversible`` is false.
        """
        source = self.load(run_id)
        if idempotency_key is not None and idempotency_key in source.receipts:
            previous = source.receipts[idempotency_key]
            new_id = (previous.get("result") or {}).get("run_id")
            if previous["command"] != "replay" or not new_id:
                raise IdempotencyConflict(
                    idempotency_key, f"it was used for {previous['command']!r}"
                )
            state = self.load(new_id)
            return StartResult(new_id, state.workflow, state.trigger, state.status, created=False)
        if not source.terminal:
            raise InvalidTransitionError(run_id, "replay", source.status,
                                         "only a finished run can be replayed")
        if source.irreversible_done and not allow_irreversible:
            raise InvalidTransitionError(
                run_id, "replay", source.status,
                f"irreversible step(s) {', '.join(source.irreversible_done)} completed; "
                "pass allow_irreversible=True to replay anyway",
            )
        definition = self.definition(source.workflow)
        new_id = (
            derived_run_id("replay", run_id, idempotency_key)
            if idempotency_key is not None else str(uuid.uuid4())
        )
        extra: dict[str, Any] = {"replayed_from_run_id": run_id, "link_trace": source.trace}
        if source.priority:
            extra["priority"] = source.priority
        if source.parent:
            extra["parent"] = source.parent
        result = self._create(
            definition, source.trigger, copy.deepcopy(source.payload), new_id,
            receipt={"command": "replay", "actor": actor},
            queue=source.queue, metadata=source.metadata or None, extra=extra,
        )

        def apply(plan: Plan) -> dict[str, Any]:
            outcome = {"run_id": new_id}
            self._receipt(plan, "replay", actor=actor, comment=None, metadata=None,
                          idempotency_key=idempotency_key, result=outcome)
            plan.add("replay_requested",
                     {"new_run_id": new_id, "allow_irreversible": allow_irreversible})
            return outcome

        self._command(run_id, "replay", idempotency_key, apply)
        return result

    # ------------------------------------------------------------------ inspection

    def inspect_run(self, run_id: str, include_history: bool = False) -> dict[str, Any]:
        """Return a run's details from durable facts; see ``docs/inspection.md``."""
        from squidie_core._inspect import inspect_run

        return inspect_run(self, run_id, include_history=include_history)

    def explain_run(self, run_id: str) -> dict[str, Any]:
        """Return why a run is where it is, and what would move it on."""
        from squidie_core._inspect import explain_run

        return explain_run(self, run_id)

    def inspect_run_graph(self, run_id: str) -> dict[str, Any]:
        """Return the run's workflow graph with node and edge statuses."""
        from squidie_core._inspect import inspect_run_graph

        return inspect_run_graph(self, run_id)

    def history(self, run_id: str) -> list[dict[str, Any]]:
        """Return every fact of a run as JSON-ready data, in order."""
        facts = self.store.read(run_id)
        if not facts:
            raise RunNotFound(run_id)
        return [{"seq": f.seq, "type": f.type, "at": iso(f.at), **dict(f.body)} for f in facts]

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """List run summaries (no payloads), newest first, from the store's index.

        Raises:
            InvalidArgument: an unknown status, a bad limit or a foreign cursor.
        """
        if status is not None and status not in RUN_STATUSES:
            raise InvalidArgument("status", f"{status!r} is not one of {', '.join(RUN_STATUSES)}")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise InvalidArgument("limit", "must be an integer from 1 to 1000")
        return self.store.list_runs(workflow=workflow, status=status, limit=limit, cursor=cursor)

    def dead_letters(
        self, *, queue: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """List dead-lettered dispatches, oldest first."""
        return self.store.dead_letters(queue=queue, limit=limit, cursor=cursor)

    def redrive(self, dispatch_key: str, *, delay: float = 0.0) -> None:
        """Make a dead-lettered dispatch deliverable again."""
        self.store.redrive(dispatch_key, delay=delay)


def _checkpoint_state(run_id: str, checkpoint: Checkpoint) -> RunState:
    """The state a checkpoint holds; ``ValueError`` (or the decoder's own error) if it
    cannot be used for ``run_id``."""
    state = RunState.decode(checkpoint.data)
    if state.seq != checkpoint.seq or state.run_id != run_id:
        raise ValueError("checkpoint does not match its run or sequence")
    return state


def _unknown_definition(state: RunState) -> WorkflowDefinition:
    """A step-less stand-in for a workflow this engine does not know (cancel only)."""
    return WorkflowDefinition(
        name=state.workflow, queue=state.queue, cls=object, triggers={}, steps={}, edges=(),
        mode="transitions", entries=(), fingerprint=state.version,
    )


class _FormatState(dict[str, Any]):
    """``str.format_map`` helper leaving unknown ``{fields}`` as they are."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
