"""The conformance plugin: not supported, required-never-skipped, strict known failures.

Each case runs a small pytest session (pytester) the way a store author would.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import conformance
from conformance import SUITE_VERSION, StoreSuite, requires, since
from conformance._markers import SINCE

BROKEN = (Path(__file__).parent / "broken_stores.py").read_text()

FIXTURES = '''
import pytest
from conformance import StoreFixtures
from squidie_backends.memory import MemoryStore
from squidie_core.storage import Capabilities


class Fixtures(StoreFixtures):
    store_class = MemoryStore

    @pytest.fixture
    def store(self, clock):
        store = self.store_class(clock=clock)
        yield store
        store.close()
'''


def _run(pytester: pytest.Pytester, body: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(broken_stores=BROKEN)
    pytester.makepyfile(test_store=FIXTURES + body)
    pytester.syspathinsert()
    return pytester.runpytest_inprocess("-p", "conformance.pytest_plugin",
                                        "-p", "no:cacheprovider", *args)


def test_cases_needing_an_undeclared_capability_are_reported_not_supported(
    pytester: pytest.Pytester,
) -> None:
    result = _run(pytester, '''
from conformance import CapabilitySuite

class TestStore(CapabilitySuite, Fixtures):
    pass
''', "-v", "-rA")
    out = result.stdout.str()
    assert re.search(r"test_delivery_counts_are_durable NOT SUPPORTED", out), out
    assert re.search(r"\b3 not supported\b", out), out
    assert "not supported needs: durable, multi_process" in out
    assert f"squidie conformance suite {SUITE_VERSION}" in out
    assert result.ret == 0


def test_a_declared_capability_runs_its_cases(pytester: pytest.Pytester) -> None:
    # Declaring multi_process without a store_url makes its cases run, and fail clearly.
    result = _run(pytester, '''
from conformance import CapabilitySuite

class Shared(MemoryStore):
    capabilities = Capabilities(multi_process=True, priorities=True, wake_up=True)

class TestStore(CapabilitySuite, Fixtures):
    store_class = Shared
''', "-q")
    out = result.stdout.str()
    assert "must provide the `store_url` fixture" in out
    assert re.search(r"\b1 failed\b", out), out


def test_a_skipped_conformance_case_is_a_failure(pytester: pytest.Pytester) -> None:
    result = _run(pytester, '''
from conformance import since
from conformance._support import SuiteBase

@since("1.0")
class SkippingSuite(SuiteBase):
    def test_required_behaviour(self, store):
        raise pytest.skip.Exception("the author did not feel like it")

class TestStore(SkippingSuite, Fixtures):
    pass
''', "-q")
    out = result.stdout.str()
    assert "required behaviour can never be skipped" in out
    assert result.ret == 1


def test_known_failures_become_strict_xfails(pytester: pytest.Pytester) -> None:
    result = _run(pytester, '''
from conformance import HeartbeatSuite
import broken_stores

class TestStore(HeartbeatSuite, Fixtures):
    store_class = broken_stores.HeartbeatWithoutTokenCheck
    known_failures = {
        "test_a_heartbeat_with_a_forged_token_fails": "tokens are not checked yet",
        "test_a_heartbeat_after_a_takeover_fails_and_spares_the_new_holder": "same",
        "test_a_heartbeat_after_expiry_fails_even_if_nobody_reclaimed": "same",
        "test_a_non_positive_extension_is_refused": "not validated yet",
    }
''', "-q")
    out = result.stdout.str()
    assert result.ret == 0, out
    assert re.search(r"\b5 known failures\b", out), out


def test_a_known_failure_that_passes_fails_the_run(pytester: pytest.Pytester) -> None:
    result = _run(pytester, '''
from conformance import HeartbeatSuite

class TestStore(HeartbeatSuite, Fixtures):
    known_failures = {"test_a_heartbeat_with_a_forged_token_fails": "fixed since"}
''', "-q")
    out = result.stdout.str()
    assert result.ret == 1, out
    assert "XPASS(strict)" in out


def test_a_known_failure_naming_no_case_is_refused(pytester: pytest.Pytester) -> None:
    result = _run(pytester, '''
from conformance import HeartbeatSuite

class TestStore(HeartbeatSuite, Fixtures):
    known_failures = {"test_heartbeats_are_typo": "oops"}
''', "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "known_failures names no conformance case: test_heartbeats_are_typo" in (
        result.stderr.str() + result.stdout.str())


def test_the_suite_refuses_to_run_without_its_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_store=FIXTURES + '''
from conformance import AppendSuite

class TestStore(AppendSuite, Fixtures):
    pass
''')
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q")
    assert "the conformance suite needs its pytest plugin" in result.stdout.str()
    assert result.ret == 1


def test_every_case_records_the_version_that_introduced_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_store=FIXTURES + '''
from conformance import StoreSuite

class TestStore(StoreSuite, Fixtures):
    pass
''')
    items, _ = pytester.inline_genitems("-p", "conformance.pytest_plugin")
    assert len(items) >= 150
    versions = {item.get_closest_marker(SINCE).args[0] for item in items}  # type: ignore[union-attr]
    assert versions == {"1.0", "1.1", "1.2"}
    assert all(item.get_closest_marker(SINCE) is not None for item in items)


def test_requires_refuses_unknown_or_non_boolean_capabilities() -> None:
    with pytest.raises(ValueError, match="unknown capability 'multiprocess'"):
        requires("multiprocess")
    with pytest.raises(ValueError, match="visibility_precision"):
        requires("visibility_precision")
    with pytest.raises(ValueError):
        requires()
    assert requires("durable", "multi_process").args == ("durable", "multi_process")


def test_since_checks_the_version_format() -> None:
    with pytest.raises(ValueError):
        since("1")
    with pytest.raises(ValueError):
        since("v1.0")


def test_store_suite_combines_every_suite() -> None:
    suites = [getattr(conformance, name) for name in conformance.__all__
              if name.endswith("Suite") and name != "StoreSuite"]
    assert all(issubclass(StoreSuite, suite) for suite in suites)


def test_the_public_surface_is_stated() -> None:
    assert conformance.__all__ == [
        "SUITE_VERSION", "AppendSuite", "AtomicCommitSuite", "BatchReadSuite",
        "CapabilitySuite", "CheckpointSuite", "ClaimSuite", "CommitSuite", "ConcurrencySuite",
        "ConflictSuite", "DeliverySuite", "EnqueueSuite", "FencingSuite", "GroupCommitSuite",
        "HeartbeatSuite", "HistoryReport",
        "HistorySuite", "IdempotencySuite", "JournalSuite", "NotSupported", "PropertySuite",
        "RunIndexSuite", "RuntimeSuite", "SettleSuite", "StoreFixtures", "StoreSuite",
        "TerminalSuite", "Violation", "check_history", "requires", "since",
    ]
    for name in conformance.__all__:
        assert getattr(conformance, name) is not None
    # No suite class may be collected on its own: only a store's Test* class runs them.
    assert not any(name.startswith("Test") for name in conformance.__all__)


def test_a_module_that_fails_to_import_shows_its_own_error(pytester: pytest.Pytester) -> None:
    result = _run(pytester, '''
import no_such_module_for_squidie
''')
    out = result.stdout.str()
    assert "No module named 'no_such_module_for_squidie'" in out, out
    assert "user_properties" not in out, out
    assert result.ret == pytest.ExitCode.INTERRUPTED
