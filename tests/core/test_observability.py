"""Spans, events and metrics through the OpenTelemetry SDK's in-memory exporters."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import _flows as f
import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from squidie_core import (
    COMPLETE,
    StepContext,
    Workflow,
    approval_step,
    manual,
    step,
    transition,
)
from squidie_core._telemetry import EVENT_NAMES
from squidie_core.testing import Harness

EXPORTER = InMemorySpanExporter()
# Delta temporality: each collection holds only what happened since the previous one.
READER = InMemoryMetricReader(preferred_temporality={
    Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA})
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(_provider)
metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


def spawn(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    child = ctx.start_child_run(f.Three, {}, child_key="only")
    return {"child": child.run_id}


class Reference(Workflow):
    go = manual()
    spawn = step(spawn)
    flaky = step(f.flaky, retry=2)
    council = approval_step(output="approval")
    transitions = [
        transition(spawn, on="ok", to=flaky),
        transition(flaky, on="ok", to=council),
        transition(council, on="ok", to=COMPLETE),
        transition(council, on="error", to=COMPLETE),
    ]


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    f.reset()
    EXPORTER.clear()
    READER.collect()  # drop points from earlier tests' engines
    yield EXPORTER


def run_reference() -> tuple[Harness, str, str, list[dict[str, Any]]]:
    h = Harness(Reference, f.Three)
    events: list[dict[str, Any]] = []
    h.engine.add_listener(events.append)
    f.FAIL["flaky"] = ["raise"]
    run = h.start(Reference)
    h.drain()
    h.advance_time(1)
    h.drain()
    h.approve(run.run_id, actor="ops")
    h.drain()
    child = h.inspect(run.run_id)["context"]["child"]
    assert h.inspect(run.run_id)["status"] == "completed"
    assert h.inspect(child)["status"] == "completed"
    return h, run.run_id, child, events


def test_one_trace_per_run_with_attempts_as_children(exported: InMemorySpanExporter) -> None:
    _, run_id, child_id, _ = run_reference()
    spans = exported.get_finished_spans()
    by_run: dict[str, list[Any]] = {}
    for span in spans:
        rid = span.attributes.get("squidie.run_id")
        if rid:
            by_run.setdefault(str(rid), []).append(span)
    parent_spans = by_run[run_id]
    root = next(s for s in parent_spans if s.name == "squidie.start")
    trace_id = root.context.trace_id
    assert root.parent is None
    assert {s.context.trace_id for s in parent_spans} == {trace_id}
    executes = [s for s in parent_spans if s.name == "squidie.execute_next"]
    assert [s.attributes["squidie.step"] for s in executes] == ["spawn", "flaky", "flaky"]
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id
               for s in executes)
    assert [s.attributes["squidie.outcome"] for s in executes] == ["ok", "retry", "ok"]
    steps = [s for s in spans if s.name == "squidie.step"
             and s.context.trace_id == trace_id]
    assert {s.parent.span_id for s in steps} == {s.context.span_id for s in executes}
    command = next(s for s in parent_spans if s.name == "squidie.command")
    assert command.attributes["squidie.command"] == "approve"
    assert command.parent.span_id == root.context.span_id
    # The child run has its own trace, linked to the parent's step that started it.
    child_root = next(s for s in by_run[child_id] if s.name == "squidie.start")
    assert child_root.context.trace_id != trace_id
    spawn_step = next(s for s in steps if s.parent.span_id == executes[0].context.span_id)
    assert [link.context.span_id for link in child_root.links] == [spawn_step.context.span_id]


def test_replay_starts_a_new_trace_linked_to_the_old(exported: InMemorySpanExporter) -> None:
    h = Harness(f.Three)
    run = h.start(f.Three)
    h.drain()
    replayed = h.engine.replay(run.run_id)
    roots = {s.attributes["squidie.run_id"]: s for s in exported.get_finished_spans()
             if s.name == "squidie.start"}
    old, new = roots[run.run_id], roots[replayed.run_id]
    assert new.context.trace_id != old.context.trace_id
    assert old.context.span_id in [link.context.span_id for link in new.links]


def test_events_after_commit(exported: InMemorySpanExporter) -> None:
    _, run_id, _, events = run_reference()
    names = [e["name"] for e in events if e["run_id"] == run_id]
    assert set(names) <= set(EVENT_NAMES)
    assert names[0] == "run.started" and names[-1] == "run.terminal"
    for expected in ("attempt.scheduled", "attempt.claimed", "attempt.completed",
                     "attempt.failed", "attempt.retry_scheduled", "manual.paused",
                     "manual.resolved", "child.started"):
        assert expected in names, expected
    failed = next(e for e in events if e["name"] == "attempt.failed")
    assert (failed["step"], failed["outcome"]) == ("flaky", "retry")
    # Events also land on the spans that committed them.
    spans = exported.get_finished_spans()
    span_events = {e.name for s in spans for e in s.events}
    assert {"attempt.completed", "manual.resolved", "run.terminal"} <= span_events


def test_group_committed_attempts_keep_one_span_each(exported: InMemorySpanExporter) -> None:
    h = Harness(f.Three)
    runs = {h.start(f.Three).run_id for _ in range(3)}
    leases = h.engine.store.claim("w:0", lease_for=30, limit=5, queues=["default"])
    results = h.engine.run_leases(leases, lease_for=30, heartbeat_interval=0)
    assert [r.outcome for r in results] == ["ok"] * 3
    spans = exported.get_finished_spans()
    executes = [s for s in spans if s.name == "squidie.execute_next"]
    assert {s.attributes["squidie.run_id"] for s in executes} == runs
    assert [s.attributes["squidie.outcome"] for s in executes] == ["ok"] * 3
    roots = {s.attributes["squidie.run_id"]: s for s in spans if s.name == "squidie.start"}
    for span in executes:  # in its run's trace, with the step's span under it
        root = roots[span.attributes["squidie.run_id"]]
        assert span.parent.span_id == root.context.span_id
        assert "attempt.completed" in {e.name for e in span.events}
        (step,) = [s for s in spans if s.name == "squidie.step"
                   and s.parent.span_id == span.context.span_id]
        assert step.context.trace_id == root.context.trace_id


def collect() -> Any:
    """One collection (delta temporality: it also resets the counts)."""
    return READER.get_metrics_data()


def points(data: Any, name: str) -> list[Any]:
    found = []
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)
    return found


def test_metrics(exported: InMemorySpanExporter) -> None:
    h, _, _, _ = run_reference()
    h.start(f.Three)  # leaves one visible dispatch for the depth gauge
    data = collect()
    commits: dict[tuple[str, str], int] = {}
    for p in points(data, "squidie.commits"):
        key = (p.attributes["workflow"], p.attributes["outcome"])
        commits[key] = commits.get(key, 0) + p.value
    assert commits[("Reference", "start")] == 1
    assert commits[("Reference", "retry")] == 1
    assert commits[("Reference", "ok")] == 2  # spawn and the second flaky attempt
    assert commits[("Reference", "command")] == 1
    assert commits[("Three", "ok")] == 3
    durations: dict[tuple[str, str], int] = {}
    for p in points(data, "squidie.step.duration"):
        if p.attributes["workflow"] == "Reference":
            key = (p.attributes["step"], p.attributes["outcome"])
            durations[key] = durations.get(key, 0) + p.count
    assert durations == {("spawn", "ok"): 1, ("flaky", "retry"): 1, ("flaky", "ok"): 1}
    waits = points(data, "squidie.enqueue_to_start")
    assert waits and all(p.sum >= 0 for p in waits)
    depth = {(p.attributes["queue"], p.attributes["state"]): p.value
             for p in points(data, "squidie.queue.depth")}
    assert depth[("default", "visible")] >= 1
    for p in points(data, "squidie.commits") + points(data, "squidie.step.duration"):
        assert "run_id" not in p.attributes  # bounded attribute sets


def test_telemetry_can_be_turned_off(exported: InMemorySpanExporter) -> None:
    h = Harness(f.Three, telemetry=False)
    h.start(f.Three)
    h.drain()
    assert exported.get_finished_spans() == ()


def test_no_span_is_opened_until_a_tracer_provider_is_installed() -> None:
    # This module installs a provider at import, so the check runs in a fresh process.
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    code = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        import _flows as f
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter)
        from squidie_core.testing import Harness

        h = Harness(f.Three)
        assert h.engine.telemetry.open_span("x", None, {}) is None
        h.start(f.Three)
        h.drain()  # runs end to end with no span at all
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)  # installed later: taken up at once
        run = h.start(f.Three)
        h.drain()
        names = {s.name for s in exporter.get_finished_spans()}
        assert {"squidie.start", "squidie.execute_next", "squidie.step"} <= names, names
        print("ok")
    """)
    here = str(Path(__file__).resolve().parent)
    done = subprocess.run([sys.executable, "-c", code, here], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.stdout.strip() == "ok", done.stderr
