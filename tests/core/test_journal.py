"""The journal as the only source of truth: checkpoints, read cost, anomalies,
receipts, redaction and post-commit events."""

from __future__ import annotations

import itertools
from typing import Any

import _flows as f
import pytest

from squidie_core import COMPLETE, Workflow, field, manual, step, transition
from squidie_core._facts import FOLD_VERSION, RunState
from squidie_core._redact import REDACTED, is_sensitive, redact
from squidie_core.storage import Checkpoint, Fact
from squidie_core.testing import Harness


@pytest.fixture(autouse=True)
def _reset() -> None:
    f.reset()


def long_workflow(n: int) -> type[Workflow]:
    body: dict[str, Any] = {"go": manual(counter=field(int, default=0))}
    steps = [step(f.incr) for _ in range(n)]
    for i, s in enumerate(steps):
        body[f"s{i:02d}"] = s
    body["transitions"] = [
        transition(a, on="ok", to=b) for a, b in itertools.pairwise(steps)
    ] + [transition(steps[-1], on="ok", to=COMPLETE)]
    return type(Workflow)(f"Long{n}", (Workflow,), body)  # type: ignore[no-any-return]


def snapshot(h: Harness, run_id: str) -> tuple[Any, ...]:
    view = h.inspect(run_id, include_history=True)
    return view, h.explain(run_id), h.graph(run_id)


def test_deleting_checkpoints_changes_nothing() -> None:
    h = Harness(f.Three, f.Approval, f.Saga, f.Flaky, checkpoint_every=3)
    runs = [h.start(f.Three).run_id, h.start(f.Approval).run_id,
            h.start(f.Saga, "order", {"amount": 2}).run_id, h.start(f.Flaky).run_id]
    f.FAIL["flaky"] = ["raise"]
    h.drain()
    before = {r: snapshot(h, r) for r in runs}
    assert h.delete_checkpoints() > 0
    assert {r: snapshot(h, r) for r in runs} == before
    # ... and the engine still advances the runs correctly from facts alone.
    h.approve(runs[1])
    h.advance_time(100)
    h.drain()
    assert {h.inspect(r)["status"] for r in runs} == {"completed", "failed"}


def test_checkpoints_are_written_periodically_and_when_a_run_ends() -> None:
    h = Harness(long_workflow(12), checkpoint_every=8)
    run = h.start("Long12")
    seen: list[int] = []
    while h.step() is not None:
        cp = h.store.read_checkpoint(run.run_id)
        seen.append(cp.seq if cp else 0)
    final = h.store.read_checkpoint(run.run_id)
    assert final is not None and final.seq == h.store.head(run.run_id)  # terminal
    assert len(set(seen)) >= 4  # several checkpoints along the way
    state = RunState.decode(final.data)
    assert state.status == "completed" and state.seq == final.seq


