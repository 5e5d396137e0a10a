"""The worker loop and the cron scheduler, in process, on the memory store."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _flows as f
import pytest
from _helpers import until

from squidie_core import COMPLETE, Squidie, Workflow, manual, step, transition
from squidie_core._scheduler import Scheduler, due_windows
from squidie_core._worker import Worker
from squidie_core.testing import Harness


@pytest.fixture(autouse=True)
def _reset() -> None:
    f.reset()


def run_in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False},
                              daemon=True)
    thread.start()
    return thread


def completed(engine: Squidie, run_ids: list[str]) -> bool:
    return all(engine.store.get_run(r).status == "completed" for r in run_ids)  # type: ignore[union-attr]


def test_worker_drains_runs_with_several_slots(tmp_path: Path) -> None:
    engine = Squidie.from_url("memory://", workflows=[f.Three])
    runs = [engine.start(f.Three).run_id for _ in range(60)]
    health = tmp_path / "alive"
    worker = Worker(engine, concurrency=4, poll_interval=0.01, max_poll_interval=0.05,
                    health_file=health, name="w1")
    thread = run_in_thread(worker)
    until(lambda: completed(engine, runs), 20, "every run to complete")
    worker.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert worker.stats.executed == {"ok": 180}
    assert health.exists()
    owners = {x.body["owner"] for r in runs for x in engine.store.read(r)
              if x.type == "attempt_started"}
    assert owners <= set(worker.owner_ids) and worker.owner_ids == [f"w1:{i}" for i in range(4)]


def test_async_steps_share_the_worker_event_loop() -> None:
    loops: list[int] = []

    async def note_loop(input: Any, ctx: Any) -> dict[str, Any]:
        import asyncio

        loops.append(id(asyncio.get_running_loop()))
        return {}

    class AsyncFlow(Workflow):
        go = manual()
        a = step(note_loop)
        b = step(note_loop)
        transitions = [transition(a, on="ok", to=b), transition(b, on="ok", to=COMPLETE)]

    engine = Squidie.from_url("memory://", workflows=[AsyncFlow])
    runs = [engine.start(AsyncFlow).run_id for _ in range(5)]
    worker = Worker(engine, concurrency=2, poll_interval=0.01, max_poll_interval=0.05)
    thread = run_in_thread(worker)
    until(lambda: completed(engine, runs), 20, "every run to complete")
    worker.stop()
    thread.join(10)
    assert len(loops) == 10 and len(set(loops)) == 1


def test_backend_errors_are_survived_with_backoff() -> None:
    engine = Squidie.from_url("memory://", workflows=[f.Three])
    run = engine.start(f.Three).run_id
    real_claim = engine.store.claim
    failures = {"left": 3}

    def flaky_claim(*args: Any, **kwargs: Any) -> Any:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise ConnectionError("backend went away")
        return real_claim(*args, **kwargs)

    engine.store.claim = flaky_claim  # type: ignore[method-assign]
    worker = Worker(engine, concurrency=1, poll_interval=0.001, max_error_backoff=0.01)
    thread = run_in_thread(worker)
    until(lambda: completed(engine, [run]), 20, "the run to complete")
    worker.stop()
    thread.join(10)
    assert worker.stats.errors == 3


def test_graceful_stop_lets_a_running_step_finish() -> None:
    engine = Squidie.from_url("memory://", workflows=[f.Slow])
    run = engine.start(f.Slow).run_id
    started, release = threading.Event(), threading.Event()
    f.FAIL["started"], f.FAIL["gate"] = started, release
    worker = Worker(engine, concurrency=1, poll_interval=0.01, grace_period=10)
    thread = run_in_thread(worker)
    assert started.wait(10)
    worker.stop()  # stop claiming while the step still runs
    release.set()
    thread.join(15)
    assert not thread.is_alive()
    facts = [x.type for x in engine.store.read(run)]
    assert facts.count("attempt_succeeded") == 1  # the running step committed
    assert engine.store.get_run(run).status == "running"  # type: ignore[union-attr]
    assert worker.stats.executed == {"ok": 1}  # nothing new was claimed


def test_health_endpoint() -> None:
    engine = Squidie.from_url("memory://", workflows=[f.Three])
    worker = Worker(engine, concurrency=1, poll_interval=0.01, health_port=0)
    thread = run_in_thread(worker)
    until(lambda: worker.health_address is not None, 20, "the health endpoint")
    host, port = worker.health_address  # type: ignore[misc]
    with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=5) as response:
        body = json.loads(response.read())
    assert response.status == 200 and body["status"] == "ok" and "executed" in body
    worker.stop()
    thread.join(10)


def test_unknown_workflow_is_dead_lettered_not_a_crash() -> None:
    h = Harness(f.Three, f.Timer)
    bad = h.start(f.Three).run_id
    good = h.start(f.Timer).run_id
    engine = Squidie(h.store, workflows=[f.Timer])
    worker = Worker(engine, concurrency=1, poll_interval=0.01, max_poll_interval=0.02,
                    queues=["default"])
    thread = run_in_thread(worker)
    until(lambda: h.inspect(good)["attempts"].get("before", {}).get("status") == "completed"
          and bool(h.engine.dead_letters().items), 20, "the good run and a dead letter")
    worker.stop()
    thread.join(10)
    assert h.engine.dead_letters().items[0].dispatch.run_id == bad
    assert worker.stats.executed.get("dead_lettered") == 1


# --------------------------------------------------------------------------- scheduler


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_due_windows_in_a_timezone_across_dst() -> None:
    windows = list(due_windows("0 2 * * *", "Europe/Paris", utc(2026, 3, 27, 12),
                               utc(2026, 3, 30, 12)))
    fires = [w[1].isoformat() for w in windows]
    # 02:00 Paris is 01:00 UTC in winter; on 29 March 02:00 does not exist (03:00 CEST).
    assert fires == ["2026-03-28T01:00:00+00:00", "2026-03-29T01:00:00+00:00",
                     "2026-03-30T00:00:00+00:00"]
    assert all(prev < fire for prev, fire in windows)
    assert windows[1][0] == windows[0][1]


def test_scheduler_starts_one_run_per_window_even_with_two_schedulers() -> None:
    h = Harness(f.Nightly, start=utc(2026, 11, 24, 0, 0).timestamp())
    one = Scheduler(h.engine, misfire="skip")
    two = Scheduler(Squidie(h.store, workflows=[f.Nightly]), misfire="skip")
    assert one.run_once() == [] and two.run_once() == []
    h.advance_time(3 * 86400)  # three nights, two triggers each
    created = one.run_once() + two.run_once()
    runs = h.engine.list_runs(workflow="Nightly", limit=100).items
    assert len(runs) == 6 and len(created) == 6
    per_trigger = Counter(r.trigger for r in runs)
    assert per_trigger == {"nightly": 3, "skipper": 3}
    windows = {tuple(h.inspect(r.run_id)["context"]["schedule"]["window"]) for r in runs}
    assert len(windows) == 6
    assert one.run_once() == [] and two.run_once() == []


def test_scheduler_misfire_policies() -> None:
    start = utc(2026, 11, 24, 12, 0).timestamp()
    skip = Harness(f.Nightly, start=start)
    assert Scheduler(skip.engine, misfire="skip").run_once() == []
    catch = Harness(f.Nightly, start=start)
    started = Scheduler(catch.engine, misfire="catch_up", catch_up_window=86400,
                        max_catch_up=1).run_once()
    # The last 24 h held one 02:00 Paris fire and one 02:30 UTC fire.
    assert sorted(r.trigger for r in started) == ["nightly", "skipper"]
    many = Harness(f.Nightly, start=start)
    bounded = Scheduler(many.engine, misfire="catch_up", catch_up_window=10 * 86400,
                        max_catch_up=2).run_once()
    assert Counter(r.trigger for r in bounded) == {"nightly": 2, "skipper": 2}


def test_worker_claims_in_batches(tmp_path: Path) -> None:
    engine = Squidie.from_url("memory://", workflows=[f.Three])
    claims: list[int] = []
    claim = engine.store.claim

    def counting_claim(*args: Any, **kwargs: Any) -> Any:
        got = claim(*args, **kwargs)
        claims.append(len(got))
        return got

    engine.store.claim = counting_claim  # type: ignore[method-assign]
    runs = [engine.start(f.Three).run_id for _ in range(30)]
    worker = Worker(engine, concurrency=2, poll_interval=0.01, max_poll_interval=0.05,
                    claim_batch=8, name="wb")
    thread = run_in_thread(worker)
    until(lambda: completed(engine, runs), 20, "every run to complete")
    worker.stop()
    thread.join(10)
    assert worker.stats.executed == {"ok": 90}
    assert max(claims) > 1  # several dispatches came back from one claim
    assert sum(claims) == 90
    with pytest.raises(ValueError):
        Worker(engine, claim_batch=0)


@pytest.mark.parametrize(("seconds", "options", "size"), [
    (None, {}, 1),  # not timed yet: one at a time
    (0.0001, {}, 64),  # short steps: the whole claim_batch (default 64)
    (0.1, {"lease_for": 3}, 10),  # what a third of the lease covers
    (2.0, {"lease_for": 3}, 1),  # longer than a third of the lease: one by one
    (0.0001, {"claim_batch": 8}, 8),
])
def test_a_slot_claims_what_it_will_run_within_a_third_of_a_lease(
    seconds: float | None, options: dict[str, Any], size: int
) -> None:
    engine = Squidie.from_url("memory://", workflows=[f.Three])
    worker = Worker(engine, concurrency=1, name="wz", **options)
    if seconds is not None:
        worker._step_seconds["wz:0"] = seconds
    assert worker._batch_size("wz:0") == size


def test_a_stopping_worker_puts_unstarted_leases_back() -> None:
    engine = Squidie.from_url("memory://", workflows=[f.Three])
    runs = [engine.start(f.Three).run_id for _ in range(3)]
    worker = Worker(engine, concurrency=1, claim_batch=3, name="ws")
    claim = engine.store.claim

    def stop_once_claimed(*args: Any, **kwargs: Any) -> Any:
        leases = claim(*args, **kwargs)
        stops = iter([False])  # the stop arrives while the batch's first step runs
        worker._stop.is_set = lambda: next(stops, True)  # type: ignore[method-assign]
        return leases

    engine.store.claim = stop_once_claimed  # type: ignore[method-assign]
    worker._step_seconds["ws:0"] = 0.001  # the slot has timed short steps: it batches
    assert worker._run_batch("ws:0") is not None
    engine.store.claim = claim  # type: ignore[method-assign]
    # The two leases never started are claimable again at once by anyone.
    again = engine.store.claim("other", lease_for=60, limit=5, queues=["default"])
    # The two put back (delivered before) and the successor of the one that ran.
    assert Counter(lease.dispatch.step for lease in again) == {"one": 2, "two": 1}
    assert {lease.dispatch.run_id for lease in again} == set(runs)
    assert sorted(lease.delivery for lease in again) == [1, 2, 2]


class Single(Workflow):
    go = manual()
    only = step(f.incr)
    transitions = [transition(only, on="ok", to=COMPLETE)]


class _Watched:
    """Counts a store's claims and the slots waiting on its wake-up hint at once."""

    def __init__(self, engine: Squidie) -> None:
        self.lock = threading.Lock()
        self.claims: list[int] = []
        self.waiting = 0
        self.most_waiting = 0
        store = engine.store
        claim, wait = store.claim, store.wait_for_work

        def counting_claim(*args: Any, **kwargs: Any) -> Any:
            got = claim(*args, **kwargs)
            with self.lock:
                self.claims.append(len(got))
            return got

        def counting_wait(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.waiting += 1
                self.most_waiting = max(self.most_waiting, self.waiting)
            try:
                return wait(*args, **kwargs)
            finally:
                with self.lock:
                    self.waiting -= 1

        store.claim = counting_claim  # type: ignore[method-assign]
        store.wait_for_work = counting_wait  # type: ignore[method-assign]


def _claiming_16(worker: Worker) -> Worker:
    """Every slot claims up to 16 from its first claim (as once it has timed a step)."""
    worker._step_seconds.update(dict.fromkeys(worker.owner_ids, 0.001))
    return worker


@pytest.mark.parametrize(("claim_batch", "timed", "claims"), [
    # A claim of one that came back full: the listener's claim, the one turn it passed
    # on, and its own next claim.
    (1, False, [0, 0, 1]),
    (16, False, [0, 0, 1]),  # a slot that has not timed a step yet claims one
    # A claim of 16 that came back short emptied the queue: the listener's claim and its
    # own next one; no idle slot is woken to claim in between.
    (16, True, [0, 1]),
])
def test_one_idle_slot_listens_and_a_new_run_wakes_one(
    claim_batch: int, timed: bool, claims: list[int]
) -> None:
    engine = Squidie.from_url("memory://", workflows=[Single])
    watched = _Watched(engine)
    # Long polls: within the test, idle slots move only when woken.
    worker = Worker(engine, concurrency=4, poll_interval=30, max_poll_interval=60,
                    claim_batch=claim_batch, name="wl")
    if timed:
        _claiming_16(worker)
    thread = run_in_thread(worker)
    until(lambda: len(watched.claims) == 4 and watched.waiting == 1, 10,
          "every slot to claim nothing and one of them to listen")
    before = len(watched.claims)
    run_id = engine.start(Single).run_id
    until(lambda: completed(engine, [run_id]) and watched.waiting == 1, 10,
          "the run to complete and one slot to listen again")
    after = watched.claims[before:]
    worker.stop()
    thread.join(5)
    assert not thread.is_alive()  # idle slots waiting for a turn noticed the stop
    assert watched.most_waiting == 1
    # Not a claim from every idle slot.
    assert sorted(after) == claims


def test_an_idle_slot_takes_over_from_a_batch_that_runs_long() -> None:
    engine = Squidie.from_url("memory://", workflows=[Single])
    watched = _Watched(engine)
    # The batch is held in the engine's own work (not in a step), where slots that take
    # turns would wait for it: this is about the idle slots' turns alone.
    worker = _claiming_16(Worker(engine, concurrency=4, poll_interval=30,
                                 max_poll_interval=60, claim_batch=16, name="wo",
                                 take_turns=False))
    thread = run_in_thread(worker)
    until(lambda: watched.waiting == 1, 10, "one slot to listen")
    entered, release = threading.Event(), threading.Event()
    run_leases = engine.run_leases
    calls: list[int] = []

    def first_runs_long(leases: Any, **kwargs: Any) -> Any:
        calls.append(len(leases))
        if len(calls) == 1:
            entered.set()
            release.wait(20)
        return run_leases(leases, **kwargs)

    engine.run_leases = first_runs_long  # type: ignore[method-assign]
    first = engine.start(Single).run_id
    assert entered.wait(10)
    # The listener took the first run, emptying the queue, and is held in its step: no
    # slot listens to the store, and the idle slots' own polls are a minute away. Only
    # an idle slot taking over (50 ms on) can start the second run.
    second = engine.start(Single).run_id
    until(lambda: completed(engine, [second]), 10, "the second run to complete")
    assert not completed(engine, [first])
    release.set()
    until(lambda: completed(engine, [first]), 10, "the first run to complete")
    worker.stop()
    thread.join(5)
    assert not thread.is_alive()


def test_a_burst_is_taken_up_by_every_slot() -> None:
    engine = Squidie.from_url("memory://", workflows=[Single])
    watched = _Watched(engine)
    started = threading.Event()
    owners: set[str] = set()
    worker = Worker(engine, concurrency=4, poll_interval=30, max_poll_interval=60,
                    claim_batch=1, name="wt", take_turns=False)  # held in run_lease
    thread = run_in_thread(worker)
    until(lambda: watched.waiting == 1, 10, "one slot to listen")
    run_lease = engine.run_lease

    def holding(lease: Any, **kwargs: Any) -> Any:
        # Every slot holds its step until four have started: only turns passed on from
        # slot to slot can start them (the idle slots' own polls are a minute away).
        owners.add(lease.owner_id)
        if len(owners) == 4:
            started.set()
        started.wait(10)
        return run_lease(lease, **kwargs)

    engine.run_lease = holding  # type: ignore[method-assign]
    runs = [engine.start(Single).run_id for _ in range(8)]
    until(lambda: completed(engine, runs), 20, "every run to complete")
    worker.stop()
    thread.join(5)
    assert owners == {f"wt:{slot}" for slot in range(4)}


@pytest.mark.parametrize("gc_freeze", [True, False])
def test_a_worker_keeps_the_startup_heap_out_of_collections_while_it_runs(
    gc_freeze: bool,
) -> None:
    """``gc.freeze()`` for the worker's run: a step sees the startup heap frozen (or not,
    with ``gc_freeze=False``), and the collector is as it was once ``run`` returns."""
    import gc

    frozen: list[int] = []

    def look(data: dict[str, Any], ctx: Any) -> dict[str, Any]:
        frozen.append(gc.get_freeze_count())
        return data

    class Look(Workflow):
        go = manual()
        only = step(look)
        transitions = [transition(only, on="ok", to=COMPLETE)]

    engine = Squidie.from_url("memory://", workflows=[Look])
    run = engine.start(Look).run_id
    assert gc.get_freeze_count() == 0
    worker = Worker(engine, concurrency=1, poll_interval=0.01, gc_freeze=gc_freeze)
    thread = run_in_thread(worker)
    until(lambda: completed(engine, [run]), 20, "the run to complete")
    worker.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert (frozen[0] > 0) is gc_freeze
    assert gc.get_freeze_count() == 0


def test_a_worker_leaves_a_heap_the_host_froze_to_the_host() -> None:
    import gc

    engine = Squidie.from_url("memory://", workflows=[f.Three])
    run = engine.start(f.Three).run_id
    gc.freeze()
    try:
        worker = Worker(engine, concurrency=1, poll_interval=0.01)
        thread = run_in_thread(worker)
        until(lambda: completed(engine, [run]), 20, "the run to complete")
        worker.stop()
        thread.join(10)
        # Not unfrozen by the worker (the count moves only as frozen objects are freed).
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_worker_takes_turns_on_an_embedded_store_only() -> None:
    engine = Squidie.from_url("memory://", workflows=[Single])
    assert engine.store.capabilities.embedded
    assert Worker(engine).take_turns and not Worker(engine, take_turns=False).take_turns
    engine.store.capabilities = replace(engine.store.capabilities, embedded=False)
    assert not Worker(engine).take_turns and Worker(engine, take_turns=True).take_turns


class _Meeting(Workflow):
    """One step that returns only once two runs' steps are running at the same time."""

    go = manual()
    meet = step(lambda input, ctx: {"waited": _MEETING.wait()})
    transitions = [transition(meet, on="ok", to=COMPLETE)]


_MEETING = threading.Barrier(2, timeout=10)


def test_slots_that_take_turns_overlap_in_their_steps_and_not_in_the_engine() -> None:
    engine = Squidie.from_url("memory://", workflows=[_Meeting])
    store = engine.store
    claim, commit = store.claim, store.commit
    inside, most = [0], [0]
    lock, entered = threading.Lock(), threading.Event()

    def counted(operation: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                if inside[0] > 1:
                    entered.set()
            try:
                got = operation(*args, **kwargs)
                if operation is claim and got:
                    # The full claim of one passes a turn to an idle slot: give it the
                    # time to claim alongside, which only the turn keeps it from.
                    entered.wait(0.5)
                return got
            finally:
                with lock:
                    inside[0] -= 1
        return call

    store.claim = counted(claim)  # type: ignore[method-assign]
    store.commit = counted(commit)  # type: ignore[method-assign]
    _MEETING.reset()
    runs = [engine.start(_Meeting).run_id for _ in range(2)]
    worker = Worker(engine, concurrency=2, poll_interval=0.01, max_poll_interval=0.05,
                    claim_batch=1, name="tt")
    assert worker.take_turns
    thread = run_in_thread(worker)
    until(lambda: completed(engine, runs), 20, "both runs to complete")
    worker.stop()
    thread.join(5)
    # Each step waited at the barrier for the other: the steps ran at the same time.
    assert worker.stats.executed == {"ok": 2}
    assert most[0] == 1


def test_a_short_step_keeps_the_turn_and_a_host_thread_runs_its_step_as_is() -> None:
    engine = Squidie.from_url("memory://", workflows=[Single])
    worker = Worker(engine, take_turns=True)
    step = ("Single", "only")
    with worker._engine_turn():
        assert worker._turn.locked()
        assert not worker._off_turn(step, worker._turn.locked)  # not timed yet: given up
        assert worker._turn.locked()  # taken back
        assert worker._off_turn(step, worker._turn.locked)  # it took under 1 ms: kept
        worker._step_call_seconds[step] = 0.01
        assert not worker._off_turn(step, worker._turn.locked)  # a long step: given up
    assert not worker._turn.locked()
    # A thread that is not one of the worker's slots holds no turn and gives none up.
    assert not worker._off_turn(step, worker._turn.locked)
