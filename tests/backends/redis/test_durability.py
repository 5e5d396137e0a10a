"""Durability on a real server: SIGKILL Redis mid-run, restart it, lose nothing committed.

The server is our own ``redis-server`` with ``appendonly yes`` and ``appendfsync always``
(the test server keeps nothing on disk). Workflows run through ``Squidie`` in worker
threads; the server is killed while they run, restarted on the same port and directory,
and the workers carry on. Every fact of every commit that returned before the kill must
still be in its journal, and every run must complete with each step succeeding once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import _redis_flows as flows
import pytest
from _helpers import until
from _redis_server import RedisServer

from squidie_backends.redis import RedisStore
from squidie_core import Squidie
from squidie_core.errors import StoreError
from squidie_core.storage import Commit, CommitResult, Fact

pytestmark = pytest.mark.redis

RUNS = 60


class RecordingStore(RedisStore):
    """Remembers the facts of every commit that returned (was acknowledged)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.acknowledged: list[tuple[str, list[Fact]]] = []
        self._ack_lock = threading.Lock()

    def commit(self, commit: Commit) -> CommitResult:
        result = super().commit(commit)
        with self._ack_lock:
            self.acknowledged.append((commit.run_id, list(commit.facts)))
        return result


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path, "--appendonly", "yes", "--appendfsync", "always").start()
    yield s
    s.stop()




def test_sigkill_mid_run_loses_no_committed_fact(server: RedisServer) -> None:
    store = RecordingStore(f"{server.url}?namespace=durable", retries=1,
                           retry_backoff_cap=0.05, socket_connect_timeout=0.5)
    engine = Squidie(store, workflows=[flows.ThreeSteps])
    runs = [engine.start(flows.ThreeSteps, payload={"n": i}).run_id for i in range(RUNS)]
    stop = threading.Event()
    errors: Counter[str] = Counter()

    def worker(n: int) -> None:
        while not stop.is_set():
            try:
                # Short leases: an attempt whose commit died with the server is taken
                # over two seconds later (server time) and run again.
                if engine.execute_next(owner_id=f"w{n}", lease_for=2.0,
                                       heartbeat_interval=0) is None:
                    stop.wait(0.01)
            except StoreError as exc:  # the server is down: try again shortly
                errors[type(exc).__name__] += 1
                stop.wait(0.05)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    try:
        until(lambda: len(store.acknowledged) >= RUNS + 40, 30, "some steps to commit")
        server.kill()
        acknowledged = list(store.acknowledged)
        until(lambda: errors, 10, "workers to notice the server is gone")
        server.start()

        def all_completed() -> bool:
            try:
                return all(engine.inspect_run(r)["status"] == "completed" for r in runs)
            except StoreError:
                return False

        until(all_completed, 60, "every run to complete after the restart")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert len(acknowledged) < RUNS * 4, "the kill must happen mid-run"
    assert errors["BackendUnavailable"] > 0
    reader = RedisStore(f"{server.url}?namespace=durable")
    for run_id, facts in acknowledged:
        stored = reader.read(run_id, after_seq=facts[0].seq - 1)[: len(facts)]
        assert stored == facts, f"committed facts of {run_id} lost or changed"
    for run_id in runs:
        journal = reader.read(run_id)
        succeeded = Counter((f.body["step"], f.body["attempt"]) for f in journal
                            if f.type == "attempt_succeeded")
        assert sorted(step for step, _ in succeeded) == ["a", "b", "c"]
        assert set(succeeded.values()) == {1}
        assert [f.seq for f in journal] == list(range(1, len(journal) + 1))
    reader.close()
    engine.close()
