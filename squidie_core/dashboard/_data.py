"""What the pages and the JSON API show, computed once for both.

Every read goes through the engine's public API (``list_runs``, ``inspect_run``,
``explain_run``, ``inspect_run_graph``, ``history``, ``dead_letters``) and the store's
``depth``/``run_counts`` (the latter only where the store has it). ``hide_data`` removes
payloads, outputs and metadata for viewers who are not operators.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from squidie_core._runtime import Squidie, iso
from squidie_core.storage import RUN_STATUSES, DispatchRecord, QueueDepth, RunEntry

__all__ = ["HIDDEN", "HIDDEN_KEYS", "Sampler", "dead_letter_row", "hide_data", "queue_depths",
           "run_row", "status_counts"]

log = logging.getLogger("squidie.dashboard")

#: Keys whose values only operators see (payloads, step outputs, contexts, metadata).
HIDDEN_KEYS = frozenset({"payload", "context", "output", "outputs", "metadata", "traceback",
                         "decision"})
#: What a hidden value is replaced with.
HIDDEN = "[hidden: operator only]"


def hide_data(value: Any) -> Any:
    """Return ``value`` with every ``HIDDEN_KEYS`` entry replaced by ``HIDDEN`` (recursive)."""
    if isinstance(value, Mapping):
        return {k: (HIDDEN if k in HIDDEN_KEYS and v not in (None, {}, [])
                    else hide_data(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [hide_data(v) for v in value]
    return value


def run_row(entry: RunEntry) -> dict[str, Any]:
    """A run index row as JSON-ready data."""
    return {
        "run_id": entry.run_id, "workflow": entry.workflow, "trigger": entry.trigger,
        "status": entry.status, "queue": entry.queue, "created_at": iso(entry.created_at),
        "updated_at": iso(entry.updated_at), "last_seq": entry.last_seq,
        "parent_run_id": entry.parent_run_id,
    }


def dead_letter_row(record: DispatchRecord) -> dict[str, Any]:
    """A dead-lettered dispatch as JSON-ready data."""
    d = record.dispatch
    return {
        "key": d.key, "run_id": d.run_id, "workflow": d.workflow, "step": d.step,
        "attempt": d.attempt, "queue": d.queue, "deliveries": record.deliveries,
        "reason": record.reason, "visible_at": iso(record.visible_at),
    }


def status_counts(engine: Squidie) -> dict[str, Any] | None:
    """Runs per status and per workflow from the store's ``run_counts`` (``None`` if absent).

    Only stores with an aggregate over their run index offer ``run_counts``; counting by
    paging through every run would make the page as slow as the store is large.
    """
    counts_fn = getattr(engine.store, "run_counts", None)
    if counts_fn is None:
        return None
    pairs: dict[tuple[str, str], int] = dict(counts_fn())
    by_status = dict.fromkeys(RUN_STATUSES, 0)
    by_workflow: dict[str, dict[str, int]] = {}
    for (workflow, status), n in pairs.items():
        by_status[status] = by_status.get(status, 0) + n
        by_workflow.setdefault(workflow, {})[status] = n
    return {"by_status": by_status, "by_workflow": dict(sorted(by_workflow.items())),
            "total": sum(by_status.values())}


def queue_depths(engine: Squidie) -> dict[str, QueueDepth]:
    """Depth of every queue the store knows, plus the registered workflows' queues."""
    depth = dict(engine.store.depth())
    missing = [q for q in engine.queues() if q not in depth]
    if missing:
        depth.update(engine.store.depth(missing))
    return dict(sorted(depth.items()))


class Sampler:
    """Queue depth and status counts over time, kept in the dashboard's memory.

    ``maybe_sample()`` takes a sample when the last one is older than ``every`` seconds
    (the stats page and ``/api/stats`` call it, so a viewer watching accumulates a
    series); the standalone server also samples in a background thread. ``keep`` bounds
    the series. The store is never asked for history: the series starts with the process.
    """

    def __init__(self, engine: Squidie, *, every: float = 5.0, keep: int = 720) -> None:
        self.engine = engine
        self.every = every
        self.samples: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> dict[str, Any]:
        """Take one sample now and return it."""
        depth = queue_depths(self.engine)
        counts = status_counts(self.engine)
        sample = {
            "at": iso(self.engine.clock.now()),
            "queues": {q: {k: v for k, v in d.to_dict().items() if k != "oldest_visible_at"}
                       for q, d in sorted(depth.items())},
            "by_status": counts["by_status"] if counts else None,
        }
        with self._lock:
            self.samples.append(sample)
            self._last = time.monotonic()
        return sample

    def maybe_sample(self) -> list[dict[str, Any]]:
        """Sample if the last sample is older than ``every``; return the series."""
        with self._lock:
            due = time.monotonic() - self._last >= self.every
        if due:
            self.sample()
        with self._lock:
            return list(self.samples)

    def start(self) -> None:
        """Sample every ``every`` seconds in a daemon thread until ``stop()``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="squidie-dashboard-sampler",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread (if any)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.maybe_sample()
            except Exception as exc:  # a store hiccup must not kill the sampler
                log.warning("dashboard sampler: %s", exc)
            self._stop.wait(self.every)
