"""Load: many runs through one long-running worker with 8 slots, its memory sampled.

``squidie worker --concurrency 8`` drains a batch of two-step runs; the test samples the
worker's resident set size (``VmRSS`` in ``/proc``) while it works. The fast version
runs 200 runs, ``make soak`` 20,000, on SQLite and PostgreSQL (the crash and fault
campaigns cover MariaDB and Redis). Both end with ``check_history`` over every run.

The RSS bound is generous on purpose (it catches a leak proportional to the work done,
not allocator noise): after the warm-up sample, the worker may not grow by more than
a fixed allowance plus a few bytes per run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import rel_flows
from _harness import Workers, record, verdict
from _helpers import until

from squidie_core import Squidie


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def workers(campaign_url: str, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(campaign_url, tmp_path)
    try:
        yield w
    finally:
        w.stop_all()


def load_campaign(workers: Workers, runs: int, batch: int = 500) -> dict[str, object]:
    engine = Squidie.from_url(workers.store, workflows=[rel_flows.Quick])
    try:
        started = time.monotonic()
        run_ids: list[str] = []
        name = workers.spawn("--concurrency", "8", "--lease-for", "30", "--poll", "0.01",
                             "--max-poll", "0.1", "--log-level", "WARNING")
        pid = workers.procs[name].pid
        samples: list[tuple[int, int]] = []  # (runs completed so far, RSS KiB)

        def done() -> int:
            return sum(1 for r in engine.list_runs(status="completed", limit=1000).items) \
                if runs <= 1000 else _count_completed(engine)

        # Runs arrive in batches while the worker works, as production traffic would.
        while len(run_ids) < runs:
            for i in range(min(batch, runs - len(run_ids))):
                run_ids.append(engine.start(rel_flows.Quick, None, {"n": i}).run_id)
            samples.append((done(), rss_kib(pid)))
        while True:
            finished = done()
            samples.append((finished, rss_kib(pid)))
            if finished >= runs:
                break
            until(lambda f=finished: done() > f + runs // 20 or done() >= runs, 120,
                  "progress", every=0.2)
        elapsed = time.monotonic() - started
        workers.stop_all()
        report, figures = verdict(engine, run_ids)
        report.assert_ok()
        assert figures["completed"] == runs, figures
        # Warm: the first sample after a fifth of the runs completed (imports done,
        # pools and caches filled); everything after it must stay flat.
        first = next(i for i, (n, _) in enumerate(samples) if n >= runs // 5)
        warm = samples[first][1]
        peak_after_warm = max(kib for _, kib in samples[first:])
        return {**figures, "slots": 8, "elapsed_s": round(elapsed, 1),
                "runs_per_s": round(runs / elapsed, 1), "rss_warm_kib": warm,
                "rss_end_kib": samples[-1][1], "rss_peak_kib": peak_after_warm,
                "rss_samples": len(samples) - first}
    finally:
        engine.close()


def _count_completed(engine: Squidie) -> int:
    total, cursor = 0, None
    while True:
        page = engine.list_runs(status="completed", limit=1000, cursor=cursor)
        total += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return total


def assert_flat(figures: dict[str, object], runs: int) -> None:
    warm, peak = int(figures["rss_warm_kib"]), int(figures["rss_peak_kib"])  # type: ignore[call-overload]
    allowance = 16 * 1024 + runs // 4  # 16 MiB of allocator slack + 256 bytes per run
    assert peak - warm <= allowance, figures


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_worker_with_8_slots_drains_a_load(backend: str, workers: Workers) -> None:
    figures = load_campaign(workers, runs=200, batch=100)
    assert_flat(figures, 200)
    record("load", backend, suite="fast", **figures)


@pytest.mark.soak
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("runs", [20_000])
def test_a_worker_with_8_slots_drains_20000_runs_in_flat_memory(
    backend: str, workers: Workers, runs: int
) -> None:
    figures = load_campaign(workers, runs=runs)
    assert_flat(figures, runs)
    record("load", backend, suite="soak", **figures)
