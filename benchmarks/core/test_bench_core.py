"""Micro-benchmarks of the engine's own hot paths, no backend (``make bench-micro``).

Folding a finished W1 run's journal into its state (what a load without a checkpoint
costs), encoding a fact (what every stored fact costs) and one W2 job from start to
completion on the in-memory store (the engine's Python per run, the store's next to
nothing). Compare with the backends' ``test_commit`` to split a step's cost.
"""

from __future__ import annotations

import itertools
from typing import Any

from benchmarks._flows import Single, Three
from squidie_core import Squidie, _json
from squidie_core._facts import RunState


def _finished_three() -> tuple[Squidie, str]:
    engine = Squidie.from_url("memory://", workflows=[Three, Single])
    run = engine.start(Three, "go", {"n": 0})
    while engine.execute_next(owner_id="bench", heartbeat_interval=0) is not None:
        pass
    assert engine.load(run.run_id).status == "completed"
    return engine, run.run_id


def test_fold_a_three_step_journal(benchmark: Any) -> None:
    engine, run_id = _finished_three()
    facts = engine.store.read(run_id)

    def fold() -> RunState:
        state = RunState(run_id)
        for fact in facts:
            state.apply(fact)
        return state

    state = benchmark(fold)
    assert state.status == "completed" and not state.anomalies


def test_encode_a_fact(benchmark: Any) -> None:
    engine, run_id = _finished_three()
    fact = next(f for f in engine.store.read(run_id) if f.type == "attempt_succeeded")
    body = dict(fact.body)
    text = benchmark(_json.dumps, body)
    assert _json.loads(text) == body


def test_a_job_start_to_completion_in_memory(benchmark: Any) -> None:
    engine = Squidie.from_url("memory://", workflows=[Three, Single])
    keys = itertools.count()

    def job() -> None:
        engine.start(Single, "go", {}, idempotency_key=f"j{next(keys)}")
        while engine.execute_next(owner_id="bench", heartbeat_interval=0) is not None:
            pass

    benchmark.pedantic(job, rounds=500, warmup_rounds=20)