class CountingReads:
    """Wraps a store and counts the facts its ``read`` hands back."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.facts_read = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def read(self, run_id: str, after_seq: int = 0) -> list[Fact]:
        facts = self._store.read(run_id, after_seq)
        self.facts_read += len(facts)
        return facts  # type: ignore[no-any-return]


def test_reading_a_run_costs_facts_since_checkpoint_not_history() -> None:
    from squidie_core import Squidie

    flow = long_workflow(40)
    h = Harness(flow, checkpoint_every=10)
    run = h.start(flow)
    h.drain()
    history = h.store.head(run.run_id)
    assert history > 150
    counting = CountingReads(h.store)
    engine = Squidie(counting, workflows=[flow], checkpoint_every=10)  # type: ignore[arg-type]
    engine.inspect_run(run.run_id)
    # An ended run is read like any other: its last checkpoint and the facts since.
    assert 0 < counting.facts_read < 10
    # Mid-run: at most checkpoint_every facts past the last checkpoint are folded.
    h2 = Harness(flow, checkpoint_every=10)
    run2 = h2.start(flow)
    counting2 = CountingReads(h2.store)
    engine2 = Squidie(counting2, workflows=[flow], checkpoint_every=10)  # type: ignore[arg-type]
    per_step: list[int] = []
    while True:
        counting2.facts_read = 0
        if engine2.execute_next(owner_id="w", heartbeat_interval=0) is None:
            break
        per_step.append(counting2.facts_read)
    assert len(per_step) == 40
    assert max(per_step) <= 10 + 4  # bounded by the checkpoint interval, not history
    h2.delete_checkpoints()
    counting2.facts_read = 0
    engine2.inspect_run(run2.run_id)
    assert counting2.facts_read == h2.store.head(run2.run_id)  # a full rebuild without them


def test_an_ended_run_writes_no_checkpoint_of_its_own() -> None:
    """Checkpoints come every ``checkpoint_every`` facts, never because a run ended: a
    short run ends without one, a long one keeps its last periodic one."""
    short = Harness(f.Three)
    run = short.start(f.Three)
    short.drain()
    assert short.engine.inspect_run(run.run_id)["status"] == "completed"
    assert short.store.read_checkpoint(run.run_id) is None
    flow = long_workflow(40)
    long = Harness(flow, checkpoint_every=10)
    run = long.start(flow)
    long.drain()
    checkpoint = long.store.read_checkpoint(run.run_id)
    head = long.store.head(run.run_id)
    assert checkpoint is not None and 0 < head - checkpoint.seq < 10


def test_checkpoint_from_the_future_or_unreadable_means_a_rebuild(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(f.Three, checkpoint_every=2)
    run = h.start(f.Three)
    h.step()
    truth = snapshot(h, run.run_id)
    state = h.engine.load(run.run_id)
    future = state.copy()
    future.seq = 999
    h.store.delete_checkpoints(run.run_id)
    h.store.write_checkpoint(run.run_id, Checkpoint(seq=999, data=future.encode()))
    assert snapshot(h, run.run_id) == truth
    assert "beyond its journal" in caplog.text
    for bad in ("not json", '{"fold_version": 0}', f'{{"fold_version": {FOLD_VERSION}}}'):
        h.store.delete_checkpoints(run.run_id)
        h.store.write_checkpoint(run.run_id, Checkpoint(seq=2, data=bad))
        assert snapshot(h, run.run_id) == truth
    assert "unreadable checkpoint" in caplog.text
    h.drain()
    assert h.inspect(run.run_id)["status"] == "completed"


def test_anomalous_facts_are_reported_and_hold_the_run() -> None:
    h = Harness(f.Three)
    run = h.start(f.Three)
    head = h.store.head(run.run_id)
    h.store.append(run.run_id, [
        Fact(head + 1, "teleported", 1.0, {"to": "Mordor"}),
        Fact(head + 2, "attempt_succeeded", 1.0, {"step": "one"}),
    ], head)
    view = h.inspect(run.run_id)
    problems = [(a["seq"], a["problem"]) for a in view["anomalies"]]
    assert problems == [(head + 1, "unknown fact type"),
                        (head + 2, "missing field(s): attempt, output")]
    explain = h.explain(run.run_id)
    assert (explain["reason"], explain["next_actions"]) == ("journal_anomaly",
                                                             ["inspect_anomalies"])
    result = h.step()
    assert result is not None and result.outcome == "dead_lettered"
    assert "journal_anomaly" in (result.detail or "")
    assert f.CALLS == {}  # the step never ran


def test_receipts_form_the_command_history() -> None:
    h = Harness(f.Approval)
    run = h.start(f.Approval, actor="alice", metadata={"source": "api"})
    h.drain()
    h.approve(run.run_id, actor="bob", comment="ok", idempotency_key="k1")
    h.approve(run.run_id, actor="bob", comment="ok", idempotency_key="k1")
    history = h.inspect(run.run_id)["commands"]
    assert [(c["command"], c.get("actor")) for c in history] == [("start", "alice"),
                                                                 ("approve", "bob")]
    assert history[1]["idempotency_key"] == "k1" and history[1]["comment"] == "ok"


def test_redaction_is_recursive_and_case_insensitive() -> None:
    data = {"Password": "p", "nested": {"API_KEY": "k", "list": [{"X-Auth-Token": "t"}]},
            "refresh_token": "r", "credentials": "c", "token_count": 3, "user": "sam",
            "private-key": "pk", "Authorization": "Bearer x", "db_secret": "s"}
    out = redact(data)
    assert out == {"Password": REDACTED, "nested": {"API_KEY": REDACTED, "list": [
        {"X-Auth-Token": REDACTED}]}, "refresh_token": REDACTED, "credentials": REDACTED,
        "token_count": 3, "user": "sam", "private-key": REDACTED, "Authorization": REDACTED,
        "db_secret": REDACTED}
    assert not is_sensitive("tokenizer") and is_sensitive("ACCESS_TOKEN")


def test_redaction_happens_before_storage_everywhere() -> None:
    h = Harness(f.Approval, checkpoint_every=2)
    run = h.start(f.Approval, metadata={"auth": {"password": "s3cr3t"}})
    h.drain()
    h.approve(run.run_id, actor="ops", metadata={"secret": "s3cr3t"})
    h.drain()
    assert all("s3cr3t" not in x.to_json() for x in h.store.read(run.run_id))
    cp = h.store.read_checkpoint(run.run_id)
    assert cp is not None and "s3cr3t" not in cp.data


def test_events_fire_after_commit_only() -> None:
    h = Harness(f.Three)
    events: list[dict[str, Any]] = []
    h.engine.add_listener(events.append)
    run = h.start(f.Three)
    assert [e["name"] for e in events] == ["run.started", "attempt.scheduled"]
    events.clear()
    h.inject_append_conflict(1)
    h.step()
    # The conflicting first plan emitted nothing; only the committed re-plan did.
    assert [e["name"] for e in events] == ["attempt.claimed", "attempt.completed",
                                           "attempt.scheduled"]
    assert events[1]["step"] == "one" and events[1]["outcome"] == "ok"
    assert all(e["run_id"] == run.run_id for e in events)
    h.start(f.Three, idempotency_key="k")
    events.clear()
    h.start(f.Three, idempotency_key="k")
    assert events == []

    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("instrumentation bug")

    h.engine.add_listener(broken)
    assert h.step() is not None  # a failing listener never breaks the engine


def test_state_round_trips_through_json() -> None:
    h = Harness(f.Party, f.Three)
    run = h.start(f.Party, "plan", {"guests": ["a"]})
    h.drain()
    state = h.engine.load(run.run_id)
    again = RunState.decode(state.encode())
    assert again.to_data() == state.to_data()


def test_json_copy_shares_nothing_mutable() -> None:
    from squidie_core import _json

    class Tag(int):
        pass

    data: dict[str, Any] = {"a": [1, {"b": [2.5, None, True]}], "c": "x",
                            "t": (1, [2]), "tag": Tag(3)}
    copied = _json.copy(data)
    assert copied == data
    copied["a"][1]["b"].append("new")
    copied["t"][1].append(3)  # a tuple falls back to copy.deepcopy: its list is copied
    assert data == {"a": [1, {"b": [2.5, None, True]}], "c": "x", "t": (1, [2]),
                    "tag": 3}
    assert type(copied["t"]) is tuple and type(copied["tag"]) is Tag


def test_json_dumps_is_compact_strict_and_leaves_nothing_behind() -> None:
    import json

    from squidie_core import _json

    values: list[Any] = ["é\n\"", 1.5, -0.0, 10**30, None, True, [], {},
                         {"a": [1, None, {"b": "ü"}], "c": (1, 2)}]
    values.append({"z": {"y": 1, "b": [{"d": 1, "c": 2}]}, "a": 0})
    for value in values:
        for sort in (False, True):
            assert _json.dumps(value, sort_keys=sort) == json.dumps(
                value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort)
    assert _json.dumps({"b": {"d": 1, "c": 2}, "a": 0}, sort_keys=True) == (
        '{"a":0,"b":{"c":2,"d":1}}')
    circular: list[Any] = []
    circular.append(circular)
    for sort in (False, True):
        with pytest.raises(ValueError, match="Circular"):
            _json.dumps({"x": circular}, sort_keys=sort)
        with pytest.raises(ValueError, match="not JSON compliant"):
            _json.dumps({"x": float("nan")}, sort_keys=sort)
    inner: dict[str, Any] = {"ok": 1}
    with pytest.raises(TypeError, match="set"):
        _json.dumps({"a": inner, "b": {1, 2}})
    # a failed encode keeps no state: the same containers encode afterwards
    assert _json.dumps({"a": inner, "again": [inner]}) == '{"a":{"ok":1},"again":[{"ok":1}]}'


def test_a_step_cannot_change_the_state_it_was_given() -> None:
    seen: list[dict[str, Any]] = []

    def meddle(data: dict[str, Any], ctx: Any) -> dict[str, Any]:
        data["guests"].append("intruder")  # its input
        ctx.state["guests"].append("intruder")  # and the context view
        seen.append(data)
        return {"done": True}

    class Meddle(Workflow):
        go = manual(guests=field(list))
        only = step(meddle)
        transitions = [transition(only, on="ok", to=COMPLETE)]

    h = Harness(Meddle)
    run = h.start(Meddle, "go", {"guests": ["a"]})
    h.drain()
    state = h.engine.load(run.run_id)
    assert seen and state.context["guests"] == ["a"] and state.payload == {"guests": ["a"]}
