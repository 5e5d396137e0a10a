"""The history checker finds every rule it claims to check, and nothing in clean runs."""

from __future__ import annotations

import pytest

from conformance import check_history
from conformance._support import dispatch
from conformance._workflows import Approval, FanOut, Sequential
from squidie_core import ManualClock, open_store
from squidie_core.storage import Commit, Fact, RunEntry, Store
from squidie_core.testing import Harness

RUN = "run-1"


@pytest.fixture
def store() -> Store:
    return open_store("memory://", clock=ManualClock())  # type: ignore[no-any-return]


def _row(status: str, last_seq: int) -> RunEntry:
    return RunEntry(RUN, "W", "manual", status, "default", 1.0, 1.0, last_seq)


def _write(store: Store, facts: list[tuple[str, dict[str, object]]], *, status: str = "running",
           enqueue: tuple[str, ...] = ()) -> None:
    """Commit ``facts`` (type, body) for RUN in one go, bypassing the runtime."""
    built = [Fact(i, t, 1.0, body) for i, (t, body) in enumerate(facts, start=1)]
    store.commit(Commit(RUN, 0, built, _row(status, len(built)),
                        enqueue=[dispatch(RUN, s) for s in enqueue]))


def _scheduled(step: str = "s", attempt: int = 1) -> tuple[str, dict[str, object]]:
    return ("dispatch_scheduled", {"step": step, "attempt": attempt,
                                   "key": f"{RUN}:{step}:{attempt}", "visible_at": 1.0})


def _started(fence: int, step: str = "s") -> tuple[str, dict[str, object]]:
    return ("attempt_started", {"step": step, "attempt": 1, "owner": "w", "fence": fence})


def _ok(step: str = "s") -> tuple[str, dict[str, object]]:
    return ("attempt_succeeded", {"step": step, "attempt": 1, "output": {}})


def _rules(store: Store) -> set[str]:
    return set(check_history(store, [RUN]).rules())


def test_engine_histories_are_clean() -> None:
    harness = Harness(Sequential, Approval, FanOut)
    runs = [harness.start(Sequential, None, {"order_id": "x"}).run_id,
            harness.start(FanOut, None, {}).run_id,
            harness.start(Approval, None, {"amount": 1}).run_id]
    harness.drain()
    report = check_history(harness.store)
    report.assert_ok()
    assert (report.runs, report.ended, report.live) == (3, 2, 1)  # the approval waits
    assert check_history(harness.store, runs[:1]).runs == 1


def test_an_attempt_committed_twice_is_found(store: Store) -> None:
    store.enqueue([dispatch(RUN, "s")])
    (lease,) = store.claim("w", lease_for=30)
    _write(store, [_scheduled(), _started(lease.fence), _ok(), _started(lease.fence), _ok()])
    store.complete(lease)
    assert "one_outcome_per_attempt" in _rules(store)


def test_a_stale_holders_commit_is_found(store: Store) -> None:
    clock = store.clock
    store.enqueue([dispatch(RUN, "s")])
    (stale,) = store.claim("w1", lease_for=30)
    clock.advance(31)  # type: ignore[attr-defined]
    (current,) = store.claim("w2", lease_for=30)
    store.complete(current)
    # The journal says the stale holder (fence 1) committed the attempt.
    _write(store, [_scheduled(), _started(stale.fence), _ok(), ("run_completed", {})],
           status="completed")
    assert "fenced_outcome" in _rules(store)


def test_an_outcome_whose_dispatch_was_never_settled_is_found(store: Store) -> None:
    store.enqueue([dispatch(RUN, "s")])
    (lease,) = store.claim("w", lease_for=30)
    _write(store, [_scheduled(), _started(lease.fence), _ok()])
    assert "fenced_outcome" in _rules(store)


def test_two_terminal_facts_and_facts_after_the_end_are_found(store: Store) -> None:
    _write(store, [("run_completed", {}), ("note", {}), ("run_failed", {"reason": "x"})],
           status="completed")
    assert {"one_terminal_state", "nothing_after_terminal"} <= _rules(store)


def test_an_unscheduled_attempt_is_found(store: Store) -> None:
    _write(store, [_started(1), _ok(), ("run_completed", {})], status="completed")
    assert "outcome_was_scheduled" in _rules(store)


def test_a_stuck_run_is_found(store: Store) -> None:
    store.enqueue([dispatch(RUN, "s")])
    (lease,) = store.claim("w", lease_for=30)
    store.dead_letter(lease, "poison")
    _write(store, [_scheduled()])
    assert _rules(store) == {"live_run_has_live_dispatch"}
    assert check_history(store, [RUN], allow_dead_letters=True).ok


def test_a_run_waiting_for_nothing_is_found(store: Store) -> None:
    _write(store, [("run_started", {})])
    assert _rules(store) == {"live_run_has_live_dispatch"}


def test_an_ended_run_with_a_deliverable_dispatch_is_found(store: Store) -> None:
    # A store that let a dispatch in after the run ended (the index was not updated).
    _write(store, [("run_started", {})])
    store.append(RUN, [Fact(2, "run_completed", 1.0, {})], expected_seq=1)
    store.enqueue([dispatch(RUN, "late")])
    assert {"ended_run_has_no_live_dispatch", "index_matches_journal"} <= _rules(store)


def test_an_index_out_of_step_with_the_journal_is_found(store: Store) -> None:
    _write(store, [_scheduled()], enqueue=("s",))
    store.append(RUN, [Fact(2, "note", 1.0, {})], expected_seq=1)  # bypasses the index
    assert "index_matches_journal" in _rules(store)


def test_a_gap_in_the_journal_is_found() -> None:
    class Gappy:
        def __init__(self, inner: Store) -> None:
            self.inner = inner

        def read(self, run_id: str, after_seq: int = 0) -> list[Fact]:
            return [f for f in self.inner.read(run_id) if f.seq != 2]

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    inner: Store = open_store("memory://", clock=ManualClock())
    _write(inner, [("run_started", {}), ("note", {}), ("run_completed", {})],
           status="completed")
    report = check_history(Gappy(inner), [RUN])  # type: ignore[arg-type]
    assert "contiguous" in report.rules()
    with pytest.raises(AssertionError, match="contiguous"):
        report.assert_ok()


def test_a_dead_letter_without_a_reason_is_found(store: Store) -> None:
    import dataclasses

    class Silent:
        """A store that loses dead-letter reasons."""

        def __init__(self, inner: Store) -> None:
            self.inner = inner

        def dispatches(self, run_id: str) -> list[object]:
            return [dataclasses.replace(r, reason=None) for r in self.inner.dispatches(run_id)]

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    store.enqueue([dispatch(RUN, "s")])
    (lease,) = store.claim("w", lease_for=30)
    store.dead_letter(lease, "poison")
    _write(store, [_scheduled()])
    assert check_history(store, [RUN], allow_dead_letters=True).ok
    report = check_history(Silent(store), [RUN], allow_dead_letters=True)  # type: ignore[arg-type]
    assert set(report.rules()) == {"dead_letter_has_reason"}
