"""Read models: every explain reason, the run graph, inspect_run and list_runs."""

from __future__ import annotations

from typing import Any

import _flows as f
import pytest

from squidie_core._inspect import REASONS
from squidie_core.errors import InvalidArgument
from squidie_core.storage import RUN_STATUSES, Fact
from squidie_core.testing import Harness


@pytest.fixture(autouse=True)
def _reset() -> None:
    f.reset()


def explain_states() -> dict[str, dict[str, Any]]:
    """Drive runs into every non-terminal state the fold and the store can produce."""
    h = Harness(f.Three, f.Flaky, f.Approval, f.Hold, max_deliveries=1)
    found: dict[str, dict[str, Any]] = {}

    def record(run_id: str) -> None:
        explanation = h.explain(run_id)
        found.setdefault(explanation["reason"], explanation)

    visible = h.start(f.Three).run_id
    record(visible)  # attempt_visible
    f.FAIL["flaky"] = ["raise"]
    later = h.start(f.Flaky).run_id
    h.engine.execute_next(owner_id="w", queues=["default"], heartbeat_interval=0)
    # The first claim goes to the oldest visible dispatch (the Three run's); run the flaky one.
    while h.inspect(later)["attempts"].get("work", {}).get("attempts", 0) == 0:
        h.step()
    record(later)  # attempt_scheduled_for_later
    claimed = h.start(f.Three).run_id
    leases = h.store.claim("holder", lease_for=10, limit=10, queues=["default"])
    assert any(lease.dispatch.run_id == claimed for lease in leases)
    record(claimed)  # attempt_claimed
    h.advance_time(11)
    record(claimed)  # expired_claim
    h.drain()  # max_deliveries=1: expired claims are dead-lettered instead of redelivered
    record(claimed)  # dead_lettered
    approval = h.start(f.Approval).run_id
    hold = h.start(f.Hold).run_id
    h.drain()
    record(approval)  # manual_intervention_required (approval)
    record(hold)  # manual_intervention_required (pause)
    # Facts appended by hand produce the states no normal path leaves behind.
    odd = h.start(f.Three).run_id
    head = h.store.head(odd)
    h.store.append(odd, [Fact(head + 1, "dispatch_scheduled", h.clock.now(), {
        "step": "two", "attempt": 1, "key": f"{odd}:two:1", "visible_at": h.clock.now()})],
        head)
    h.store.claim("x", lease_for=1000, limit=100, queues=["default"])
    record(odd)  # attempt_claimed / dispatch_missing: most urgent first
    idle = "idle-run"
    h.store.append(idle, [Fact(1, "run_started", h.clock.now(), {
        "workflow": "Three", "version": "v", "trigger": "go", "payload": {}, "queue": "default"})],
        0)
    record(idle)  # idle
    weird = h.start(f.Three).run_id
    h.store.append(weird, [Fact(h.store.head(weird) + 1, "mystery", 0.0, {})],
                   h.store.head(weird))
    record(weird)  # journal_anomaly
    return found


def test_explain_covers_every_non_terminal_reason() -> None:
    found = explain_states()
    expected = set(REASONS) - {"terminal"}
    assert set(found) == expected
    for reason, explanation in found.items():
        assert explanation["next_actions"] == list(REASONS[reason][0]), reason
        assert explanation["summary"] and "?" not in explanation["summary"], explanation
        assert explanation["status"] in RUN_STATUSES
        assert set(explanation) == {"run_id", "workflow", "status", "reason", "step",
                                    "summary", "details", "next_actions", "evidence"}


def test_explain_terminal_reasons() -> None:
    h = Harness(f.Three, f.Saga)
    ok = h.start(f.Three).run_id
    bad = h.start(f.Saga, "order", {"amount": 1}).run_id
    h.drain()
    done = h.explain(ok)
    assert (done["reason"], done["status"], done["summary"]) == ("terminal", "completed",
                                                                 "the run completed")
    failed = h.explain(bad)
    assert failed["step"] == "ship" and failed["summary"] == "the run failed at step ship"
    assert failed["details"]["compensated"] == ["charge", "reserve"]


