"""A worker process for the multi-process cases: ``python -m conformance._worker TASK``.

``TASK`` is a JSON object. Every task opens the store with
``squidie_core.open_store(task["url"])`` (so the store runs on its own real clock, as a
deployed worker would), does its work, and prints one JSON object on stdout. Tasks:

``drain``
    Claim and complete dispatches from ``queue`` until the queue shows nothing visible,
    scheduled or claimed. Prints ``{"completed": [[key, fence], ...]}``.
``append_race``
    For each sequence ``0 .. rounds - 1``, try to append one fact after it. Prints
    ``{"won": [seq, ...]}`` (the expected sequences whose append this process landed).
``claim_and_die``
    Poll until a dispatch of ``queue`` can be claimed (up to ``deadline`` seconds), print
    ``{"key", "fence", "delivery"}`` and exit with status 3 without settling anything:
    a worker killed mid-step.

Tasks that take part in a race first wait for the file ``go`` (if given) to exist, so
every process starts the race together. Waiting is polling with a deadline, never an
open-ended sleep.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from squidie_core import open_store
from squidie_core.errors import AppendConflict, LeaseLostError
from squidie_core.storage import Fact, Store

__all__ = ["main"]

_POLL = 0.01


def _wait_for(path: str | None, deadline: float) -> None:
    if path is None:
        return
    pause = threading.Event()
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"start signal {path} never appeared")
        pause.wait(_POLL)


def _drain(store: Store, task: dict[str, Any], deadline: float) -> dict[str, Any]:
    queue = task["queue"]
    completed: list[list[Any]] = []
    pause = threading.Event()
    while time.monotonic() < deadline:
        leases = store.claim(task["owner"], lease_for=task["lease_for"], limit=1,
                             queues=[queue])
        if not leases:
            depth = store.depth([queue])[queue]
            if depth.visible == depth.scheduled == depth.claimed == 0:
                return {"completed": completed}
            pause.wait(_POLL)  # others still hold leases: poll again shortly
            continue
        lease = leases[0]
        try:
            store.complete(lease)
        except LeaseLostError:
            continue
        completed.append([lease.key, lease.fence])
    raise TimeoutError("the queue never drained")


def _append_race(store: Store, task: dict[str, Any], deadline: float) -> dict[str, Any]:
    won: list[int] = []
    for seq in range(task["rounds"]):
        if time.monotonic() > deadline:
            raise TimeoutError("append race did not finish")
        fact = Fact(seq + 1, "note", 0.0, {"writer": task["owner"], "round": seq})
        try:
            store.append(task["run_id"], [fact], expected_seq=seq)
        except AppendConflict:
            continue
        won.append(seq)
    return {"won": won}


def _claim_and_die(store: Store, task: dict[str, Any], deadline: float) -> dict[str, Any]:
    pause = threading.Event()
    while time.monotonic() < deadline:
        leases = store.claim(task["owner"], lease_for=task["lease_for"], limit=1,
                             queues=[task["queue"]])
        if leases:
            lease = leases[0]
            print(json.dumps({"key": lease.key, "fence": lease.fence,
                              "delivery": lease.delivery}), flush=True)
            os._exit(3)  # killed mid-step: no settle, no close, no cleanup
        pause.wait(_POLL)
    return {"key": None}


TASKS = {"drain": _drain, "append_race": _append_race, "claim_and_die": _claim_and_die}


def main(argv: list[str] | None = None) -> int:
    """Run one task given as a JSON argument; print its JSON result."""
    args = sys.argv[1:] if argv is None else argv
    task = json.loads(args[0])
    deadline = time.monotonic() + float(task.get("deadline", 60))
    store = open_store(task["url"])
    try:
        _wait_for(task.get("go"), deadline)
        result = TASKS[task["task"]](store, task, deadline)
    finally:
        store.close()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
