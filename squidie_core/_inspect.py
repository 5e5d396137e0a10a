"""Read models: ``inspect_run``, ``explain_run`` and ``inspect_run_graph``.

Everything here is computed from durable data only: the run's folded facts (checkpoint
plus tail) and the store's records of the run's dispatches. Nothing is cached in the
engine, so any process can explain any run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from squidie_core._definition import COMPLETE, WorkflowDefinition
from squidie_core._facts import COMPENSATE_SUFFIX, RunState
from squidie_core.storage import DispatchRecord

if TYPE_CHECKING:
    from squidie_core._runtime import Squidie

__all__ = ["REASONS", "explain_run", "inspect_run", "inspect_run_graph"]

#: Every reason ``explain_run`` can give, with its next actions and a one-line summary.
REASONS: dict[str, tuple[tuple[str, ...], str]] = {
    "attempt_visible": (("wait_for_worker_claim",),
                        "step {step} is ready and waiting for a worker to claim it"),
    "attempt_scheduled_for_later": (("wait_until_attempt_visible",),
                                    "step {step} becomes visible at {when}"),
    "attempt_claimed": (("wait_for_attempt_completion",),
                        "step {step} is running on {owner} (lease until {when})"),
    "expired_claim": (("recover_expired_claim",),
                      "the lease of {owner} on step {step} expired at {when}; the next claim "
                      "takes it over"),
    "dead_lettered": (("redrive_dead_letter",),
                      "step {step} was dead-lettered: {detail}"),
    "dispatch_missing": (("redrive_dead_letter",),
                         "step {step} is scheduled in the journal but the store has no "
                         "dispatch for it"),
    "manual_intervention_required": (("resolve_manual_step",),
                                     "step {step} waits for an operator ({detail})"),
    "journal_anomaly": (("inspect_anomalies",),
                        "the journal has facts that cannot be applied; the run is held"),
    "idle": (("wait_for_new_runnables",), "nothing is scheduled or running"),
    "terminal": (("inspect_terminal_run",), "the run {detail}"),
}

# Most urgent first: the reason an operator should see when several dispatches pend.
_URGENCY = ("dead_lettered", "dispatch_missing", "expired_claim", "attempt_claimed",
            "attempt_visible", "attempt_scheduled_for_later")


def _iso(ts: float | None) -> str | None:
    from squidie_core._runtime import iso

    return iso(ts)


def _definition(engine: Squidie, state: RunState) -> WorkflowDefinition | None:
    return engine.workflows.get(state.workflow)


def inspect_run(engine: Squidie, run_id: str, *, include_history: bool = False) -> dict[str, Any]:
    """Return a run's identity, data, status, attempts, links and command history."""
    state = engine.load(run_id)
    definition = _definition(engine, state)
    records = {r.dispatch.key: r for r in engine.store.dispatches(run_id)}
    attempts = {
        name: {
            "status": record.get("status"),
            "attempts": record.get("attempts", 0),
            "last_error": record.get("last_error"),
            "completed_at": _iso(record.get("completed_at")),
            "history": [
                {**h, "at": _iso(h.get("at"))} for h in record.get("history", [])
            ],
        }
        for name, record in state.steps.items()
    }
    pending = []
    for key, p in state.pending.items():
        rec = records.get(key)
        pending.append({
            "key": key, "step": p["step"], "attempt": p["attempt"],
            "visible_at": _iso(p["visible_at"]),
            "state": rec.state if rec else "missing",
            "deliveries": rec.deliveries if rec else 0,
            "owner_id": rec.owner_id if rec and rec.state == "claimed" else None,
            "lease_expires_at": _iso(rec.lease_expires_at) if rec else None,
        })
    data: dict[str, Any] = {
        "run_id": state.run_id,
        "workflow": state.workflow,
        "version": state.version,
        "definition_changed": bool(definition and definition.fingerprint != state.version),
        "trigger": state.trigger,
        "queue": state.queue,
        "status": state.status,
        "reason": state.reason,
        "payload": state.payload,
        "context": state.context,
        "metadata": state.metadata,
        "parent": state.parent,
        "children": state.children,
        "replayed_from_run_id": state.replayed_from,
        "replays": state.replays,
        "signal_id": state.signal_id,
        "created_at": _iso(state.created_at),
        "updated_at": _iso(state.updated_at),
        "last_seq": state.seq,
        "commands": [{**c, "at": _iso(c.get("at"))} for c in state.commands],
        "attempts": attempts,
        "pending": pending,
        "next_visible_at": _iso(state.next_visible_at()),
        "parked": state.parked and {**state.parked, "since": _iso(state.parked.get("since"))},
        "recovery": state.recovery,
        "compensation": state.compensation,
        "irreversible_completed": state.irreversible_done,
        "anomalies": state.anomalies,
    }
    if include_history:
        data["history"] = engine.history(run_id)
    return data


def _dispatch_reason(state: RunState, key: str, rec: DispatchRecord | None,
                     now: float) -> tuple[str, dict[str, Any]]:
    pending = state.pending[key]
    info: dict[str, Any] = {"key": key, "step": pending["step"], "attempt": pending["attempt"]}
    if rec is None:
        return "dispatch_missing", info
    info.update(deliveries=rec.deliveries, state=rec.state)
    if rec.state == "dead_lettered":
        info["detail"] = rec.reason
        return "dead_lettered", info
    if rec.state == "claimed":
        info.update(owner=rec.owner_id, when=_iso(rec.lease_expires_at))
        if rec.lease_expires_at is not None and rec.lease_expires_at > now:
            return "attempt_claimed", info
        return "expired_claim", info
    if rec.state in ("available", "scheduled"):
        if rec.visible_at <= now:
            info["when"] = _iso(rec.visible_at)
            return "attempt_visible", info
        info["when"] = _iso(rec.visible_at)
        return "attempt_scheduled_for_later", info
    return "dispatch_missing", info


