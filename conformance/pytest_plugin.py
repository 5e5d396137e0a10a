"""The conformance suite's pytest plugin (opt-in; never loaded by an entry point).

Load it from your top-level ``conftest.py``::

    pytest_plugins = ["conformance.pytest_plugin"]

or on the command line with ``-p conformance.pytest_plugin``. It:

- registers the ``conformance_requires`` and ``conformance_since`` markers;
- reports a case marked ``requires(X)`` as **not supported** (its own outcome in the
  terminal summary, ``N`` in the progress line) when ``store.capabilities.X`` is false;
  the case body does not run. This uses pytest's skip machinery underneath, in one place
  (``_gate`` below, raising ``conformance.NotSupported``);
- fails any conformance case that is skipped for any other reason: required behaviour
  can never be skipped;
- turns the fixtures class's ``known_failures`` into strict xfails (an unexpected pass is
  a failure), refusing names that match no case;
- prints a summary: passed, failed, not supported, known failures, suite version.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from conformance._markers import REQUIRES, SINCE, NotSupported
from conformance._version import SUITE_VERSION

__all__ = ["CaseResult", "results"]

_NOT_SUPPORTED = "not supported"
_PROPERTY = "conformance"


@dataclass
class CaseResult:
    """The outcome of one conformance case.

    Attributes:
        nodeid: pytest's id of the case.
        outcome: ``passed``, ``failed``, ``error``, ``not supported`` or
            ``known failure`` (a strict xfail that failed as expected).
        since: The suite version that introduced the case.
        requires: The capabilities the case needs.
        detail: Why it failed, or which capabilities were missing.
    """

    nodeid: str
    outcome: str
    since: str | None = None
    requires: tuple[str, ...] = ()
    detail: str | None = None

    @property
    def tier(self) -> str:
        """``core`` (required behaviour: no capability needed) or ``optional``."""
        return "optional" if self.requires else "core"

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        return {"nodeid": self.nodeid, "outcome": self.outcome, "tier": self.tier,
                "since": self.since, "requires": list(self.requires), "detail": self.detail}


@dataclass
class _State:
    cases: dict[str, CaseResult] = field(default_factory=dict)


_STATE = pytest.StashKey[_State]()


def results(config: pytest.Config) -> list[CaseResult]:
    """Return the conformance cases' results of a session, in the order they ran."""
    state = config.stash.get(_STATE, None)
    return list(state.cases.values()) if state is not None else []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{REQUIRES}(*capabilities): the conformance case needs these optional store "
        "capabilities; reported as 'not supported' on a store without them",
    )
    config.addinivalue_line(
        "markers", f"{SINCE}(version): the conformance suite version that introduced a case"
    )
    state = config.stash[_STATE] = _State()
    config.pluginmanager.register(_Recorder(state), "conformance-recorder")


def _is_case(item: pytest.Item) -> bool:
    return item.get_closest_marker(SINCE) is not None


def _required(item: pytest.Item) -> tuple[str, ...]:
    return tuple(c for m in item.iter_markers(REQUIRES) for c in m.args)


