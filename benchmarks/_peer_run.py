"""One peer on one workload, in its own process: ``python -m benchmarks._peer_run``.

    python -m benchmarks._peer_run PEER BACKEND WORKLOAD N [--concurrency C]

Prints one JSON line: the figures of the workload (``start``/``drain``/``e2e`` runs/s for
``w1``/``w2``, ``p50_ms``/``p99_ms`` for ``w3``). Each peer runs with its own defaults in
its own process (so its dependencies and event loop never meet ours), with a unique
schema, prefix or key namespace that is dropped afterwards.

How each peer does the work (the way its documentation shows):

* W1 (three sequential steps): SAQ, PgQueuer and Procrastinate as a chain of three
  jobs, each step enqueueing the next (none of them commits a step's outcome and its
  successor atomically); DBOS as a workflow of three ``@DBOS.step`` functions.
* W2: one no-op job (DBOS: a workflow of one step) per run.
* W3: with the worker idle, one run at a time, start to completion.

A run counts as complete when its last step reports it: for SAQ after the job's
completion is written (``after_process``); for the others when the last step function
returns, i.e. before their completion write — in the peer's favour.

Starts happen before the worker is started (start and drain apart, as for Squidie),
except DBOS, whose queue runner starts with ``DBOS.launch()``: its runs start and drain
at once, so it has no drain rate of its own (only start and e2e).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import threading
import time
import uuid
from typing import Any

PG_URL = os.environ.get("SQUIDIE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SQUIDIE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TAG = f"bench{uuid.uuid4().hex[:8]}"


class Tracker:
    """Counts completed runs (thread-safe) and wakes the measuring coroutine."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.expected = 0
        self.count = 0
        self.last = 0.0
        self.done = threading.Event()

    def expect(self, count: int) -> None:
        with self.lock:
            self.expected, self.count = count, 0
            self.done.clear()

    def hit(self) -> None:
        now = time.time()
        with self.lock:
            self.count += 1
            self.last = now
            if self.count >= self.expected:
                self.done.set()

    async def wait(self, timeout: float = 600) -> float:
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self.done.wait, timeout):
            raise TimeoutError(f"{self.count} of {self.expected} runs completed")
        return self.last


TRACK = Tracker()


async def _pg_schema(create: bool) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as conn:
        if create:
            await conn.execute(f"CREATE SCHEMA {TAG}")
        else:
            await conn.execute(f"DROP SCHEMA IF EXISTS {TAG} CASCADE")


# --------------------------------------------------------------------------- SAQ


class SAQ:
    """SAQ on Redis (one ``Worker``, its default concurrency)."""

    def __init__(self, backend: str, concurrency: int) -> None:
        from saq import Queue

        self.queue = Queue.from_url(REDIS_URL, name=TAG)
        self.worker: Any = None
        self.task: Any = None

    async def setup(self) -> None:
        await self.queue.connect()

    async def start_runs(self, workflow: str, count: int) -> None:
        for _ in range(count):
            await self.queue.enqueue("a" if workflow == "three" else "noop", n=0)

    async def start_worker(self) -> None:
        from saq import Worker

        queue = self.queue

        async def a(ctx: Any, *, n: int) -> dict[str, int]:
            await queue.enqueue("b", n=n + 1)
            return {"n": n + 1}

        async def b(ctx: Any, *, n: int) -> dict[str, int]:
            await queue.enqueue("c", n=n + 1)
            return {"n": n + 1}

        async def c(ctx: Any, *, n: int) -> dict[str, int]:
            return {"n": n + 1}

        async def noop(ctx: Any, *, n: int) -> None:
            return None

        async def after(ctx: Any) -> None:
            if ctx["job"].function in ("c", "noop"):
                TRACK.hit()

        self.worker = Worker(queue, functions=[("a", a), ("b", b), ("c", c),
                                               ("noop", noop)], after_process=after)
        self.task = asyncio.create_task(self.worker.start())

    async def close(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(match=f"*{TAG}*", count=5000)]
        if keys:
            await client.unlink(*keys)
        await client.aclose()
        await self.queue.disconnect()


# --------------------------------------------------------------------------- PgQueuer


class PgQueuer:
    """PgQueuer on PostgreSQL (one ``PgQueuer`` with psycopg, default batch size)."""

    def __init__(self, backend: str, concurrency: int) -> None:
        os.environ["PGQUEUER_PREFIX"] = f"{TAG}_"
        self.conn: Any = None
        self.task: Any = None
        self.pgq: Any = None

    async def _connect(self) -> Any:
        import psycopg

        return await psycopg.AsyncConnection.connect(PG_URL, autocommit=True)

    async def setup(self) -> None:
        from pgqueuer import PsycopgDriver, Queries

        self.conn = await self._connect()
        self.queries = Queries(PsycopgDriver(self.conn))
        await self.queries.install()

    async def start_runs(self, workflow: str, count: int) -> None:
        name = "a" if workflow == "three" else "noop"
        payload = json.dumps({"n": 0}).encode()
        for _ in range(count):
            await self.queries.enqueue(name, payload)

    async def start_worker(self) -> None:
        from pgqueuer import PgQueuer as App
        from pgqueuer import PsycopgDriver, Queries

        worker_conn = await self._connect()
        self.worker_conn = worker_conn
        pgq = App(PsycopgDriver(worker_conn))
        queries = Queries(PsycopgDriver(await self._connect()))

        def step(name: str, successor: str | None) -> None:
            @pgq.entrypoint(name)
            async def run(job: Any) -> None:
                n = json.loads(job.payload)["n"] + 1
                if successor:
                    await queries.enqueue(successor, json.dumps({"n": n}).encode())
                else:
                    TRACK.hit()

        step("a", "b")
        step("b", "c")
        step("c", None)
        step("noop", None)
        self.pgq = pgq
        self.task = asyncio.create_task(pgq.run())

    async def close(self) -> None:
        if self.pgq is not None:
            self.pgq.shutdown.set()
            try:
                await asyncio.wait_for(self.task, 10)
            except Exception:
                self.task.cancel()
        await self.queries.uninstall()
        await self.conn.close()