def explain_run(engine: Squidie, run_id: str) -> dict[str, Any]:
    """Return ``status``, ``reason``, ``step``, ``summary``, ``details``, ``next_actions``
    and ``evidence`` for a run."""
    state = engine.load(run_id)
    now = engine.clock.now()
    details: dict[str, Any] = {}
    evidence: dict[str, Any] = {"last_seq": state.seq}
    step: str | None = None
    if state.anomalies:
        reason = "journal_anomaly"
        details["anomalies"] = state.anomalies
    elif state.terminal:
        reason = "terminal"
        step = (state.reason or {}).get("step")
        details.update(state.reason or {})
        details["detail"] = {"completed": "completed", "failed": "failed",
                             "cancelled": "was cancelled"}.get(state.status, state.status)
        if state.status == "failed":
            details["detail"] = f"failed at step {step}" if step else "failed"
    elif state.parked is not None:
        reason = "manual_intervention_required"
        step = state.parked["step"]
        kind = state.parked["kind"]
        details.update(
            kind=kind,
            detail="approve or reject" if kind == "approval" else "resume",
            commands=["approve", "reject"] if kind == "approval" else ["resume"],
            since=_iso(state.parked.get("since")),
        )
    elif state.pending:
        records = {r.dispatch.key: r for r in engine.store.dispatches(run_id)}
        found = [(_dispatch_reason(state, key, records.get(key), now)) for key in state.pending]
        found.sort(key=lambda pair: _URGENCY.index(pair[0]))
        reason, first = found[0]
        step = first["step"]
        details.update(first)
        details["dispatches"] = [info for _, info in found]
        evidence["dispatches"] = [
            records[k].to_dict() for k in state.pending if k in records
        ]
    else:
        reason = "idle"
    actions, template = REASONS[reason]
    next_actions = list(actions)
    if reason == "terminal" and not state.irreversible_done:
        next_actions.append("replay_run")
    # ``details`` may carry its own ``step`` (a pending dispatch's, a failed run's reason):
    # the explained step wins, instead of a duplicate keyword.
    summary = template.format_map(_Blank({**details, "step": step}))
    return {
        "run_id": state.run_id,
        "workflow": state.workflow,
        "status": state.status,
        "reason": reason,
        "step": step,
        "summary": summary,
        "details": details,
        "next_actions": next_actions,
        "evidence": evidence,
    }


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def _node_status(record: dict[str, Any] | None, rec: DispatchRecord | None) -> str:
    if record is None:
        return "waiting"
    status = record.get("status")
    if status == "pending":
        return "running" if rec is not None and rec.state == "claimed" else "pending"
    if status == "waiting_timer":
        return "pending"
    if status in ("retrying", "paused", "completed", "failed"):
        return str(status)
    return "waiting"


def inspect_run_graph(engine: Squidie, run_id: str) -> dict[str, Any]:
    """Return ``nodes``, ``edges``, ``current`` and ``children`` of a run's graph."""
    state = engine.load(run_id)
    definition = _definition(engine, state)
    records: dict[str, DispatchRecord] = {}
    for rec in engine.store.dispatches(run_id):
        if rec.dispatch.key in state.pending:
            records[rec.dispatch.step] = rec
    names = list(definition.steps) if definition else []
    names += [n for n in state.steps if n not in names]
    nodes = []
    for name in names:
        spec = definition.steps.get(name.removesuffix(COMPENSATE_SUFFIX)) if definition else None
        nodes.append({
            "id": name,
            "kind": "compensation" if name.endswith(COMPENSATE_SUFFIX) else (
                spec.kind if spec else "unknown"),
            "status": _node_status(state.steps.get(name), records.get(name)),
            "attempts": state.steps.get(name, {}).get("attempts", 0),
        })
    status_of = {n["id"]: n["status"] for n in nodes}
    edges = []
    if definition is not None:
        if definition.mode == "transitions":
            pairs = [(e.source, e.on, e.to, e.recovery, e.condition) for e in definition.edges]
        else:
            pairs = [(dep, "ok", name, None, None)
                     for name in definition.steps for dep in definition.dependencies(name)]
        for source, on, to, recovery, condition in pairs:
            key = f"{source}:{on}:{to}"
            src = status_of.get(source, "waiting")
            if key in state.taken:
                status = "selected"
            elif src in ("completed", "failed") or (state.terminal and src != "waiting"):
                status = "skipped"
            elif state.terminal:
                status = "blocked"
            else:
                status = "pending"
            edge: dict[str, Any] = {"id": key, "from": source, "on": on, "to": to,
                                    "status": status}
            if recovery:
                edge["recovery"] = recovery
            if condition is not None:
                edge["condition"] = condition.describe()
            edges.append(edge)
    if state.status == "completed":
        status_of[COMPLETE] = "completed"
    current = [n["id"] for n in nodes if n["status"] in ("pending", "running", "retrying",
                                                          "paused")]
    return {
        "run_id": state.run_id,
        "workflow": state.workflow,
        "status": state.status,
        "mode": definition.mode if definition else None,
        "nodes": nodes,
        "edges": edges,
        "current": current,
        "children": state.children,
    }
