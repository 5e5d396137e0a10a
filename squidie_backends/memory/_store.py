"""The in-memory reference store: the whole contract, in one process, behind one lock.

Features: journal with optimistic appends, checkpoints, a run index, fenced leases with
delayed visibility and expiry (no sweeper: expired leases are found by the claim path),
priorities, dead letters and re-drive, and a wake-up hint. It is the model the other
stores are compared against, and what ``squidie_core.testing`` runs on.

URL: ``memory://`` (every URL opens a new, empty store).
Options: ``clock`` (a ``Clock``; default the system clock).
Not durable, single process.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from squidie_core._clock import Clock, SystemClock
from squidie_core.errors import (
    AppendConflict,
    CapabilityNotSupported,
    DispatchNotFound,
    IdempotencyConflict,
    InvalidArgument,
    LeaseLostError,
    RunTerminalError,
)
from squidie_core.storage import (
    TERMINAL_STATUSES,
    Capabilities,
    Checkpoint,
    Commit,
    CommitResult,
    Dispatch,
    DispatchRecord,
    Fact,
    Lease,
    Page,
    QueueDepth,
    RunEntry,
    check_commit,
    check_contiguous,
    check_queue_name,
    decode_cursor,
    encode_cursor,
    hash_token,
    new_token,
    same_facts,
)

__all__ = ["MemoryStore"]

_HISTORY_LIMIT = 50


@dataclass
class _Record:
    dispatch: Dispatch
    order: int
    state: str = "pending"  # pending | claimed | completed | failed | dead_lettered
    visible_at: float = 0.0
    deliveries: int = 0
    fence: int = 0
    owner_id: str | None = None
    token_hash: str | None = None
    lease_expires_at: float | None = None
    reason: str | None = None
    version: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def eligible_at(self) -> float | None:
        if self.state == "pending":
            return self.visible_at
        if self.state == "claimed":
            return self.lease_expires_at
        return None


class MemoryStore:
    """The reference ``Store``: every contract behaviour, in process memory.

    Args:
        clock: The store's clock (inject a ``ManualClock`` in tests).
    """

    name = "memory"
    capabilities = Capabilities(priorities=True, wake_up=True, embedded=True,
                                visibility_precision=0.0)

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._journals: dict[str, list[Fact]] = {}
        self._checkpoints: dict[str, Checkpoint] = {}
        self._runs: dict[str, RunEntry] = {}
        self._records: dict[str, _Record] = {}
        self._by_run: dict[str, list[str]] = {}
        # Heaps ordered as the contract orders claims: (priority,) visible time, then key.
        self._scheduled: dict[str, list[tuple[float, str, int]]] = {}
        self._ready: dict[str, list[tuple[int, float, str, int]]] = {}
        self._order = itertools.count(1)
        self._dead_order: dict[str, int] = {}
        self._faults = {"append_conflicts": 0}
        self._closed = False

    # ------------------------------------------------------------------ test hooks

    def inject_append_conflict(self, count: int = 1) -> None:
        """Make the next ``count`` appends or commits raise ``AppendConflict`` unwritten."""
        with self._lock:
            self._faults["append_conflicts"] += count

    def _take_injected_conflict(self, run_id: str, expected_seq: int) -> None:
        if self._faults["append_conflicts"] > 0:
            self._faults["append_conflicts"] -= 1
            raise AppendConflict(run_id, expected_seq, self._head(run_id))

    # ------------------------------------------------------------------ journal

    def _head(self, run_id: str) -> int:
        journal = self._journals.get(run_id)
        return journal[-1].seq if journal else 0

    def append(self, run_id: str, facts: Sequence[Fact], expected_seq: int) -> int:
        check_contiguous(facts, expected_seq)
        with self._lock:
            journal = self._journals.get(run_id, [])
            if self._is_replay(journal, facts, expected_seq):
                return expected_seq + len(facts)
            self._take_injected_conflict(run_id, expected_seq)
            head = journal[-1].seq if journal else 0
            if head != expected_seq:
                raise AppendConflict(run_id, expected_seq, head)
            self._journals.setdefault(run_id, []).extend(facts)
            return self._head(run_id)

    @staticmethod
    def _is_replay(journal: list[Fact], facts: Sequence[Fact], expected_seq: int) -> bool:
        if not facts or len(journal) < expected_seq + len(facts):
            return False
        return same_facts(journal[expected_seq : expected_seq + len(facts)], facts)

    def read(self, run_id: str, after_seq: int = 0) -> list[Fact]:
        with self._lock:
            journal = self._journals.get(run_id, [])
            return journal[max(after_seq, 0):]

    def head(self, run_id: str) -> int:
        with self._lock:
            return self._head(run_id)

    def read_checkpoint(self, run_id: str) -> Checkpoint | None:
        with self._lock:
            return self._checkpoints.get(run_id)

    def write_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> None:
        with self._lock:
            current = self._checkpoints.get(run_id)
            if current is None or current.seq <= checkpoint.seq:
                self._checkpoints[run_id] = checkpoint

    def delete_checkpoints(self, run_id: str | None = None) -> int:
        with self._lock:
            if run_id is None:
                count = len(self._checkpoints)
                self._checkpoints.clear()
                return count
            return 1 if self._checkpoints.pop(run_id, None) is not None else 0

    def get_run(self, run_id: str) -> RunEntry | None:
        with self._lock:
            return self._runs.get(run_id)

    def run_counts(self) -> dict[tuple[str, str], int]:
        """Runs per ``(workflow, status)`` (optional store method, used by status views)."""
        with self._lock:
            counts: dict[tuple[str, str], int] = {}
            for r in self._runs.values():
                counts[(r.workflow, r.status)] = counts.get((r.workflow, r.status), 0) + 1
            return counts

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        if limit < 1:
            raise InvalidArgument("limit", "must be at least 1")
        after: tuple[float, str] | None = None
        if cursor is not None:
            created, rid = decode_cursor(cursor, 2)
            after = (float(created), str(rid))
        with self._lock:
            rows = sorted(
                (
                    r for r in self._runs.values()
                    if (workflow is None or r.workflow == workflow)
                    and (status is None or r.status == status)
                    and (after is None or (r.created_at, r.run_id) < after)
                ),
                key=lambda r: (r.created_at, r.run_id),
                reverse=True,
            )
        page = rows[:limit]
        nxt = None
        if len(rows) > limit:
            nxt = encode_cursor(page[-1].created_at, page[-1].run_id)
        return Page(items=list(page), next_cursor=nxt)

    # ------------------------------------------------------------------ delivery

    def _schedule(self, rec: _Record) -> None:
        rec.version += 1
        when = rec.eligible_at()
        if when is not None:
            heapq.heappush(
                self._scheduled.setdefault(rec.dispatch.queue, []),
                (when, rec.dispatch.key, rec.version),
            )

    def _check_enqueue(self, dispatches: Sequence[Dispatch]) -> list[Dispatch]:
        fresh: list[Dispatch] = []
        for d in dispatches:
            check_queue_name(d.queue)
            if d.priority and not self.capabilities.priorities:
                raise CapabilityNotSupported(self.name, "priorities")
            rec = self._records.get(d.key)
            if rec is not None:
                if rec.dispatch.intent() != d.intent():
                    raise IdempotencyConflict(d.key, "dispatch enqueued with a different intent")
                continue
            if any(f.key == d.key for f in fresh):
                continue
            run = self._runs.get(d.run_id)
            if run is not None and run.status in TERMINAL_STATUSES:
                raise RunTerminalError(d.run_id, "enqueue", run.status, "the run has ended")
            fresh.append(d)
        return fresh

    def _add(self, dispatches: Sequence[Dispatch], now: float) -> None:
        for d in dispatches:
            rec = _Record(dispatch=d, order=next(self._order), visible_at=now + max(d.delay, 0.0))
            self._records[d.key] = rec
            self._by_run.setdefault(d.run_id, []).append(d.key)
            self._schedule(rec)
        if dispatches:
            self._wake.notify_all()

    def enqueue(self, dispatches: Sequence[Dispatch]) -> None:
        with self._lock:
            fresh = self._check_enqueue(dispatches)
            self._add(fresh, self.clock.now())

    def _promote(self, queue: str, now: float) -> None:
        scheduled = self._scheduled.get(queue, [])
        ready = self._ready.setdefault(queue, [])
        while scheduled and scheduled[0][0] <= now:
            when, key, version = heapq.heappop(scheduled)
            rec = self._records.get(key)
            if rec is None or rec.version != version:
                continue
            heapq.heappush(ready, (rec.dispatch.priority, when, key, version))

    def claim(
        self, owner_id: str, *, lease_for: float, limit: int = 1, queues: Sequence[str] = ()
    ) -> list[Lease]:
        if limit < 1:
            raise InvalidArgument("limit", "must be at least 1")
        if lease_for <= 0:
            raise InvalidArgument("lease_for", "must be positive")
        leases: list[Lease] = []
        with self._lock:
            now = self.clock.now()
            for queue in queues or ("default",):
                self._promote(queue, now)
            candidates = [q for q in (queues or ("default",)) if self._ready.get(q)]
            while len(leases) < limit and candidates:
                # Across queues, take the best head (priority, then visibility, then key).
                queue = min(candidates, key=lambda q: self._ready[q][0][:3])
                _, _, key, version = heapq.heappop(self._ready[queue])
                if not self._ready[queue]:
                    candidates.remove(queue)
                rec = self._records.get(key)
                if rec is None or rec.version != version:
                    continue
                if rec.state == "claimed":
                    rec.history.append(
                        {"event": "lease_expired", "fence": rec.fence, "owner": rec.owner_id}
                    )
                if rec.deliveries >= rec.dispatch.max_deliveries:
                    self._bury(rec, "delivery_limit_exceeded", now)
                    continue
                token = new_token()
                rec.state = "claimed"
                rec.deliveries += 1
                rec.fence += 1
                rec.owner_id = owner_id
                rec.token_hash = hash_token(token)
                rec.lease_expires_at = now + lease_for
                self._remember(rec, {"event": "claimed", "fence": rec.fence, "owner": owner_id,
                                     "at": now})
                self._schedule(rec)
                leases.append(
                    Lease(
                        dispatch=rec.dispatch,
                        owner_id=owner_id,
                        token=token,
                        fence=rec.fence,
                        delivery=rec.deliveries,
                        expires_at=rec.lease_expires_at,
                    )
                )
        return leases

    def _remember(self, rec: _Record, entry: dict[str, Any]) -> None:
        rec.history.append(entry)
        if len(rec.history) > _HISTORY_LIMIT:
            del rec.history[0]

    def _bury(self, rec: _Record, reason: str, now: float) -> None:
        rec.state = "dead_lettered"
        rec.reason = reason
        rec.lease_expires_at = None
        rec.token_hash = None
        self._remember(rec, {"event": "dead_lettered", "reason": reason, "at": now})
        self._dead_order[rec.dispatch.key] = next(self._order)
        self._schedule(rec)

    def _live(self, lease: Lease, now: float) -> _Record:
        rec = self._records.get(lease.key)
        if rec is None:
            raise LeaseLostError(lease.key, "unknown dispatch")
        if rec.state != "claimed" or rec.token_hash != hash_token(lease.token):
            raise LeaseLostError(lease.key, "another delivery holds it or it was settled")
        if rec.lease_expires_at is None or rec.lease_expires_at <= now:
            raise LeaseLostError(lease.key, "the lease expired")
        return rec

    def heartbeat(self, lease: Lease, *, lease_for: float) -> Lease:
        if lease_for <= 0:
            raise InvalidArgument("lease_for", "must be positive")
        with self._lock:
            now = self.clock.now()
            rec = self._live(lease, now)
            rec.lease_expires_at = now + lease_for
            self._schedule(rec)
            return replace(lease, expires_at=rec.lease_expires_at)

    def complete(self, lease: Lease) -> None:
        with self._lock:
            rec = self._records.get(lease.key)
            if (
                rec is not None
                and rec.state == "completed"
                and rec.token_hash == hash_token(lease.token)
            ):
                return
            self._settle(self._live(lease, self.clock.now()), "completed")

    def _settle(self, rec: _Record, state: str, reason: str | None = None) -> None:
        rec.state = state
        rec.reason = reason
        rec.lease_expires_at = None
        self._remember(rec, {"event": state, "fence": rec.fence, "at": self.clock.now(),
                             **({"reason": reason} if reason else {})})
        self._schedule(rec)

    def retry(self, lease: Lease, *, delay: float = 0.0, reason: str | None = None) -> None:
        with self._lock:
            now = self.clock.now()
            rec = self._live(lease, now)
            rec.state = "pending"
            rec.visible_at = now + max(delay, 0.0)
            rec.lease_expires_at = None
            rec.token_hash = None
            self._remember(rec, {"event": "retried", "fence": rec.fence, "at": now,
                                 **({"reason": reason} if reason else {})})
            self._schedule(rec)
            self._wake.notify_all()

    def dead_letter(self, lease: Lease, reason: str) -> None:
        with self._lock:
            now = self.clock.now()
            self._bury(self._live(lease, now), reason, now)

    def dead_letters(
        self, *, queue: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page:
        if limit < 1:
            raise InvalidArgument("limit", "must be at least 1")
        after = int(decode_cursor(cursor, 1)[0]) if cursor is not None else 0
        with self._lock:
            dead = sorted(
                (
                    (self._dead_order[key], rec)
                    for key, rec in self._records.items()
                    if rec.state == "dead_lettered"
                    and (queue is None or rec.dispatch.queue == queue)
                    and self._dead_order[key] > after
                ),
                key=lambda pair: pair[0],
            )
            page = dead[:limit]
            items = [self._to_record(rec, self.clock.now()) for _, rec in page]
        nxt = encode_cursor(page[-1][0]) if len(dead) > limit else None
        return Page(items=items, next_cursor=nxt)

    def redrive(self, dispatch_key: str, *, delay: float = 0.0) -> None:
        with self._lock:
            rec = self._records.get(dispatch_key)
            if rec is None or rec.state != "dead_lettered":
                raise DispatchNotFound(dispatch_key, "not dead-lettered")
            run = self._runs.get(rec.dispatch.run_id)
            if run is not None and run.status in TERMINAL_STATUSES:
                raise RunTerminalError(run.run_id, "redrive", run.status, "the run has ended")
            now = self.clock.now()
            rec.state = "pending"
            rec.deliveries = 0
            rec.reason = None
            rec.visible_at = now + max(delay, 0.0)
            self._dead_order.pop(dispatch_key, None)
            self._remember(rec, {"event": "redriven", "at": now})
            self._schedule(rec)
            self._wake.notify_all()

    def _to_record(self, rec: _Record, now: float) -> DispatchRecord:
        state = rec.state
        if state == "pending":
            state = "available" if rec.visible_at <= now else "scheduled"
        return DispatchRecord(
            dispatch=rec.dispatch,
            state=state,
            visible_at=rec.visible_at,
            deliveries=rec.deliveries,
            fence=rec.fence,
            owner_id=rec.owner_id,
            lease_expires_at=rec.lease_expires_at if rec.state == "claimed" else None,
            reason=rec.reason,
            history=tuple(dict(h) for h in rec.history),
        )

    def dispatches(self, run_id: str) -> list[DispatchRecord]:
        with self._lock:
            now = self.clock.now()
            return [self._to_record(self._records[k], now) for k in self._by_run.get(run_id, [])]

    def depth(self, queues: Sequence[str] | None = None) -> dict[str, QueueDepth]:
        with self._lock:
            now = self.clock.now()
            counts: dict[str, dict[str, Any]] = {
                q: {"visible": 0, "scheduled": 0, "claimed": 0, "dead": 0,
                    "oldest_visible_at": None}
                for q in (queues or ())
            }
            for rec in self._records.values():
                q = rec.dispatch.queue
                if queues is not None and q not in queues:
                    continue
                c = counts.setdefault(
                    q, {"visible": 0, "scheduled": 0, "claimed": 0, "dead": 0,
                        "oldest_visible_at": None}
                )
                if rec.state == "pending":
                    if rec.visible_at <= now:
                        c["visible"] += 1
                        oldest = c["oldest_visible_at"]
                        c["oldest_visible_at"] = (
                            rec.visible_at if oldest is None else min(oldest, rec.visible_at)
                        )
                    else:
                        c["scheduled"] += 1
                elif rec.state == "claimed":
                    c["claimed"] += 1
                elif rec.state == "dead_lettered":
                    c["dead"] += 1
            return {q: QueueDepth(**c) for q, c in counts.items()}

    # ------------------------------------------------------------------ commit

    def commit(self, commit: Commit) -> CommitResult:
        check_commit(commit)
        with self._lock:
            now = self.clock.now()
            journal = self._journals.get(commit.run_id, [])
            if self._is_replay(journal, commit.facts, commit.expected_seq):
                return CommitResult(self._head(commit.run_id), replayed=True)
            settled = self._live(commit.settle, now) if commit.settle is not None else None
            self._take_injected_conflict(commit.run_id, commit.expected_seq)
            head = self._head(commit.run_id)
            if head != commit.expected_seq:
                raise AppendConflict(commit.run_id, commit.expected_seq, head)
            run = self._runs.get(commit.run_id)
            if commit.enqueue and run is not None and run.status in TERMINAL_STATUSES:
                raise RunTerminalError(commit.run_id, "schedule", run.status, "the run has ended")
            fresh = self._check_enqueue(commit.enqueue)
            # Every check passed: write.
            self._journals.setdefault(commit.run_id, []).extend(commit.facts)
            self._add(fresh, now)
            if settled is not None:
                self._settle(settled, "completed")
            self._runs[commit.run_id] = commit.run
            if commit.checkpoint is not None:
                self.write_checkpoint(commit.run_id, commit.checkpoint)
            if commit.terminal:
                for key in self._by_run.get(commit.run_id, []):
                    rec = self._records[key]
                    if rec.state in ("pending", "claimed"):
                        self._settle(rec, "failed", "run_terminal")
            return CommitResult(self._head(commit.run_id))

    # ------------------------------------------------------------------ misc

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        if not self.capabilities.wake_up:
            raise CapabilityNotSupported(self.name, "wake_up")
        with self._wake:
            return self._wake.wait(timeout)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify_all()

    def __repr__(self) -> str:
        return f"MemoryStore(runs={len(self._runs)}, dispatches={len(self._records)})"
