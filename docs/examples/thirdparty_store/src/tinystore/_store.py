"""The whole Squidie storage contract in one JSON file.

Features: a journal with optimistic appends, checkpoints, a run index, fenced leases
with delayed visibility and expiry (found by the claim path: no sweeper), dead letters
and re-drive, and the atomic commit. Every operation takes an exclusive ``flock`` on a
lock file next to the state, reads the state, applies the change in memory and, only if
every check passed, writes the file back atomically (a temporary file renamed over it).
That one rule gives all-or-nothing commits, and lets several processes on one machine
share a store.

URL: ``tinystore:///absolute/path/to/state.json`` (the file is created when missing).
Options: ``clock`` (a ``squidie_core.Clock``; default the system clock).
Capabilities: ``durable``, ``multi_process``. POSIX only (``fcntl``). Every operation
rewrites the whole file: this is a worked example of the contract, not a production
store.

The race the fence prevents, as everywhere in Squidie::

    worker A                          file                          worker B
    claim d (fence 1, token a)
    ... paused past its lease ...     d claimable again
                                      claim d (fence 2, b)  <-----  claim
    commit(settle=a) ------------>    hash(a) is not the stored hash:
                                      LeaseLostError, file unchanged
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from squidie_core import Clock, SystemClock
from squidie_core.errors import (
    AppendConflict,
    CapabilityNotSupported,
    CorruptDataError,
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
    decode_cursor,
    encode_cursor,
    hash_token,
    new_token,
    same_facts,
)

__all__ = ["TinyStore", "open_store"]

State = dict[str, Any]
_LIVE = ("pending", "claimed")


def open_store(url: str, **options: Any) -> TinyStore:
    """Open the store at ``tinystore:///path/to/state.json`` (the plugin's factory)."""
    scheme, sep, path = url.partition("://")
    if scheme != "tinystore" or not sep or not path:
        raise InvalidArgument("url", "expected tinystore:///path/to/state.json")
    return TinyStore(path, **options)


def _empty() -> State:
    return {"format": 1, "journals": {}, "checkpoints": {}, "runs": {}, "dispatches": {},
            "by_run": {}, "counter": 0}


def _fact(data: dict[str, Any]) -> Fact:
    return Fact(data["seq"], data["type"], data["at"], data["body"])


def _fact_data(fact: Fact) -> dict[str, Any]:
    return {"seq": fact.seq, "type": fact.type, "at": fact.at, "body": fact.body}


