"""The group commit: ``Squidie.run_leases`` runs claimed steps and commits them together.

Each outcome stays fenced and atomic on its own: a lease lost or a conflict in the group
affects that attempt alone, and what is committed is what one-at-a-time commits would
have written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import _flows as f
import pytest

from squidie_backends.memory import MemoryStore
from squidie_core import COMPLETE, Squidie, Workflow, manual, step, transition
from squidie_core.errors import BackendUnavailable, SquidieError
from squidie_core.storage import Commit, CommitResult, ManualClock, commit_each


@pytest.fixture(autouse=True)
def _reset() -> None:
    f.reset()


class Recorder:
    """Gives the memory store a ``commit_many`` that records each group's size."""

    def __init__(self, engine: Squidie) -> None:
        self.store = engine.store
        self.groups: list[int] = []
        self.before: Any = None
        engine.store.commit_many = self  # type: ignore[attr-defined]

    def __call__(self, commits: Sequence[Commit]) -> list[CommitResult | SquidieError]:
        self.groups.append(len(commits))
        if self.before is not None:
            self.before(commits)
        return commit_each(self.store, commits)


def engine_with(*workflows: Any) -> tuple[Squidie, ManualClock]:
    clock = ManualClock(1_000.0)
    return Squidie(MemoryStore(clock=clock), workflows=list(workflows)), clock


def claim(engine: Squidie, limit: int = 10) -> list[Any]:
    return engine.store.claim("w:0", lease_for=30, limit=limit, queues=["default"])


def test_outcomes_of_one_claim_are_committed_in_one_group() -> None:
    engine, _ = engine_with(f.Three)
    recorder = Recorder(engine)
    runs = [engine.start(f.Three).run_id for _ in range(5)]
    results = engine.run_leases(claim(engine), lease_for=30, heartbeat_interval=0)
    assert [r.outcome for r in results] == ["ok"] * 5
    assert recorder.groups == [5]
    # Each run's next step is scheduled, exactly as one-at-a-time commits would.
    assert sorted(lease.dispatch.step for lease in claim(engine)) == ["two"] * 5
    one_at_a_time, _ = engine_with(f.Three)
    alone = one_at_a_time.start(f.Three).run_id
    one_at_a_time.execute_next(owner_id="w:0", heartbeat_interval=0)
    expected = [x["type"] for x in one_at_a_time.history(alone)]
    assert expected[-4:] == ["attempt_started", "attempt_succeeded", "transition_taken",
                             "dispatch_scheduled"]
    for run_id in runs:
        assert [x["type"] for x in engine.history(run_id)] == expected


def test_hold_bounds_how_long_an_outcome_waits_for_its_group() -> None:
    engine, _ = engine_with(f.Three)
    recorder = Recorder(engine)
    for _ in range(3):
        engine.start(f.Three)
    results = engine.run_leases(claim(engine), lease_for=30, heartbeat_interval=0, hold=0.0)
    assert [r.outcome for r in results] == ["ok"] * 3
    assert recorder.groups == [1, 1, 1]  # committed before each next step starts


def test_a_lease_lost_in_the_group_loses_only_its_own_outcome() -> None:
    engine, _ = engine_with(f.Three)
    recorder = Recorder(engine)
    runs = [engine.start(f.Three).run_id for _ in range(3)]

    def cancel_the_second(commits: Sequence[Commit]) -> None:
        # An operator cancels a run while its step's outcome waits in the group: the
        # cancel fails the run's claimed dispatch, so that lease can no longer commit.
        engine.cancel(runs[1], actor="ops")

    recorder.before = cancel_the_second
    results = engine.run_leases(claim(engine), lease_for=30, heartbeat_interval=0)
    assert {r.run_id: r.outcome for r in results} == {
        runs[0]: "ok", runs[1]: "lease_lost", runs[2]: "ok"}
    assert [engine.inspect_run(r)["status"] for r in runs] == ["running", "cancelled",
                                                               "running"]
    assert sorted(lease.dispatch.run_id for lease in claim(engine)) == sorted(
        [runs[0], runs[2]])


