"""The storage contract, checked directly on the FDB store (until the shared suite lands).

``StoreContract`` holds one test per contract behaviour (every method, every check of
``Commit``'s docstring, concurrency with threads, leases expiring mid-step). It runs on:

- ``TestFDBSim``: the simulator, no faults;
- ``TestFDBSimFaulty``: the simulator with seeded fault injection (seeds from
  ``SQUIDIE_FDB_SEEDS``, default 7);
- ``TestMemoryOracle``: the memory reference store — the expectations here are the
  reference's behaviour, so they are checked against it too;
- ``TestFDBCluster``: a real cluster, defined only when ``SQUIDIE_FDB_CLUSTER_FILE`` is
  set (otherwise the class does not exist: nothing collected, nothing skipped).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from conformance._fixtures import StoreFixtures
from squidie_backends.memory import MemoryStore
from squidie_core import ManualClock
from squidie_core.errors import (
    AppendConflict,
    DispatchNotFound,
    IdempotencyConflict,
    InvalidArgument,
    LeaseLostError,
    RunTerminalError,
)
from squidie_core.storage import (
    Checkpoint,
    Commit,
    Dispatch,
    Fact,
    Lease,
    RunEntry,
    Store,
)
from tests.backends.fdb.fixtures import (
    CLUSTER_FILE,
    FDBClusterFixtures,
    FDBSimFaultyFixtures,
    FDBSimFixtures,
)

T0 = 1_700_000_000.0


def fact(seq: int, kind: str = "note", **body: Any) -> Fact:
    return Fact(seq=seq, type=kind, at=T0 + seq, body=body or {"n": seq})


def entry(run_id: str, status: str = "running", *, created_at: float = T0,
          workflow: str = "wf", last_seq: int = 1, queue: str = "default") -> RunEntry:
    return RunEntry(run_id=run_id, workflow=workflow, trigger="go", status=status,
                    queue=queue, created_at=created_at, updated_at=created_at,
                    last_seq=last_seq)


def dispatch(run_id: str, step: str = "s", attempt: int = 1, **options: Any) -> Dispatch:
    return Dispatch(key=Dispatch.make_key(run_id, step, attempt), run_id=run_id,
                    workflow="wf", step=step, attempt=attempt, **options)


def start(store: Store, run_id: str, *dispatches: Dispatch, created_at: float = T0,
          workflow: str = "wf", status: str = "running") -> None:
    """Create a run: one fact, its index row, and its first dispatches."""
    store.commit(Commit(run_id=run_id, expected_seq=0, facts=[fact(1, "run_started")],
                        run=entry(run_id, status, created_at=created_at, workflow=workflow),
                        enqueue=dispatches))


def claim_one(store: Store, owner: str = "w1", lease_for: float = 30.0,
              **options: Any) -> Lease:
    leases = store.claim(owner, lease_for=lease_for, **options)
    assert len(leases) == 1, leases
    return leases[0]


@pytest.fixture
def interleaved() -> Iterator[None]:
    """Switch threads far more often than CPython's 5 ms, so that concurrent
    transactions really interleave between their reads and their commits."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


