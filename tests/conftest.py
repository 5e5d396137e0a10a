"""Shared test configuration.

- Makes the documentation examples (``docs/examples``) and ``tests/_shared/_helpers.py``
  importable.
- Provides the real services every backend test uses. A service that cannot be reached
  fails the test with how to start it: tests never skip a backend (in CI a missing
  service is a failure, and on a development machine the services run too).
- ``unique_name`` gives each test its own table prefix / key namespace, so tests share
  one server without seeing each other's data.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
# Not tests/ itself: its conformance/ directory would shadow the conformance package.
for _path in (EXAMPLES, ROOT / "tests" / "_shared"):  # the examples, and _helpers.py
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

POSTGRES_URL = os.environ.get(
    "SQUIDIE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("SQUIDIE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("SQUIDIE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

_START = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "MariaDB": "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    "Redis": "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' "
             "--appendonly no",
}


def require_service(name: str, host: str, port: int) -> None:
    """Fail (never skip) when a service the test needs is not listening."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        pytest.fail(
            f"{name} is required at {host}:{port} and is not reachable ({exc}); "
            f"start it with: {_START[name]}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL test database URL (server must be up)."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """The MariaDB/MySQL test database URL (server must be up)."""
    require_service("MariaDB", "127.0.0.1", 3306)
    return MYSQL_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis test server URL (server must be up)."""
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
def unique_name() -> str:
    """A short name unique to this test (table prefix, key namespace)."""
    return "t" + uuid.uuid4().hex[:10]

# The conformance suite's plugin (opt-in, never auto-loaded). pytest only accepts
# `pytest_plugins` in the top-level conftest, so it is declared here rather than in
# tests/conformance/conftest.py; it only acts on conformance cases.
pytest_plugins = ["conformance.pytest_plugin", "pytester"]
