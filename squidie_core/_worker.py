"""The host worker: a supervised loop around ``execute_next``.

Workers provide capacity and own no state. Each worker runs ``concurrency`` slots; a
slot is a thread that claims one dispatch at a time, runs its step (async steps run on
the worker's one event loop thread) and commits it. A slot that finds nothing waits a
short, capped, jittered poll — cut short by the store's wake-up hint where it has one —
and a slot that hits a backend error backs off exponentially instead of crashing.

Idle slots take turns: one of them (the listener) waits on the store's wake-up hint, the
others on the worker itself. A slot whose claim came back full wakes one idle slot, which
claims in turn, so a burst of work is taken up slot after slot while a single new run
wakes a single slot — not every idle slot racing for it. A claim that came back short
emptied the queue: its slot stands in for the listener while it runs the batch and
claims again when done, and an idle slot takes over only if the batch is still running
50 ms later.

On an embedded store (``Capabilities.embedded``: SQLite, memory) the slots take turns in
the engine's own work, which waits on no network there, and overlap only while their
steps run (``take_turns``).

Shutdown (SIGTERM or SIGINT, or ``stop()``): slots stop claiming, running steps get
``grace_period`` seconds to finish and commit, then the worker returns. A second signal
exits the process at once; the leases it held expire and other workers take the attempts
over, so nothing is lost.

Health: ``health_file`` is touched on every loop of every slot (a supervisor can watch
its age); ``health_port`` serves ``GET /healthz`` (200 while the worker runs, with its
counters as JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from squidie_core._runtime import ExecuteResult, Squidie

__all__ = ["Worker", "WorkerStats"]

log = logging.getLogger("squidie.worker")

#: Longest single wake-up wait, so stop() is noticed promptly during a long idle wait.
_WAKE_SLICE = 0.5

#: With ``take_turns``, a step whose function took less than this on average runs
#: without giving up the turn: handing it over and back would cost more than the step.
_SHORT_STEP = 0.001

#: How long a slot whose claim emptied the queue stands in for the listener while it runs
#: its batch, before an idle slot takes over (claims, then listens).
_STAND_IN = 0.05


@dataclass
class WorkerStats:
    """Counters of one worker (also served by the health endpoint).

    Attributes:
        executed: Attempts executed, by outcome.
        errors: Backend errors survived.
        started_at: When the worker started (wall clock).
    """

    executed: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    started_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """Return the counters as JSON-ready data."""
        return {"executed": dict(self.executed), "errors": self.errors,
                "uptime": round(time.time() - self.started_at, 3)}


def _average_into(averages: dict[Any, float], key: Any, seconds: float) -> None:
    """Fold ``seconds`` into the moving average ``averages[key]`` (the first: itself)."""
    last = averages.get(key)
    averages[key] = seconds if last is None else 0.8 * last + 0.2 * seconds


class _AsyncLoop:
    """One event loop in a daemon thread, running every async step of the worker."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="squidie-async",
                                       daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Worker:
    """Runs ``engine.execute_next`` in ``concurrency`` slots until stopped.

    Args:
        engine: The engine (its registered workflows are what this worker can run).
        concurrency: Slots (threads) executing steps at once.
        queues: Queues to serve (default: the registered workflows' queues).
        lease_for: Lease length in seconds.
        heartbeat_interval: Seconds between heartbeats of a running step.
        poll_interval: The first idle poll delay, in seconds.
        max_poll_interval: The cap of the idle poll delay.
        max_error_backoff: The cap of the delay after backend errors.
        grace_period: Seconds running steps get to finish after a stop.
        name: Prefix of owner ids (default ``hostname:pid``); owner ids are
            ``{name}:{slot}``, unique per process and slot.
        health_file: A path touched on every slot loop.
        health_port: Serve ``GET /healthz`` on this port (``0``: any free port).
        health_host: The address the health endpoint binds to.
        metrics_port: Serve Prometheus metrics on this port (needs the ``prometheus``
            extra; installs the process's OpenTelemetry meter provider).
        claim_batch: The most dispatches a slot claims in one round trip (``1``: claim
            one at a time, each step committed alone). A batch runs one step after
            another and commits their outcomes together (``Squidie.run_leases``: one
            group commit per batch instead of one commit per step). The batch size
            adapts: a slot claims one at a time until it has timed a step, then as many
            as it expects to run within a third of ``lease_for`` (at most
            ``claim_batch``), so long steps are claimed one by one and short ones in
            batches. A claimed lease that waited long in its batch is heartbeated before
            its step starts (and skipped if it was lost), and at shutdown the ones never
            started are put back at once (``retry`` with no delay).
        commit_hold: With batches, the longest (seconds) a finished step's outcome
            waits for the rest of its batch before it is committed.
        gc_freeze: While the worker runs, keep what the process allocated before it
            started (the imported modules, the engine, the store and its driver) out of
            the garbage collector's collections (``gc.freeze()``, undone when ``run``
            returns). A drain allocates enough to trigger full collections often, and
            each one scanned that whole startup heap: the drains run 10 to 20% faster.
            Skipped if the host has frozen objects itself (it manages the collector);
            ``False`` leaves the collector alone.
        take_turns: Slots take turns in the engine's own work (claiming, loading runs,
            committing outcomes) and overlap only while their steps run. Python runs one
            thread at a time, so slots overlapping that work gain only where it waits on
            a network; on an embedded store (``Capabilities.embedded``: SQLite, memory)
            they instead hand the interpreter to each other on every database call (a
            drain of short steps ran 18 to 38% slower with four slots than with one).
            Default: on for an embedded store, off otherwise.
    """

    def __init__(
        self,
        engine: Squidie,
        *,
        concurrency: int = 4,
        queues: Sequence[str] | None = None,
        lease_for: float = 300.0,
        heartbeat_interval: float | None = None,
        poll_interval: float = 0.05,
        max_poll_interval: float = 2.0,
        max_error_backoff: float = 30.0,
        grace_period: float = 30.0,
        name: str | None = None,
        health_file: str | os.PathLike[str] | None = None,
        health_port: int | None = None,
        health_host: str = "127.0.0.1",
        metrics_port: int | None = None,
        claim_batch: int = 64,
        commit_hold: float = 0.05,
        gc_freeze: bool = True,
        take_turns: bool | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if claim_batch < 1:
            raise ValueError("claim_batch must be at least 1")
        self.claim_batch = claim_batch
        self.commit_hold = commit_hold
        self.gc_freeze = gc_freeze
        self.take_turns = (engine.store.capabilities.embedded if take_turns is None
                           else take_turns)
        #: The turn in the engine's work (``take_turns``), and whether this thread has it.
        self._turn = threading.Lock()
        self._has_turn = threading.local()
        #: Per (workflow, step), a moving average of the seconds its function took.
        self._step_call_seconds: dict[tuple[str, str], float] = {}
        #: Per slot, a moving average of the seconds a claimed step took (run + commit).
        self._step_seconds: dict[str, float] = {}
        self.engine = engine
        self.concurrency = concurrency
        self.queues = list(queues) if queues else engine.queues()
        self.lease_for = lease_for
        self.heartbeat_interval = heartbeat_interval
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.max_error_backoff = max_error_backoff
        self.grace_period = grace_period
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.health_file = Path(health_file) if health_file else None
        self.health_port = health_port
        self.health_host = health_host
        self.metrics_port = metrics_port
        self.metrics_address: tuple[str, int] | None = None
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._http: ThreadingHTTPServer | None = None
        self._signals = 0
        self._rng = random.Random()
        #: Idle slots: the one waiting on the store's hint, and the rest, waiting here.
        self._idle_turns = threading.Condition()
        self._listener: str | None = None
        self._waiting = 0  # idle slots waiting here
        self._turns = 0  # turns passed on and not yet taken
        #: While a slot that emptied the queue runs its batch: when an idle slot takes over.
        self._stand_in: float | None = None

    # ------------------------------------------------------------------ control

    @property
    def owner_ids(self) -> list[str]:
        """The owner id of each slot."""
        return [f"{self.name}:{slot}" for slot in range(self.concurrency)]

    @property
    def health_address(self) -> tuple[str, int] | None:
        """``(host, port)`` of the health endpoint once it is serving."""
        if self._http is None:
            return None
        host, port = self._http.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        """Stop claiming; running steps may finish within the grace period."""
        self._stop.set()
        with self._idle_turns:
            self._idle_turns.notify_all()

    def run(self, *, install_signal_handlers: bool | None = None) -> WorkerStats:
        """Run until ``stop()`` (or SIGTERM/SIGINT) and return the counters.

        Args:
            install_signal_handlers: Handle SIGTERM/SIGINT (default: when called from the
                main thread).
        """
        if install_signal_handlers is None:
            install_signal_handlers = threading.current_thread() is threading.main_thread()
        previous: dict[signal.Signals, Any] = {}
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self.handle_signal)
        loop = _AsyncLoop()
        self.engine.async_runner = loop.run
        if self.take_turns:
            self.engine.step_runner = self._off_turn
        self._serve_health()
        if self.metrics_port is not None:
            from squidie_core._telemetry import serve_prometheus

            self.metrics_address = serve_prometheus(self.metrics_port, self.health_host)
            log.info("serving Prometheus metrics on %s:%d", *self.metrics_address)
        log.info("worker %s serving queues %s with %d slots", self.name,
                 ", ".join(self.queues), self.concurrency)
        # Frozen here, before any slot runs: the startup heap, not the work's objects.
        froze = self.gc_freeze and gc.get_freeze_count() == 0
        if froze:
            gc.freeze()
        try:
            self._threads = [
                threading.Thread(target=self._slot, args=(owner,), name=f"squidie-{owner}",
                                 daemon=True)
                for owner in self.owner_ids
            ]
            for thread in self._threads:
                thread.start()
            while not self._stop.wait(0.2):
                if not any(t.is_alive() for t in self._threads):
                    break
            deadline = time.monotonic() + self.grace_period
            for thread in self._threads:
                thread.join(max(deadline - time.monotonic(), 0))
            unfinished = [t.name for t in self._threads if t.is_alive()]
            if unfinished:
                log.warning("grace period over with %d step(s) still running; their leases "
                            "will expire and other workers take them over", len(unfinished))
            log.info("worker %s stopped: %s", self.name, self.stats.to_dict())
            return self.stats
        finally:
            if froze:
                gc.unfreeze()
            self.engine.async_runner = None
            self.engine.step_runner = None
            loop.close()
            if self._http is not None:
                self._http.shutdown()
                self._http.server_close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_signal(self, signum: int, frame: object) -> None:
        """SIGTERM/SIGINT: the first stops claiming (graceful), a second exits at once."""
        self._signals += 1
        if self._signals == 1:
            log.warning("received %s: finishing running steps (grace %.0f s); send it "
                        "again to exit at once", signal.Signals(signum).name, self.grace_period)
            self.stop()
            return
        log.warning("second signal: exiting now; held leases will expire and be taken over")
        os._exit(128 + signum)

    # ------------------------------------------------------------------ slots

    def _touch(self) -> None:
        if self.health_file is not None:
            try:
                self.health_file.touch()
            except OSError as exc:
                log.warning("cannot touch health file %s: %s", self.health_file, exc)

    def _slot(self, owner: str) -> None:
        idle = self.poll_interval
        errors = 0
        while not self._stop.is_set():
            self._touch()
            try:
                result = self._run_batch(owner)
            except Exception as exc:  # the backend is down or flaky: back off, never crash
                errors += 1
                with self._lock:
                    self.stats.errors += 1
                delay = min(self.poll_interval * 2 ** min(errors, 16), self.max_error_backoff)
                delay *= self._rng.uniform(0.5, 1.0)
                log.warning("slot %s: %s: %s (retrying in %.2f s)", owner,
                            type(exc).__name__, exc, delay)
                self._stop.wait(delay)
                continue
            errors = 0
            if result is None:
                self._idle(owner, idle)
                idle = min(idle * 2, self.max_poll_interval)
                continue
            idle = self.poll_interval
            self._record(owner, result)

    def _batch_size(self, owner: str) -> int:
        """How many to claim: as many as the slot expects to run in a third of a lease."""
        seconds = self._step_seconds.get(owner)
        if seconds is None:
            return 1
        return max(1, min(self.claim_batch, int(self.lease_for / 3 / max(seconds, 1e-6))))

    def _run_batch(self, owner: str) -> ExecuteResult | None:
        """Claim a batch (of one with ``claim_batch=1``), run it and group-commit the
        outcomes; the last result.

        Every result but the last is recorded here (``_slot`` records the last). Leases
        left unstarted by a stop (or by a backend error) are put back to be claimed again
        at once.
        """
        limit = self._batch_size(owner)
        with self._engine_turn():
            leases = self.engine.store.claim(owner, lease_for=self.lease_for, limit=limit,
                                             queues=self.queues)
            if not leases:
                return None
            standing_in = self._pass_turn(full=len(leases) >= limit)
            began = time.monotonic()
            try:
                results = self.engine.run_leases(
                    leases, lease_for=self.lease_for,
                    heartbeat_interval=self.heartbeat_interval, hold=self.commit_hold,
                    stop=self._stop.is_set,
                )
            finally:
                if standing_in:
                    with self._idle_turns:
                        self._stand_in = None  # this slot claims again next
        if results:
            _average_into(self._step_seconds, owner, (time.monotonic() - began) / len(results))
        for result in results[:-1]:
            self._record(owner, result)
        return results[-1] if results else None

    @contextlib.contextmanager
    def _engine_turn(self) -> Iterator[None]:
        """Hold the turn in the engine's work for the block (with ``take_turns``)."""
        if not self.take_turns:
            yield
            return
        with self._turn:
            self._has_turn.held = True
            try:
                yield
            finally:
                self._has_turn.held = False

    def _off_turn(self, step: tuple[str, str], call: Callable[[], Any]) -> Any:
        """The engine's ``step_runner``: a slot's step runs with the turn given up, so
        that the other slots' engine work goes on meanwhile; unless the step has been
        short so far (under ``_SHORT_STEP`` on average), when handing the turn over and
        back would cost more than the step. A step run by a thread that is not a slot of
        this worker (the host calling ``execute_next``) just runs."""
        if not getattr(self._has_turn, "held", False):
            return call()
        last = self._step_call_seconds.get(step)
        give_up = last is None or last >= _SHORT_STEP
        if give_up:
            self._has_turn.held = False
            self._turn.release()
        began = time.monotonic()
        try:
            return call()
        finally:
            took = time.monotonic() - began
            if give_up:
                self._turn.acquire()
                self._has_turn.held = True
            _average_into(self._step_call_seconds, step, took)

    def _idle(self, owner: str, delay: float) -> None:
        """Wait up to ``delay`` (jittered) before the next claim.

        With a wake-up hint, one idle slot at a time listens to the store and the others
        wait here for a turn (``_pass_turn``), a stand-in's time to run out, or their own
        poll delay, whichever comes first.
        """
        delay *= self._rng.uniform(0.5, 1.0)
        store = self.engine.store
        if not store.capabilities.wake_up:
            self._stop.wait(delay)
            return
        deadline = time.monotonic() + delay
        with self._idle_turns:
            while True:
                if self._stop.is_set():
                    return
                now = time.monotonic()
                if self._turns:
                    self._turns -= 1
                    return
                if self._stand_in is not None and now >= self._stand_in:
                    self._stand_in = None  # the batch runs long: take over
                    return
                if self._listener is None and self._stand_in is None:
                    self._listener = owner
                    break
                if now >= deadline:
                    return
                until = deadline if self._stand_in is None else min(deadline, self._stand_in)
                self._waiting += 1
                try:
                    self._idle_turns.wait(until - now)
                finally:
                    self._waiting -= 1
        # The listener. In slices, so that stop() is honoured within one slice however
        # long the wait.
        try:
            while not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or store.wait_for_work(
                        self.queues, min(remaining, _WAKE_SLICE)):
                    return
        except Exception as exc:
            log.debug("wake-up hint failed: %s", exc)
            self._stop.wait(delay)
        finally:
            with self._idle_turns:
                self._listener = None

    def _pass_turn(self, *, full: bool) -> bool:
        """A claim found work. Full: wake one idle slot to claim as well (there may be
        more). Short, the queue is empty: if no slot listens, this one, which claims again
        after its batch, stands in for the listener meanwhile (returns ``True``), and an
        idle slot takes over if the batch is still running ``_STAND_IN`` seconds on."""
        with self._idle_turns:
            if full:
                if self._waiting > self._turns:
                    self._turns += 1
                    self._idle_turns.notify()
                return False
            if self._listener is not None or self._stand_in is not None:
                return False
            self._stand_in = time.monotonic() + _STAND_IN
            self._idle_turns.notify()  # one idle slot keeps the time
            return True

    def _record(self, owner: str, result: ExecuteResult) -> None:
        with self._lock:
            self.stats.executed[result.outcome] = self.stats.executed.get(result.outcome, 0) + 1
        level = logging.WARNING if result.outcome in ("lease_lost", "dead_lettered") else (
            logging.INFO)
        log.log(
            level, "run %s step %s attempt %d: %s%s", result.run_id, result.step,
            result.attempt, result.outcome,
            f" ({result.detail})" if result.detail else "",
            extra={"run_id": result.run_id, "step": result.step, "attempt": result.attempt,
                   "owner": owner, "outcome": result.outcome},
        )

    # ------------------------------------------------------------------ health

    def _serve_health(self) -> None:
        if self.health_port is None:
            return
        worker = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.rstrip("/") not in ("/healthz", ""):
                    self.send_error(404)
                    return
                alive = not worker._stop.is_set()
                body = json.dumps({"status": "ok" if alive else "stopping",
                                   "name": worker.name, **worker.stats.to_dict()}).encode()
                self.send_response(200 if alive else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._http = ThreadingHTTPServer((self.health_host, self.health_port), Handler)
        threading.Thread(target=self._http.serve_forever, name="squidie-health",
                         daemon=True).start()
