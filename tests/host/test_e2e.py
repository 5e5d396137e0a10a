"""Real worker and scheduler processes on SQLite and PostgreSQL, with one worker killed
mid-step and another stopped gracefully.

Three ``squidie worker`` and two ``squidie scheduler`` subprocesses serve a mix of
workflows: sequential steps, retries, waits, approvals resolved through the CLI, child
runs and a cron trigger firing every two seconds. One worker is SIGKILLed while it holds
a slow step's lease, another gets SIGTERM. Then, from the store alone: every run
completed, every step attempt was committed at most once (and each completed step
exactly once), the killed worker's attempt was taken over, and every cron window started
exactly one run, without gaps.

The processes run on real time; the test waits on store conditions with deadlines.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from _helpers import until

HERE = Path(__file__).resolve().parent
SQUIDIE = str(Path(sys.executable).parent / "squidie")
sys.path.insert(0, str(HERE))
import app_flows  # noqa: E402

from squidie_core import Squidie  # noqa: E402

WORKFLOWS = [app_flows.Chain, app_flows.Slow, app_flows.Flaky, app_flows.Sleepy,
             app_flows.Gate, app_flows.Parent, app_flows.Ticker]




class Host:
    """The subprocesses of one test, with their logs."""

    def __init__(self, store: str, logs: Path) -> None:
        self.store = store
        self.logs = logs
        self.env = {**os.environ, "SQUIDIE_STORE": store, "SQUIDIE_APP": "app_flows",
                    "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen([SQUIDIE, *args], env=self.env, stdout=log,
                                stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def cli(self, *args: str) -> str:
        out = subprocess.run([SQUIDIE, *args], env=self.env, capture_output=True, text=True,
                             timeout=60, check=False)
        assert out.returncode == 0, (args, out.stderr)
        return out.stdout

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture(params=["sqlite", "postgresql"])
def host(request: pytest.FixtureRequest, tmp_path: Path, unique_name: str) -> Iterator[Host]:
    if request.param == "sqlite":
        store = f"sqlite:///{tmp_path / 'e2e.db'}"
    else:
        store = f"{request.getfixturevalue('postgres_url')}?prefix={unique_name}_"
    h = Host(store, tmp_path)
    h.cli("install")
    try:
        yield h
    finally:
        h.stop_all()
        if request.param == "postgresql":
            from squidie_backends.sql import uninstall

            uninstall(store)


def worker_args(name: str) -> list[str]:
    return ["worker", "--name", name, "--concurrency", "2", "--lease-for", "3",
            "--heartbeat", "0.5", "--poll", "0.02", "--max-poll", "0.2", "--grace", "15"]


def test_workers_and_schedulers_survive_kills_and_lose_nothing(host: Host) -> None:
    engine = Squidie.from_url(host.store, workflows=WORKFLOWS)
    started: list[str] = []
    for flow, count in ((app_flows.Slow, 4), (app_flows.Chain, 40), (app_flows.Flaky, 5),
                        (app_flows.Sleepy, 5), (app_flows.Gate, 3), (app_flows.Parent, 3)):
        started += [engine.start(flow).run_id for _ in range(count)]
    # w0 starts alone: the slow runs were started first, so it claims one of them.
    w0 = host.spawn("w0", *worker_args("w0"))

    # SIGKILL w0 while it holds a slow step's lease (it is mid-step: the step sleeps).
    def slow_claimed_by_w0() -> str | None:
        for run_id in started[:4]:
            for rec in engine.store.dispatches(run_id):
                if rec.state == "claimed" and (rec.owner_id or "").startswith("w0:"):
                    return rec.dispatch.key
        return None

    killed_key = until(slow_claimed_by_w0, 60, "w0 to claim a slow step")
    w0.send_signal(signal.SIGKILL)
    w0.wait(10)
    w1 = host.spawn("w1", *worker_args("w1"))
    host.spawn("w2", *worker_args("w2"))
    host.spawn("s0", "scheduler", "--tick", "0.2", "--misfire", "skip")
    host.spawn("s1", "scheduler", "--tick", "0.2", "--misfire", "skip")
    # SIGTERM w1 once it is working: it finishes its running steps and exits cleanly.
    until(lambda: ": ok" in host.log("w1"), 60, "w1 to commit a step")
    w1.send_signal(signal.SIGTERM)
    assert w1.wait(30) == 0, host.log("w1")
    assert "received SIGTERM" in host.log("w1")

    # Approve every gate through the CLI once it waits for an operator.
    gates = [r for r in started if engine.load(r).workflow == "Gate"]
    for run_id in gates:
        until(lambda r=run_id: engine.load(r).status == "paused", 60, "a gate to park")
        assert "approve" in host.cli("approve", run_id, "--actor", "ops")

    # Let the cron trigger fire for a while, then stop the schedulers.
    until(lambda: len(engine.list_runs(workflow="Ticker", limit=100).items) >= 4, 60,
          "four cron windows")
    for name in ("s0", "s1"):
        host.procs[name].send_signal(signal.SIGTERM)
        assert host.procs[name].wait(30) == 0, host.log(name)

    def everything_ended() -> bool:
        rows = engine.list_runs(limit=1000).items
        return all(r.status == "completed" for r in rows)

    until(everything_ended, 120, "every run to complete")
    host.procs["w2"].send_signal(signal.SIGTERM)
    assert host.procs["w2"].wait(30) == 0, host.log("w2")

    rows = engine.list_runs(limit=1000).items
    assert {r.status for r in rows} == {"completed"}
    children = [r for r in rows if r.parent_run_id]
    assert len(children) == 3 * 2
    for row in rows:
        facts = engine.store.read(row.run_id)
        done = Counter((f.body["step"], f.body["attempt"]) for f in facts
                       if f.type == "attempt_succeeded")
        assert all(n == 1 for n in done.values()), (row.run_id, done)
        steps = Counter(step for step, _ in done)
        assert all(n == 1 for n in steps.values()), (row.run_id, steps)
        assert sum(f.type == "run_completed" for f in facts) == 1
    # The killed worker's attempt was delivered again and committed by someone else.
    record = next(r for r in engine.store.dispatches(killed_key.split(":")[0])
                  if r.dispatch.key == killed_key)
    assert record.deliveries >= 2 and record.state == "completed"
    owners = [f.body["owner"] for f in engine.store.read(killed_key.split(":")[0])
              if f.type == "attempt_started"]
    assert owners and not owners[0].startswith("w0:")
    # Every cron window started exactly one run, and the windows leave no gap.
    ticks = engine.list_runs(workflow="Ticker", limit=1000).items
    windows = sorted(tuple(engine.inspect_run(t.run_id)["context"]["schedule"]["window"])
                     for t in ticks)
    assert len(windows) == len(set(windows)) == len(ticks)
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert start == end, windows
    assert all((datetime.fromisoformat(e) - datetime.fromisoformat(s)).total_seconds() == 2
               for s, e in windows)
    engine.close()
