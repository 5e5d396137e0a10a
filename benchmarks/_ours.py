"""Squidie's side of the workloads: W1, W2, W3 and the claim backlog.

Workers are real worker processes (``squidie_core.Worker`` with its default slots),
spawned before the clock starts and held at a gate until every run is started, so the
start rate and the drain rate are measured apart and their sum is the end-to-end time.
Each worker reports every run it completes over a pipe (the time it saw the terminal
commit return), so no process polls the store to learn that the work is done.
"""

from __future__ import annotations

import multiprocessing
import statistics
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from benchmarks._flows import Single, Three
from benchmarks._targets import Target
from squidie_core import Squidie, Worker

__all__ = ["backlog", "drain", "latency"]

WORKFLOWS = {"Three": Three, "Single": Single}
_CTX = multiprocessing.get_context("spawn")

#: Engine options of the worker engines (``--engine KEY=VALUE``), e.g. to measure an
#: optimisation switched off against it switched on.
ENGINE_OPTIONS: dict[str, Any] = {}
#: Options of the ``Worker`` of each worker process (``--worker KEY=VALUE``).
WORKER_OPTIONS: dict[str, Any] = {}


def _serve(url: str, concurrency: int, gate: Any, stop: Any, conn: Connection,
           options: dict[str, Any], worker_options: dict[str, Any]) -> None:
    """A worker process: wait at the gate, then run a ``Worker`` until ``stop``."""
    engine = Squidie.from_url(url, workflows=list(WORKFLOWS.values()), **options)
    lock = threading.Lock()

    def listener(event: dict[str, Any]) -> None:
        if event.get("name") == "run.terminal":
            now = time.time()
            with lock:
                conn.send(now)

    engine.add_listener(listener)
    worker = Worker(engine, concurrency=concurrency, **worker_options)
    conn.send("ready")
    gate.wait()
    threading.Thread(target=_stop_when, args=(stop, worker), daemon=True).start()
    worker.run(install_signal_handlers=False)
    engine.close()
    conn.send("stopped")


def _stop_when(event: Any, worker: Worker) -> None:
    event.wait()
    worker.stop()


class _Workers:
    """Worker processes (or, for in-process stores, worker threads) and their reports."""

    def __init__(self, target: Target, url: str, count: int, concurrency: int,
                 engine: Squidie | None = None) -> None:
        self.gate = _CTX.Event() if not target.in_process else threading.Event()
        self.stop = _CTX.Event() if not target.in_process else threading.Event()
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(count):
            mine, theirs = _CTX.Pipe() if not target.in_process else multiprocessing.Pipe()
            if target.in_process:
                assert engine is not None
                proc: Any = threading.Thread(target=self._serve_thread, daemon=True,
                                             args=(engine, concurrency, theirs))
            else:
                proc = _CTX.Process(target=_serve, daemon=True,
                                    args=(url, concurrency, self.gate, self.stop, theirs,
                                          ENGINE_OPTIONS, WORKER_OPTIONS))
            proc.start()
            self.procs.append(proc)
            self.conns.append(mine)
        for conn in self.conns:
            if conn.recv() != "ready":
                raise RuntimeError("worker did not start")

    def _serve_thread(self, engine: Squidie, concurrency: int, conn: Connection) -> None:
        lock = threading.Lock()

        def listener(event: dict[str, Any]) -> None:
            if event.get("name") == "run.terminal":
                with lock:
                    conn.send(time.time())

        engine.add_listener(listener)
        worker = Worker(engine, concurrency=concurrency, **WORKER_OPTIONS)
        conn.send("ready")
        self.gate.wait()
        threading.Thread(target=_stop_when, args=(self.stop, worker), daemon=True).start()
        worker.run(install_signal_handlers=False)
        conn.send("stopped")

    def completions(self, count: int, timeout: float) -> list[float]:
        """Wait for ``count`` completion reports; their times, in arrival order."""
        times: list[float] = []
        deadline = time.monotonic() + timeout
        while len(times) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(times)} of {count} runs completed in {timeout} s")
            for conn in wait(self.conns, left):
                item = conn.recv()  # type: ignore[union-attr,call-arg]
                if isinstance(item, float):
                    times.append(item)
        return times

    def close(self) -> None:
        self.stop.set()
        for proc in self.procs:
            proc.join(30)