class StoreContract:
    """Contract behaviours; mixed into a class that provides ``store`` and ``clock``."""

    # ------------------------------------------------------------------ journal

    def test_append_read_head(self, store: Store) -> None:
        """Facts are appended in order and read back from any sequence."""
        assert store.head("r") == 0 and store.read("r") == []
        assert store.append("r", [fact(1), fact(2)], 0) == 2
        assert store.append("r", [fact(3, "other", x=[1, {"y": None}])], 2) == 3
        assert store.head("r") == 3
        assert [f.seq for f in store.read("r")] == [1, 2, 3]
        assert store.read("r", after_seq=2) == [fact(3, "other", x=[1, {"y": None}])]
        assert store.read("r", after_seq=3) == []
        assert store.read("other") == []

    def test_stale_append_conflicts_and_writes_nothing(self, store: Store) -> None:
        """An append after a stale expected sequence raises AppendConflict, writes nothing."""
        store.append("r", [fact(1), fact(2)], 0)
        with pytest.raises(AppendConflict) as info:
            store.append("r", [fact(2, "mine")], 1)
        assert (info.value.run_id, info.value.expected_seq, info.value.actual_seq) == ("r", 1, 2)
        with pytest.raises(AppendConflict):
            store.append("r", [fact(4)], 3)
        assert [f.type for f in store.read("r")] == ["note", "note"]

    def test_append_numbering_is_checked(self, store: Store) -> None:
        """Facts not numbered expected_seq + 1... contiguously are a ValueError."""
        with pytest.raises(ValueError):
            store.append("r", [fact(2)], 0)
        with pytest.raises(ValueError):
            store.append("r", [fact(1), fact(3)], 0)
        assert store.head("r") == 0

    def test_identical_append_resend_returns_normally(self, store: Store) -> None:
        """A resend of an append that landed returns normally and appends nothing."""
        store.append("r", [fact(1), fact(2)], 0)
        assert store.append("r", [fact(1), fact(2)], 0) == 2
        assert store.head("r") == 2

    def test_checkpoints(self, store: Store) -> None:
        """A checkpoint is kept unless a newer one exists; deletion reports counts."""
        assert store.read_checkpoint("r") is None
        store.write_checkpoint("r", Checkpoint(5, "five"))
        store.write_checkpoint("r", Checkpoint(3, "three"))
        assert store.read_checkpoint("r") == Checkpoint(5, "five")
        store.write_checkpoint("r", Checkpoint(7, "seven"))
        store.write_checkpoint("q", Checkpoint(1, "q"))
        store.write_checkpoint("p", Checkpoint(1, "p"))
        assert store.read_checkpoint("r") == Checkpoint(7, "seven")
        assert store.delete_checkpoints("r") == 1
        assert store.delete_checkpoints("r") == 0
        assert store.read_checkpoint("r") is None
        assert store.delete_checkpoints() == 2
        assert store.read_checkpoint("q") is None

    # ------------------------------------------------------------------ runs

    def test_get_run_and_list_runs_paging(self, store: Store) -> None:
        """list_runs is newest first with a stable cursor: later runs do not shift pages."""
        assert store.get_run("nope") is None
        for i in range(7):
            start(store, f"run-{i}", created_at=T0 + i, workflow="a" if i % 2 else "b")
        assert store.get_run("run-3") == entry("run-3", created_at=T0 + 3, workflow="a")
        page = store.list_runs(limit=3)
        assert [r.run_id for r in page.items] == ["run-6", "run-5", "run-4"]
        start(store, "run-new", created_at=T0 + 100)
        page2 = store.list_runs(limit=3, cursor=page.next_cursor)
        assert [r.run_id for r in page2.items] == ["run-3", "run-2", "run-1"]
        page3 = store.list_runs(limit=3, cursor=page2.next_cursor)
        assert [r.run_id for r in page3.items] == ["run-0"]
        assert page3.next_cursor is None
        assert [r.run_id for r in store.list_runs(workflow="a").items] == [
            "run-5", "run-3", "run-1"]
        with pytest.raises(InvalidArgument):
            store.list_runs(limit=0)
        with pytest.raises(InvalidArgument):
            store.list_runs(cursor="not-a-cursor!")

    def test_list_runs_follows_status_changes(self, store: Store) -> None:
        """The index follows a run's status: filters by status see its current one."""
        start(store, "r1", created_at=T0)
        start(store, "r2", created_at=T0 + 1)
        store.commit(Commit(run_id="r1", expected_seq=1, facts=[fact(2, "run_completed")],
                            run=entry("r1", "completed", created_at=T0, last_seq=2)))
        assert [r.run_id for r in store.list_runs(status="running").items] == ["r2"]
        done = store.list_runs(status="completed", workflow="wf").items
        assert [(r.run_id, r.last_seq) for r in done] == [("r1", 2)]
        assert [r.run_id for r in store.list_runs(status="failed").items] == []

    # ------------------------------------------------------------------ enqueue, claim

    def test_enqueue_and_claim(self, store: Store, clock: ManualClock) -> None:
        """A claim returns a lease with a token, fence 1, delivery 1, expiry now+lease_for."""
        store.enqueue([dispatch("r", "a")])
        lease = claim_one(store, "w1", lease_for=30)
        assert lease.key == "r:a:1" and lease.owner_id == "w1"
        assert (lease.fence, lease.delivery, lease.expires_at) == (1, 1, clock.now() + 30)
        assert lease.token
        assert store.claim("w2", lease_for=30) == []
        (rec,) = store.dispatches("r")
        assert (rec.state, rec.owner_id, rec.fence, rec.deliveries) == ("claimed", "w1", 1, 1)
        assert rec.lease_expires_at == clock.now() + 30
        assert lease.token not in repr(rec.to_dict())

    def test_enqueue_is_idempotent_by_key(self, store: Store) -> None:
        """The same key with the same intent is a no-op; a different intent is refused."""
        d = dispatch("r", "a")
        store.enqueue([d, d])
        store.enqueue([d])
        assert len(store.dispatches("r")) == 1
        with pytest.raises(IdempotencyConflict):
            store.enqueue([dispatch("r", "a", queue="other")])
        with pytest.raises(IdempotencyConflict):
            store.enqueue([dispatch("r", "b"), dispatch("r", "a", max_deliveries=9)])
        assert [r.dispatch.key for r in store.dispatches("r")] == ["r:a:1"]

    def test_delayed_visibility(self, store: Store, clock: ManualClock) -> None:
        """A dispatch is not visible before its delay has passed on the store's clock."""
        store.enqueue([dispatch("r", "later", delay=10)])
        assert store.claim("w", lease_for=5) == []
        (rec,) = store.dispatches("r")
        assert rec.state == "scheduled" and rec.visible_at == clock.now() + 10
        clock.advance(9.999)
        assert store.claim("w", lease_for=5) == []
        clock.advance(0.001)
        assert claim_one(store).key == "r:later:1"

    def test_claim_order_and_limit(self, store: Store, clock: ManualClock) -> None:
        """Claims take the earliest visible first, up to ``limit``."""
        store.enqueue([dispatch("r", "x", delay=5), dispatch("r", "y"),
                       dispatch("r", "z", delay=2)])
        clock.advance(10)
        leases = store.claim("w", lease_for=30, limit=2)
        assert [lease.key for lease in leases] == ["r:y:1", "r:z:1"]
        assert [lease.key for lease in store.claim("w", lease_for=30, limit=5)] == ["r:x:1"]

    def test_priorities_order_claims(self, store: Store) -> None:
        """With ``priorities``, a lower priority is claimed first within a queue."""
        assert store.capabilities.priorities
        store.enqueue([dispatch("r", "low", priority=5), dispatch("r", "high", priority=1),
                       dispatch("r", "mid", priority=3)])
        keys = [lease.key for lease in store.claim("w", lease_for=30, limit=3)]
        assert keys == ["r:high:1", "r:mid:1", "r:low:1"]

    def test_queues_are_isolated(self, store: Store) -> None:
        """Dispatches are delivered only from the queues a claim names (default: default)."""
        store.enqueue([dispatch("r", "a", queue="mail"), dispatch("r", "b")])
        assert [lease.key for lease in store.claim("w", lease_for=30, queues=["other"])] == []
        assert [lease.key for lease in store.claim("w", lease_for=30)] == ["r:b:1"]
        assert [lease.key for lease in store.claim("w", lease_for=30,
                                                    queues=["other", "mail"])] == ["r:a:1"]

    def test_invalid_claim_arguments(self, store: Store) -> None:
        """limit < 1 and non-positive lease durations are refused."""
        with pytest.raises(InvalidArgument):
            store.claim("w", lease_for=30, limit=0)
        with pytest.raises(InvalidArgument):
            store.claim("w", lease_for=0)
        store.enqueue([dispatch("r")])
        lease = claim_one(store)
        with pytest.raises(InvalidArgument):
            store.heartbeat(lease, lease_for=-1)

    # ------------------------------------------------------------------ leases

    def test_lease_expires_mid_step(self, store: Store, clock: ManualClock) -> None:
        """An expired lease is claimable again without a sweeper (fence 2); the first
        holder's heartbeat, completion, retry, dead-letter and commit all fail."""
        start(store, "r", dispatch("r", "s"))
        first = claim_one(store, "w1", lease_for=30)
        clock.advance(20)
        assert store.claim("w2", lease_for=30) == []
        clock.advance(10)
        second = claim_one(store, "w2", lease_for=30)
        assert (second.fence, second.delivery) == (2, 2)
        for attempt in (lambda: store.heartbeat(first, lease_for=30),
                        lambda: store.complete(first),
                        lambda: store.retry(first),
                        lambda: store.dead_letter(first, "no")):
            with pytest.raises(LeaseLostError):
                attempt()
        with pytest.raises(LeaseLostError):
            store.commit(Commit(run_id="r", expected_seq=1, facts=[fact(2)],
                                run=entry("r"), settle=first))
        assert store.head("r") == 1
        store.commit(Commit(run_id="r", expected_seq=1, facts=[fact(2)], run=entry("r"),
                            settle=second))
        (rec,) = store.dispatches("r")
        assert rec.state == "completed"
        assert [h["event"] for h in rec.history] == [
            "claimed", "lease_expired", "claimed", "completed"]

    def test_expired_lease_cannot_settle_even_unclaimed(self, store: Store,
                                                        clock: ManualClock) -> None:
        """A lease past its expiry is lost even if nobody claimed the dispatch since."""
        store.enqueue([dispatch("r")])
        lease = claim_one(store, lease_for=10)
        clock.advance(10)
        with pytest.raises(LeaseLostError):
            store.complete(lease)
        with pytest.raises(LeaseLostError):
            store.heartbeat(lease, lease_for=10)

    def test_heartbeat_extends(self, store: Store, clock: ManualClock) -> None:
        """A heartbeat moves the expiry to now + lease_for."""
        store.enqueue([dispatch("r")])
        lease = claim_one(store, lease_for=10)
        clock.advance(8)
        renewed = store.heartbeat(lease, lease_for=10)
        assert renewed.expires_at == clock.now() + 10 and renewed.token == lease.token
        clock.advance(5)
        assert store.claim("w2", lease_for=10) == []
        store.complete(renewed)
        store.complete(lease)  # same token: idempotent
        with pytest.raises(LeaseLostError):
            store.retry(lease)

    def test_settling_twice(self, store: Store) -> None:
        """complete() is idempotent for the same token; a second retry() or
        dead_letter() with a settled lease is a lost lease."""
        store.enqueue([dispatch("r", "a"), dispatch("r", "b")])
        first = claim_one(store)
        store.retry(first, delay=100)
        with pytest.raises(LeaseLostError):
            store.retry(first)
        second = claim_one(store)
        store.dead_letter(second, "bad")
        with pytest.raises(LeaseLostError):
            store.dead_letter(second, "bad")
        assert len(store.dead_letters().items) == 1

    def test_retry_and_delivery_limit(self, store: Store, clock: ManualClock) -> None:
        """retry() makes the dispatch visible after its delay; deliveries count, and a
        dispatch delivered max_deliveries times is dead-lettered by the next claim."""
        store.enqueue([dispatch("r", max_deliveries=2)])
        first = claim_one(store)
        store.retry(first, delay=5, reason="busy")
        assert store.claim("w", lease_for=30) == []
        clock.advance(5)
        second = claim_one(store)
        assert (second.delivery, second.fence) == (2, 2)
        store.retry(second)
        assert store.claim("w", lease_for=30) == []
        (dead,) = store.dead_letters().items
        assert (dead.dispatch.key, dead.state, dead.reason) == (
            "r:s:1", "dead_lettered", "delivery_limit_exceeded")
        assert [h["event"] for h in dead.history] == [
            "claimed", "retried", "claimed", "retried", "dead_lettered"]

    def test_dead_letters_and_redrive(self, store: Store, clock: ManualClock) -> None:
        """Dead letters are listed oldest first (paged, per queue); a re-drive makes one
        deliverable again with a fresh delivery count and a higher fence."""
        for i in range(5):
            store.enqueue([dispatch("r", f"s{i}", queue="q1" if i % 2 else "q2")])
        for i in range(5):
            q = "q1" if i % 2 else "q2"
            lease = claim_one(store, queues=[q])
            store.dead_letter(lease, f"bad {lease.dispatch.step}")
            clock.advance(1)
        page = store.dead_letters(limit=2)
        assert [d.dispatch.step for d in page.items] == ["s0", "s1"]
        page = store.dead_letters(limit=2, cursor=page.next_cursor)
        assert [d.dispatch.step for d in page.items] == ["s2", "s3"]
        page = store.dead_letters(limit=2, cursor=page.next_cursor)
        assert [d.dispatch.step for d in page.items] == ["s4"] and page.next_cursor is None
        assert [d.dispatch.step for d in store.dead_letters(queue="q1").items] == ["s1", "s3"]
        assert store.dead_letters().items[0].reason == "bad s0"
        store.redrive("r:s1:1", delay=3)
        assert [d.dispatch.step for d in store.dead_letters(queue="q1").items] == ["s3"]
        assert store.claim("w", lease_for=30, queues=["q1"]) == []
        clock.advance(3)
        lease = claim_one(store, queues=["q1"])
        assert (lease.key, lease.delivery, lease.fence) == ("r:s1:1", 1, 2)
        with pytest.raises(DispatchNotFound):
            store.redrive("r:s1:1")
        with pytest.raises(DispatchNotFound):
            store.redrive("nope")
        with pytest.raises(InvalidArgument):
            store.dead_letters(limit=0)

    def test_redrive_refused_for_terminal_run(self, store: Store) -> None:
        """A dead letter whose run has ended cannot be re-driven."""
        start(store, "r", dispatch("r", "a"))
        store.dead_letter(claim_one(store), "bad")
        store.commit(Commit(run_id="r", expected_seq=1, facts=[fact(2, "run_failed")],
                            run=entry("r", "failed", last_seq=2)))
        with pytest.raises(RunTerminalError):
            store.redrive("r:a:1")

    def test_dispatches_and_depth(self, store: Store, clock: ManualClock) -> None:
        """dispatches() lists a run's dispatches in enqueue order; depth() counts per queue."""
        store.enqueue([dispatch("r", "b"), dispatch("r", "a", delay=10)])
        store.enqueue([dispatch("r", "c"), dispatch("r", "d", queue="other")])
        store.enqueue([dispatch("x", "e")])
        assert [d.dispatch.step for d in store.dispatches("r")] == ["b", "a", "c", "d"]
        lease = claim_one(store)
        clock.advance(1)
        store.dead_letter(claim_one(store), "bad")
        depth = store.depth()
        assert depth["default"].to_dict() == {
            "visible": 1, "scheduled": 1, "claimed": 1, "dead": 1,
            "oldest_visible_at": T0}
        assert depth["other"].visible == 1
        assert set(store.depth(["other", "empty"])) == {"other", "empty"}
        assert store.depth(["empty"])["empty"].to_dict()["visible"] == 0
        store.complete(lease)
        assert store.depth(["default"])["default"].claimed == 0

    def test_enqueue_into_terminal_run_is_refused(self, store: Store) -> None:
        """After a run is terminal, none of its dispatches can be scheduled."""
        start(store, "r")
        store.commit(Commit(run_id="r", expected_seq=1, facts=[fact(2, "run_cancelled")],
                            run=entry("r", "cancelled", last_seq=2)))
        with pytest.raises(RunTerminalError):
            store.enqueue([dispatch("r", "late")])
        assert store.dispatches("r") == []

    # ------------------------------------------------------------------ commit

    def test_commit_applies_everything(self, store: Store, clock: ManualClock) -> None:
        """A commit appends facts, enqueues, settles the lease, upserts the run, and
        stores the checkpoint, atomically."""
        start(store, "r", dispatch("r", "a"))
        lease = claim_one(store)
        result = store.commit(Commit(
            run_id="r", expected_seq=1, facts=[fact(2, "attempt_succeeded"), fact(3)],
            run=entry("r", last_seq=3), enqueue=[dispatch("r", "b"), dispatch("r", "c")],
            settle=lease, checkpoint=Checkpoint(3, "state-at-3")))
        assert result.last_seq == 3 and result.replayed is False
        assert [f.seq for f in store.read("r")] == [1, 2, 3]
        assert [(d.dispatch.step, d.state) for d in store.dispatches("r")] == [
            ("a", "completed"), ("b", "available"), ("c", "available")]
        assert store.get_run("r") == entry("r", last_seq=3)
        assert store.read_checkpoint("r") == Checkpoint(3, "state-at-3")

    def test_commit_replay(self, store: Store) -> None:
        """Check 1: a commit whose facts are already in the journal is a replay — even
        when its lease has since been settled — and writes nothing again."""
        start(store, "r", dispatch("r", "a"))
        lease = claim_one(store)
        c = Commit(run_id="r", expected_seq=1, facts=[fact(2)], run=entry("r", last_seq=2),
                   enqueue=[dispatch("r", "b")], settle=lease)
        assert store.commit(c).replayed is False
        again = store.commit(c)
        assert (again.last_seq, again.replayed) == (2, True)
        assert store.head("r") == 2 and len(store.dispatches("r")) == 2

    def test_commit_lease_check_before_sequence(self, store: Store, clock: ManualClock) -> None:
        """Checks 2 then 3: a stale lease fails with LeaseLostError even when the
        sequence is stale too; nothing is written."""
        start(store, "r", dispatch("r", "a"))
        lease = claim_one(store, lease_for=10)
        store.append("r", [fact(2)], 1)
        clock.advance(11)
        with pytest.raises(LeaseLostError):
            store.commit(Commit(run_id="r", expected_seq=1, facts=[fact(2, "mine")],
                                run=entry("r"), settle=lease))
        assert store.head("r") == 2

    def test_commit_stale_sequence_writes_nothing(self, store: Store) -> None:
        """Check 3: a stale expected sequence is an AppendConflict; nothing is written and
        the lease stays live."""
        start(store, "r", dispatch("r", "a"))
        lease = claim_one(store)
        store.append("r", [fact(2, "operator")], 1)
        with pytest.raises(AppendConflict):
            store.commit(Commit(run_id="r", expected_seq=1, facts=[fact(2, "mine")],
                                run=entry("r", "completed", last_seq=2),
                                enqueue=[dispatch("r", "b")], settle=lease))
        assert [f.type for f in store.read("r")] == ["run_started", "operator"]
        assert [d.dispatch.step for d in store.dispatches("r")] == ["a"]
        assert store.get_run("r") == entry("r")
        store.complete(lease)

    def test_commit_into_terminal_run(self, store: Store) -> None:
        """Check 4: a commit that enqueues into a terminal run is refused; one that only
        appends (a receipt) is not."""
        start(store, "r")
        store.commit(Commit(run_id="r", expected_seq=1, facts=[fact(2, "run_failed")],
                            run=entry("r", "failed", last_seq=2)))
        with pytest.raises(RunTerminalError):
            store.commit(Commit(run_id="r", expected_seq=2, facts=[fact(3)],
                                run=entry("r", "failed", last_seq=3),
                                enqueue=[dispatch("r", "x")]))
        assert store.head("r") == 2
        store.commit(Commit(run_id="r", expected_seq=2, facts=[fact(3, "replay_requested")],
                            run=entry("r", "failed", last_seq=3)))
        assert store.head("r") == 3

    def test_commit_enqueue_intent_conflict(self, store: Store) -> None:
        """Check 5: an enqueued key with a different intent is an IdempotencyConflict;
        an identical one is skipped."""
        start(store, "r", dispatch("r", "a"))
        with pytest.raises(IdempotencyConflict):
            store.commit(Commit(run_id="r", expected_seq=1, facts=[fact(2)], run=entry("r"),
                                enqueue=[dispatch("r", "a", priority=1)]))
        assert store.head("r") == 1
        store.commit(Commit(run_id="r", expected_seq=1, facts=[fact(2)], run=entry("r"),
                            enqueue=[dispatch("r", "a"), dispatch("r", "b")]))
        assert [d.dispatch.step for d in store.dispatches("r")] == ["a", "b"]

    def test_malformed_commits_are_value_errors(self, store: Store) -> None:
        """A malformed Commit (numbering, another run's lease or dispatch) is a ValueError."""
        with pytest.raises(ValueError):
            store.commit(Commit(run_id="r", expected_seq=0, facts=[fact(2)], run=entry("r")))
        with pytest.raises(ValueError):
            store.commit(Commit(run_id="r", expected_seq=0, facts=[fact(1)], run=entry("x")))
        with pytest.raises(ValueError):
            store.commit(Commit(run_id="r", expected_seq=0, facts=[fact(1)], run=entry("r"),
                                enqueue=[dispatch("x")]))

    def test_terminal_commit_fences_the_other_dispatches(self, store: Store) -> None:
        """A terminal commit fails every other unfinished dispatch (reason run_terminal):
        none can be claimed, completed or scheduled again."""
        start(store, "r", dispatch("r", "a"), dispatch("r", "b"), dispatch("r", "c"))
        a = claim_one(store, "w1")
        b = claim_one(store, "w2")
        store.commit(Commit(run_id="r", expected_seq=1, facts=[fact(2, "run_completed")],
                            run=entry("r", "completed", last_seq=2), settle=a,
                            enqueue=[dispatch("r", "d")]))
        states = {d.dispatch.step: (d.state, d.reason) for d in store.dispatches("r")}
        assert states == {"a": ("completed", None), "b": ("failed", "run_terminal"),
                          "c": ("failed", "run_terminal"), "d": ("failed", "run_terminal")}
        assert store.claim("w3", lease_for=30, limit=5) == []
        for attempt in (lambda: store.complete(b), lambda: store.heartbeat(b, lease_for=5)):
            with pytest.raises(LeaseLostError):
                attempt()
        with pytest.raises(LeaseLostError):
            store.commit(Commit(run_id="r", expected_seq=2, facts=[fact(3)],
                                run=entry("r", "completed", last_seq=3), settle=b))
        assert store.depth(["default"])["default"].to_dict() == {
            "visible": 0, "scheduled": 0, "claimed": 0, "dead": 0, "oldest_visible_at": None}

    # ------------------------------------------------------------------ concurrency

    @pytest.mark.usefixtures("interleaved")
    def test_concurrent_claims_never_double_deliver(self, store: Store) -> None:
        """Six claimers draining 90 dispatches: each dispatch is delivered exactly once."""
        store.enqueue([dispatch(f"r{i % 9}", f"s{i}") for i in range(90)])
        got: list[str] = []
        lock = threading.Lock()
        errors: list[BaseException] = []

        def worker(name: str) -> None:
            try:
                while leases := store.claim(name, lease_for=300, limit=2):
                    for lease in leases:
                        store.complete(lease)
                    with lock:
                        got.extend(lease.key for lease in leases)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert len(got) == 90 and len(set(got)) == 90
        assert all(d.state == "completed" and d.deliveries == 1
                   for i in range(9) for d in store.dispatches(f"r{i}"))

    @pytest.mark.usefixtures("interleaved")
    def test_concurrent_commits_at_one_sequence(self, store: Store) -> None:
        """Eight writers commit different facts at the same sequence: exactly one wins,
        the others get AppendConflict."""
        start(store, "r")
        barrier = threading.Barrier(8)
        outcomes: list[str] = []
        lock = threading.Lock()

        def writer(i: int) -> None:
            barrier.wait()
            try:
                store.commit(Commit(run_id="r", expected_seq=1, facts=[fact(2, f"w{i}")],
                                    run=entry("r", last_seq=2)))
                result = "won"
            except AppendConflict:
                result = "conflict"
            with lock:
                outcomes.append(result)

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["conflict"] * 7 + ["won"]
        assert store.head("r") == 2

    @pytest.mark.usefixtures("interleaved")
    def test_claims_racing_a_terminal_commit(self, store: Store) -> None:
        """Claimers racing a cancelling commit never end with a live lease on the
        cancelled run's dispatches."""
        start(store, "r", *[dispatch("r", f"s{i}") for i in range(40)])
        leases: list[Lease] = []
        lock = threading.Lock()
        stop = threading.Event()

        def claimer() -> None:
            while not stop.is_set():
                got = store.claim("w", lease_for=300)
                with lock:
                    leases.extend(got)
                if not got:
                    return

        threads = [threading.Thread(target=claimer) for _ in range(3)]
        for t in threads:
            t.start()
        store.commit(Commit(run_id="r", expected_seq=1, facts=[fact(2, "run_cancelled")],
                            run=entry("r", "cancelled", last_seq=2)))
        stop.set()
        for t in threads:
            t.join()
        assert all(d.state == "failed" for d in store.dispatches("r"))
        for lease in leases:
            with pytest.raises(LeaseLostError):
                store.complete(lease)


class TestFDBSim(StoreContract, FDBSimFixtures):
    """The contract on the simulator."""


class TestFDBSimFaulty(StoreContract, FDBSimFaultyFixtures):
    """The contract on the simulator with fault injection."""


class MemoryFixtures(StoreFixtures):
    @pytest.fixture
    def store(self, clock: ManualClock) -> Iterator[Store]:
        yield MemoryStore(clock=clock)


class TestMemoryOracle(StoreContract, MemoryFixtures):
    """The same expectations on the reference store."""


if CLUSTER_FILE:

    class TestFDBCluster(StoreContract, FDBClusterFixtures):
        """The contract on the real cluster named by SQUIDIE_FDB_CLUSTER_FILE."""
