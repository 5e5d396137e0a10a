"""FoundationDB through its in-process simulator: injected cluster faults plus crashing
and stalling workers, checked by ``check_history``.

No FoundationDB server or client library can run here (see ``docs/backends.md``), so the
FDB row of the reliability table comes from the simulator: seeded fault injection of the
errors a real cluster produces (1020 ``not_committed``, 1007 ``transaction_too_old``,
1021 ``commit_unknown_result`` with and without the commit landing, 1031 timeouts that
land late, version jumps) while the conformance chaos campaign runs four worker threads
whose steps randomly crash the worker, stall past the lease or fail transiently. Time is
a ``ManualClock``: nothing sleeps.
"""

from __future__ import annotations

from collections import Counter

import pytest
from _harness import record

from conformance import check_history
from conformance._history import RUNS, campaign
from squidie_backends.fdb import open_store
from squidie_core import ManualClock


def fdb_campaign(seed: int) -> dict[str, object]:
    clock = ManualClock()
    store = open_store("fdb+sim://", clock=clock, faults=1.0, seed=seed)
    try:
        seen = campaign(store, clock, seed=seed, cancel=False)
        store.database.cluster.land_pending()  # late landings must not break anything
        runs = [r.run_id for r in store.list_runs(limit=1000).items]
        report = check_history(store, runs)
        report.assert_ok()
        statuses = Counter(r.status for r in store.list_runs(limit=1000).items)
        injected = dict(store.database.faults.injected)
        assert sum(injected.values()) > 0, "the simulator injected no fault"
        return {"runs": len(runs), "completed": statuses.get("completed", 0),
                "double_commits": report.rules().get("one_outcome_per_attempt", 0),
                "lost": len(runs) - sum(statuses.get(s, 0)
                                        for s in ("completed", "failed", "cancelled")),
                "cluster_faults": injected,
                "worker_faults": {"crash": seen["step_crash"], "stall": seen["step_stall"],
                                  "transient": seen["step_retry"]},
                "fenced": seen["lease_lost"]}
    finally:
        store.close()


@pytest.mark.parametrize("seed", [7, 23, 31, 47])
def test_fdb_simulated_faults_lose_nothing(seed: int) -> None:
    figures = fdb_campaign(seed)
    assert figures["runs"] == RUNS and figures["lost"] == 0, figures
    # These seeds exercise every kind of worker fault (a soak seed may miss one).
    assert figures["worker_faults"]["crash"] > 0 and figures["fenced"] > 0, figures  # type: ignore[index]
    record("fdb_sim_faults", "fdb", suite="fast", seed=seed, **figures)


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(100, 140))
def test_fdb_simulated_faults_lose_nothing_soak(seed: int) -> None:
    figures = fdb_campaign(seed)
    assert figures["lost"] == 0, figures
    record("fdb_sim_faults", "fdb", suite="soak", seed=seed, **figures)
