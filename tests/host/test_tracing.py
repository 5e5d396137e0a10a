"""One trace per run across processes: a run started by the CLI and executed by two
worker processes (one attempt each) is one trace, every attempt a child of its root."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from _helpers import until

HERE = Path(__file__).resolve().parent
SQUIDIE = str(Path(sys.executable).parent / "squidie")




def spans(base: Path) -> list[dict[str, Any]]:
    found = []
    for path in base.parent.glob(base.name + ".*"):
        found += [json.loads(line) for line in path.read_text().splitlines() if line]
    return found


def test_attempts_on_two_workers_continue_the_run_trace(tmp_path: Path) -> None:
    base = tmp_path / "spans"
    env = {**os.environ, "SQUIDIE_STORE": f"sqlite:///{tmp_path / 'tr.db'}",
           "SQUIDIE_APP": "otel_app", "SQUIDIE_TEST_SPANS": str(base),
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}

    def cli(*args: str) -> Any:
        out = subprocess.run([SQUIDIE, "--json", *args], env=env, capture_output=True,
                             text=True, timeout=60, check=True)
        return json.loads(out.stdout)

    run_id = cli("start", "Flaky")["run_id"]
    worker = ["worker", "--concurrency", "1", "--poll", "0.02", "--max-poll", "0.1"]
    first = subprocess.Popen([SQUIDIE, *worker, "--name", "A"], env=env)
    until(lambda: any(s["name"] == "squidie.execute_next" for s in spans(base)), 60,
          "the first attempt")
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    second = subprocess.Popen([SQUIDIE, *worker, "--name", "B"], env=env)
    try:
        until(lambda: cli("runs", "show", run_id)["status"] == "completed", 60,
              "the run to complete")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    found = [s for s in spans(base) if s["attributes"].get("squidie.run_id") == run_id]
    root = next(s for s in found if s["name"] == "squidie.start")
    attempts = sorted((s for s in found if s["name"] == "squidie.execute_next"),
                      key=lambda s: s["attributes"]["squidie.attempt"])
    assert [a["attributes"]["squidie.owner"][0] for a in attempts] == ["A", "B"]
    assert len({a["pid"] for a in attempts} | {root["pid"]}) == 3  # three processes
    assert {a["trace_id"] for a in attempts} == {root["trace_id"]}
    assert {a["parent_span_id"] for a in attempts} == {root["span_id"]}
    assert [a["attributes"]["squidie.outcome"] for a in attempts] == ["retry", "ok"]
    step_spans = [s for s in spans(base) if s["name"] == "squidie.step"]
    assert {s["parent_span_id"] for s in step_spans} == {a["span_id"] for a in attempts}


def test_worker_serves_prometheus_metrics(tmp_path: Path) -> None:
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "SQUIDIE_STORE": f"sqlite:///{tmp_path / 'm.db'}",
           "SQUIDIE_APP": "app_flows",
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([SQUIDIE, "start", "Chain"], env=env, check=True, capture_output=True)
    worker = subprocess.Popen([SQUIDIE, "worker", "--concurrency", "1", "--poll", "0.02",
                               "--metrics-port", str(port)], env=env)
    try:
        def scrape() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                            timeout=2) as response:
                    return response.read().decode()
            except OSError:
                return ""

        # The exporter may add scope labels; match the ones Squidie sets.
        done = re.compile(r'squidie_commits_total\{[^}]*outcome="ok"[^}]*workflow="Chain"'
                          r'[^}]*\} 3\.0')
        text = until(lambda: (t := scrape()) and done.search(t) and t, 60,
                     "the three committed steps in the metrics")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    assert "squidie_step_duration_seconds_bucket" in text
    assert 'squidie_queue_depth' in text
