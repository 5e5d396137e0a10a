"""Every ``squidie`` command through the real console script, on an embedded SQLite store.

Each call is a fresh process, as an operator's would be; the store outlives them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
SQUIDIE = str(Path(sys.executable).parent / "squidie")


class Cli:
    """Runs ``squidie`` with a store and the test workflows."""

    def __init__(self, store: str, tmp: Path) -> None:
        self.store = store
        self.tmp = tmp
        self.env = {**os.environ, "SQUIDIE_STORE": store, "SQUIDIE_APP": "app_flows",
                    "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}

    def run(self, *args: str, code: int = 0, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([SQUIDIE, *args], capture_output=True, text=True, timeout=120,
                             env=env or self.env, check=False)
        assert out.returncode == code, (args, out.returncode, out.stdout, out.stderr)
        return out

    def json(self, *args: str) -> Any:
        return json.loads(self.run("--json", *args).stdout)

    def error(self, *args: str, code: int = 1) -> str:
        out = self.run(*args, code=code)
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, out.stderr  # one clear line, never a traceback
        assert "Traceback" not in out.stderr
        return lines[0]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(f"sqlite:///{tmp_path / 'squidie.db'}", tmp_path)


def test_backends_lists_every_adapter_with_its_distribution(cli: Cli) -> None:
    out = cli.run("backends").stdout
    for name in ("memory", "sqlite", "postgresql", "mysql", "redis", "fdb"):
        assert name in out
    data = cli.json("backends")
    names = {b["name"]: b for b in data["backends"]}
    assert names["sqlite"]["from"] == "squidie"
    assert names["redis"]["driver"] == "ok"


def test_install_is_idempotent_and_doctor_is_clean(cli: Cli) -> None:
    assert "schema at version 1" in cli.run("install").stdout
    assert "schema at version 1" in cli.run("install").stdout
    findings = cli.json("doctor")
    assert {f["check"] for f in findings} >= {"reachable", "schema", "workflows"}
    assert all(f["level"] == "ok" for f in findings)
    memory = cli.run("--store", "memory://", "install").stdout
    assert "nothing to install" in memory


def test_start_inspect_and_operate_a_run(cli: Cli) -> None:
    started = cli.json("start", "Gate", "go")
    run_id = started["run_id"]
    assert started["created"] is True
    again = cli.json("start", "Gate", "go", "--idempotency-key", "k1")
    assert cli.json("start", "Gate", "go", "--idempotency-key", "k1")["run_id"] == again["run_id"]
    listed = cli.json("runs", "list", "--workflow", "Gate")
    assert {r["run_id"] for r in listed["runs"]} == {run_id, again["run_id"]}
    table = cli.run("runs", "list").stdout
    assert "RUN_ID" in table and run_id in table
    assert cli.json("runs", "explain", run_id)["reason"] == "attempt_visible"
    # A wrong-state command is one clear line and exit 1; nothing changes.
    line = cli.error("approve", run_id, "--actor", "ops")
    assert "InvalidTransitionError" in line and "approve" in line
    # Run the first step in-process on the same store, then approve through the CLI.
    from squidie_core import Squidie

    sys.path.insert(0, str(HERE))
    import app_flows

    engine = Squidie.from_url(cli.store, workflows=[app_flows.Gate])
    assert engine.execute_next(owner_id="t", heartbeat_interval=0) is not None
    assert cli.json("runs", "explain", run_id)["reason"] == "manual_intervention_required"
    approved = cli.json("approve", run_id, "--actor", "ops", "--comment", "fine",
                        "--metadata", '{"ticket": 1, "password": "x"}')
    assert approved["command"] == "approve" and approved["duplicate"] is False
    while engine.execute_next(owner_id="t", heartbeat_interval=0):
        pass
    engine.close()
    shown = cli.json("runs", "show", run_id, "--history")
    assert shown["status"] == "completed"
    assert shown["context"]["approval"]["metadata"] == {"ticket": 1, "password": "[REDACTED]"}
    assert [c["command"] for c in shown["commands"]] == ["start", "approve"]
    graph = cli.json("runs", "graph", run_id)
    assert {e["id"]: e["status"] for e in graph["edges"]}["council:ok:proceed"] == "selected"
    history = cli.run("runs", "history", run_id).stdout
    assert "approval_granted" in history and "run_completed" in history
    replayed = cli.json("replay", run_id, "--actor", "ops")
    assert replayed["run_id"] != run_id
    assert "cancel" in cli.run("cancel", replayed["run_id"], "--actor", "ops").stdout
    line = cli.error("cancel", replayed["run_id"])
    assert "RunTerminalError" in line


def test_reject_resume_and_cancel_without_the_workflow_code(cli: Cli) -> None:
    run_id = cli.json("start", "Chain", "go", "--payload", '{"counter": 5}')["run_id"]
    bare = {**cli.env, "SQUIDIE_APP": ""}
    out = cli.run("--json", "cancel", run_id, "--reason", "no longer needed", env=bare)
    assert json.loads(out.stdout)["status"] == "cancelled"
    line = cli.error("resume", run_id, "--actor", "ops")
    assert "RunTerminalError" in line


def test_bad_input_gets_one_line_and_the_right_exit_code(cli: Cli) -> None:
    assert "malformed JSON" in cli.error("start", "Chain", "go", "--payload", "{not json",
                                         code=2)
    assert "did you mean 'Chain'" in cli.error("start", "Chian", "go")
    line = cli.error("start", "Chain", "go", "--payload", '{"counter": "seven"}')
    assert "PayloadError" in line and "counter: expected an integer" in line
    assert "RunNotFound" in cli.error("runs", "show", "no-such-run")
    assert "RunNotFound" in cli.error("approve", "no-such-run", "--actor", "ops")
    cli.run("runs", "list", "--bogus-option", code=2)
    assert "InvalidArgument" in cli.error("runs", "list", "--status", "sleeping")
    assert "UnknownBackend" in cli.error("--store", "sqlit:///x.db", "runs", "list")
    missing = cli.run("approve", "r1", code=2)  # --actor is required
    assert "--actor" in missing.stderr
    broken = cli.tmp / "broken_app.py"
    broken.write_text("class Oops(:\n")
    env = {**cli.env, "SQUIDIE_APP": "broken_app",
           "PYTHONPATH": os.pathsep.join([str(cli.tmp), cli.env["PYTHONPATH"]])}
    line = cli.run("runs", "list", code=1, env=env).stderr.strip()
    assert line.startswith("error: ImportError: cannot import app module 'broken_app'"), line
    assert "line 1" in line and "Traceback" not in line
    assert "has no attribute 'Nope'" in cli.error("--app", "app_flows:Nope", "runs", "list")
    debug = cli.run("--debug", "runs", "show", "no-such-run", code=1)
    assert "Traceback" in debug.stderr


def test_dead_letters_and_status(cli: Cli) -> None:
    from squidie_core import Squidie

    run_id = cli.json("start", "Chain", "go")["run_id"]
    store_only = Squidie.from_url(cli.store)
    # A worker without the Chain workflow dead-letters its dispatch with the reason.
    store_only.execute_next(owner_id="stranger", queues=["default"], heartbeat_interval=0)
    store_only.close()
    dead = cli.json("dead-letters", "list")["dead_letters"]
    assert [d["dispatch"]["run_id"] for d in dead] == [run_id]
    assert "unknown_workflow" in cli.run("dead-letters", "list").stdout
    status = cli.json("status")
    assert {"workflow": "Chain", "status": "started", "count": 1} in status["runs"]
    assert status["queues"][0]["dead"] == 1
    key = dead[0]["dispatch"]["key"]
    assert "re-drove" in cli.run("dead-letters", "redrive", key).stdout
    after = cli.json("status")
    assert after["queues"][0]["visible"] == 1 and after["queues"][0]["dead"] == 0
    assert "DispatchNotFound" in cli.error("dead-letters", "redrive", key)


def test_conformance_command_runs_the_suite(cli: Cli) -> None:
    out = cli.run("conformance", "memory://", "-k", "append")
    assert "squidie conformance suite" in out.stdout and "0 failed" in out.stdout