# --------------------------------------------------------------------------- Procrastinate


class Procrastinate:
    """Procrastinate on PostgreSQL (one worker, LISTEN/NOTIFY, default concurrency)."""

    def __init__(self, backend: str, concurrency: int) -> None:
        from procrastinate import App, PsycopgConnector

        self.app = App(connector=PsycopgConnector(
            conninfo=PG_URL, kwargs={"options": f"-c search_path={TAG}"}))
        app = self.app

        @app.task(name="a")
        async def a(n: int) -> None:
            await c_b.defer_async(n=n + 1)

        @app.task(name="b")
        async def c_b(n: int) -> None:
            await c_c.defer_async(n=n + 1)

        @app.task(name="c")
        async def c_c(n: int) -> None:
            TRACK.hit()

        @app.task(name="noop")
        async def noop(n: int) -> None:
            TRACK.hit()

        self.first = {"three": a, "single": noop}
        self.task: Any = None

    async def setup(self) -> None:
        await _pg_schema(True)
        await self.app.open_async()
        await self.app.schema_manager.apply_schema_async()

    async def start_runs(self, workflow: str, count: int) -> None:
        task = self.first[workflow]
        for _ in range(count):
            await task.defer_async(n=0)

    async def start_worker(self) -> None:
        self.task = asyncio.create_task(self.app.run_worker_async(install_signal_handlers=False))

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.task, 10)
        await self.app.close_async()
        await _pg_schema(False)


# --------------------------------------------------------------------------- DBOS


class DBOSPeer:
    """DBOS Transact (a queue, workflows of ``@DBOS.step`` functions) on PG or SQLite."""

    #: Its runs start draining as they are enqueued: no drain rate of its own.
    overlapping = True

    def __init__(self, backend: str, concurrency: int) -> None:
        from dbos import DBOS, DBOSConfig

        self.backend = backend
        self.directory = None
        if backend == "sqlite":
            import tempfile

            self.directory = tempfile.mkdtemp(prefix="dbos-bench-")
            url = f"sqlite:///{self.directory}/dbos.sqlite"
        else:
            url = PG_URL
        config: DBOSConfig = {"name": "squidie-bench", "system_database_url": url,
                              "dbos_system_schema": TAG, "log_level": "WARNING"}
        DBOS(config=config)

        @DBOS.step()
        def bump(d: dict[str, int]) -> dict[str, int]:
            return {"n": d["n"] + 1}

        @DBOS.step()
        def noop_step() -> None:
            return None

        @DBOS.workflow()
        def three(d: dict[str, int]) -> dict[str, int]:
            d = bump(bump(bump(d)))
            TRACK.hit()
            return d

        @DBOS.workflow()
        def single() -> None:
            noop_step()
            TRACK.hit()

        self.flows = {"three": (three, ({"n": 0},)), "single": (single, ())}
        self.queue: Any = None
        self.dbos = DBOS

    async def setup(self) -> None:
        self.dbos.launch()
        self.queue = await self.dbos.register_queue_async(f"{TAG}q", polling_interval_sec=0.05)

    async def start_runs(self, workflow: str, count: int) -> None:
        fn, args = self.flows[workflow]
        for _ in range(count):
            await self.queue.enqueue_async(fn, *args)

    async def start_worker(self) -> None:
        return None  # the queue runner started with launch()

    async def close(self) -> None:
        self.dbos.destroy()
        if self.backend != "sqlite":
            await _pg_schema(False)
        elif self.directory:
            import shutil

            shutil.rmtree(self.directory, ignore_errors=True)


PEERS: dict[str, Any] = {"saq": SAQ, "pgqueuer": PgQueuer, "procrastinate": Procrastinate,
                         "dbos": DBOSPeer}


async def measure(peer_name: str, backend: str, workload: str, n: int,
                  concurrency: int) -> dict[str, float | None]:
    peer = PEERS[peer_name](backend, concurrency)
    try:
        await peer.setup()
        if workload in ("w1", "w2"):
            flow = "three" if workload == "w1" else "single"
            TRACK.expect(n)
            t0 = time.time()
            await peer.start_runs(flow, n)
            t1 = time.time()
            await peer.start_worker()
            t2 = await TRACK.wait()
            drain = None if getattr(peer, "overlapping", False) else n / (t2 - t1)
            return {"start": n / (t1 - t0), "drain": drain, "e2e": n / (t2 - t0)}
        await peer.start_worker()
        await asyncio.sleep(0.5)
        samples = []
        for _ in range(n + 5):
            TRACK.expect(1)
            t0 = time.time()
            await peer.start_runs("single", 1)
            samples.append((await TRACK.wait(60)) - t0)
        ms = sorted(s * 1000 for s in samples[5:])
        q = statistics.quantiles(ms, n=100, method="inclusive")
        return {"p50_ms": statistics.median(ms), "p99_ms": q[98]}
    finally:
        await peer.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("peer", choices=list(PEERS))
    parser.add_argument("backend")
    parser.add_argument("workload", choices=["w1", "w2", "w3"])
    parser.add_argument("n", type=int)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    result = asyncio.run(measure(args.peer, args.backend, args.workload, args.n,
                                 args.concurrency))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
