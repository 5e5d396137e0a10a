"""What the reliability campaigns share: worker subprocesses, polling with deadlines,
store URLs per backend, and the figures each campaign records.

Worker processes are real ``squidie worker`` subprocesses (the pattern of
``tests/host/test_e2e.py``); they run on real time, so the campaigns wait on durable
store state with a deadline, never on a fixed sleep.

Set ``SQUIDIE_RELIABILITY_OUT=path.jsonl`` to append each campaign's figures (faults,
runs, double commits, lost runs, recovery times) to that file: ``docs/reliability.md``
is written from it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from conformance import HistoryReport, check_history
from squidie_core import Squidie
from squidie_core.storage import TERMINAL_STATUSES, Store

HERE = Path(__file__).resolve().parent
SQUIDIE = str(Path(sys.executable).parent / "squidie")


def store_url_for(backend: str, base: str, name: str) -> str:
    """A store URL of its own on ``base`` (table prefix or key namespace ``name``)."""
    sep = "&" if "?" in base else "?"
    if backend == "redis":
        return f"{base}{sep}namespace={name}"
    if backend == "postgresql":
        # Every connection of this store carries the test's name: server-side faults
        # (pg_terminate_backend) are aimed at these connections and no others.
        return f"{base}{sep}prefix={name}_&application_name={name}"
    return f"{base}{sep}prefix={name}_"


def cleanup_store(backend: str, url: str, base: str, name: str) -> None:
    """Drop the tables or keys ``store_url_for(backend, base, name)`` created."""
    if backend in ("postgresql", "mysql"):
        from squidie_backends.sql import uninstall

        uninstall(url)
    elif backend == "redis":
        import redis

        client = redis.Redis.from_url(base)
        try:
            keys = list(client.scan_iter(match=f"{name}:*", count=1000))
            for i in range(0, len(keys), 500):
                client.unlink(*keys[i:i + 500])
        finally:
            client.close()


def record(campaign: str, backend: str, **figures: Any) -> None:
    """Append one campaign's figures to ``$SQUIDIE_RELIABILITY_OUT`` (if set)."""
    out = os.environ.get("SQUIDIE_RELIABILITY_OUT")
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"campaign": campaign, "backend": backend, **figures}) + "\n")


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank (``None`` if empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


class Workers:
    """The worker subprocesses of one campaign, with their logs."""

    def __init__(self, store: str, logs: Path, app: str = "rel_flows",
                 extra_env: dict[str, str] | None = None) -> None:
        self.store = store
        self.logs = logs
        self.env = {**os.environ, "SQUIDIE_STORE": store, "SQUIDIE_APP": app,
                    "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
                    **(extra_env or {})}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.serial = 0

    def spawn(self, *args: str, name: str | None = None) -> str:
        """Start ``squidie worker --name NAME ARGS``; return its name."""
        if name is None:
            name = f"w{self.serial}"
            self.serial += 1
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        self.procs[name] = subprocess.Popen(
            [SQUIDIE, "worker", "--name", name, *args], env=self.env, stdout=log,
            stderr=subprocess.STDOUT)
        return name

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]

    def signal(self, name: str, sig: signal.Signals) -> None:
        self.procs[name].send_signal(sig)
        if sig == signal.SIGKILL:
            self.procs[name].wait(10)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def logs_text(self) -> str:
        return "\n".join(self.log(n) for n in self.procs)

    def stop_all(self) -> None:
        """SIGTERM every live worker (SIGCONT first, in case it is paused), then wait."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def claims_of(store: Store, run_ids: Iterable[str], prefix: str) -> dict[str, int]:
    """The dispatches currently claimed by owners named ``prefix:*``, with their fences."""
    held: dict[str, int] = {}
    for run_id in run_ids:
        for rec in store.dispatches(run_id):
            if rec.state == "claimed" and (rec.owner_id or "").startswith(prefix + ":"):
                held[rec.dispatch.key] = rec.fence
    return held


def holders(store: Store, run_ids: Iterable[str]) -> dict[str, dict[str, int]]:
    """Worker name (owner id prefix) -> the dispatches it holds claimed, with fences."""
    held: dict[str, dict[str, int]] = {}
    for run_id in run_ids:
        for rec in store.dispatches(run_id):
            if rec.state == "claimed" and rec.owner_id:
                name = rec.owner_id.rsplit(":", 1)[0]
                held.setdefault(name, {})[rec.dispatch.key] = rec.fence
    return held


def redelivered(store: Store, held: dict[str, int]) -> bool:
    """Whether every dispatch in ``held`` was taken over (delivered again: a higher
    fence) or settled by the holder's own commit.

    The second case is real: a signal lands asynchronously, so a commit the victim had
    already made durable may only become visible after the fault (SQLite finishes
    publishing a WAL commit when the paused writer resumes, or when the next connection
    recovers the WAL after a kill). That commit was decided under a valid lease.
    """
    for key, fence in held.items():
        run_id = key.split(":", 1)[0]
        rec = next(r for r in store.dispatches(run_id) if r.dispatch.key == key)
        if rec.fence <= fence and rec.state == "claimed":
            return False
    return True


def all_ended(engine: Squidie, run_ids: list[str]) -> bool:
    for run_id in run_ids:
        row = engine.store.get_run(run_id)
        if row is None or row.status not in TERMINAL_STATUSES:
            return False
    return True


def verdict(engine: Squidie, run_ids: list[str]) -> tuple[HistoryReport, dict[str, int]]:
    """Run the history checker and count what the docs table reports.

    Returns:
        The report (``assert_ok()`` it) and ``{"runs", "completed", "double_commits",
        "lost"}``: attempts committed more than once, and runs that neither completed
        nor have a live dispatch.
    """
    report = check_history(engine.store, run_ids)
    rules = report.rules()
    completed = sum(1 for r in run_ids
                    if (row := engine.store.get_run(r)) is not None
                    and row.status == "completed")
    return report, {"runs": len(run_ids), "completed": completed,
                    "double_commits": rules.get("one_outcome_per_attempt", 0),
                    "lost": len(run_ids) - completed}
