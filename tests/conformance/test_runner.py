"""``python -m conformance STORE_URL``: the whole suite against any URL, with a summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import SUITE_VERSION
from conformance._runner import main, redact_url
from squidie_core._discovery import registry

PLUGIN = '''
from squidie_core.hookspecs import BackendInfo, hookimpl


@hookimpl
def squidie_register_backends():
    return [BackendInfo(name="broken", schemes=("broken",),
                        factory="broken_plugin:open_store")]


def open_store(url, clock=None):
    import broken_stores

    return broken_stores.NoConflictDetection(clock=clock)
'''


def test_the_runner_reports_the_memory_store(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["memory://", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["suite_version"] == SUITE_VERSION
    assert (report["backend"], report["url"]) == ("memory", "memory://")
    assert report["failed"] == report["errors"] == 0
    assert report["not_supported"] == 7
    assert report["not_supported_by_capability"] == {"durable": 2, "multi_process": 5}
    assert report["passed"] >= 150
    assert report["passed"] + report["not_supported"] == report["cases"]
    # Zero skips in the core tier: every case needing no capability ran and passed.
    assert report["core"]["passed"] == report["core"]["cases"] >= 150
    assert len(report["results"]) == report["cases"]
    assert {r["since"] for r in report["results"]} == {"1.0", "1.1", SUITE_VERSION}


def test_the_runner_prints_a_summary_from_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "conformance", "memory://", "-k", "heartbeat or Append"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"squidie conformance suite {SUITE_VERSION} against memory://" in done.stdout
    assert "passed" in done.stdout and "not supported" in done.stdout


def test_an_unknown_scheme_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["memroy://"]) == 2
    assert "did you mean 'memory'" in capsys.readouterr().err


def test_a_broken_store_fails_through_the_runner(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    pytester.makepyfile(
        broken_plugin=PLUGIN,
        broken_stores=(Path(__file__).parent / "broken_stores.py").read_text(),
    )
    pytester.syspathinsert()
    import broken_plugin  # type: ignore[import-not-found]

    registry().register(broken_plugin, name="broken-plugin")
    try:
        status = main(["broken://", "--json", "-k", "Conflict or conflict"])
    finally:
        registry().unregister("broken-plugin")
    report = json.loads(capsys.readouterr().out)
    assert status == 1
    assert report["backend"] == "broken"
    failed = {r["nodeid"].split("::")[-1] for r in report["results"] if r["outcome"] == "failed"}
    assert "test_a_stale_expected_seq_conflicts_and_writes_nothing" in failed
    assert all(r["detail"] for r in report["results"] if r["outcome"] == "failed")


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://app:s3cret@db.example:5432/prod", "postgresql://app:***@db.example:5432/prod"),
    ("redis://:hunter2@cache/0", "redis://:***@cache/0"),
    ("sqlite:////tmp/x-{unique}.db", "sqlite:////tmp/x-{unique}.db"),
    ("memory://", "memory://"),
])
def test_credentials_never_reach_the_output(url: str, shown: str) -> None:
    assert redact_url(url) == shown
