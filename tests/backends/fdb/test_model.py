"""A Hypothesis state machine: the FDB store (with faults) against the memory model.

Random sequences of enqueue, claim, heartbeat, complete, retry, dead-letter, re-drive,
commit (terminal or not, settling a lease, enqueueing more) and clock moves are applied
to both stores on one ``ManualClock``; every result, every error class and every
observable record (dispatches with their history, depth, dead letters, run rows) must
match after each step. The FDB side runs with fault injection on, so lost replies and
late landings must stay invisible.

Equal vesting times do happen (a claim of several dispatches gives them one expiry), so
dispatch keys are made to sort in enqueue order: the two stores' tiebreaks (the memory
store's enqueue order, FDB's key order) then agree.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from squidie_backends.fdb import open_store
from squidie_backends.memory import MemoryStore
from squidie_core import ManualClock
from squidie_core.errors import SquidieError
from squidie_core.storage import Commit, Dispatch, Fact, Lease, RunEntry

T0 = 1_700_000_000.0
QUEUES = ("q1", "q2")


def outcome(fn: Any) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except SquidieError as exc:
        return ("error", type(exc).__name__)


class FDBAgainstMemory(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(T0)
        self.n = 0
        self.fdb: Any = None
        self.mem = MemoryStore(clock=self.clock)
        self.leases: list[tuple[Lease, Lease]] = []
        self.heads: dict[str, int] = {}
        self.runs: list[str] = []

    def unique(self, whole: int, half: bool = False) -> float:
        self.n += 1
        return whole + self.n * 1e-4 + (0.5e-4 if half else 0.0)

    def both(self, call: Any) -> Any:
        a, b = outcome(lambda: call(self.fdb)), outcome(lambda: call(self.mem))
        assert a[0] == b[0], (a, b)
        if a[0] == "error":
            assert a == b, (a, b)
        return a, b

    # ------------------------------------------------------------------ rules

    @initialize(seed=st.integers(0, 1_000_000))
    def open_fdb(self, seed: int) -> None:
        self.fdb = open_store("fdb+sim://", clock=self.clock, faults=2, seed=seed)

    @rule(delay=st.integers(0, 4), queue=st.sampled_from(QUEUES),
          max_deliveries=st.integers(1, 3), priority=st.sampled_from([0, 0, 1]))
    def enqueue(self, delay: int, queue: str, max_deliveries: int, priority: int) -> None:
        visible = self.unique(delay)
        run_id = f"r{self.n:05d}"
        self.runs.append(run_id)
        d = Dispatch(key=f"k{self.n:05d}", run_id=run_id, workflow="wf", step="s",
                     attempt=1, queue=queue, priority=priority,
                     delay=visible, max_deliveries=max_deliveries)
        self.both(lambda s: s.enqueue([d]))

    @rule(limit=st.integers(1, 3), queues=st.sampled_from([("q1",), ("q2",), QUEUES]),
          lease_for=st.integers(1, 15))
    def claim(self, limit: int, queues: tuple[str, ...], lease_for: int) -> None:
        lease_time = self.unique(lease_for, half=True)
        a, b = self.both(lambda s: s.claim("w", lease_for=lease_time, limit=limit,
                                           queues=queues))
        if a[0] == "ok":
            shape = [(x.key, x.fence, x.delivery, x.expires_at) for x in a[1]]
            assert shape == [(x.key, x.fence, x.delivery, x.expires_at) for x in b[1]]
            self.leases.extend(zip(a[1], b[1], strict=True))

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), action=st.sampled_from(
        ["heartbeat", "complete", "retry", "dead_letter"]), amount=st.integers(0, 10))
    def settle(self, data: Any, action: str, amount: int) -> None:
        pair = data.draw(st.sampled_from(self.leases))
        t = self.unique(amount, half=action == "heartbeat")

        def call(store: Any) -> Any:
            lease = pair[0] if store is self.fdb else pair[1]
            if action == "heartbeat":
                return store.heartbeat(lease, lease_for=t + 1).expires_at
            if action == "retry":
                return store.retry(lease, delay=t, reason="again")
            if action == "dead_letter":
                return store.dead_letter(lease, "bad")
            return store.complete(lease)

        a, b = self.both(call)
        assert a == b

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), terminal=st.booleans(), follow=st.booleans())
    def commit(self, data: Any, terminal: bool, follow: bool) -> None:
        fdb_lease, mem_lease = data.draw(st.sampled_from(self.leases))
        run_id = fdb_lease.dispatch.run_id
        head = self.heads.get(run_id, 0)
        status = "completed" if terminal else "running"
        enqueue = []
        if follow:
            visible = self.unique(1)
            enqueue = [Dispatch(key=f"k{self.n:05d}", run_id=run_id,
                                workflow="wf", step=f"t{self.n:05d}", attempt=1,
                                queue=fdb_lease.dispatch.queue, delay=visible)]
        entry = RunEntry(run_id=run_id, workflow="wf", trigger="go", status=status,
                         queue="q1", created_at=T0, updated_at=self.clock.now(),
                         last_seq=head + 1)

        def call(store: Any) -> Any:
            lease = fdb_lease if store is self.fdb else mem_lease
            return store.commit(Commit(
                run_id=run_id, expected_seq=head,
                facts=[Fact(seq=head + 1, type="x", at=self.clock.now(), body={"h": head})],
                run=entry, enqueue=enqueue, settle=lease))

        a, b = self.both(call)
        assert a == b
        if a[0] == "ok":
            self.heads[run_id] = head + 1

    @rule(data=st.data(), delay=st.integers(0, 3))
    def redrive(self, data: Any, delay: int) -> None:
        dead = [d.dispatch.key for d in self.mem.dead_letters(limit=100).items]
        key = data.draw(st.sampled_from([*dead, "nope"]))
        t = self.unique(delay)
        a, b = self.both(lambda s: s.redrive(key, delay=t))
        assert a == b

    @rule(seconds=st.integers(0, 12))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def same_observable_state(self) -> None:
        if self.fdb is None:
            return
        for run_id in self.runs:
            a = [r.to_dict() for r in self.fdb.dispatches(run_id)]
            b = [r.to_dict() for r in self.mem.dispatches(run_id)]
            assert a == b, (run_id, a, b)
            assert self.fdb.get_run(run_id) == self.mem.get_run(run_id)
            assert self.fdb.read(run_id) == self.mem.read(run_id)
        assert self.fdb.depth(list(QUEUES)) == self.mem.depth(list(QUEUES))
        assert ([d.to_dict() for d in self.fdb.dead_letters(limit=100).items]
                == [d.to_dict() for d in self.mem.dead_letters(limit=100).items])
        assert ([r.run_id for r in self.fdb.list_runs(limit=100).items]
                == [r.run_id for r in self.mem.list_runs(limit=100).items])

    def teardown(self) -> None:
        if self.fdb is not None:
            self.fdb.database.cluster.land_pending()


FDBAgainstMemory.TestCase.settings = settings(
    max_examples=75, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestFDBAgainstMemory = FDBAgainstMemory.TestCase


@pytest.mark.soak
def test_long_model_campaign() -> None:
    """The same machine, many more and longer examples (``make soak``)."""
    run_state_machine_as_test(FDBAgainstMemory, settings=settings(
        max_examples=1_000, stateful_step_count=50, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))
