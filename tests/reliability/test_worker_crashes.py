"""Worker crashes on every backend: SIGKILL and SIGSTOP (paused past the lease, then
resumed) of real ``squidie worker`` processes at random points of a step.

Each fault waits until the victim holds a lease (it is mid-step), lets a random fraction
of a step go by, then kills or pauses it. The attempts it held must be delivered again
to another worker: the time from the fault to the re-delivery is the recovery time.
A paused worker is resumed after its lease lapsed; whatever it then tries to commit must
be fenced. At the end, from durable facts alone (``check_history``): every run
completed, no attempt was committed twice, and no fact was written under a stale lease.

SQLite, PostgreSQL, MariaDB and Redis run here; FoundationDB runs the same kind of
campaign in process through its simulator (``test_fdb_faults.py``).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import rel_flows
from _harness import (
    Workers,
    all_ended,
    claims_of,
    holders,
    percentile,
    record,
    redelivered,
    verdict,
)
from _helpers import until

from squidie_core import Squidie

LEASE = 1.0
HEARTBEAT = 0.5


def worker_args() -> list[str]:
    return ["--concurrency", "2", "--lease-for", str(LEASE), "--heartbeat", str(HEARTBEAT),
            "--poll", "0.02", "--max-poll", "0.05", "--grace", "5", "--log-level", "INFO"]


@pytest.fixture
def workers(campaign_url: str, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(campaign_url, tmp_path)
    try:
        yield w
    finally:
        w.stop_all()


IN_FLIGHT = 4  # fewer than the slots left after a kill: re-delivery never queues


def feed(url: str, run_ids: list[str], runs: int, done: threading.Event) -> None:
    """Keep ``IN_FLIGHT`` runs going until ``runs`` were started (or ``done`` is set).

    The system is never saturated, so the recovery time measures the lease lapsing and
    a worker taking the attempt over, not a backlog ahead of it (claims go in order of
    visibility: under a backlog an expired lease waits its turn, see the docs).
    """
    engine = Squidie.from_url(url, workflows=[rel_flows.Crashy])
    try:
        while len(run_ids) < runs and not done.is_set():
            live = [r for r in run_ids[-3 * IN_FLIGHT:]
                    if (row := engine.store.get_run(r)) is None
                    or row.status not in ("completed", "failed", "cancelled")]
            if len(live) < IN_FLIGHT:
                run_ids.append(engine.start(rel_flows.Crashy, None,
                                            {"n": len(run_ids)}).run_id)
            else:
                done.wait(0.02)  # polling durable state of real processes
    finally:
        engine.close()


def crash_campaign(workers: Workers, *, runs: int, faults: int, seed: int) -> dict[str, object]:
    """Start ``runs`` runs, inject ``faults`` alternating kills and pauses, check."""
    rng = random.Random(seed)
    engine = Squidie.from_url(workers.store, workflows=[rel_flows.Crashy])
    try:
        run_ids: list[str] = []
        feeding = threading.Event()
        feeder = threading.Thread(target=feed, args=(workers.store, run_ids, runs, feeding),
                                  daemon=True)
        feeder.start()
        for _ in range(3):
            workers.spawn(*worker_args())
        recoveries: list[float] = []
        injected = {"SIGKILL": 0, "SIGSTOP": 0}
        for fault in range(faults):
            kind = "SIGKILL" if fault % 2 == 0 else "SIGSTOP"
            def busy() -> list[str] | bool:
                alive = set(workers.alive())
                names = sorted(n for n in holders(engine.store, run_ids) if n in alive)
                return names or (len(run_ids) == runs and all_ended(engine, run_ids))

            names = until(busy, 30, "a worker to hold a lease")
            if names is True:
                break  # the work ran out before the faults did
            victim = rng.choice(names)
            time.sleep(rng.uniform(0, 0.2))  # a random point of the step
            workers.signal(victim, getattr(signal, kind))
            at = time.monotonic()
            held = claims_of(engine.store, run_ids, victim)  # what it really held
            injected[kind] += 1
            if kind == "SIGKILL":
                workers.spawn(*worker_args())
            recovered: float | None = None
            if kind == "SIGSTOP":
                # Paused past its lease, then resumed: its late commits must be fenced.
                # It is resumed whether or not its attempts were taken over yet: a
                # SQLite writer paused inside its transaction holds the database's one
                # write lock, and nobody can take anything over until it runs again.
                while time.monotonic() - at < LEASE + 0.3:
                    if held and recovered is None and redelivered(engine.store, held):
                        recovered = time.monotonic()
                    time.sleep(0.01)  # the pause is the fault: it lasts past the lease
                workers.signal(victim, signal.SIGCONT)
            if held:
                if recovered is None:
                    until(lambda h=held: redelivered(engine.store, h), 30,  # type: ignore[misc]
                          f"{victim}'s attempts {sorted(held)} to be delivered again",
                          every=0.01)
                    recovered = time.monotonic()
                recoveries.append(recovered - at)
        until(lambda: not feeder.is_alive(), 120, "every run to be started")
        until(lambda: all_ended(engine, run_ids), 120, "every run to end")
        workers.stop_all()
        report, figures = verdict(engine, run_ids)
        report.assert_ok()
        assert figures["completed"] == runs, figures
        assert injected["SIGKILL"] >= 2 and injected["SIGSTOP"] >= 2, injected
        assert recoveries, "no fault hit a worker holding a lease"
        return {**figures, "faults": injected, "recovery_p50_s": percentile(recoveries, 0.5),
                "recovery_p99_s": percentile(recoveries, 0.99), "samples": len(recoveries),
                "lease_s": LEASE, "heartbeat_s": HEARTBEAT,
                "fenced": workers.logs_text().count(": lease_lost")}
    finally:
        feeding.set()
        engine.close()


def test_killed_and_paused_workers_lose_nothing(backend: str, workers: Workers) -> None:
    figures = crash_campaign(workers, runs=24, faults=4, seed=hash(backend) & 0xFFFF)
    record("worker_crashes", backend, suite="fast", **figures)


@pytest.mark.soak
def test_killed_and_paused_workers_lose_nothing_soak(backend: str, workers: Workers) -> None:
    figures = crash_campaign(workers, runs=300, faults=60, seed=42)
    record("worker_crashes", backend, suite="soak", **figures)
