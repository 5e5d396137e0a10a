"""Workers and schedulers wait out a backend that is down when they start.

A supervisor often starts them together with the database, or while it restarts; dying at
once would turn a short outage into a crash loop. The retry is bounded and stops early on
SIGTERM.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import free_port

from squidie_core import Squidie
from squidie_core._cli import connect_with_retry
from squidie_core.errors import BackendUnavailable

SQUIDIE = str(Path(sys.executable).parent / "squidie")
HERE = Path(__file__).resolve().parent


class FlakyBackend:
    """Refuses ``failures`` connections, then hands out an engine."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0

    def __call__(self) -> Squidie:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise BackendUnavailable("postgresql", "connection refused")
        return Squidie.from_url("memory://")


def test_a_backend_that_comes_up_is_waited_for_with_backoff(
        caplog: pytest.LogCaptureFixture) -> None:
    backend = FlakyBackend(failures=3)
    sleeps: list[float] = []
    with caplog.at_level(logging.WARNING, logger="squidie.cli"):
        engine = connect_with_retry(backend, timeout=600, sleep=sleeps.append)
    assert isinstance(engine, Squidie)
    engine.close()
    assert backend.attempts == 4
    assert sleeps == sorted(sleeps) and sleeps[0] < sleeps[-1]  # exponential, not a spin
    assert all(0 < s <= 5.0 for s in sleeps)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 3 and all("backend unavailable" in w for w in warnings)


def test_the_wait_is_bounded_and_ends_with_the_backend_error() -> None:
    backend = FlakyBackend(failures=10**6)
    with pytest.raises(BackendUnavailable, match="postgresql is unavailable"):
        connect_with_retry(backend, timeout=0, sleep=lambda s: None)
    assert backend.attempts == 1


def test_a_stop_request_ends_the_wait_quietly() -> None:
    backend = FlakyBackend(failures=10**6)
    sleeps: list[float] = []
    engine = connect_with_retry(backend, timeout=600, sleep=sleeps.append,
                                stop_requested=lambda: len(sleeps) >= 2)
    assert engine is None
    assert backend.attempts == 3


def test_other_errors_are_not_retried() -> None:
    attempts: list[int] = []

    def bad_url() -> Squidie:
        attempts.append(1)
        raise ValueError("unknown store scheme 'postgress'")

    with pytest.raises(ValueError):
        connect_with_retry(bad_url, timeout=600, sleep=lambda s: None)
    assert attempts == [1]


@pytest.mark.parametrize("command", ["worker", "scheduler"])
def test_the_cli_retries_then_fails_with_one_line(command: str) -> None:
    store = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    # The window counts from the first attempt, which includes importing the driver: 3 s
    # leaves a loaded machine room for a second attempt (1 s did not, once in CI).
    out = subprocess.run(
        [SQUIDIE, "--store", store, "--app", "app_flows", command, "--connect-timeout", "3"],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PYTHONPATH": str(HERE), "PATH": str(Path(sys.executable).parent)})
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert "backend unavailable (attempt 1" in out.stderr  # it did retry
    assert lines[-1].startswith("error: BackendUnavailable: postgresql is unavailable")
    assert "Traceback" not in out.stderr
