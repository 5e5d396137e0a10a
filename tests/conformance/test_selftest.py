"""The suite catches broken stores: each deliberately broken store FAILS it.

Every store in ``broken_stores.py`` breaks one promise of the contract. The whole public
suite runs against each (in a throwaway pytest session, exactly as a user would run it)
and must fail, at least on the cases that guard that promise. A control run of the
correct memory store through the same harness must pass, so a failure cannot come from
the harness itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SOURCE = (Path(__file__).parent / "broken_stores.py").read_text()

MODULE = '''
import pytest

from conformance import StoreFixtures, StoreSuite
import broken_stores


class Fixtures(StoreFixtures):
    @pytest.fixture
    def store(self, clock):
        store = broken_stores.{name}(clock=clock)
        yield store
        store.close()


class TestStore(StoreSuite, Fixtures):
    pass
'''

#: For each broken store, cases that must fail (each is deterministic). The suite fails
#: more cases than these (property and history cases included); see the report.
MUST_FAIL = {
    "NoConflictDetection": {
        "test_a_stale_expected_seq_conflicts_and_writes_nothing",
        "test_expected_zero_on_an_existing_run_conflicts",
        "test_different_facts_at_a_taken_sequence_conflict",
        "test_a_stale_sequence_commit_writes_nothing",
        "test_parallel_commits_at_one_sequence_let_exactly_one_win",
        "test_threads_appending_at_one_sequence_let_exactly_one_win",
        "test_threads_committing_at_one_sequence_let_exactly_one_win",
        "test_parallel_branches_replan_after_a_conflict",
        "test_a_reference_workflow_runs_as_on_the_memory_store[idempotent_start]",
    },
    "NeverExpiringLeases": {
        "test_an_expired_lease_is_claimable_by_another_owner",
        "test_a_crashed_workers_dispatch_is_redelivered_intact",
        "test_a_dispatch_that_kills_its_worker_is_dead_lettered_after_its_delivery_limit[2]",
        "test_a_heartbeat_after_expiry_fails_even_if_nobody_reclaimed",
        "test_a_stale_holder_is_fenced[commit-expired]",
        "test_a_stale_holder_is_fenced[complete-expired]",
        "test_a_stale_lease_commit_writes_nothing",
        "test_threads_with_expiring_leases_never_share_a_dispatch",
        "test_a_reference_workflow_runs_as_on_the_memory_store[abandoned_lease_is_taken_over]",
        "test_a_randomised_run_leaves_a_consistent_history[7]",
    },
    "HeartbeatWithoutTokenCheck": {
        "test_a_heartbeat_with_a_forged_token_fails",
        "test_a_heartbeat_after_a_takeover_fails_and_spares_the_new_holder",
        "test_a_heartbeat_after_expiry_fails_even_if_nobody_reclaimed",
        "test_a_stale_holder_is_fenced[heartbeat-taken_over]",
        "test_a_stale_holder_is_fenced[heartbeat-expired]",
        "test_a_stale_holder_is_fenced[heartbeat-forged]",
    },
    "NonAtomicCommit": {
        "test_a_stale_lease_commit_writes_nothing",
        "test_a_conflicting_dispatch_at_the_end_writes_nothing",
        "test_a_commit_scheduling_work_for_an_ended_run_is_refused",
        "test_a_stale_holder_is_fenced[commit-taken_over]",
        "test_a_stale_holder_is_fenced[commit-forged]",
        "test_the_holder_of_a_failed_dispatch_is_fenced[commit]",
        "test_after_a_takeover_only_the_new_holders_outcome_is_written",
        "test_a_reference_workflow_runs_as_on_the_memory_store[cancel_during_a_step]",
        "test_a_randomised_run_leaves_a_consistent_history[7]",
    },
    "IgnoresDelayedVisibility": {
        "test_a_delayed_dispatch_is_not_visible_before_its_delay",
        "test_a_delayed_dispatch_is_reported_scheduled_then_available",
        "test_retry_with_a_delay_hides_the_dispatch_until_then",
        "test_redrive_with_a_delay_hides_the_dispatch_until_then",
        "test_a_commit_enqueues_with_delayed_visibility",
        "test_claims_come_earliest_visible_first",
        "test_a_reference_workflow_runs_as_on_the_memory_store[retries_with_backoff]",
        "test_a_reference_workflow_runs_as_on_the_memory_store[durable_wait]",
    },
}


def run_suite(pytester: pytest.Pytester, store_class: str) -> dict[str, set[str]]:
    """Run the whole suite on ``broken_stores.<store_class>``; return names by outcome."""
    pytester.makepyfile(broken_stores=SOURCE)
    pytester.makepyfile(test_store=MODULE.format(name=store_class))
    pytester.syspathinsert()
    recorder = pytester.inline_run("-p", "conformance.pytest_plugin", "-p", "no:cacheprovider",
                                   "-q")
    outcomes: dict[str, set[str]] = {"passed": set(), "failed": set(), "skipped": set()}
    for report in recorder.getreports("pytest_runtest_logreport"):
        name = report.nodeid.split("::")[-1]
        if report.failed:
            outcomes["failed"].add(name)
        elif report.skipped:
            outcomes["skipped"].add(name)
        elif report.when == "call" and report.passed:
            outcomes["passed"].add(name)
    outcomes["passed"] -= outcomes["failed"]
    return outcomes


@pytest.mark.parametrize("store_class", sorted(MUST_FAIL))
def test_a_broken_store_fails_the_suite(pytester: pytest.Pytester, store_class: str) -> None:
    outcomes = run_suite(pytester, store_class)
    missed = MUST_FAIL[store_class] - outcomes["failed"]
    assert not missed, f"{store_class} passed cases that guard its defect: {sorted(missed)}"
    # Everything else still runs: the broken store is broken in one place only.
    assert len(outcomes["passed"]) > 150


def test_the_correct_memory_store_passes_through_the_same_harness(
    pytester: pytest.Pytester,
) -> None:
    source = SOURCE + "\n\nclass Correct(MemoryStore):\n    pass\n"
    pytester.makepyfile(broken_stores=source)
    pytester.makepyfile(test_store=MODULE.format(name="Correct"))
    pytester.syspathinsert()
    result = pytester.runpytest_inprocess("-p", "conformance.pytest_plugin",
                                          "-p", "no:cacheprovider", "-q")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()[-3000:]
    assert outcomes["passed"] >= 150
    # The durable and multi_process cases are reported as their own outcome.
    assert re.search(r"\b7 not supported\b", result.stdout.str()), result.stdout.str()[-500:]
