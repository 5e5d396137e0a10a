"""Claims, heartbeats and commits from many threads and processes at once.

Real threads and processes, synchronised with barriers and events; lease expiry is
driven by the store clock's offset, never by sleeping.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections import Counter
from collections.abc import Callable

import _redis_workers as workers
import pytest
from _redis_data import commit, dispatch

from squidie_backends.redis import RedisStore
from squidie_core.errors import LeaseLostError

pytestmark = pytest.mark.redis


def test_threads_never_share_a_live_lease(open_store: Callable[..., RedisStore]) -> None:
    seed = open_store()
    seed.enqueue([dispatch(f"r{i:03d}") for i in range(300)])
    claimed: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        store = open_store()  # each thread its own store object and pool, like a process
        rng = random.Random(n)
        barrier.wait()
        while leases := store.claim(f"w{n}", lease_for=120, limit=rng.randint(1, 5)):
            with lock:
                claimed.update(lease.key for lease in leases)
            for lease in leases:
                store.complete(lease)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(claimed) == 300 and set(claimed.values()) == {1}


def test_leases_lapsing_mid_step_complete_each_dispatch_exactly_once(
    store: RedisStore,
) -> None:
    """Some steps are slow: they move the shared clock past their lease mid-step, which
    lapses the leases other workers hold at that moment too.

    Stale holders must fail (LeaseLostError) and fresh ones take over, so that each
    dispatch is completed exactly once, by the holder of its highest fence.
    """
    # Every lapse counts a delivery: allow plenty, so none is dead-lettered here.
    store.enqueue([dispatch(f"r{i:03d}", max_deliveries=1000) for i in range(120)])
    completed: dict[str, list[int]] = {}
    lost = Counter[str]()
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def worker(n: int) -> None:
        rng = random.Random(n)
        barrier.wait()
        while leases := store.claim(f"w{n}", lease_for=10, limit=2):
            for claimed in leases:
                lease = claimed
                try:
                    if rng.random() < 0.15:
                        store.clock.advance(11)  # this step took 11 s
                    elif rng.random() < 0.5:
                        lease = store.heartbeat(lease, lease_for=10)
                    store.complete(lease)
                except LeaseLostError:
                    with lock:
                        lost[lease.key] += 1
                    continue
                with lock:
                    completed.setdefault(lease.key, []).append(lease.fence)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(completed) == 120
    assert all(len(fences) == 1 for fences in completed.values())
    records = {r.dispatch.key: r for run in range(120) for r in store.dispatches(f"r{run:03d}")}
    for key, [fence] in completed.items():
        assert records[key].state == "completed" and records[key].fence == fence
    assert sum(lost.values()) > 0
    retaken = [key for key, rec in records.items() if rec.fence > 1]
    assert set(lost) <= set(retaken)


def _spawn() -> multiprocessing.context.SpawnContext:
    return multiprocessing.get_context("spawn")


def test_processes_never_double_deliver(store: RedisStore, store_url: str) -> None:
    store.enqueue([dispatch(f"r{i:03d}") for i in range(400)])
    ctx = _spawn()
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=workers.drain, args=(store_url, f"p{n}", start, results))
             for n in range(4)]
    for p in procs:
        p.start()
    start.set()
    reports = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    done = Counter(key for _, _, pairs in reports for key, _ in pairs)
    assert len(done) == 400 and set(done.values()) == {1}
    assert sum(claims for _, claims, _ in reports) == 400  # nobody was handed a live lease
    assert store.depth()["default"].claimed == 0


def test_processes_committing_at_one_sequence_exactly_one_wins(
    store: RedisStore, store_url: str
) -> None:
    store.commit(commit("r", 0))
    ctx = _spawn()
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=workers.race_commit, args=(store_url, n, start, results))
             for n in range(4)]
    for p in procs:
        p.start()
    start.set()
    outcomes = dict(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
    assert sorted(outcomes.values()) == ["conflict", "conflict", "conflict", "won"]
    [winner] = [i for i, o in outcomes.items() if o == "won"]
    assert store.read("r")[-1].body == {"writer": winner}
