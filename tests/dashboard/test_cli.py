"""``squidie dashboard`` as a user runs it: a real uvicorn process, read-only without a token."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import dash_flows
from _helpers import free_port

from squidie_core import Squidie
from squidie_core._cli import main

HERE = Path(__file__).resolve().parent
SQUIDIE = str(Path(sys.executable).parent / "squidie")




def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def test_dashboard_command_serves_the_store_read_only(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'cli.db'}"
    with Squidie.from_url(store, workflows=dash_flows.WORKFLOWS) as engine:
        run_id = engine.start(dash_flows.Hold, "go", {"label": "secret-label"}).run_id
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SQUIDIE_DASHBOARD_TOKEN"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    log = tmp_path / "dashboard.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [SQUIDIE, "--app", "dash_flows", "dashboard", "--store", store, "--port",
             str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        me = None
        while me is None:
            assert proc.poll() is None, log.read_text()
            try:
                me = _get(f"http://127.0.0.1:{port}/api/me")
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)  # polling for the server to listen
        assert me == {"operator": False, "writable": False,
                      "workflows": ["Hold", "Leaf", "Review"],
                      "actions": ["approve", "reject", "resume", "cancel", "replay"]}
        runs = _get(f"http://127.0.0.1:{port}/api/runs")["runs"]
        assert [r["run_id"] for r in runs] == [run_id]
        detail = _get(f"http://127.0.0.1:{port}/api/runs/{run_id}")
        assert "secret-label" not in json.dumps(detail)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/actions/resume", method="POST",
            data=json.dumps({"run_id": run_id, "actor": "x"}).encode(),
            headers={"content-type": "application/json", "authorization": "Bearer guess"})
        try:
            urllib.request.urlopen(request, timeout=5)
            raise AssertionError("a write was accepted by a read-only dashboard")
        except urllib.error.HTTPError as exc:
            assert exc.code == 403
        assert "read-only (no token)" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()


def test_dashboard_help(capsys: Any) -> None:
    assert main(["dashboard", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--store", "--host", "--port", "--token", "SQUIDIE_DASHBOARD_TOKEN"):
        assert option in out