def drain(target: Target, url: str, workflow: str, runs: int, *, workers: int = 1,
          concurrency: int = 4, timeout: float = 600) -> dict[str, Any]:
    """Start ``runs`` runs, then drain them with ``workers`` worker processes.

    Returns:
        ``start`` (runs/s started), ``drain`` (runs/s from the gate opening to the last
        completion) and ``e2e`` (runs/s from the first start to the last completion).
    """
    flow = WORKFLOWS[workflow]
    engine = Squidie.from_url(url, workflows=list(WORKFLOWS.values()), **ENGINE_OPTIONS)
    pool = _Workers(target, url, workers, concurrency, engine)
    try:
        time.sleep(0.3)  # workers imported, connected and waiting at the gate
        t0 = time.time()
        payload = {"n": 0} if workflow == "Three" else {}
        for _ in range(runs):
            engine.start(flow, "go", payload)
        t1 = time.time()
        pool.gate.set()
        done = pool.completions(runs, timeout)
        t2 = max(done)
    finally:
        pool.close()
        engine.close()
    return {"start": runs / (t1 - t0), "drain": runs / (t2 - t1), "e2e": runs / (t2 - t0),
            "steps_per_s": runs * (3 if workflow == "Three" else 1) / (t2 - t1)}


def latency(target: Target, url: str, runs: int, *, concurrency: int = 4,
            timeout: float = 60) -> dict[str, Any]:
    """With an idle worker running, start one run at a time; start-to-completion times."""
    engine = Squidie.from_url(url, workflows=list(WORKFLOWS.values()), **ENGINE_OPTIONS)
    pool = _Workers(target, url, 1, concurrency, engine)
    samples: list[float] = []
    try:
        pool.gate.set()
        time.sleep(0.5)  # the worker is idle before the first start
        for _ in range(runs + 5):
            t0 = time.time()
            engine.start(Single, "go", {})
            (done,) = pool.completions(1, timeout)
            samples.append(done - t0)
    finally:
        pool.close()
        engine.close()
    ms = sorted(s * 1000 for s in samples[5:])  # the first few warm caches and pools
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50_ms": statistics.median(ms), "p99_ms": q[98], "max_ms": ms[-1]}


def backlog(target: Target, directory: str, sizes: list[int], claims: int) -> dict[int, float]:
    """Median ``claim(limit=1)`` latency (ms) with each backlog size of visible dispatches.

    One store per size is loaded first; claims then alternate between the stores so a
    change of load on the machine affects every size alike.
    """
    urls = [target.new_url(directory) for _ in sizes]
    stores = []
    try:
        for url, size in zip(urls, sizes, strict=True):
            store = _open(url)
            stores.append(store)
            _LOADERS[target.kind](store, size)
        for store in stores:
            for _ in range(10):
                store.claim("bench", lease_for=600)
        samples: list[list[float]] = [[] for _ in sizes]
        for _ in range(claims):
            for store, bucket in zip(stores, samples, strict=True):
                t = time.perf_counter()
                got = store.claim("bench", lease_for=600)
                bucket.append(time.perf_counter() - t)
                if len(got) != 1:
                    raise RuntimeError("the backlog ran dry")
        return {size: statistics.median(bucket) * 1000
                for size, bucket in zip(sizes, samples, strict=True)}
    finally:
        for store in stores:
            store.close()
        for url in urls:
            target.drop(url)


def _open(url: str) -> Any:
    from squidie_core import open_store

    return open_store(url)


def _load_sql(store: Any, count: int) -> None:
    from benchmarks.sql._common import load_backlog

    load_backlog(store, count, now=time.time() - 3600)


def _load_dispatches(store: Any, count: int) -> None:
    from squidie_core.storage import Dispatch

    batch = 1000
    for start in range(0, count, batch):
        store.enqueue([Dispatch(key=f"bk{i}:s:1", run_id=f"bk{i}", workflow="W", step="s",
                                attempt=1)
                       for i in range(start, min(start + batch, count))])


_LOADERS: dict[str, Callable[[Any, int], None]] = {
    "sqlite": _load_sql, "postgresql": _load_sql, "mysql": _load_sql,
    "redis": _load_dispatches, "fdb": _load_dispatches,
}
