"""Peers side by side: each peer's figures next to ours, from its own subprocess.

A peer runs only when its package is installed (``pip install -e '.[bench-peers]'``)
and only on the backends it supports; ``benchmarks._peer_run`` does the work, one
subprocess per (peer, workload), so the peers' dependencies and event loops never meet
Squidie's or each other's.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from typing import Any

from benchmarks._targets import Target

__all__ = ["PEERS", "attach", "missing"]

#: peer label -> (module to look for, runner name, target names it runs on)
PEERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "DBOS": ("dbos", "dbos", ("postgresql", "sqlite")),
    "PgQueuer": ("pgqueuer", "pgqueuer", ("postgresql",)),
    "Procrastinate": ("procrastinate", "procrastinate", ("postgresql",)),
    "SAQ": ("saq", "saq", ("redis",)),
}

#: our row's figure -> (workload, key of the peer's result)
FIGURES = {
    "W1 runs/s e2e, 1 worker process": ("w1", "e2e"),
    "W1 start": ("w1", "start"),
    "W1 drain, 1 worker": ("w1", "drain"),
    "W2 start": ("w2", "start"),
    "W2 drain, 1 worker": ("w2", "drain"),
    "W3 p50": ("w3", "p50_ms"),
    "W3 p99": ("w3", "p99_ms"),
}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def missing() -> list[str]:
    """The peers that are not installed, and how to install them."""
    return [f"{label} (pip install -e '.[bench-peers]')"
            for label, (module, _, _) in PEERS.items() if not _installed(module)]


def run_peer(runner: str, backend: str, workload: str, n: int,
             timeout: float = 900) -> dict[str, float] | None:
    """One peer on one workload in a subprocess; its figures, or ``None`` if it failed."""
    cmd = [sys.executable, "-m", "benchmarks._peer_run", runner, backend, workload, str(n)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        print(f"  peer {runner} {workload}: timed out", file=sys.stderr, flush=True)
        return None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"  peer {runner} {workload}: failed: {tail}", file=sys.stderr, flush=True)
        return None
    result: dict[str, float] = json.loads(lines[-1])
    return result


def attach(target: Target, rows: list[Any], workloads: list[str], sizes: Any,
           directory: str, names: list[str]) -> list[str]:
    """Run every installed peer that supports ``target`` and fill its column in ``rows``.

    Returns:
        The peer columns of the table so far (``names`` plus any new ones).
    """
    names = list(names)
    counts = {"w1": sizes.w1, "w2": sizes.w2, "w3": sizes.w3}
    for label, (module, runner, backends) in PEERS.items():
        if target.name not in backends or not _installed(module):
            continue
        if label not in names:
            names.append(label)
        results: dict[str, dict[str, float] | None] = {}
        for workload in ("w1", "w2", "w3"):
            if workload in workloads:
                results[workload] = run_peer(runner, target.kind, workload, counts[workload])
                print(f"  peer {label} {workload}: {results[workload]}", file=sys.stderr,
                      flush=True)
        for row in rows:
            wanted = FIGURES.get(row.figure)
            if wanted and wanted[0] in results:
                found = results[wanted[0]]
                row.peers[label] = found.get(wanted[1]) if found else None
    return names
