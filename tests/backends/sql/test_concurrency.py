"""Claims and commits under real concurrency: threads and processes, on every dialect.

Threads share one store (its connection pool); processes open the store from its URL.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sql_helpers import dispatch, entry, facts
from sql_workers import claim_until_empty

from squidie_backends.sql import SQLStore
from squidie_core.errors import AppendConflict, LeaseLostError
from squidie_core.storage import Commit, Fact, Lease


def test_threads_never_double_claim(open_store: Callable[..., SQLStore]) -> None:
    store = open_store(pool_size=8)
    store.enqueue([dispatch(f"r{i}") for i in range(300)])
    got: list[Lease] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while leases := store.claim(f"w{seed}", lease_for=600, limit=rng.randint(1, 5)):
            with lock:
                got.extend(leases)
            for lease in leases:
                store.complete(lease)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    keys = Counter(lease.key for lease in got)
    assert len(keys) == 300 and set(keys.values()) == {1}
    assert {r.state for i in range(300) for r in store.dispatches(f"r{i}")} == {"completed"}


def test_processes_never_double_claim(open_store: Callable[..., SQLStore],
                                      store_url: str) -> None:
    store = open_store()
    store.enqueue([dispatch(f"r{i}") for i in range(400)])
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(4) as pool:
        start = manager.Barrier(4)
        results = pool.starmap(claim_until_empty,
                               [(store_url, f"p{i}", i, start) for i in range(4)])
    claimed = Counter(key for result in results for key, _ in result)
    assert len(claimed) == 400 and set(claimed.values()) == {1}
    assert all(fence == 1 for result in results for _, fence in result)
    assert sum(1 for result in results if result) >= 2  # the work really was shared


def test_concurrent_commits_at_one_sequence_exactly_one_wins(
    open_store: Callable[..., SQLStore],
) -> None:
    store = open_store(pool_size=8)
    store.commit(Commit("r", 0, facts(1, 1), entry("r")))
    for expected in range(1, 9, 2):  # four rounds, each racing at the current head
        barrier = threading.Barrier(6)

        def attempt(writer: int, expected: int = expected,
                    barrier: threading.Barrier = barrier) -> str:
            new = [Fact(expected + 1, "f", 0.0, {"writer": writer}),
                   Fact(expected + 2, "g", 0.0, {"writer": writer})]
            barrier.wait()
            try:
                store.commit(Commit("r", expected, new, entry("r", last_seq=expected + 2),
                                    enqueue=[dispatch("r", f"w{writer}", expected)]))
                return f"won:{writer}"
            except AppendConflict:
                return "conflict"

        with ThreadPoolExecutor(6) as pool:
            outcomes = list(pool.map(attempt, range(6)))
        winners = [o for o in outcomes if o.startswith("won")]
        assert len(winners) == 1 and outcomes.count("conflict") == 5
        writer = int(winners[0].split(":")[1])
        tail = store.read("r", after_seq=expected)
        assert [f.body["writer"] for f in tail] == [writer, writer]
        # Only the winner's dispatch exists for this round.
        steps = {r.dispatch.step for r in store.dispatches("r") if r.dispatch.attempt == expected}
        assert steps == {f"w{writer}"}
        assert store.head("r") == expected + 2


def test_settle_races_a_takeover(open_store: Callable[..., SQLStore], clock: object) -> None:
    """An expired holder committing while a new holder claims: exactly one settles."""
    store = open_store(pool_size=4)
    from squidie_core import ManualClock

    assert isinstance(clock, ManualClock)
    for round_ in range(10):
        run_id = f"r{round_}"
        store.commit(Commit(run_id, 0, facts(1, 1), entry(run_id),
                            enqueue=[dispatch(run_id, queue=run_id)]))
        [old] = store.claim("A", lease_for=5, queues=[run_id])
        clock.advance(5)  # old is expired: a takeover may happen at any moment
        barrier = threading.Barrier(2)
        results: dict[str, object] = {}

        def late_commit(run_id: str = run_id, old: Lease = old,
                        barrier: threading.Barrier = barrier,
                        results: dict[str, object] = results) -> None:
            barrier.wait()
            try:
                results["commit"] = store.commit(Commit(
                    run_id, 1, [Fact(2, "done", 0.0, {})], entry(run_id, last_seq=2),
                    settle=old))
            except LeaseLostError:
                results["commit"] = "lost"

        def takeover(run_id: str = run_id, barrier: threading.Barrier = barrier,
                     results: dict[str, object] = results) -> None:
            barrier.wait()
            results["claim"] = store.claim("B", lease_for=30, queues=[run_id])

        threads = [threading.Thread(target=late_commit), threading.Thread(target=takeover)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results["commit"] == "lost"  # the lease had expired before either started
        assert store.head(run_id) == 1
        if not results["claim"]:
            # The losing commit held the row lock while it checked the lease, and a claim
            # with SKIP LOCKED skips a locked row: correct, and the next claim takes it.
            results["claim"] = store.claim("B", lease_for=30, queues=[run_id])
        [new] = results["claim"]  # type: ignore[misc]
        assert (new.owner_id, new.fence) == ("B", 2)


@pytest.mark.parametrize("writers", [4])
def test_concurrent_appends_keep_the_journal_contiguous(
    open_store: Callable[..., SQLStore], writers: int,
) -> None:
    store = open_store(pool_size=writers)

    def writer(n: int) -> int:
        written = 0
        while written < 15:
            head = store.head("r")
            try:
                store.append("r", [Fact(head + 1, "w", 0.0, {"by": n, "k": written})], head)
                written += 1
            except AppendConflict:
                continue
        return written

    with ThreadPoolExecutor(writers) as pool:
        assert sum(pool.map(writer, range(writers))) == 15 * writers
    journal = store.read("r")
    assert [f.seq for f in journal] == list(range(1, 15 * writers + 1))
    per_writer = Counter(f.body["by"] for f in journal)
    assert set(per_writer.values()) == {15}
