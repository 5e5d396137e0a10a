"""Journal fact types and the fold that turns a run's facts into its state.

The fold is pure: it reads facts only (never the workflow definition), so the same facts
always give the same state, a checkpoint is just a saved fold, and deleting checkpoints
changes nothing. Decisions about what happens next are made elsewhere (``_planner``) and
recorded as facts before they take effect.

A fact with an unknown type or missing fields is not applied; it is kept as an anomaly
on the state, and the runtime refuses to advance a run that has anomalies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from squidie_core import _json
from squidie_core.storage import TERMINAL_STATUSES, Fact

__all__ = ["FACT_TYPES", "FOLD_VERSION", "RunState", "fold"]

#: Bumped when the fold's output shape changes; older checkpoints are then rebuilt.
FOLD_VERSION = 1

#: Every fact type and the body fields it must carry.
FACT_TYPES: Mapping[str, tuple[str, ...]] = {
    "run_started": ("workflow", "version", "trigger", "payload", "queue"),
    "command_received": ("command",),
    "dispatch_scheduled": ("step", "attempt", "key", "visible_at"),
    "attempt_started": ("step", "attempt", "owner", "fence"),
    "attempt_succeeded": ("step", "attempt", "output"),
    "attempt_failed": ("step", "attempt", "error", "retryable"),
    "retry_scheduled": ("step", "attempt", "delay"),
    "wait_started": ("step", "duration", "until"),
    "wait_elapsed": ("step",),
    "approval_requested": ("step",),
    "approval_granted": ("step", "actor"),
    "approval_rejected": ("step", "actor"),
    "paused": ("step",),
    "resumed": ("step", "actor"),
    "transition_taken": ("from", "on", "to"),
    "recovery_entered": ("step", "marker", "to"),
    "child_run_started": ("step", "child_run_id", "workflow", "child_key"),
    "run_failing": ("step", "error"),
    "compensation_started": ("steps", "failed_step"),
    "replay_requested": ("new_run_id",),
    "run_completed": (),
    "run_failed": ("reason",),
    "run_cancelled": (),
}

COMPENSATE_SUFFIX = ".compensate"

_FIELDS = (
    "run_id", "seq", "workflow", "version", "trigger", "queue", "priority", "payload",
    "context",
    "metadata", "parent", "signal_id", "replayed_from", "created_at", "updated_at", "status",
    "reason", "steps", "pending", "parked", "children", "receipts", "commands",
    "completed_order", "irreversible_done", "taken", "recovery", "failing", "compensation",
    "anomalies", "replays", "had_outcome", "trace",
)


class RunState:
    """A run as folded from its facts. Plain data, JSON round-trippable.

    Attributes:
        run_id: The run's id.
        seq: The last fact sequence folded in.
        status: One of ``RUN_STATUSES``.
        context: The run state steps see: the payload plus accumulated outputs.
        steps: Per step: ``status``, ``attempts``, ``last_error``, ``completed_at``...
        pending: Dispatches scheduled and not yet resolved, by key.
        parked: ``{"step", "kind"}`` while a pause or approval waits for an operator.
        receipts: Command receipts by idempotency key.
        anomalies: Facts that could not be applied.
    """

    __slots__ = _FIELDS

    run_id: str
    seq: int
    workflow: str
    version: str
    trigger: str
    queue: str
    priority: int
    payload: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    parent: dict[str, Any] | None
    signal_id: str | None
    replayed_from: str | None
    created_at: float
    updated_at: float
    status: str
    reason: dict[str, Any] | None
    steps: dict[str, dict[str, Any]]
    pending: dict[str, dict[str, Any]]
    parked: dict[str, Any] | None
    children: list[dict[str, Any]]
    receipts: dict[str, dict[str, Any]]
    commands: list[dict[str, Any]]
    completed_order: list[str]
    irreversible_done: list[str]
    taken: list[str]
    recovery: list[dict[str, Any]]
    failing: dict[str, Any] | None
    compensation: dict[str, Any] | None
    anomalies: list[dict[str, Any]]
    replays: list[str]
    had_outcome: bool
    trace: dict[str, str] | None

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.seq = 0
        self.workflow = ""
        self.version = ""
        self.trigger = ""
        self.queue = "default"
        self.priority = 0
        self.payload = {}
        self.context = {}
        self.metadata = {}
        self.parent = None
        self.signal_id = None
        self.replayed_from = None
        self.created_at = 0.0
        self.updated_at = 0.0
        self.status = "new"
        self.reason = None
        self.steps = {}
        self.pending = {}
        self.parked = None
        self.children = []
        self.receipts = {}
        self.commands = []
        self.completed_order = []
        self.irreversible_done = []
        self.taken = []
        self.recovery = []
        self.failing = None
        self.compensation = None
        self.anomalies = []
        self.replays = []
        self.had_outcome = False
        self.trace = None

    # ------------------------------------------------------------------ encoding

    def to_data(self) -> dict[str, Any]:
        """Return the state as JSON-ready data (with the fold version)."""
        data = {name: getattr(self, name) for name in _FIELDS}
        data["fold_version"] = FOLD_VERSION
        return data

    def encode(self) -> str:
        """Return the state as compact JSON text (a checkpoint's ``data``)."""
        return _json.dumps(self.to_data())

    @classmethod
    def decode(cls, text: str) -> RunState:
        """Rebuild a state from ``encode`` output.

        Raises:
            ValueError: the text is not a state of this fold version.
        """
        data = _json.loads(text)
        if not isinstance(data, dict) or data.get("fold_version") != FOLD_VERSION:
            raise ValueError("checkpoint written by another fold version")
        state = cls(str(data["run_id"]))
        for name in _FIELDS:
            if name not in data:
                raise ValueError(f"checkpoint lacks {name!r}")
            setattr(state, name, data[name])
        return state

    def copy(self) -> RunState:
        """Return a deep copy (the planner folds tentative facts into a copy)."""
        clone = RunState.__new__(RunState)
        for name in _FIELDS:
            setattr(clone, name, _json.copy(getattr(self, name)))
        return clone

    # ------------------------------------------------------------------ views

    @property
    def terminal(self) -> bool:
        """Whether the run has completed, failed or been cancelled."""
        return self.status in TERMINAL_STATUSES

    def step(self, name: str) -> dict[str, Any]:
        """Return (creating) the per-step record."""
        record = self.steps.get(name)
        if record is None:
            record = {"status": "waiting", "attempts": 0}
            self.steps[name] = record
        return record

    def next_visible_at(self) -> float | None:
        """The earliest ``visible_at`` among pending dispatches."""
        times = [p["visible_at"] for p in self.pending.values()]
        return min(times) if times else None

    # ------------------------------------------------------------------ fold

    def apply(self, fact: Fact) -> None:
        """Fold one fact in (or record it as an anomaly)."""
        handler = _HANDLERS.get(fact.type)
        if fact.seq != self.seq + 1:
            self.anomalies.append(
                {"seq": fact.seq, "type": fact.type,
                 "problem": f"expected seq {self.seq + 1}, found {fact.seq}"}
            )
            self.seq = max(self.seq, fact.seq)
            return
        self.seq = fact.seq
        if handler is None:
            self.anomalies.append(
                {"seq": fact.seq, "type": fact.type, "problem": "unknown fact type"}
            )
            return
        required, on = handler
        body = fact.body
        if not required <= body.keys():
            missing = [f for f in FACT_TYPES[fact.type] if f not in body]
            self.anomalies.append(
                {"seq": fact.seq, "type": fact.type,
                 "problem": f"missing field(s): {', '.join(missing)}"}
            )
            return
        self.updated_at = fact.at
        try:
            on(self, body, fact)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.anomalies.append(
                {"seq": fact.seq, "type": fact.type, "problem": f"cannot apply: {exc!r}"}
            )
            return
        if self.status not in TERMINAL_STATUSES:
            self._derive_status()

    def _derive_status(self) -> None:
        if self.parked is not None:
            self.status = "paused"
        elif self.pending:
            self.status = "running" if self.had_outcome else "started"
        elif self.status != "new":
            self.status = "idle"

    # One handler per fact type. ----------------------------------------

    def _on_run_started(self, b: Mapping[str, Any], fact: Fact) -> None:
        self.workflow = b["workflow"]
        self.version = b["version"]
        self.trigger = b["trigger"]
        self.queue = b["queue"]
        self.priority = int(b.get("priority", 0))
        self.payload = _json.copy(dict(b["payload"]))
        self.context = _json.copy(dict(b["payload"]))
        if b.get("schedule") is not None:
            self.context["schedule"] = _json.copy(b["schedule"])
        self.metadata = dict(b.get("metadata") or {})
        self.parent = b.get("parent")
        self.signal_id = b.get("signal_id")
        self.replayed_from = b.get("replayed_from_run_id")
        self.trace = b.get("trace") or None
        self.created_at = fact.at
        self.status = "started"

    def _on_command_received(self, b: Mapping[str, Any], fact: Fact) -> None:
        entry = {"command": b["command"], "seq": fact.seq, "at": fact.at}
        for key in ("actor", "comment", "metadata", "idempotency_key", "reason"):
            if b.get(key) is not None:
                entry[key] = b[key]
        self.commands.append(entry)
        idem = b.get("idempotency_key")
        if idem is not None:
            self.receipts[idem] = {"command": b["command"], "seq": fact.seq,
                                  "result": b.get("result")}

    def _on_dispatch_scheduled(self, b: Mapping[str, Any], fact: Fact) -> None:
        self.pending[b["key"]] = {
            "step": b["step"], "attempt": b["attempt"], "visible_at": b["visible_at"]
        }
        record = self.step(b["step"])
        if record["status"] not in ("retrying", "waiting_timer"):
            record["status"] = "pending"

    def _on_attempt_started(self, b: Mapping[str, Any], fact: Fact) -> None:
        record = self.step(b["step"])
        record["last_owner"] = b["owner"]
        record["last_fence"] = b["fence"]

    def _resolve(self, step: str, attempt: int) -> None:
        for key, pending in list(self.pending.items()):
            if pending["step"] == step and pending["attempt"] == attempt:
                del self.pending[key]
        self.had_outcome = True

    def _store_output(self, output: Any, into: str | None) -> None:
        if into:
            self.context[into] = _json.copy(output)
        elif isinstance(output, Mapping):
            self.context.update(_json.copy(dict(output)))

    def _history(self, record: dict[str, Any], b: Mapping[str, Any], outcome: str,
                 fact: Fact) -> None:
        entry: dict[str, Any] = {"attempt": b["attempt"], "outcome": outcome, "at": fact.at}
        if record.get("last_owner") is not None:
            entry["owner"] = record["last_owner"]
        if b.get("error"):
            entry["error"] = {k: v for k, v in b["error"].items() if k != "traceback"}
        record.setdefault("history", []).append(entry)

    def _on_attempt_succeeded(self, b: Mapping[str, Any], fact: Fact) -> None:
        step = b["step"]
        self._resolve(step, b["attempt"])
        record = self.step(step)
        self._history(record, b, "ok", fact)
        record["status"] = "completed"
        record["attempts"] = b["attempt"]
        record["completed_at"] = fact.at
        if step.endswith(COMPENSATE_SUFFIX):
            if self.compensation is not None:
                self.compensation["done"].append(step[: -len(COMPENSATE_SUFFIX)])
            return
        self._store_output(b["output"], b.get("into"))
        self.completed_order.append(step)
        if b.get("irreversible"):
            self.irreversible_done.append(step)

    def _on_attempt_failed(self, b: Mapping[str, Any], fact: Fact) -> None:
        step = b["step"]
        self._resolve(step, b["attempt"])
        record = self.step(step)
        self._history(record, b, "retry" if b["retryable"] else "error", fact)
        record["attempts"] = b["attempt"]
        record["last_error"] = b["error"]
        record["status"] = "failed"

    def _on_retry_scheduled(self, b: Mapping[str, Any], fact: Fact) -> None:
        record = self.step(b["step"])
        record["status"] = "retrying"
        record["next_attempt"] = b["attempt"]

    def _on_wait_started(self, b: Mapping[str, Any], fact: Fact) -> None:
        record = self.step(b["step"])
        record["status"] = "waiting_timer"
        record["until"] = b["until"]

    def _on_wait_elapsed(self, b: Mapping[str, Any], fact: Fact) -> None:
        self.step(b["step"]).pop("until", None)

    def _park(self, b: Mapping[str, Any], kind: str, fact: Fact) -> None:
        self.parked = {"step": b["step"], "kind": kind, "since": fact.at}
        self.step(b["step"])["status"] = "paused"

    def _on_approval_requested(self, b: Mapping[str, Any], fact: Fact) -> None:
        self._park(b, "approval", fact)

    def _on_paused(self, b: Mapping[str, Any], fact: Fact) -> None:
        self._park(b, "pause", fact)

    def _unpark(self, b: Mapping[str, Any], status: str, fact: Fact) -> None:
        self.parked = None
        self.had_outcome = True
        record = self.step(b["step"])
        record["status"] = status
        record["attempts"] = 1
        record["completed_at"] = fact.at
        record["resolved_by"] = b["actor"]

    def _on_approval_granted(self, b: Mapping[str, Any], fact: Fact) -> None:
        self._unpark(b, "completed", fact)
        if b.get("into"):
            self._store_output(b.get("output"), b["into"])
        self.completed_order.append(b["step"])

    def _on_approval_rejected(self, b: Mapping[str, Any], fact: Fact) -> None:
        self._unpark(b, "failed", fact)
        if b.get("into"):
            self._store_output(b.get("output"), b["into"])
        self.step(b["step"])["last_error"] = {
            "type": "Rejected", "message": b.get("comment") or "rejected",
            "actor": b["actor"],
        }

    def _on_resumed(self, b: Mapping[str, Any], fact: Fact) -> None:
        self._unpark(b, "completed", fact)
        if b.get("into"):
            self._store_output(b.get("output"), b["into"])
        self.completed_order.append(b["step"])

    def _on_transition_taken(self, b: Mapping[str, Any], fact: Fact) -> None:
        self.taken.append(f"{b['from']}:{b['on']}:{b['to']}")

    def _on_recovery_entered(self, b: Mapping[str, Any], fact: Fact) -> None:
        self.recovery.append({"step": b["step"], "marker": b["marker"], "to": b["to"]})

    def _on_child_run_started(self, b: Mapping[str, Any], fact: Fact) -> None:
        if not any(c["run_id"] == b["child_run_id"] for c in self.children):
            self.children.append(
                {"run_id": b["child_run_id"], "workflow": b["workflow"], "step": b["step"],
                 "child_key": b["child_key"]}
            )

    def _on_run_failing(self, b: Mapping[str, Any], fact: Fact) -> None:
        self.failing = {"step": b["step"], "error": b["error"],
                        "reason": b.get("reason", "step_failed")}

    def _on_compensation_started(self, b: Mapping[str, Any], fact: Fact) -> None:
        self.compensation = {"steps": list(b["steps"]), "done": [],
                             "failed_step": b["failed_step"], "error": b.get("error", {}),
                             "reason": b.get("reason", "step_failed")}

    def _on_replay_requested(self, b: Mapping[str, Any], fact: Fact) -> None:
        self.replays.append(b["new_run_id"])

    def _end(self, status: str, reason: dict[str, Any]) -> None:
        self.status = status
        self.reason = reason
        self.pending.clear()
        self.parked = None

    def _on_run_completed(self, b: Mapping[str, Any], fact: Fact) -> None:
        self._end("completed", {"reason": b.get("reason", "completed")})

    def _on_run_failed(self, b: Mapping[str, Any], fact: Fact) -> None:
        self._end("failed", dict(b.items()))

    def _on_run_cancelled(self, b: Mapping[str, Any], fact: Fact) -> None:
        self._end("cancelled", {"reason": "cancelled", **dict(b.items())})


#: Fact type -> its required fields and ``RunState``'s handler (``apply``'s dispatch,
#: built once: a name lookup per fact cost more than most handlers).
_HANDLERS: dict[str, tuple[frozenset[str], Callable[[RunState, Mapping[str, Any], Fact], None]]] = {
    kind: (frozenset(required), getattr(RunState, "_on_" + kind))
    for kind, required in FACT_TYPES.items()
}


def fold(run_id: str, facts: Iterable[Fact], state: RunState | None = None) -> RunState:
    """Fold facts into ``state`` (a new one if ``None``) and return it."""
    state = state if state is not None else RunState(run_id)
    for fact in facts:
        state.apply(fact)
    return state
