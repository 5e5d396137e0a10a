"""Benchmarks of the FDB adapter on the in-process simulator (``make bench``).

The figures are *relative*: the simulator is Python in one process, not a FoundationDB
cluster, so runs/s here says how the adapter's transaction count and the simulator's
cost compare with the memory store on the same machine — nothing about a real cluster.

- runs/s through ``squidie_core.Squidie`` (a three-step workflow, start to completion)
  on ``memory://``, ``fdb+sim://`` and ``fdb+sim://`` with fault injection;
- claim contention: 8 threads claiming 2,000 dispatches, with the random snapshot probe
  (the adapter) and with every claimer going for the head of the queue (for contrast).
"""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from squidie_backends.fdb import FDBStore, forget_cluster, open_store
from squidie_core import (
    COMPLETE,
    ManualClock,
    Squidie,
    Step,
    StepContext,
    Workflow,
    field,
    manual,
    step,
    transition,
)
from squidie_core._discovery import open_store as open_any
from squidie_core.storage import Dispatch

RUNS = 100


class Work(Step):
    def run(self, input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
        return {ctx.step: input.get("n", 0)}


class ThreeSteps(Workflow):
    go = manual(n=field(int, default=1))
    a = step(Work)
    b = step(Work)
    c = step(Work)
    transitions = [
        transition(a, on="ok", to=b),
        transition(b, on="ok", to=c),
        transition(c, on="ok", to=COMPLETE),
    ]


def run_batch(url: str, options: dict[str, Any]) -> int:
    clock = ManualClock()
    engine = Squidie(open_any(url, clock=clock, **options), workflows=[ThreeSteps],
                     rng=random.Random(0))
    for i in range(RUNS):
        engine.start(ThreeSteps, "go", {"n": i})
    done = 0
    while engine.execute_next(owner_id="bench", heartbeat_interval=0) is not None:
        done += 1
    assert done == 3 * RUNS
    return RUNS


@pytest.mark.parametrize(("url", "options"), [
    ("memory://", {}),
    ("fdb+sim://", {}),
    ("fdb+sim://", {"faults": 1, "seed": 7}),
], ids=["memory", "fdb-sim", "fdb-sim-faults"])
def test_runs_per_second(benchmark: Any, url: str, options: dict[str, Any]) -> None:
    """Runs per second, start to completion, one worker (relative figure only)."""
    benchmark.pedantic(run_batch, args=(url, options), rounds=5, iterations=1,
                       warmup_rounds=1)
    if benchmark.stats is None:  # --benchmark-disable: run once, nothing measured
        return
    mean = benchmark.stats.stats.mean
    benchmark.extra_info["runs_per_second"] = round(RUNS / mean, 1)
    benchmark.extra_info["note"] = "simulator figure: relative only, not a cluster's"


@pytest.fixture
def interleaved() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(before)


def head_only(store: FDBStore) -> None:
    """Make every claim of ``store`` take the head of the queue (no random probe)."""

    def enter() -> bool:
        with store._claims:
            store._inflight += 1
        return False

    store._enter_claim = enter  # type: ignore[method-assign]
    store._taken_by_others = lambda tr, aimed: False  # type: ignore[method-assign]


def contend(at_head: bool, dispatches: int = 2_000, claimers: int = 8) -> dict[str, float]:
    clock = ManualClock()
    name = f"bench-contention-{at_head}"
    stores = [open_store(f"fdb+sim://?cluster={name}", clock=clock) for _ in range(claimers)]
    if at_head:
        for s in stores:
            head_only(s)
    try:
        stores[0].enqueue([Dispatch(key=f"r:s{i:05d}:1", run_id="r", workflow="w",
                                    step=f"s{i:05d}", attempt=1) for i in range(dispatches)])
        barrier = threading.Barrier(claimers)
        taken: list[str] = []

        def claimer(store: FDBStore) -> None:
            barrier.wait()
            while leases := store.claim("c", lease_for=300):
                for lease in leases:
                    store.complete(lease)
                taken.extend(lease.key for lease in leases)

        threads = [threading.Thread(target=claimer, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(taken) == sorted(set(taken)) and len(taken) == dispatches
        retries = sum(s.stats()["claim"].get("1020", 0) for s in stores)
        return {"conflict_retries": retries, "retries_per_claim": retries / dispatches}
    finally:
        forget_cluster(name)


@pytest.mark.usefixtures("interleaved")
@pytest.mark.parametrize("at_head", [False, True], ids=["random-probe", "head-only"])
def test_claim_contention(benchmark: Any, at_head: bool) -> None:
    """8 claimers, 2,000 dispatches: conflict retries per claim (and the time taken)."""
    result = benchmark.pedantic(contend, args=(at_head,), rounds=1, iterations=1)
    benchmark.extra_info.update(result)
