"""Randomised runs checked from their history: many workers, crashes, expiring leases.

Worker threads run a workflow through the engine on the store under test while its
steps randomly fail (retried with backoff), kill their worker (the lease is abandoned
and expires), or stall past their lease (the attempt is taken over and the stalled
commit must be fenced); one variant also cancels runs while they execute. Afterwards
``check_history`` reads only what the store kept and must find every attempt committed
at most once, every run ended exactly once, and no fact written by a stale lease.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from conformance._checker import check_history
from conformance._markers import since
from conformance._support import AdvancingClock, SuiteBase
from conformance._workflows import CURRENT, SCENARIOS, WorkerCrash
from squidie_core import Backoff, RetryPolicy, Squidie, StepContext, Workflow, field, manual, step
from squidie_core.errors import RunTerminalError
from squidie_core.storage import Store

LEASE = 10.0
WORKERS = 4
RUNS = 10


class _Chaos:
    """What the steps of one campaign do, decided by a seeded, shared rng."""

    def __init__(self, seed: int, clock: AdvancingClock) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.clock = clock
        self.seen: Counter[str] = Counter()

    def roll(self) -> float:
        with self.lock:
            return self.rng.random()

    def note(self, what: str) -> None:
        with self.lock:
            self.seen[what] += 1


_CAMPAIGN: dict[str, _Chaos] = {}


def chaotic(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    chaos = _CAMPAIGN["current"]
    roll = chaos.roll()
    if roll < 0.1:
        chaos.note("crash")
        raise WorkerCrash(f"worker died in {ctx.step}")
    if roll < 0.2:
        chaos.note("stall")
        chaos.clock.advance(LEASE + 1)  # stalled past its lease; someone takes over
    elif roll < 0.35:
        chaos.note("retry")
        raise ConnectionError(f"transient failure in {ctx.step} attempt {ctx.attempt}")
    return {f"{ctx.step}_attempt": ctx.attempt}


_RETRY = RetryPolicy(max_attempts=8, backoff=Backoff.fixed(1))


class ChaosFlow(Workflow, name="conformance.ChaosFlow"):
    go = manual(n=field(int))
    fetch = step(chaotic, retry=_RETRY)
    left = step(chaotic, retry=_RETRY, after=[fetch])
    right = step(chaotic, retry=_RETRY, after=[fetch])
    merge = step(chaotic, retry=_RETRY, after=[left, right])


def campaign(store: Store, clock: AdvancingClock, *, seed: int, cancel: bool) -> Counter[str]:
    """Run ``RUNS`` chaotic runs with ``WORKERS`` threads until every run has ended."""
    chaos = _CAMPAIGN["current"] = _Chaos(seed, clock)
    engine = Squidie(store, workflows=[ChaosFlow], max_deliveries=50,
                     rng=random.Random(seed))
    runs = [engine.start(ChaosFlow, None, {"n": i}, idempotency_key=f"chaos-{seed}-{i}").run_id
            for i in range(RUNS)]
    outcomes: Counter[str] = Counter()
    counting = threading.Lock()  # the count and the decision to cancel, as one step
    errors: list[BaseException] = []
    stop = threading.Event()

    def live() -> list[str]:
        return [r for r in runs if (row := store.get_run(r)) is None
                or row.status not in ("completed", "failed", "cancelled")]

    def ended() -> bool:
        return not live()

    def worker(index: int) -> None:
        try:
            for _ in range(2_000):
                if stop.is_set() or ended():
                    return
                try:
                    result = engine.execute_next(owner_id=f"worker-{index}", lease_for=LEASE,
                                                 heartbeat_interval=0)
                except WorkerCrash:
                    with counting:
                        outcomes["crash"] += 1
                    continue
                if result is None:
                    clock.advance(1.5)  # let backoffs elapse and abandoned leases lapse
                    continue
                with counting:
                    outcomes[result.outcome] += 1
                    due = cancel and result.outcome == "ok" and outcomes["ok"] % 8 == 0
                # Every eighth committed step cancels a random live run: a count, not a
                # coin, and never a run already ended, so a campaign always has
                # cancellations whatever the thread interleaving.
                candidates = live() if due else []
                if candidates:
                    victim = candidates[int(chaos.roll() * len(candidates))]
                    try:
                        engine.cancel(victim, actor="chaos", reason="random cancel")
                        with counting:
                            outcomes["cancelled"] += 1
                    except RunTerminalError:
                        pass
        except BaseException as exc:  # surfaced in the test thread
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(WORKERS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        stop.set()
    if errors:
        raise errors[0]
    assert ended(), f"not every run ended: {[store.get_run(r) for r in runs]}"
    report = check_history(store, runs)
    report.assert_ok()
    assert report.runs == RUNS and report.ended == RUNS
    outcomes.update({f"step_{k}": v for k, v in chaos.seen.items()})
    return outcomes


@since("1.0")
class HistorySuite(SuiteBase):
    """Chaos campaigns through the engine, checked by ``check_history``."""

    @pytest.mark.parametrize("seed", [7, 11])
    def test_a_randomised_run_leaves_a_consistent_history(
        self, store: Store, clock: AdvancingClock, seed: int
    ) -> None:
        seen = campaign(store, clock, seed=seed, cancel=False)
        # The campaign must actually have exercised the faults it is about.
        assert seen["step_crash"] and seen["step_stall"] and seen["step_retry"], seen
        assert seen["lease_lost"] > 0, seen

    def test_a_randomised_run_with_cancellations_leaves_a_consistent_history(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        seen = campaign(store, clock, seed=3, cancel=True)
        assert seen["cancelled"] > 0, seen

    def test_the_reference_scenarios_leave_a_consistent_history(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        from conformance._end_to_end import make_side

        side = make_side("store under test", store, clock)
        for scenario in SCENARIOS:
            side.runs.clear()
            side.flags.clear()
            side.prefix = f"{scenario.name}/"  # idempotency keys stay unique per scenario
            token = CURRENT.set(side)
            try:
                for _, op in scenario.ops:
                    op(side)
            finally:
                CURRENT.reset(token)
        report = check_history(store)
        report.assert_ok()
        assert report.runs > len(SCENARIOS)
