"""A private ``redis-server`` on a free port, for tests that restart or reconfigure one.

Readiness is polled with a deadline (``PING`` until it answers), never a bare sleep.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from _helpers import free_port


class RedisServer:
    """One ``redis-server`` process with its data directory.

    Args:
        directory: Where the server keeps its files (AOF, RDB, log).
        args: Extra server arguments (``--appendonly yes`` ...).
    """

    def __init__(self, directory: Path, *args: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is required on PATH (apt-get install redis-server)",
                        pytrace=False)
        self.binary = binary
        self.directory = directory
        self.args = args
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start (or restart, same port and directory) and wait until it answers."""
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--save", "", "--logfile", "server.log",
             *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        password = self._password()
        while True:
            try:
                client = redis.Redis(port=self.port, password=password, socket_timeout=1)
                client.ping()
                client.close()
                return self
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.exceptions.ConnectionError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited: {self.log()}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server did not answer: {self.log()}")
            time.sleep(0.02)  # polling a real process with a deadline

    def _password(self) -> str | None:
        args = list(self.args)
        return args[args.index("--requirepass") + 1] if "--requirepass" in args else None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final fsync (a crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """Kill the server (tests never need a graceful shutdown)."""
        self.kill()

    def log(self) -> str:
        path = self.directory / "server.log"
        return path.read_text()[-2000:] if path.exists() else ""
