"""Property-based comparison with the memory model (Hypothesis stateful testing).

A ``RuleBasedStateMachine`` applies random operations (enqueue, claim, heartbeat,
complete, retry, dead-letter, re-drive, append, commit, checkpoints, moving time) to the
store under test and to a fresh memory store, and requires the same outcome from both
after every step: the same return values (or the same error class) and the same view of
every run, dispatch, queue and dead letter.

Each example works in its own namespace (run ids and queues), so one fixture store
serves every example. Time is on a grid: clocks move in multiples of 10 s while every
delay and lease ends half-way between grid points, so no decision ever falls on a
boundary where a store's declared ``visibility_precision`` (or a server clock's drift)
could legitimately tip it either way.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from conformance._markers import since
from conformance._support import AdvancingClock, SuiteBase, dispatch, make_facts, run_entry
from squidie_core import ManualClock, open_store
from squidie_core.errors import SquidieError
from squidie_core.storage import Checkpoint, Commit, Lease, Store

STEPS = ("a", "b", "c")
LEASES = (15.0, 35.0, 55.0)
DELAYS = (0.0, 0.0, 0.0, 5.0, 15.0, 25.0)
ADVANCES = (10.0, 20.0, 30.0)
_OWNERS = st.sampled_from(("w1", "w2"))
_LEASES = st.sampled_from(LEASES)
_LIMITS = st.integers(1, 3)
_QUEUES = st.sampled_from(((0, 1), (0,), (1,), (0, 1)))
STATUSES = ("running", "running", "running", "running", "idle", "completed", "failed")


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", call()
    except (SquidieError, ValueError) as exc:
        return "raised", type(exc).__name__


def build_machine(store: Store, clock: AdvancingClock) -> type[RuleBasedStateMachine]:
    """Return a state machine class comparing ``store`` with a memory model."""
    tolerance = 1.0 + store.capabilities.visibility_precision

    class StoreVersusModel(RuleBasedStateMachine):

        def __init__(self) -> None:
            super().__init__()
            self.model_clock = ManualClock()
            self.model: Store = open_store("memory://", clock=self.model_clock)
            ns = uuid.uuid4().hex[:8]
            self.queues = (f"pq-{ns}-x", f"pq-{ns}-y")
            self.runs = tuple(f"pr-{ns}-{i}" for i in range(3))
            self.t0 = (clock.now(), self.model_clock.now())
            self.keys: set[str] = set()
            self.held: list[tuple[Lease, Lease]] = []

        def teardown(self) -> None:
            self.model.close()

        # -------------------------------------------------------------- helpers

        def same_time(self, tested: float | None, model: float | None) -> bool:
            if tested is None or model is None:
                return tested is model
            return abs((tested - self.t0[0]) - (model - self.t0[1])) <= tolerance

        def both(self, call: Callable[[Store], Any]) -> tuple[tuple[str, Any], tuple[str, Any]]:
            tested = _outcome(lambda: call(store))
            model = _outcome(lambda: call(self.model))
            assert tested[0] == model[0], f"store {tested} but memory model {model}"
            if tested[0] == "raised":
                assert tested[1] == model[1], f"store raised {tested[1]}, model {model[1]}"
            return tested, model

        def check_leases(self, tested: list[Lease], model: list[Lease]) -> None:
            assert [lease.key for lease in tested] == [lease.key for lease in model], (
                f"claimed {[lease.key for lease in tested]}, model claimed "
                f"{[lease.key for lease in model]}")
            for t, m in zip(tested, model, strict=True):
                assert (t.owner_id, t.fence, t.delivery) == (m.owner_id, m.fence, m.delivery)
                assert self.same_time(t.expires_at, m.expires_at)

        # -------------------------------------------------------------- delivery rules

        @rule(run=st.sampled_from(range(3)), step=st.sampled_from(STEPS),
              attempt=st.integers(1, 2), queue=st.sampled_from((0, 1)),
              delay=st.sampled_from(DELAYS), max_deliveries=st.sampled_from((1, 2, 3)),
              twice=st.booleans())
        def enqueue(self, *, run: int, step: str, attempt: int, queue: int, delay: float,
                    max_deliveries: int, twice: bool) -> None:
            d = dispatch(self.runs[run], step, attempt, queue=self.queues[queue], delay=delay,
                         max_deliveries=max_deliveries)
            self.keys.add(d.key)
            self.both(lambda s: s.enqueue([d, d] if twice else [d]))

        def _claim(self, owner: str, lease_for: float, limit: int,
                   queues: tuple[int, ...]) -> None:
            names = [self.queues[q] for q in queues]
            tested, model = self.both(lambda s: s.claim(owner, lease_for=lease_for,
                                                        limit=limit, queues=names))
            if tested[0] == "ok":
                self.check_leases(tested[1], model[1])
                self.held.extend(zip(tested[1], model[1], strict=True))

        @rule(owner=_OWNERS, lease_for=_LEASES, limit=_LIMITS, queues=_QUEUES)
        def claim(self, owner: str, lease_for: float, limit: int,
                  queues: tuple[int, ...]) -> None:
            self._claim(owner, lease_for, limit, queues)

        @rule(owner=_OWNERS, lease_for=_LEASES, limit=_LIMITS, queues=_QUEUES)
        def claim_more(self, owner: str, lease_for: float, limit: int,
                       queues: tuple[int, ...]) -> None:
            self._claim(owner, lease_for, limit, queues)

        def pick(self, data: st.DataObject) -> tuple[Lease, Lease] | None:
            """Mostly the latest lease (likely live), sometimes any (likely stale)."""
            if not self.held:
                return None
            if data.draw(st.integers(0, 3)):
                return self.held[-1]
            return data.draw(st.sampled_from(self.held))

        @rule(data=st.data(), lease_for=st.sampled_from(LEASES))
        def heartbeat(self, data: st.DataObject, lease_for: float) -> None:
            pair = self.pick(data)
            if pair is None:
                return
            tested, model = self.both(
                lambda s: s.heartbeat(pair[0] if s is store else pair[1], lease_for=lease_for))
            if tested[0] == "ok":
                self.check_leases([tested[1]], [model[1]])
                self.held.append((tested[1], model[1]))

        @rule(data=st.data(), how=st.sampled_from(("complete", "retry", "retry_later",
                                                   "dead_letter")))
        def settle(self, data: st.DataObject, how: str) -> None:
            pair = self.pick(data)
            if pair is None:
                return

            def call(s: Store) -> Any:
                lease = pair[0] if s is store else pair[1]
                if how == "complete":
                    return s.complete(lease)
                if how == "retry":
                    return s.retry(lease)
                if how == "retry_later":
                    return s.retry(lease, delay=15.0)
                return s.dead_letter(lease, "poison")

            self.both(call)

        @rule(data=st.data(), delay=st.sampled_from((0.0, 15.0)))
        def redrive(self, data: st.DataObject, delay: float) -> None:
            if not self.keys:
                return
            dead = [r.dispatch.key for q in self.queues
                    for r in self.model.dead_letters(queue=q).items]
            # Mostly re-drive real dead letters; sometimes anything (must be refused).
            mostly_dead = bool(data.draw(st.integers(0, 4)))
            pool = dead if dead and mostly_dead else sorted(self.keys)
            key = data.draw(st.sampled_from(pool))
            self.both(lambda s: s.redrive(key, delay=delay))

        @rule(seconds=st.sampled_from(ADVANCES))
        def advance(self, seconds: float) -> None:
            clock.advance(seconds)
            self.model_clock.advance(seconds)

        # -------------------------------------------------------------- journal rules

        @rule(run=st.sampled_from(range(3)), count=st.integers(1, 2),
              offset=st.sampled_from((-1, 0, 0, 1)))
        def append(self, run: int, count: int, offset: int) -> None:
            run_id = self.runs[run]
            expected = max(self.model.head(run_id) + offset, 0)
            facts = make_facts(expected + 1, count, at=100.0, by="append")
            self.both(lambda s: s.append(run_id, facts, expected_seq=expected))

        @rule(data=st.data(), run=st.sampled_from(range(3)), offset=st.sampled_from((-1, 0, 0)),
              status=st.sampled_from(STATUSES), next_steps=st.lists(
                  st.sampled_from(STEPS), max_size=2, unique=True),
              delay=st.sampled_from(DELAYS), checkpoint=st.booleans())
        def commit(self, *, data: st.DataObject, run: int, offset: int, status: str,
                   next_steps: list[str], delay: float, checkpoint: bool) -> None:
            run_id = self.runs[run]
            expected = max(self.model.head(run_id) + offset, 0)
            attempt = data.draw(st.integers(1, 2))
            enqueue = [dispatch(run_id, s, attempt, queue=self.queues[0], delay=delay)
                       for s in next_steps]
            self.keys.update(d.key for d in enqueue)
            settle: tuple[Lease, Lease] | None = None
            mine = [pair for pair in self.held if pair[0].dispatch.run_id == run_id]
            wants_settle = data.draw(st.booleans())
            if mine and wants_settle:
                settle = data.draw(st.sampled_from(mine))
            facts = make_facts(expected + 1, 2, at=200.0, by="commit")
            row = run_entry(run_id, last_seq=expected + 2, status=status,
                            queue=self.queues[0])

            def call(s: Store) -> Any:
                lease = None if settle is None else settle[0] if s is store else settle[1]
                return s.commit(Commit(
                    run_id=run_id, expected_seq=expected, facts=facts, run=row,
                    enqueue=enqueue, settle=lease,
                    checkpoint=Checkpoint(expected + 2, f"cp-{expected + 2}")
                    if checkpoint else None,
                ))

            tested, model = self.both(call)
            if tested[0] == "ok":
                assert tested[1] == model[1]

        @rule(run=st.sampled_from(range(3)), seq=st.integers(0, 8), delete=st.booleans())
        def checkpoint(self, run: int, seq: int, delete: bool) -> None:
            run_id = self.runs[run]
            if delete:
                tested, model = self.both(lambda s: s.delete_checkpoints(run_id))
                assert tested == model
            else:
                self.both(lambda s: s.write_checkpoint(run_id, Checkpoint(seq, f"cp-{seq}")))

        # -------------------------------------------------------------- the views

        @invariant()
        def same_view(self) -> None:
            for run_id in self.runs:
                assert store.read(run_id) == self.model.read(run_id), run_id
                assert store.head(run_id) == self.model.head(run_id), run_id
                assert store.get_run(run_id) == self.model.get_run(run_id), run_id
                assert store.read_checkpoint(run_id) == self.model.read_checkpoint(run_id)
                tested = store.dispatches(run_id)
                model = self.model.dispatches(run_id)
                assert [r.dispatch.key for r in tested] == [r.dispatch.key for r in model]
                for t, m in zip(tested, model, strict=True):
                    assert (t.state, t.deliveries, t.fence, t.owner_id, t.reason) == (
                        m.state, m.deliveries, m.fence, m.owner_id, m.reason), (
                        f"{t.dispatch.key}: store shows {t.state}/{t.deliveries}/{t.fence}/"
                        f"{t.reason}, model {m.state}/{m.deliveries}/{m.fence}/{m.reason}")
                    assert self.same_time(t.visible_at, m.visible_at), t.dispatch.key
                    assert self.same_time(t.lease_expires_at, m.lease_expires_at)
            tested_depth = store.depth(list(self.queues))
            model_depth = self.model.depth(list(self.queues))
            for queue in self.queues:
                td, md = tested_depth[queue], model_depth[queue]
                assert (td.visible, td.scheduled, td.claimed, td.dead) == (
                    md.visible, md.scheduled, md.claimed, md.dead), queue
                assert [r.dispatch.key for r in store.dead_letters(queue=queue).items] == [
                    r.dispatch.key for r in self.model.dead_letters(queue=queue).items]

    return StoreVersusModel


@since("1.0")
class PropertySuite(SuiteBase):
    """Random operation sequences give the same results as the memory model."""

    #: Sequences explored per case; override in your fixtures class to explore more.
    property_examples = 60
    #: Shrink a failing sequence to a minimal one. Off by default: every example shares
    #: one store, so shrinking replays thousands of sequences on a growing store and can
    #: take minutes. Turn it on while debugging a failure.
    property_shrink = False

    def _settings(self, examples: int, steps: int) -> settings:
        phases = [Phase.explicit, Phase.generate]
        if self.property_shrink:
            phases.append(Phase.shrink)
        return settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                        database=None, phases=phases, suppress_health_check=list(HealthCheck))

    def test_random_operations_match_the_memory_model(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        run_state_machine_as_test(build_machine(store, clock),
                                  settings=self._settings(self.property_examples, 30))

    def test_long_operation_sequences_match_the_memory_model(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        run_state_machine_as_test(build_machine(store, clock),
                                  settings=self._settings(max(self.property_examples // 6, 2),
                                                          150))
