"""The Redis store against the memory store (the reference), operation by operation.

A Hypothesis state machine applies the same random operations to a fresh Redis store and
a ``MemoryStore`` on a ``ManualClock`` and compares every result and error, then every
observable: each run's dispatch records (state, deliveries, fence, owner, reason,
history), queue depths, dead letters, journals and index rows.

Keeping two clocks in step: the memory clock moves only when told; the Redis clock is
the server's, so it also moves with real time (milliseconds per example). All durations
are therefore large (hundreds of seconds) and chosen so that no two deadlines from
different calls can coincide (leases end in ...10/...30, delays in ...07/...03/...09/...01,
and every operation is followed by a 100 s tick): real time never reorders or flips a
comparison, and ties happen only inside one call, where both stores order by key.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from _redis_data import entry
from _redis_fixtures import namespace_url, purge_namespace
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from squidie_backends.memory import MemoryStore
from squidie_backends.redis import RedisStore
from squidie_core import ManualClock
from squidie_core.errors import SquidieError
from squidie_core.storage import Commit, Dispatch, Fact, Lease

pytestmark = pytest.mark.redis

RUNS = ("r1", "r2", "r3")
QUEUES = ("q1", "q2")
LEASES = (1010, 3030)
DELAYS = (0, 0, 1507, 2503)
RETRY_DELAYS = (0, 1309)
REDRIVE_DELAYS = (0, 1601)
TICK = 100

dispatch_specs = st.tuples(
    st.sampled_from(RUNS), st.sampled_from(("a", "b", "c")), st.integers(1, 2),
    st.sampled_from(QUEUES), st.sampled_from(DELAYS), st.integers(1, 3),
)


def make_dispatch(spec: tuple[str, str, int, str, int, int]) -> Dispatch:
    run, step, attempt, queue, delay, max_deliveries = spec
    return Dispatch(key=Dispatch.make_key(run, step, attempt), run_id=run, workflow="wf",
                    step=step, attempt=attempt, queue=queue, delay=float(delay),
                    max_deliveries=max_deliveries)


def outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except SquidieError as exc:
        return type(exc).__name__, None
    except ValueError as exc:
        return type(exc).__name__, None


class StoreComparison(RuleBasedStateMachine):
    """Memory and Redis, step by step (see the module docstring)."""

    leases = Bundle("leases")
    redis_url = ""  # set by the ``_server`` fixture (which also checks the server is up)

    def __init__(self) -> None:
        super().__init__()
        import uuid

        self.namespace = "o" + uuid.uuid4().hex[:10]
        self.redis = RedisStore(namespace_url(self.redis_url, self.namespace))
        self.memory = MemoryStore(clock=ManualClock())
        self.keys: set[str] = set()
        self.pairs: list[tuple[Lease, Lease]] = []
        self.last_commit: dict[str, Commit] = {}
        self.n = 0

    def teardown(self) -> None:
        self.redis.close()
        purge_namespace(self.redis_url, self.namespace)

    def both(self, op: Any) -> Any:
        """Apply ``op(store)`` to both; the outcomes must agree; then tick both clocks."""
        mem = outcome(lambda: op(self.memory))
        red = outcome(lambda: op(self.redis))
        assert mem[0] == red[0], f"memory {mem[0]} vs redis {red[0]}"
        self.memory.clock.advance(TICK)  # type: ignore[attr-defined]
        self.redis.clock.advance(TICK)
        return mem[1], red[1]

    @initialize()
    def start(self) -> None:
        pass

    @rule(specs=st.lists(dispatch_specs, min_size=1, max_size=4))
    def enqueue(self, specs: list[tuple[str, str, int, str, int, int]]) -> None:
        batch = [make_dispatch(s) for s in specs]
        self.keys.update(d.key for d in batch)
        self.both(lambda s: s.enqueue(batch))

    @rule(target=leases, owner=st.sampled_from(("w1", "w2")), lease_for=st.sampled_from(LEASES),
          limit=st.integers(1, 3),
          queues=st.lists(st.sampled_from(QUEUES), min_size=1, max_size=2, unique=True))
    def claim(self, owner: str, lease_for: int, limit: int, queues: list[str]) -> Any:
        mem, red = self.both(lambda s: s.claim(owner, lease_for=lease_for, limit=limit,
                                               queues=queues))
        assert [(x.key, x.fence, x.delivery, x.owner_id) for x in mem] == [
            (x.key, x.fence, x.delivery, x.owner_id) for x in red
        ]
        assert [x.dispatch for x in mem] == [x.dispatch for x in red]
        self.pairs += list(zip(mem, red, strict=True))
        return multiple(*zip(mem, red, strict=True))

    @rule(pair=leases, lease_for=st.sampled_from(LEASES))
    def heartbeat(self, pair: tuple[Lease, Lease], lease_for: int) -> None:
        self.both(lambda s: s.heartbeat(pair[0] if s is self.memory else pair[1],
                                        lease_for=lease_for))

    @rule(pair=consumes(leases))
    def complete(self, pair: tuple[Lease, Lease]) -> None:
        self.both(lambda s: s.complete(pair[0] if s is self.memory else pair[1]))

    @rule(pair=leases)
    def complete_again(self, pair: tuple[Lease, Lease]) -> None:
        self.both(lambda s: s.complete(pair[0] if s is self.memory else pair[1]))

    @rule(pair=consumes(leases), delay=st.sampled_from(RETRY_DELAYS),
          reason=st.sampled_from((None, "busy")))
    def retry(self, pair: tuple[Lease, Lease], delay: int, reason: str | None) -> None:
        self.both(lambda s: s.retry(pair[0] if s is self.memory else pair[1], delay=delay,
                                    reason=reason))

    @rule(pair=consumes(leases), reason=st.sampled_from(("poison", "bad input")))
    def dead_letter(self, pair: tuple[Lease, Lease], reason: str) -> None:
        self.both(lambda s: s.dead_letter(pair[0] if s is self.memory else pair[1], reason))

    @precondition(lambda self: bool(self.keys))
    @rule(data=st.data(), delay=st.sampled_from(REDRIVE_DELAYS))
    def redrive(self, data: st.DataObject, delay: int) -> None:
        key = data.draw(st.sampled_from(sorted(self.keys)))
        self.both(lambda s: s.redrive(key, delay=delay))

    @rule(seconds=st.sampled_from((500, 1100, 2500, 3100)))
    def advance(self, seconds: int) -> None:
        self.memory.clock.advance(seconds)  # type: ignore[attr-defined]
        self.redis.clock.advance(seconds)

    @rule(run=st.sampled_from(RUNS), n=st.integers(1, 2), stale=st.booleans(),
          status=st.sampled_from(("running", "running", "completed", "failed")),
          specs=st.lists(dispatch_specs, max_size=2), data=st.data())
    def commit(self, run: str, n: int, stale: bool, status: str,
               specs: list[tuple[str, str, int, str, int, int]], data: st.DataObject) -> None:
        head = self.memory.head(run)
        expected = max(head - 1, 0) if stale else head
        self.n += 1
        facts = [Fact(expected + i, f"t{self.n}", float(self.n), {"n": self.n})
                 for i in range(1, n + 1)]
        enqueue = [make_dispatch((run, *s[1:])) for s in specs]
        self.keys.update(d.key for d in enqueue)
        settle = None
        pairs = [p for p in self.pairs if p[0].dispatch.run_id == run]
        if pairs and data.draw(st.booleans()):
            settle = data.draw(st.sampled_from(pairs))
        row = entry(run, status=status, created=float(RUNS.index(run)), seq=expected + n)

        def op(s: Any) -> Any:
            lease = None if settle is None else settle[0] if s is self.memory else settle[1]
            c = Commit(run, expected, facts, row, enqueue=enqueue, settle=lease)
            return s.commit(c)

        mem, red = self.both(op)
        if mem is not None:
            assert (mem.last_seq, mem.replayed) == (red.last_seq, red.replayed)
            self.last_commit[run] = Commit(run, expected, facts, row, enqueue=enqueue)

    @precondition(lambda self: bool(self.last_commit))
    @rule(data=st.data())
    def resend_commit(self, data: st.DataObject) -> None:
        c = self.last_commit[data.draw(st.sampled_from(sorted(self.last_commit)))]
        mem, red = self.both(lambda s: s.commit(c))
        if mem is not None:
            assert (mem.last_seq, mem.replayed) == (red.last_seq, red.replayed)

    # ------------------------------------------------------------------ observables

    @staticmethod
    def _records(store: Any, run: str) -> list[tuple[Any, ...]]:
        return [
            (r.dispatch, r.state, r.deliveries, r.fence, r.owner_id, r.reason,
             r.lease_expires_at is not None,
             [(h.get("event"), h.get("fence"), h.get("owner"), h.get("reason"))
              for h in r.history])
            for r in store.dispatches(run)
        ]

    @invariant()
    def same_dispatches(self) -> None:
        for run in RUNS:
            assert self._records(self.memory, run) == self._records(self.redis, run), run

    @invariant()
    def same_depths(self) -> None:
        def counts(store: Any) -> dict[str, tuple[int, int, int, int, bool]]:
            return {q: (d.visible, d.scheduled, d.claimed, d.dead,
                        d.oldest_visible_at is None)
                    for q, d in store.depth(list(QUEUES)).items()}

        assert counts(self.memory) == counts(self.redis)

    @invariant()
    def token_index_holds_exactly_the_current_leases(self) -> None:
        for queue in QUEUES:
            qk = self.redis._queue(queue)
            tokens = self.redis._client.hgetall(qk.group[6])
            leased = self.redis._client.zrange(qk.group[3], 0, -1)
            assert sorted(tokens.values()) == sorted(leased)

    @invariant()
    def same_dead_letters(self) -> None:
        def dead(store: Any) -> list[tuple[str, str | None]]:
            out, cursor = [], None
            while True:
                page = store.dead_letters(limit=2, cursor=cursor)
                out += [(d.dispatch.key, d.reason) for d in page.items]
                if page.next_cursor is None:
                    return out
                cursor = page.next_cursor

        assert dead(self.memory) == dead(self.redis)

    @invariant()
    def same_journals_and_rows(self) -> None:
        for run in RUNS:
            assert self.memory.read(run) == self.redis.read(run)
            assert self.memory.get_run(run) == self.redis.get_run(run)
        assert [r.run_id for r in self.memory.list_runs().items] == [
            r.run_id for r in self.redis.list_runs().items
        ]


@pytest.fixture(autouse=True)
def _server(redis_url: str) -> None:
    StoreComparison.redis_url = redis_url


StoreComparison.TestCase.settings = settings(
    max_examples=int(os.environ.get("SQUIDIE_ORACLE_EXAMPLES", "40")),
    stateful_step_count=30,
    report_multiple_bugs=False,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_redis_matches_the_memory_store = StoreComparison.TestCase