def test_a_parallel_branch_in_the_same_group_re_plans_after_its_conflict() -> None:
    engine, _ = engine_with(f.FanOut)
    recorder = Recorder(engine)
    run = engine.start(f.FanOut)
    (first,) = engine.run_leases(claim(engine), lease_for=30, heartbeat_interval=0)
    assert first.outcome == "ok"
    branches = claim(engine)
    assert sorted(lease.dispatch.step for lease in branches) == ["left", "right"]
    results = engine.run_leases(branches, lease_for=30, heartbeat_interval=0)
    # Both commits expected the same journal head: the second conflicted, re-read the
    # run and committed on top of the first.
    assert [r.outcome for r in results] == ["ok", "ok"]
    assert recorder.groups == [2]  # a batch of one is committed alone
    (join,) = claim(engine)
    assert join.dispatch.step == "join"
    engine.run_leases([join], lease_for=30, heartbeat_interval=0)
    assert engine.inspect_run(run.run_id)["status"] == "completed"


def test_a_backend_failing_the_group_commit_commits_nothing_and_loses_nothing() -> None:
    engine, clock = engine_with(f.Three)
    recorder = Recorder(engine)
    runs = [engine.start(f.Three).run_id for _ in range(2)]

    def down(commits: Sequence[Commit]) -> None:
        raise BackendUnavailable("memory", "the store went away")

    recorder.before = down
    with pytest.raises(BackendUnavailable):
        engine.run_leases(claim(engine), lease_for=30, heartbeat_interval=0)
    recorder.before = None
    # Nothing was committed; once the leases expire the attempts run again.
    assert claim(engine) == []
    clock.advance(31)
    results = engine.run_leases(claim(engine), lease_for=30, heartbeat_interval=0)
    assert [(r.step, r.outcome) for r in results] == [("one", "ok"), ("one", "ok")]
    for run_id in runs:  # one outcome recorded, by the second delivery
        outcomes = [x for x in engine.history(run_id) if x["type"] == "attempt_succeeded"]
        assert len(outcomes) == 1


def test_a_stop_puts_the_unstarted_leases_back_and_commits_what_ran() -> None:
    engine, _ = engine_with(f.Three)
    recorder = Recorder(engine)
    for _ in range(3):
        engine.start(f.Three)
    answers = iter([False])
    results = engine.run_leases(claim(engine), lease_for=30, heartbeat_interval=0,
                                stop=lambda: next(answers, True))
    assert [r.outcome for r in results] == ["ok"]
    assert recorder.groups == [1]
    steps = sorted(lease.dispatch.step for lease in claim(engine))
    assert steps == ["one", "one", "two"]


CLOCK = ManualClock(1_000.0)
steps_run: list[str] = []
take_over: list[bool] = []


def slow(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    steps_run.append(ctx.run_id)
    CLOCK.advance(31 if take_over else 25)  # the step takes most of a 30 s lease
    if take_over:  # meanwhile the leases expire and another worker takes the attempts
        CLOCK.advance(1)
    return {}


class Slow(Workflow):
    go = manual()
    only = step(slow)
    transitions = [transition(only, on="ok", to=COMPLETE)]


@pytest.mark.parametrize("taken_over", [False, True])
def test_a_lease_that_waited_in_its_batch_is_checked_before_its_step_runs(
    taken_over: bool,
) -> None:
    steps_run.clear()
    take_over[:] = [True] if taken_over else []
    engine = Squidie(MemoryStore(clock=CLOCK), workflows=[Slow])
    for _ in range(2):
        engine.start(Slow)
    leases = engine.store.claim("w:0", lease_for=30, limit=2, queues=["default"])
    if taken_over:
        original = engine.store.heartbeat

        def heartbeat(lease: Any, *, lease_for: float) -> Any:
            engine.store.claim("w:other", lease_for=30, limit=5, queues=["default"])
            return original(lease, lease_for=lease_for)

        engine.store.heartbeat = heartbeat  # type: ignore[method-assign]
    # hold=0: the first outcome commits before the second step starts (its own lease is
    # not heartbeated here and would expire during the second step).
    results = engine.run_leases(leases, lease_for=30, heartbeat_interval=0, hold=0.0)
    if taken_over:
        # The second lease expired while the first step ran and is held elsewhere now:
        # its step is not run here at all.
        assert [r.outcome for r in results] == ["lease_lost", "lease_lost"]
        assert steps_run == [leases[0].dispatch.run_id]
    else:
        # It was heartbeated before its step started, so both outcomes commit.
        assert [r.outcome for r in results] == ["ok", "ok"]
        assert steps_run == [lease.dispatch.run_id for lease in leases]
