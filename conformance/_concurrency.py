"""Concurrency: many threads, and many processes, on one store at once.

Thread cases share the fixture store and its clock. Process cases (capability
``multi_process``) start real worker processes with ``python -m conformance._worker``,
each opening the store from ``store_url`` on its own real clock; they use short leases
and poll with deadlines, never bare sleeps.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conformance._markers import requires, since
from conformance._support import (
    LEASE,
    AdvancingClock,
    SuiteBase,
    beyond,
    claim_one,
    commit_for,
    dispatch,
    new_run_id,
    record_of,
    start_run,
)
from squidie_core import open_store
from squidie_core.errors import AppendConflict, LeaseLostError
from squidie_core.storage import Fact, Lease, Store

THREADS = 6
JOIN_TIMEOUT = 60.0


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Run ``target(i)`` in ``count`` threads; re-raise the first error any of them hit."""
    errors: list[BaseException] = []

    def wrapped(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread did not finish in time"
    if errors:
        raise errors[0]


@contextmanager
def url_client(store_url: str | None) -> Iterator[Store]:
    """A client of the store under test opened from ``store_url`` (real clock)."""
    if store_url is None:
        pytest.fail("a store declaring 'multi_process' must provide the `store_url` fixture",
                    pytrace=False)
    client = open_store(store_url)
    try:
        yield client
    finally:
        client.close()


def spawn(task: dict[str, Any]) -> subprocess.Popen[str]:
    """Start ``python -m conformance._worker`` on ``task``."""
    return subprocess.Popen(
        [sys.executable, "-m", "conformance._worker", json.dumps(task)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def collect(process: subprocess.Popen[str], *, status: int = 0,
            timeout: float = 90.0) -> dict[str, Any]:
    """Wait for a worker and return its JSON result (fails on an unexpected exit)."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == status, (
        f"worker exited {process.returncode} (expected {status}): {err.strip()[-2000:]}"
    )
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines, f"worker printed nothing: {err.strip()[-2000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def poll(until: Callable[[], Any], *, deadline: float = 30.0, every: float = 0.02) -> Any:
    """Call ``until()`` until it returns something truthy; fail after ``deadline`` s."""
    pause = threading.Event()
    waited = 0.0
    while waited <= deadline:
        value = until()
        if value:
            return value
        pause.wait(every)
        waited += every
    pytest.fail(f"condition not met within {deadline} s", pytrace=False)


@since("1.0")
class ConcurrencySuite(SuiteBase):
    """Claims, appends, commits, enqueues and heartbeats racing across threads/processes."""

    def test_threads_claiming_together_get_each_dispatch_once(self, store: Store) -> None:
        run_id = new_run_id()
        keys = {d.key for d in [dispatch(run_id, f"s{i:03d}") for i in range(90)]}
        store.enqueue([dispatch(run_id, f"s{i:03d}") for i in range(90)])
        claimed: list[str] = []
        lock = threading.Lock()

        def worker(i: int) -> None:
            rng = random.Random(i)
            while True:
                leases = store.claim(f"worker-{i}", lease_for=LEASE, limit=rng.randint(1, 3))
                if not leases:
                    return
                for lease in leases:
                    store.complete(lease)
                with lock:
                    claimed.extend(lease.key for lease in leases)

        run_threads(THREADS, worker)
        assert sorted(claimed) == sorted(keys), "a dispatch was delivered twice or lost"
        assert {r.state for r in store.dispatches(run_id)} == {"completed"}

    def test_threads_with_expiring_leases_never_share_a_dispatch(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        run_id = new_run_id()
        store.enqueue([dispatch(run_id, f"s{i:02d}", max_deliveries=100) for i in range(30)])
        claims: dict[str, list[Lease]] = defaultdict(list)
        settled: Counter[str] = Counter()
        lost = Counter[str]()
        lock = threading.Lock()
        precision = store.capabilities.visibility_precision

        def worker(i: int) -> None:
            rng = random.Random(1000 + i)
            idle = 0
            while idle < 50:
                leases = store.claim(f"worker-{i}", lease_for=LEASE, limit=1)
                if not leases:
                    idle += 1
                    if all(r.state == "completed" for r in store.dispatches(run_id)):
                        return
                    clock.advance(LEASE / 4)  # let abandoned leases lapse
                    continue
                idle = 0
                lease = leases[0]
                with lock:
                    claims[lease.key].append(lease)
                if rng.random() < 0.3:
                    clock.advance(beyond(store, LEASE))  # paused past its lease
                if rng.random() < 0.1:
                    continue  # crashed: never settles
                try:
                    store.complete(lease)
                except LeaseLostError:
                    with lock:
                        lost[lease.key] += 1
                    continue
                with lock:
                    settled[lease.key] += 1

        run_threads(THREADS, worker)
        assert set(settled) == set(claims) and len(claims) == 30
        assert max(settled.values()) == 1, "a dispatch was completed twice"
        for key, history in claims.items():
            history.sort(key=lambda lease: lease.fence)
            for older, newer in itertools.pairwise(history):
                # ``newer`` was claimed at ``expires_at - LEASE``: only after ``older`` lapsed.
                assert newer.expires_at - LEASE >= older.expires_at - precision - 0.001, (
                    f"{key}: fence {newer.fence} was handed out while fence {older.fence} "
                    "was still live"
                )
            assert record_of(store, key).state == "completed"
        assert sum(lost.values()) > 0, "the race never produced a stale holder"

    def test_threads_appending_at_one_sequence_let_exactly_one_win(self, store: Store) -> None:
        run_id = new_run_id()
        rounds = 15
        barrier = threading.Barrier(THREADS)
        wins: list[tuple[int, int]] = []
        lock = threading.Lock()

        def writer(i: int) -> None:
            for seq in range(rounds):
                barrier.wait(JOIN_TIMEOUT)
                fact = Fact(seq + 1, "note", 1.0, {"writer": i})
                try:
                    store.append(run_id, [fact], expected_seq=seq)
                except AppendConflict:
                    pass
                else:
                    with lock:
                        wins.append((seq, i))
                barrier.wait(JOIN_TIMEOUT)

        run_threads(THREADS, writer)
        assert sorted(seq for seq, _ in wins) == list(range(rounds))
        facts = store.read(run_id)
        assert [(f.seq - 1, f.body["writer"]) for f in facts] == sorted(wins)

    def test_threads_committing_at_one_sequence_let_exactly_one_win(
        self, store: Store
    ) -> None:
        run_id, _, _ = start_run(store, steps=())
        barrier = threading.Barrier(THREADS)
        winners: list[int] = []

        def writer(i: int) -> None:
            barrier.wait(JOIN_TIMEOUT)
            try:
                store.commit(commit_for(store, run_id, 1, body={"writer": i},
                                        enqueue=[dispatch(run_id, f"by{i}")]))
            except AppendConflict:
                return
            winners.append(i)

        run_threads(THREADS, writer)
        assert len(winners) == 1
        (winner,) = winners
        assert store.read(run_id)[-1].body["writer"] == winner
        assert [r.dispatch.step for r in store.dispatches(run_id)] == [f"by{winner}"]

    def test_threads_committing_with_one_lease_settle_it_once(self, store: Store) -> None:
        run_id, _, _ = start_run(store)
        lease = claim_one(store)
        barrier = threading.Barrier(THREADS)
        outcomes: list[str] = []

        def writer(i: int) -> None:
            barrier.wait(JOIN_TIMEOUT)
            try:
                store.commit(commit_for(store, run_id, 1, settle=lease, body={"writer": i},
                                        type="attempt_succeeded"))
            except (AppendConflict, LeaseLostError) as exc:
                outcomes.append(type(exc).__name__)
                return
            outcomes.append("won")

        run_threads(THREADS, writer)
        assert outcomes.count("won") == 1
        assert [f.type for f in store.read(run_id)] == ["run_started", "attempt_succeeded"]
        assert record_of(store, lease.key).state == "completed"

    def test_threads_enqueueing_the_same_keys_create_each_dispatch_once(
        self, store: Store
    ) -> None:
        run_id = new_run_id()
        batch = [dispatch(run_id, f"s{i:02d}") for i in range(20)]
        barrier = threading.Barrier(THREADS)

        def producer(i: int) -> None:
            barrier.wait(JOIN_TIMEOUT)
            for d in random.Random(i).sample(batch, len(batch)):
                store.enqueue([d])

        run_threads(THREADS, producer)
        assert sorted(r.dispatch.key for r in store.dispatches(run_id)) == sorted(
            d.key for d in batch)
        leases = store.claim("worker", lease_for=LEASE, limit=100)
        assert len(leases) == 20

    def test_a_heartbeating_holder_keeps_its_dispatch_from_concurrent_claimers(
        self, store: Store, clock: AdvancingClock
    ) -> None:
        store.enqueue([dispatch(new_run_id())])
        lease = claim_one(store, "holder")
        stop = threading.Event()
        stolen: list[Lease] = []

        def claimer(i: int) -> None:
            while not stop.is_set():
                stolen.extend(store.claim(f"claimer-{i}", lease_for=LEASE))

        threads = [threading.Thread(target=claimer, args=(i,), daemon=True) for i in range(4)]
        for thread in threads:
            thread.start()
        try:
            for _ in range(15):
                clock.advance(LEASE / 3)
                lease = store.heartbeat(lease, lease_for=LEASE)
        finally:
            stop.set()
            for thread in threads:
                thread.join(JOIN_TIMEOUT)
        assert stolen == [], "a claimer took a dispatch whose holder kept heartbeating"
        clock.advance(beyond(store, LEASE))
        taken = claim_one(store, "rescuer")
        assert taken.fence > lease.fence

    # ------------------------------------------------------------------ processes

    @requires("multi_process")
    def test_processes_claiming_together_get_each_dispatch_once(
        self, store: Store, store_url: str | None, tmp_path: Path
    ) -> None:
        queue = f"mp-{uuid.uuid4().hex[:8]}"
        run_id = new_run_id()
        with url_client(store_url) as client:
            client.enqueue([dispatch(run_id, f"s{i:02d}", queue=queue) for i in range(40)])
            go = tmp_path / "go"
            workers = [spawn({"task": "drain", "url": store_url, "owner": f"proc-{i}",
                              "queue": queue, "lease_for": 60.0, "go": str(go)})
                       for i in range(4)]
            go.touch()
            results = [collect(w) for w in workers]
            completed = [key for r in results for key, _ in r["completed"]]
            assert sorted(completed) == sorted(f"{run_id}:s{i:02d}:1" for i in range(40))
            assert {r.state for r in client.dispatches(run_id)} == {"completed"}

    @requires("multi_process")
    def test_processes_appending_at_one_sequence_let_exactly_one_win(
        self, store: Store, store_url: str | None, tmp_path: Path
    ) -> None:
        run_id = new_run_id()
        rounds = 12
        go = tmp_path / "go"
        workers = [spawn({"task": "append_race", "url": store_url, "owner": f"proc-{i}",
                          "run_id": run_id, "rounds": rounds, "go": str(go)})
                   for i in range(4)]
        go.touch()
        results = [collect(w) for w in workers]
        won = sorted(seq for r in results for seq in r["won"])
        assert won == list(range(rounds)), "a sequence was won twice, or by nobody"
        with url_client(store_url) as client:
            facts = client.read(run_id)
            assert [f.seq for f in facts] == list(range(1, rounds + 1))
            for i, r in enumerate(results):
                for seq in r["won"]:
                    assert facts[seq].body["writer"] == f"proc-{i}"

    @requires("multi_process")
    def test_a_killed_processs_dispatch_is_redelivered(
        self, store: Store, store_url: str | None
    ) -> None:
        queue = f"mp-{uuid.uuid4().hex[:8]}"
        d = dispatch(new_run_id(), queue=queue)
        with url_client(store_url) as client:
            client.enqueue([d])
            died = collect(spawn({"task": "claim_and_die", "url": store_url,
                                  "owner": "doomed", "queue": queue, "lease_for": 0.5}),
                           status=3)
            assert (died["key"], died["delivery"]) == (d.key, 1)
            lease = poll(lambda: client.claim("rescuer", lease_for=30.0, queues=[queue]))[0]
            assert (lease.key, lease.delivery) == (d.key, 2)
            assert lease.fence > died["fence"]
            client.complete(lease)

    @requires("multi_process")
    def test_a_dispatch_that_kills_every_process_is_dead_lettered_after_its_limit(
        self, store: Store, store_url: str | None
    ) -> None:
        queue = f"mp-{uuid.uuid4().hex[:8]}"
        limit = 3
        d = dispatch(new_run_id(), queue=queue, max_deliveries=limit)
        with url_client(store_url) as client:
            client.enqueue([d])
            deliveries = []
            for i in range(limit):
                died = collect(spawn({"task": "claim_and_die", "url": store_url,
                                      "owner": f"doomed-{i}", "queue": queue,
                                      "lease_for": 0.3}), status=3)
                deliveries.append(died["delivery"])
                assert record_of(client, d.key).deliveries == i + 1  # durably counted
            assert deliveries == [1, 2, 3]

            def buried() -> bool:
                assert client.claim("rescuer", lease_for=30.0, queues=[queue]) == []
                return bool(record_of(client, d.key).state == "dead_lettered")

            poll(buried)
            record = record_of(client, d.key)
            assert (record.reason, record.deliveries) == ("delivery_limit_exceeded", limit)
            assert d.key in [r.dispatch.key for r in client.dead_letters(queue=queue).items]