class TinyStore:
    """A ``squidie_core.storage.Store`` kept in one JSON file.

    Args:
        path: The state file.
        clock: The store's one clock (inject a ``ManualClock`` in tests).
    """

    name = "tinystore"
    capabilities = Capabilities(durable=True, multi_process=True, visibility_precision=0.0)

    def __init__(self, path: str | os.PathLike[str], *, clock: Clock | None = None) -> None:
        self.path = Path(path)
        self.clock: Clock = clock or SystemClock()
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._threads = threading.Lock()
        self._cached: tuple[tuple[int, int, int], State] | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ the file

    @contextlib.contextmanager
    def _state(self, *, write: bool = False) -> Iterator[State]:
        """Lock, load, yield the state; write it back only if the block succeeded."""
        with self._threads, open(self._lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._load()
            try:
                yield state
            except BaseException:
                self._cached = None  # the block may have changed it half way: forget it
                raise
            if write:
                self._save(state)

    def _version(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load(self) -> State:
        # Re-parse only when another writer replaced the file since we last saw it (each
        # save is a rename, so the inode changes): the lock makes this check exact.
        version = self._version()
        if self._cached is not None and version == self._cached[0]:
            return self._cached[1]
        if version is None:
            return _empty()
        try:
            state: State = json.loads(self.path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise CorruptDataError(str(self.path), f"not a tinystore state: {exc}") from exc
        self._cached = (version, state)
        return state

    def _save(self, state: State) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tinystore-")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(state, out, separators=(",", ":"), allow_nan=False)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        version = self._version()
        self._cached = None if version is None else (version, state)

    # ------------------------------------------------------------------ journal

    def append(self, run_id: str, facts: Sequence[Fact], expected_seq: int) -> int:
        check_contiguous(facts, expected_seq)
        with self._state(write=True) as state:
            journal = state["journals"].setdefault(run_id, [])
            if self._landed(journal, facts, expected_seq):
                return expected_seq + len(facts)
            if len(journal) != expected_seq:
                raise AppendConflict(run_id, expected_seq, len(journal))
            journal.extend(_fact_data(f) for f in facts)
            return len(journal)

    @staticmethod
    def _landed(journal: list[dict[str, Any]], facts: Sequence[Fact], expected: int) -> bool:
        """Whether ``facts`` are already stored right after ``expected`` (a resend)."""
        if not facts or len(journal) < expected + len(facts):
            return False
        stored = [_fact(f) for f in journal[expected:expected + len(facts)]]
        return same_facts(stored, facts)

    def read(self, run_id: str, after_seq: int = 0) -> list[Fact]:
        with self._state() as state:
            return [_fact(f) for f in state["journals"].get(run_id, [])[max(after_seq, 0):]]

    def head(self, run_id: str) -> int:
        with self._state() as state:
            return len(state["journals"].get(run_id, []))

    def read_checkpoint(self, run_id: str) -> Checkpoint | None:
        with self._state() as state:
            found = state["checkpoints"].get(run_id)
            return None if found is None else Checkpoint(found[0], found[1])

    def write_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> None:
        with self._state(write=True) as state:
            self._keep_checkpoint(state, run_id, checkpoint)

    @staticmethod
    def _keep_checkpoint(state: State, run_id: str, checkpoint: Checkpoint) -> None:
        current = state["checkpoints"].get(run_id)
        if current is None or current[0] <= checkpoint.seq:
            state["checkpoints"][run_id] = [checkpoint.seq, checkpoint.data]

    def delete_checkpoints(self, run_id: str | None = None) -> int:
        with self._state(write=True) as state:
            if run_id is None:
                count = len(state["checkpoints"])
                state["checkpoints"] = {}
                return count
            return 1 if state["checkpoints"].pop(run_id, None) is not None else 0

    def get_run(self, run_id: str) -> RunEntry | None:
        with self._state() as state:
            row = state["runs"].get(run_id)
            return None if row is None else RunEntry(**row)

    def list_runs(
        self, *, workflow: str | None = None, status: str | None = None, limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        if limit < 1:
            raise InvalidArgument("limit", "must be at least 1")
        after = None
        if cursor is not None:
            created, rid = decode_cursor(cursor, 2)
            after = (float(created), str(rid))
        with self._state() as state:
            rows = [RunEntry(**row) for row in state["runs"].values()]
        rows = sorted(
            (r for r in rows
             if (workflow is None or r.workflow == workflow)
             and (status is None or r.status == status)
             and (after is None or (r.created_at, r.run_id) < after)),
            key=lambda r: (r.created_at, r.run_id), reverse=True,
        )
        page = rows[:limit]
        more = len(rows) > limit
        return Page(page, encode_cursor(page[-1].created_at, page[-1].run_id) if more else None)

    # ------------------------------------------------------------------ delivery

    def _fresh(self, state: State, dispatches: Sequence[Dispatch]) -> list[Dispatch]:
        """The dispatches not stored yet; refuses a reused key or an ended run."""
        fresh: list[Dispatch] = []
        for d in dispatches:
            if d.priority:
                raise CapabilityNotSupported(self.name, "priorities")
            stored = state["dispatches"].get(d.key)
            if stored is not None:
                if Dispatch.from_dict(stored["dispatch"]).intent() != d.intent():
                    raise IdempotencyConflict(d.key, "enqueued before with another intent")
                continue
            if any(f.key == d.key for f in fresh):
                continue
            run = state["runs"].get(d.run_id)
            if run is not None and run["status"] in TERMINAL_STATUSES:
                raise RunTerminalError(d.run_id, "enqueue", run["status"], "the run has ended")
            fresh.append(d)
        return fresh

    @staticmethod
    def _add(state: State, dispatches: Sequence[Dispatch], now: float) -> None:
        for d in dispatches:
            state["counter"] += 1
            state["dispatches"][d.key] = {
                "dispatch": d.to_dict(), "order": state["counter"], "state": "pending",
                "visible_at": now + max(d.delay, 0.0), "deliveries": 0, "fence": 0,
                "owner": None, "token_hash": None, "expires_at": None, "reason": None,
                "dead_order": None, "history": [],
            }
            state["by_run"].setdefault(d.run_id, []).append(d.key)

    def enqueue(self, dispatches: Sequence[Dispatch]) -> None:
        with self._state(write=True) as state:
            self._add(state, self._fresh(state, dispatches), self.clock.now())

    def claim(
        self, owner_id: str, *, lease_for: float, limit: int = 1, queues: Sequence[str] = ()
    ) -> list[Lease]:
        if limit < 1:
            raise InvalidArgument("limit", "must be at least 1")
        if lease_for <= 0:
            raise InvalidArgument("lease_for", "must be positive")
        wanted = set(queues or ("default",))
        leases: list[Lease] = []
        with self._state(write=True) as state:
            now = self.clock.now()
            visible = []
            for key, rec in state["dispatches"].items():
                if rec["dispatch"]["queue"] not in wanted:
                    continue
                if rec["state"] == "pending" and rec["visible_at"] <= now:
                    visible.append((rec["visible_at"], key))
                elif rec["state"] == "claimed" and rec["expires_at"] <= now:
                    visible.append((rec["expires_at"], key))  # the lease lapsed
            for _, key in sorted(visible):
                if len(leases) == limit:
                    break
                rec = state["dispatches"][key]
                d = Dispatch.from_dict(rec["dispatch"])
                if rec["deliveries"] >= d.max_deliveries:
                    self._bury(state, rec, "delivery_limit_exceeded", now)
                    continue
                token = new_token()
                rec.update(state="claimed", owner=owner_id, token_hash=hash_token(token),
                           expires_at=now + lease_for, deliveries=rec["deliveries"] + 1,
                           fence=rec["fence"] + 1)
                rec["history"].append({"event": "claimed", "fence": rec["fence"],
                                       "owner": owner_id, "at": now})
                leases.append(Lease(d, owner_id, token, rec["fence"], rec["deliveries"],
                                    rec["expires_at"]))
        return leases

    @staticmethod
    def _bury(state: State, rec: dict[str, Any], reason: str, now: float) -> None:
        state["counter"] += 1
        rec.update(state="dead_lettered", reason=reason, token_hash=None, expires_at=None,
                   dead_order=state["counter"])
        rec["history"].append({"event": "dead_lettered", "reason": reason, "at": now})

    @staticmethod
    def _live(state: State, lease: Lease, now: float) -> dict[str, Any]:
        """The record ``lease`` currently holds; ``LeaseLostError`` if it holds nothing."""
        rec: dict[str, Any] | None = state["dispatches"].get(lease.key)
        if rec is None:
            raise LeaseLostError(lease.key, "unknown dispatch")
        if rec["state"] != "claimed" or rec["token_hash"] != hash_token(lease.token):
            raise LeaseLostError(lease.key, "another delivery holds it or it was settled")
        if rec["expires_at"] <= now:
            raise LeaseLostError(lease.key, "the lease expired")
        return rec

    def heartbeat(self, lease: Lease, *, lease_for: float) -> Lease:
        if lease_for <= 0:
            raise InvalidArgument("lease_for", "must be positive")
        with self._state(write=True) as state:
            now = self.clock.now()
            rec = self._live(state, lease, now)
            rec["expires_at"] = now + lease_for
            return replace(lease, expires_at=rec["expires_at"])

    @staticmethod
    def _settle(rec: dict[str, Any], to: str, now: float, reason: str | None = None) -> None:
        rec.update(state=to, reason=reason, expires_at=None)
        rec["history"].append({"event": to, "fence": rec["fence"], "at": now})

    def complete(self, lease: Lease) -> None:
        with self._state(write=True) as state:
            rec = state["dispatches"].get(lease.key)
            if (rec is not None and rec["state"] == "completed"
                    and rec["token_hash"] == hash_token(lease.token)):
                return  # a resend of the same completion
            now = self.clock.now()
            self._settle(self._live(state, lease, now), "completed", now)

    def retry(self, lease: Lease, *, delay: float = 0.0, reason: str | None = None) -> None:
        with self._state(write=True) as state:
            now = self.clock.now()
            rec = self._live(state, lease, now)
            rec.update(state="pending", visible_at=now + max(delay, 0.0), expires_at=None,
                       token_hash=None)
            rec["history"].append({"event": "retried", "fence": rec["fence"], "at": now,
                                   "reason": reason})

    def dead_letter(self, lease: Lease, reason: str) -> None:
        with self._state(write=True) as state:
            now = self.clock.now()
            self._bury(state, self._live(state, lease, now), reason, now)

    def dead_letters(
        self, *, queue: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page:
        if limit < 1:
            raise InvalidArgument("limit", "must be at least 1")
        after = int(decode_cursor(cursor, 1)[0]) if cursor is not None else 0
        with self._state() as state:
            now = self.clock.now()
            dead = sorted(
                (rec["dead_order"], key) for key, rec in state["dispatches"].items()
                if rec["state"] == "dead_lettered" and rec["dead_order"] > after
                and (queue is None or rec["dispatch"]["queue"] == queue)
            )
            items = [self._record(state["dispatches"][key], now) for _, key in dead[:limit]]
        more = len(dead) > limit
        return Page(items, encode_cursor(dead[limit - 1][0]) if more else None)

    def redrive(self, dispatch_key: str, *, delay: float = 0.0) -> None:
        with self._state(write=True) as state:
            rec = state["dispatches"].get(dispatch_key)
            if rec is None or rec["state"] != "dead_lettered":
                raise DispatchNotFound(dispatch_key, "not dead-lettered")
            run = state["runs"].get(rec["dispatch"]["run_id"])
            if run is not None and run["status"] in TERMINAL_STATUSES:
                raise RunTerminalError(run["run_id"], "redrive", run["status"],
                                       "the run has ended")
            now = self.clock.now()
            rec.update(state="pending", deliveries=0, reason=None, dead_order=None,
                       visible_at=now + max(delay, 0.0))
            rec["history"].append({"event": "redriven", "at": now})

    @staticmethod
    def _record(rec: dict[str, Any], now: float) -> DispatchRecord:
        shown = rec["state"]
        if shown == "pending":
            shown = "available" if rec["visible_at"] <= now else "scheduled"
        return DispatchRecord(
            dispatch=Dispatch.from_dict(rec["dispatch"]), state=shown,
            visible_at=rec["visible_at"], deliveries=rec["deliveries"], fence=rec["fence"],
            owner_id=rec["owner"],
            lease_expires_at=rec["expires_at"] if rec["state"] == "claimed" else None,
            reason=rec["reason"], history=tuple(rec["history"][-50:]),
        )

    def dispatches(self, run_id: str) -> list[DispatchRecord]:
        with self._state() as state:
            now = self.clock.now()
            return [self._record(state["dispatches"][key], now)
                    for key in state["by_run"].get(run_id, [])]

    def depth(self, queues: Sequence[str] | None = None) -> dict[str, QueueDepth]:
        counts: dict[str, dict[str, Any]] = {q: {} for q in (queues or ())}
        with self._state() as state:
            now = self.clock.now()
            for rec in state["dispatches"].values():
                queue = rec["dispatch"]["queue"]
                if queues is not None and queue not in queues:
                    continue
                c = counts.setdefault(queue, {})
                if rec["state"] == "pending" and rec["visible_at"] <= now:
                    c["visible"] = c.get("visible", 0) + 1
                    oldest = c.get("oldest_visible_at")
                    c["oldest_visible_at"] = (rec["visible_at"] if oldest is None
                                              else min(oldest, rec["visible_at"]))
                elif rec["state"] == "pending":
                    c["scheduled"] = c.get("scheduled", 0) + 1
                elif rec["state"] == "claimed":
                    c["claimed"] = c.get("claimed", 0) + 1
                elif rec["state"] == "dead_lettered":
                    c["dead"] = c.get("dead", 0) + 1
        return {q: QueueDepth(**c) for q, c in counts.items()}

    # ------------------------------------------------------------------ commit

    def commit(self, commit: Commit) -> CommitResult:
        check_commit(commit)
        with self._state(write=True) as state:
            now = self.clock.now()
            journal = state["journals"].setdefault(commit.run_id, [])
            # The contract's order of checks; nothing is written unless all pass.
            if self._landed(journal, commit.facts, commit.expected_seq):
                return CommitResult(len(journal), replayed=True)
            settled = None
            if commit.settle is not None:
                settled = self._live(state, commit.settle, now)
            if len(journal) != commit.expected_seq:
                raise AppendConflict(commit.run_id, commit.expected_seq, len(journal))
            run = state["runs"].get(commit.run_id)
            if commit.enqueue and run is not None and run["status"] in TERMINAL_STATUSES:
                raise RunTerminalError(commit.run_id, "schedule", run["status"],
                                       "the run has ended")
            fresh = self._fresh(state, commit.enqueue)
            journal.extend(_fact_data(f) for f in commit.facts)
            self._add(state, fresh, now)
            if settled is not None:
                self._settle(settled, "completed", now)
            state["runs"][commit.run_id] = commit.run.to_dict()
            if commit.checkpoint is not None:
                self._keep_checkpoint(state, commit.run_id, commit.checkpoint)
            if commit.terminal:
                for key in state["by_run"].get(commit.run_id, []):
                    rec = state["dispatches"][key]
                    if rec["state"] in _LIVE:
                        self._settle(rec, "failed", now, "run_terminal")
            return CommitResult(len(journal))

    # ------------------------------------------------------------------ misc

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        raise CapabilityNotSupported(self.name, "wake_up")

    def close(self) -> None:
        """Nothing to release: every operation opens and closes the file itself."""

    def __repr__(self) -> str:
        return f"TinyStore({str(self.path)!r})"