@pytest.fixture(autouse=True)
def _gate(request: pytest.FixtureRequest) -> None:
    """Refuse to run a case whose required capabilities the store does not declare."""
    needed = _required(request.node)
    if not needed:
        return
    store = request.getfixturevalue("store")
    missing = [c for c in needed if not getattr(store.capabilities, c, False)]
    if missing:
        raise NotSupported(
            f"{_NOT_SUPPORTED}: the {store.name} store does not declare "
            f"{', '.join(missing)}"
        )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Apply each fixtures class's ``known_failures`` as strict xfails."""
    used: dict[type, set[str]] = {}
    for item in items:
        cls = getattr(item, "cls", None)
        known: Mapping[str, str] = getattr(cls, "known_failures", None) or {}
        if cls is None or not known or not _is_case(item):
            continue
        seen = used.setdefault(cls, set())
        original = getattr(item, "originalname", item.name)
        for name in (item.name, original):
            if name in known:
                seen.add(name)
                item.add_marker(pytest.mark.xfail(strict=True, reason=f"known failure: "
                                                                     f"{known[name]}"))
                break
    for cls, seen in used.items():
        unknown = sorted(set(getattr(cls, "known_failures", {})) - seen)
        if unknown:
            raise pytest.UsageError(
                f"{cls.__name__}.known_failures names no conformance case: "
                f"{', '.join(unknown)}"
            )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    report: pytest.TestReport = yield  # type: ignore[assignment]
    if not _is_case(item):
        return report  # type: ignore[return-value]
    marker = item.get_closest_marker(SINCE)
    report.user_properties.append((f"{_PROPERTY}_since", marker.args[0] if marker else None))
    report.user_properties.append((f"{_PROPERTY}_requires", list(_required(item))))
    if call.excinfo is not None and call.excinfo.errisinstance(NotSupported):
        report.user_properties.append((_PROPERTY, _NOT_SUPPORTED))
        path, lineno, _ = item.reportinfo()
        report.longrepr = (str(path), (lineno or 0) + 1, str(call.excinfo.value))
    elif report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (
            f"conformance case {item.nodeid} was skipped ({_reason(report)}); required "
            "behaviour can never be skipped. Declare a capability the case needs with "
            "requires(...), or list it in known_failures."
        )
    return report  # type: ignore[return-value]


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _props(report: pytest.TestReport) -> dict[str, Any]:
    # pytest_report_teststatus also sees CollectReports, which carry no user_properties.
    props = getattr(report, "user_properties", ())
    return {k: v for k, v in props if k.startswith(_PROPERTY)}


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, tuple[str, Mapping[str, bool]]] | None:
    if _props(report).get(_PROPERTY) == _NOT_SUPPORTED:
        return _NOT_SUPPORTED, "N", ("NOT SUPPORTED", {"yellow": True})
    return None


class _Recorder:
    """Collects each conformance case's outcome from its reports (registered per session)."""

    def __init__(self, state: _State) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = _props(report)
        if f"{_PROPERTY}_since" not in props:
            return
        case = self.state.cases.get(report.nodeid)
        if case is None:
            case = self.state.cases[report.nodeid] = CaseResult(
                report.nodeid, "passed", props.get(f"{_PROPERTY}_since"),
                tuple(props.get(f"{_PROPERTY}_requires") or ()),
            )
        if props.get(_PROPERTY) == _NOT_SUPPORTED:
            case.outcome, case.detail = _NOT_SUPPORTED, _reason(report)
        elif hasattr(report, "wasxfail"):
            if report.skipped:
                case.outcome, case.detail = "known failure", str(report.wasxfail)
        elif report.failed and case.outcome in ("passed", "known failure"):
            case.outcome = "failed" if report.when == "call" else "error"
            case.detail = _first_line(report)


def _first_line(report: pytest.TestReport) -> str:
    text = str(getattr(report, "longreprtext", "") or report.longrepr or "")
    errors = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ")]
    if errors:
        return errors[0][:500]
    lines = text.strip().splitlines()
    return lines[-1][:500] if lines else ""


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    cases = results(config)
    if not cases:
        return
    counts: dict[str, int] = {}
    for case in cases:
        counts[case.outcome] = counts.get(case.outcome, 0) + 1
    terminalreporter.write_sep("=", f"squidie conformance suite {SUITE_VERSION}")
    labels = {"passed": "passed", "failed": "failed", "error": "errors",
              _NOT_SUPPORTED: _NOT_SUPPORTED, "known failure": "known failures"}
    terminalreporter.write_line(", ".join(
        f"{counts.get(k, 0)} {label}" for k, label in labels.items()
        if counts.get(k) or k != "known failure"
    ))
    core = [case for case in cases if case.tier == "core"]
    terminalreporter.write_line(
        f"core tier (required behaviour): {sum(c.outcome == 'passed' for c in core)} of "
        f"{len(core)} passed"
    )
    unsupported = sorted({c for case in cases if case.outcome == _NOT_SUPPORTED
                          for c in case.requires})
    if unsupported:
        terminalreporter.write_line(f"not supported needs: {', '.join(unsupported)}")
