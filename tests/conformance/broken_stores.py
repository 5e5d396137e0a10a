"""Deliberately broken stores: each breaks one promise of the contract.

``test_selftest.py`` runs the whole conformance suite against each of them and requires
it to fail, on the cases that guard that promise. They subclass the memory store so
that everything else stays correct: a failure can only come from the one defect.

Not collected by pytest (no ``test_`` prefix); the self-test copies this file into each
of its throwaway pytest runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from squidie_backends.memory import MemoryStore
from squidie_core.errors import LeaseLostError
from squidie_core.storage import (
    TERMINAL_STATUSES,
    Commit,
    CommitResult,
    Dispatch,
    Fact,
    Lease,
    check_commit,
    check_contiguous,
)


class NoConflictDetection(MemoryStore):
    """Appends and commits land at the head whatever ``expected_seq`` said."""

    def append(self, run_id: str, facts: Sequence[Fact], expected_seq: int) -> int:
        check_contiguous(facts, expected_seq)
        with self._lock:
            head = self._head(run_id)
            renumbered = [replace(f, seq=head + i) for i, f in enumerate(facts, start=1)]
            return super().append(run_id, renumbered, head)

    def commit(self, commit: Commit) -> CommitResult:
        check_commit(commit)
        with self._lock:
            head = self._head(commit.run_id)
            if head != commit.expected_seq:
                facts = [replace(f, seq=head + i) for i, f in enumerate(commit.facts, start=1)]
                commit = replace(commit, expected_seq=head, facts=facts)
            return super().commit(commit)


class NeverExpiringLeases(MemoryStore):
    """A claimed dispatch stays with its holder forever; expiry is never checked."""

    def _schedule(self, rec: Any) -> None:
        if rec.state == "claimed":
            rec.version += 1  # never becomes claimable again
            return
        super()._schedule(rec)

    def _live(self, lease: Lease, now: float) -> Any:
        rec = self._records.get(lease.key)
        if rec is None or rec.state != "claimed" or rec.token_hash != _hash(lease.token):
            raise LeaseLostError(lease.key, "not the current holder")
        return rec


class HeartbeatWithoutTokenCheck(MemoryStore):
    """Any heartbeat for a claimed dispatch extends it, whoever sends it."""

    def heartbeat(self, lease: Lease, *, lease_for: float) -> Lease:
        with self._lock:
            rec = self._records.get(lease.key)
            if rec is None or rec.state != "claimed":
                raise LeaseLostError(lease.key, "not claimed")
            rec.lease_expires_at = self.clock.now() + lease_for
            self._schedule(rec)
            return replace(lease, expires_at=rec.lease_expires_at)


class NonAtomicCommit(MemoryStore):
    """A commit applies its parts one by one, each checked only when it is reached."""

    def commit(self, commit: Commit) -> CommitResult:
        check_commit(commit)
        with self._lock:
            if self._is_replay(self._journals.get(commit.run_id, []), commit.facts,
                               commit.expected_seq):
                return CommitResult(self._head(commit.run_id), replayed=True)
            self.append(commit.run_id, commit.facts, commit.expected_seq)
            self.enqueue(commit.enqueue)
            if commit.settle is not None:
                self.complete(commit.settle)
            self._runs[commit.run_id] = commit.run
            if commit.checkpoint is not None:
                self.write_checkpoint(commit.run_id, commit.checkpoint)
            if commit.run.status in TERMINAL_STATUSES:
                for key in self._by_run.get(commit.run_id, []):
                    rec = self._records[key]
                    if rec.state in ("pending", "claimed"):
                        self._settle(rec, "failed", "run_terminal")
            return CommitResult(self._head(commit.run_id))


class IgnoresDelayedVisibility(MemoryStore):
    """Every dispatch is visible at once: delays, backoffs and timers are ignored."""

    def _add(self, dispatches: Sequence[Dispatch], now: float) -> None:
        super()._add([replace(d, delay=0.0) for d in dispatches], now)

    def retry(self, lease: Lease, *, delay: float = 0.0, reason: str | None = None) -> None:
        super().retry(lease, delay=0.0, reason=reason)

    def redrive(self, dispatch_key: str, *, delay: float = 0.0) -> None:
        super().redrive(dispatch_key, delay=0.0)


def _hash(token: str) -> str:
    from squidie_core.storage import hash_token

    return hash_token(token)


BROKEN = {
    cls.__name__: cls
    for cls in (NoConflictDetection, NeverExpiringLeases, HeartbeatWithoutTokenCheck,
                NonAtomicCommit, IgnoresDelayedVisibility)
}