def test_inspect_run_shape() -> None:
    h = Harness(f.Approval)
    run = h.start(f.Approval, metadata={"who": "me"}, idempotency_key="a")
    h.drain()
    view = h.inspect(run.run_id)
    for key in ("run_id", "workflow", "trigger", "payload", "context", "status", "reason",
                "parent", "children", "replayed_from_run_id", "commands", "attempts",
                "next_visible_at", "anomalies", "version", "definition_changed", "pending"):
        assert key in view, key
    assert "history" not in view
    assert view["attempts"]["prepare"]["history"][0]["outcome"] == "ok"
    assert view["attempts"]["prepare"]["history"][0]["owner"] == "harness"
    assert view["definition_changed"] is False
    full = h.inspect(run.run_id, include_history=True)
    assert [x["type"] for x in full["history"]][:2] == ["run_started", "command_received"]
    assert full["history"][0]["at"].endswith("+00:00")


def test_graph_nodes_edges_and_current() -> None:
    h = Harness(f.Approval)
    run = h.start(f.Approval)
    graph = h.graph(run.run_id)
    nodes = {n["id"]: n["status"] for n in graph["nodes"]}
    assert nodes == {"prepare": "pending", "council": "waiting", "proceed": "waiting",
                     "decline": "waiting"}
    assert graph["current"] == ["prepare"]
    h.store.claim("w", lease_for=30, queues=["default"])
    assert {n["id"]: n["status"] for n in h.graph(run.run_id)["nodes"]}["prepare"] == "running"
    h.advance_time(31)
    h.drain()
    graph = h.graph(run.run_id)
    nodes = {n["id"]: n["status"] for n in graph["nodes"]}
    assert nodes["prepare"] == "completed" and nodes["council"] == "paused"
    assert graph["current"] == ["council"]
    edges = {e["id"]: e["status"] for e in graph["edges"]}
    assert edges["prepare:ok:council"] == "selected"
    assert edges["council:ok:proceed"] == "pending"
    h.reject(run.run_id)
    h.drain()
    edges = {e["id"]: e for e in h.graph(run.run_id)["edges"]}
    assert edges["council:error:decline"]["status"] == "selected"
    assert edges["council:error:decline"]["recovery"] == "compensation"
    assert edges["council:ok:proceed"]["status"] == "skipped"
    assert edges["proceed:ok:complete"]["status"] == "blocked"
    nodes = {n["id"]: n["status"] for n in h.graph(run.run_id)["nodes"]}
    assert nodes["council"] == "failed" and nodes["proceed"] == "waiting"


def test_graph_retrying_and_dependency_edges() -> None:
    h = Harness(f.Flaky, f.FanOut)
    f.FAIL["flaky"] = ["raise"]
    run = h.start(f.Flaky)
    h.step()
    assert {n["id"]: n["status"] for n in h.graph(run.run_id)["nodes"]} == {"work": "retrying"}
    fan = h.start(f.FanOut)
    h.advance_time(100)
    h.drain()
    graph = h.graph(fan.run_id)
    assert graph["mode"] == "dependencies"
    assert {e["id"] for e in graph["edges"]} == {"split:ok:left", "split:ok:right",
                                                 "left:ok:join", "right:ok:join"}
    assert {e["status"] for e in graph["edges"]} == {"selected"}


def test_list_runs_filters_pages_and_hides_payloads() -> None:
    h = Harness(f.Three, f.Approval)
    threes = [h.start(f.Three, "go", {"counter": i}).run_id for i in range(7)]
    h.advance_time(1)
    approvals = [h.start(f.Approval).run_id for _ in range(3)]
    everything = h.engine.list_runs(limit=1000)
    assert len(everything.items) == 10 and everything.next_cursor is None
    assert [e.run_id for e in everything.items][:3] == sorted(approvals, reverse=True)
    entry = everything.items[0].to_dict()
    assert "payload" not in entry and set(entry) >= {"run_id", "workflow", "status"}
    pages: list[str] = []
    cursor = None
    while True:
        page = h.engine.list_runs(workflow="Three", limit=3, cursor=cursor)
        pages.extend(e.run_id for e in page.items)
        h.start(f.Three)  # new runs never shift the pages already being read
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(pages) == sorted(threes)
    h.drain()
    paused = h.engine.list_runs(status="paused")
    assert {e.run_id for e in paused.items} == set(approvals)


def test_list_runs_rejects_bad_filters() -> None:
    h = Harness(f.Three)
    with pytest.raises(InvalidArgument) as info:
        h.engine.list_runs(status="sleeping")
    assert info.value.argument == "status"
    with pytest.raises(InvalidArgument):
        h.engine.list_runs(limit=0)
    with pytest.raises(InvalidArgument):
        h.engine.list_runs(cursor="not-a-cursor")
    with pytest.raises(TypeError):
        h.engine.list_runs(colour="red")  # type: ignore[call-arg]
