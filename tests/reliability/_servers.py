"""Servers the fault campaigns own, and server-side faults aimed only at our connections.

- ``OwnPostgres``: a private PostgreSQL cluster (``initdb``/``pg_ctl`` from
  ``/usr/lib/postgresql/*/bin``) in a temporary directory on a free port, run as the
  ``postgres`` user when the tests run as root (``initdb`` refuses root). It can be
  crashed (``pg_ctl stop -m immediate``: no checkpoint, WAL recovery on the next start)
  and started again on the same port and data directory.
- ``terminate_postgres``: ``pg_terminate_backend`` of the connections whose
  ``application_name`` is ours; other sessions on the shared server are never touched.
- ``kill_mariadb``: ``KILL`` of the MariaDB connections opened by our own processes,
  found through their TCP client ports in ``/proc`` (nothing else on the shared server is
  touched).
- The Redis server helper is ``tests/backends/redis/_redis_server.py``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from _helpers import free_port


class OwnPostgres:
    """A private PostgreSQL server (see the module docstring)."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            pytest.fail("initdb is required (apt-get install postgresql)", pytrace=False)
        self.bin = Path(bins[-1]).parent
        # Not under pytest's tmp_path: its parents are private to root, and the server
        # runs as ``postgres``.
        self.directory = Path(tempfile.mkdtemp(prefix="squidie-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(self.directory, self.user)

    def _run(self, *args: str) -> None:
        cmd = [*(["runuser", "-u", self.user, "--"] if self.user else []), *args]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {out.stdout}{out.stderr}")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> OwnPostgres:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "-A", "trust", "-E", "UTF8", "--no-sync")
        return self

    def start(self) -> OwnPostgres:
        """Start (or restart) and wait until it accepts connections (``pg_ctl -w``)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.directory / "server.log"), "-w", "-t", "60", "-o",
                  f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
                  "-c fsync=on -c synchronous_commit=on", "start")
        return self

    def crash(self) -> None:
        """Stop at once, as a crash would: no shutdown checkpoint."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                  "stop")

    def stop(self) -> None:
        """Stop (if running) and remove the data directory."""
        with contextlib.suppress(RuntimeError):
            self.crash()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        path = self.directory / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def terminate_postgres(admin_url: str, application_name: str) -> int:
    """``pg_terminate_backend`` every session named ``application_name``; how many."""
    import psycopg

    with psycopg.connect(admin_url.replace("postgresql://", "postgresql://", 1),
                         autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,)).fetchall()
    return sum(1 for (ok,) in rows if ok)


def _client_ports(pids: list[int], server_port: int) -> set[int]:
    """Local TCP ports of ``pids``' connections to ``server_port`` on loopback."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote, inode = parts[1], parts[2], parts[9]
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == server_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def kill_mariadb(pids: list[int], host: str = "127.0.0.1", port: int = 3306) -> int:
    """``KILL`` the MariaDB connections our processes ``pids`` hold; how many."""
    import pymysql

    ports = _client_ports(pids, port)
    if not ports:
        return 0
    conn = pymysql.connect(host=host, port=port, user="root", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ID, HOST FROM information_schema.PROCESSLIST "
                        "WHERE ID <> CONNECTION_ID()")
            victims = [int(i) for i, h in cur.fetchall()
                       if h and ":" in h and int(h.rsplit(":", 1)[1]) in ports]
            killed = 0
            for victim in victims:
                try:
                    cur.execute(f"KILL CONNECTION {victim:d}")
                    killed += 1
                except pymysql.err.OperationalError:
                    pass  # it went away by itself
            return killed
    finally:
        conn.close()


def wait_port_free(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.05)
