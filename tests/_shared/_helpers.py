"""Helpers every test directory shares (the root conftest puts
``tests/_shared`` on the path).

- ``until``: poll real processes' or servers' state with a deadline. Where time can be
  injected, tests drive a clock instead; this is for what cannot be (subprocesses,
  servers, browsers).
- ``free_port``: a loopback TCP port nobody listens on right now.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

__all__ = ["free_port", "until"]


def until(predicate: Callable[[], Any], timeout: float, what: str, *,
          every: float = 0.02) -> Any:
    """Poll ``predicate`` until it is truthy and return its value; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)  # a polling interval with a deadline, not a synchronisation


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
