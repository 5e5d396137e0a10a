"""Every definition rule of SEMANTICS.md, valid and invalid, at class creation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from squidie_core import (
    COMPLETE,
    Backoff,
    DefinitionError,
    RetryPolicy,
    Step,
    Workflow,
    approval_step,
    cron,
    equals,
    field,
    greater_than,
    less_than,
    log,
    manual,
    pause,
    step,
    transition,
    wait,
)


def ok_step(input: Any, ctx: Any) -> dict[str, Any]:
    return {}


def other_step(input: Any, ctx: Any) -> dict[str, Any]:
    return {}


class GoodStep(Step):
    def run(self, input: Any, ctx: Any) -> dict[str, Any]:
        return {}


def build(body: dict[str, Any], name: str = "Flow", **options: Any) -> type[Workflow]:
    """Create a workflow class from a namespace, as a class statement would."""
    return type(Workflow)(name, (Workflow,), dict(body), **options)  # type: ignore[call-arg]


def expect_rule(rule: str, body: dict[str, Any], *, subject: str | None = None) -> DefinitionError:
    with pytest.raises(DefinitionError) as info:
        build(body)
    err = info.value
    assert err.rule == rule, str(err)
    assert err.workflow == "Flow"
    assert "Flow" in str(err) and f"[rule: {rule}]" in str(err)
    if subject is not None:
        assert err.subject is not None and subject in err.subject, err.subject
        assert subject in str(err)
    return err


def simple(**extra: Any) -> dict[str, Any]:
    """One trigger ``go`` and one step ``a`` routed to complete; override either."""
    body: dict[str, Any] = {"go": manual(x=field(str)), "a": step(ok_step)}
    body.update(extra)
    body["transitions"] = [transition(body["a"], on="ok", to=COMPLETE)]
    return body


# --------------------------------------------------------------------------- the seed shape


def test_seed_examples_compile() -> None:
    from daily_digest import DailyDigest
    from party_invites import DeliverInvite, SendPartyInvites
    from ring_errand import RingErrand

    ring = RingErrand.definition()
    assert ring.name == "RingErrand"
    assert ring.entries == ("pack_lembas",)
    assert ring.steps["cross_moria"].retry.max_attempts == 3
    assert ring.steps["wait_for_gandalf"].kind == "wait"
    assert ring.steps["wait_for_council"].kind == "approval"
    assert ring.steps["pack_lembas"].compensate is not None
    rec = [e for e in ring.edges if e.recovery]
    assert [(e.source, e.on, e.to, e.recovery) for e in rec] == [
        ("wait_for_council", "error", "walk_home_awkwardly", "compensation")
    ]
    assert ring.triggers["leave_shire"].fields["bearer"].default == "Frodo"
    assert SendPartyInvites.definition().name == "SendPartyInvites"
    assert DeliverInvite.definition().triggers
    digest = DailyDigest.definition().triggers["daily_digest"]
    assert (digest.kind, digest.expression, digest.timezone) == ("cron", "0 9 * * 1-5", "Etc/UTC")


def test_definition_is_immutable_and_introspectable() -> None:
    flow = build(simple())
    d = flow.definition()
    with pytest.raises(AttributeError):
        d.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        d.steps["b"] = d.steps["a"]  # type: ignore[index]
    desc = d.describe()
    assert desc["steps"][0]["name"] == "a"
    assert desc["transitions"] == [{"from": "a", "on": "ok", "to": "complete"}]
    assert desc["triggers"][0]["fields"]["x"] == {"type": "string", "required": True}


def test_fingerprint_stable_and_changes_with_graph() -> None:
    one = build(simple()).definition().fingerprint
    two = build(simple()).definition().fingerprint
    assert one == two
    b = step(other_step)
    a = step(ok_step)
    changed = build({
        "go": manual(x=field(str)), "a": a, "b": b,
        "transitions": [transition(a, on="ok", to=b), transition(b, on="ok", to=COMPLETE)],
    }).definition().fingerprint
    assert changed != one
    retried = build(simple(a=step(ok_step, retry=3))).definition()
    assert retried.steps["a"].retry.max_attempts == 3
    assert retried.fingerprint != one


def test_class_keywords_name_and_queue() -> None:
    flow = build(simple(), name="Flow", queue="emails")
    assert flow.definition().queue == "emails"
    renamed = type(Workflow)("Other", (Workflow,), simple(), name="billing.flow")  # type: ignore[call-arg]
    assert renamed.definition().name == "billing.flow"


def test_unknown_class_option() -> None:
    with pytest.raises(DefinitionError) as info:
        type(Workflow)("Flow", (Workflow,), simple(), colour="red")  # type: ignore[call-arg]
    assert info.value.rule == "class_options"


def test_abstract_base_is_not_compiled() -> None:
    base = type(Workflow)("Base", (Workflow,), {}, abstract=True)  # type: ignore[call-arg]
    assert "__squidie__" not in base.__dict__


# --------------------------------------------------------------------------- triggers


def test_trigger_required() -> None:
    a = step(ok_step)
    expect_rule("trigger_required", {"a": a, "transitions": [transition(a, on="ok", to=COMPLETE)]})


def test_duplicate_names_in_class_body() -> None:
    class_src = """
class Flow(Workflow):
    go = manual()
    go = manual(x=field(str))
    a = step(ok_step)
    transitions = [transition(a, on="ok", to=COMPLETE)]
"""
    with pytest.raises(DefinitionError) as info:
        exec(class_src, {**globals()})
    assert info.value.rule == "unique_names"
    assert "'go'" in str(info.value)


def test_duplicate_step_names_in_class_body() -> None:
    class_src = """
class Flow(Workflow):
    go = manual()
    a = step(ok_step)
    a = step(other_step)
    transitions = [transition("a", on="ok", to=COMPLETE)]
"""
    with pytest.raises(DefinitionError) as info:
        exec(class_src, {**globals()})
    assert info.value.rule == "unique_names"


def test_same_step_object_bound_twice() -> None:
    a = step(ok_step)
    expect_rule("unique_names", {"go": manual(), "a": a, "b": a, "transitions": []}, subject="b")


def test_cron_trigger_valid() -> None:
    flow = build(simple(go=cron("*/5 * * * *", timezone="Europe/Paris",
                               idempotency="skip_duplicate")))
    t = flow.definition().triggers["go"]
    assert (t.timezone, t.idempotency) == ("Europe/Paris", "skip_duplicate")


@pytest.mark.parametrize("expr", ["", "61 * * * *", "* * *", "not cron", "* * * * * * * *"])
def test_cron_expression_invalid(expr: str) -> None:
    expect_rule("cron_expression", simple(go=cron(expr)), subject="trigger 'go'")


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", "UTC+25"])
def test_cron_timezone_invalid(tz: str) -> None:
    expect_rule("cron_timezone", simple(go=cron("0 9 * * *", timezone=tz)), subject="'go'")


def test_cron_idempotency_invalid() -> None:
    expect_rule("cron_idempotency",
                simple(go=cron("0 9 * * *", idempotency="always")))  # type: ignore[arg-type]


def test_cron_fields_need_defaults() -> None:
    expect_rule("cron_field_default", simple(go=cron("0 9 * * *", who=field(str))),
                subject="field 'who'")
    build(simple(go=cron("0 9 * * *", who=field(str, default="ops"))))


def test_trigger_name_style() -> None:
    expect_rule("trigger_name", {**simple(), "Go": manual()}, subject="'Go'")


# --------------------------------------------------------------------------- fields


@pytest.mark.parametrize(
    "kind",
    [str, int, float, bool, dict, list, "string", "integer", "float", "boolean", "map",
     "list", "datetime", "date"],
)
def test_field_types_accepted(kind: Any) -> None:
    build(simple(go=manual(v=field(kind))))


def test_datetime_and_date_types() -> None:
    from datetime import date, datetime

    d = build(simple(go=manual(at=field(datetime), on=field(date)))).definition()
    fields = d.triggers["go"].fields
    assert (fields["at"].type, fields["on"].type) == ("datetime", "date")


def test_field_type_unknown() -> None:
    expect_rule("field_type", simple(go=manual(v=field(bytes))), subject="field 'v'")
    expect_rule("field_type", simple(go=manual(v=field("uuid"))))


@pytest.mark.parametrize(
    ("kind", "default"),
    [(int, "3"), (str, 3), (bool, 1), (float, "x"), (dict, []), (list, {}), ("date", "tomorrow"),
     (int, True)],
)
def test_field_default_must_match(kind: Any, default: Any) -> None:
    expect_rule("field_default", simple(go=manual(v=field(kind, default=default))))


def test_field_types_consistent_across_triggers() -> None:
    err = expect_rule(
        "field_type_consistent",
        simple(go=manual(v=field(str)), again=manual(v=field(int))),
        subject="field 'v'",
    )
    assert "'go'" in str(err)
    build(simple(go=manual(v=field(str)), again=manual(v=field(str, default="x"))))


# --------------------------------------------------------------------------- steps


def test_step_required() -> None:
    expect_rule("step_required", {"go": manual(), "transitions": []})


def test_step_impl_kinds() -> None:
    async def async_fn(input: Any, ctx: Any) -> dict[str, Any]:
        return {}

    class AsyncStep(Step):
        async def run(self, input: Any, ctx: Any) -> dict[str, Any]:
            return {}

    for impl in (ok_step, GoodStep, async_fn, AsyncStep):
        build(simple(a=step(impl)))


def test_step_impl_invalid() -> None:
    class NotAStep:
        def run(self, input: Any, ctx: Any) -> None: ...

    class NoRun(Step):
        pass

    def wrong_arity(input: Any) -> None: ...

    class WrongRun(Step):
        def run(self) -> None:  # type: ignore[override]
            ...

    for impl in (NotAStep, NoRun, wrong_arity, WrongRun, 42):
        expect_rule("step_impl", simple(a=step(impl)), subject="step 'a'")


def test_step_name_rules() -> None:
    a = step(ok_step)
    expect_rule("step_name", {"go": manual(), "Bad": a,
                              "transitions": [transition(a, on="ok", to=COMPLETE)]})


def test_wait_duration() -> None:
    build(simple(a=wait(timedelta(seconds=5))))
    for bad in (0, -1, float("inf"), "5s"):
        expect_rule("wait_duration", simple(a=wait(bad)), subject="step 'a'")  # type: ignore[arg-type]


def test_log_step() -> None:
    d = build(simple(a=log("hello {x}", level="warning"))).definition()
    assert d.steps["a"].level == "warning"
    expect_rule("log_level", simple(a=log("hi", level="loud")), subject="step 'a'")


def test_retry_policies() -> None:
    d = build(simple(a=step(ok_step, retry=RetryPolicy(
        max_attempts=5, backoff=Backoff.exponential(min=1, max=30, jitter=True))))).definition()
    policy = d.steps["a"].retry
    assert (policy.max_attempts, policy.backoff.kind) == (5, "exponential")
    assert policy.backoff.jitter == 0.5
    seed_form = {"max_attempts": 5,
                 "backoff": {"type": "exponential", "min": 1, "max": 30}}
    d = build(simple(a=step(ok_step, retry=seed_form))).definition()
    assert d.steps["a"].retry.backoff.max == 30
    d = build(simple(a=step(ok_step, retry=RetryPolicy(
        max_attempts=2, backoff=Backoff.fixed(timedelta(seconds=3)))))).definition()
    assert d.steps["a"].retry.backoff.min == 3


@pytest.mark.parametrize("attempts", [0, -1, True])
def test_retry_max_attempts_positive(attempts: Any) -> None:
    expect_rule("retry_max_attempts",
                simple(a=step(ok_step, retry=RetryPolicy(max_attempts=attempts))))


def test_retry_backoff_bounds() -> None:
    expect_rule("retry_backoff", simple(a=step(ok_step, retry=RetryPolicy(
        max_attempts=3, backoff=Backoff.exponential(min=10, max=1)))), subject="step 'a'")
    expect_rule("retry_backoff", simple(a=step(ok_step, retry=RetryPolicy(
        max_attempts=3, backoff=Backoff.exponential(min=-1, max=1)))))
    expect_rule("retry_backoff", simple(a=step(ok_step, retry=RetryPolicy(
        max_attempts=3, backoff=Backoff.exponential(min=1, max=2, jitter=1.5)))))


def test_retry_bad_forms_raise_type_errors() -> None:
    with pytest.raises(TypeError):
        step(ok_step, retry={"max_attempts": 2, "colour": 1})
    with pytest.raises(TypeError):
        step(ok_step, retry={"backoff": {"type": "fibonacci"}})
    with pytest.raises(TypeError):
        step(ok_step, retry="three")  # type: ignore[arg-type]


def test_backoff_delays() -> None:
    b = Backoff.exponential(min=1, max=10)
    assert [b.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert Backoff.fixed(3).delay(9) == 3
    import random

    jittered = Backoff.exponential(min=4, max=100, jitter=0.5)
    values = {jittered.delay(1, random.Random(s)) for s in range(20)}
    assert all(2 <= v <= 6 for v in values) and len(values) > 1


def test_input_mapping() -> None:
    d = build(simple(a=step(ok_step, input=["ring_id", "profile.name"]))).definition()
    assert dict(d.steps["a"].input or {}) == {"ring_id": "ring_id", "name": "profile.name"}
    d = build(simple(a=step(ok_step, input={"who": "profile.name"}))).definition()
    assert dict(d.steps["a"].input or {}) == {"who": "profile.name"}
    expect_rule("input_mapping", simple(a=step(ok_step, input={"who": "a..b"})))
    expect_rule("input_mapping", simple(a=step(ok_step, input={"who": ""})))


def test_output_key() -> None:
    build(simple(a=step(ok_step, output="result")))
    expect_rule("output_key", simple(a=step(ok_step, output="Not A Key")), subject="step 'a'")


def test_compensate_and_irreversible() -> None:
    d = build(simple(a=step(ok_step, compensate=other_step, irreversible=True))).definition()
    assert d.steps["a"].compensate is other_step and d.steps["a"].irreversible
    expect_rule("compensate_impl", simple(a=step(ok_step, compensate="undo")))
    # compensate on a built-in is refused:
    w = wait(3)
    object.__setattr__(w, "compensate", other_step)
    expect_rule("compensate_impl", simple(a=w))


# --------------------------------------------------------------------------- transitions


def two_steps(*transitions: Any, **extra: Any) -> dict[str, Any]:
    a, b = step(ok_step), step(other_step)
    body = {"go": manual(), "a": a, "b": b}
    body["transitions"] = [t(a, b) if callable(t) else t for t in transitions]
    body.update(extra)
    return body


def test_transitions_by_name_and_object() -> None:
    d = build(two_steps(
        lambda a, b: transition("a", on="ok", to="b"),
        lambda a, b: transition(b, on="ok", to=COMPLETE),
    )).definition()
    assert [e.key for e in d.edges] == ["a:ok:b", "b:ok:complete"]


def test_transition_unknown_steps() -> None:
    err = expect_rule("transition_to", two_steps(
        lambda a, b: transition(a, on="ok", to="bb"),
        lambda a, b: transition(b, on="ok", to=COMPLETE),
    ))
    assert "did you mean 'b'" in str(err)
    expect_rule("transition_from", two_steps(
        lambda a, b: transition("zz", on="ok", to=b),
        lambda a, b: transition(a, on="ok", to=b),
        lambda a, b: transition(b, on="ok", to=COMPLETE),
    ))
    foreign = step(ok_step)
    expect_rule("transition_to", two_steps(
        lambda a, b: transition(a, on="ok", to=foreign),
        lambda a, b: transition(b, on="ok", to=COMPLETE),
    ))


def test_transition_outcome() -> None:
    expect_rule("transition_outcome", two_steps(
        lambda a, b: transition(a, on="maybe", to=b),  # type: ignore[arg-type]
        lambda a, b: transition(b, on="ok", to=COMPLETE),
    ), subject="a:maybe:b")


def test_recovery_only_on_error() -> None:
    expect_rule("recovery_on_error", two_steps(
        lambda a, b: transition(a, on="ok", to=b, recovery="compensation"),
        lambda a, b: transition(b, on="ok", to=COMPLETE),
    ), subject="a:ok:b")
    expect_rule("recovery_marker", two_steps(
        lambda a, b: transition(a, on="ok", to=COMPLETE),
        lambda a, b: transition(a, on="error", to=b, recovery="panic"),  # type: ignore[arg-type]
        lambda a, b: transition(b, on="ok", to=COMPLETE),
    ))
    for marker in ("compensation", "undo"):
        build(two_steps(
            lambda a, b: transition(a, on="ok", to=COMPLETE),
            lambda a, b, m=marker: transition(a, on="error", to=b, recovery=m),
            lambda a, b: transition(b, on="ok", to=COMPLETE),
        ))


def test_one_unconditional_transition_per_outcome() -> None:
    expect_rule("unconditional_unique", two_steps(
        lambda a, b: transition(a, on="ok", to=b),
        lambda a, b: transition(a, on="ok", to=COMPLETE),
        lambda a, b: transition(b, on="ok", to=COMPLETE),
    ), subject="a:ok:complete")


def test_conditions() -> None:
    d = build(two_steps(
        lambda a, b: transition(a, on="ok", to=b, condition=greater_than("score", 10)),
        lambda a, b: transition(a, on="ok", to=COMPLETE, condition=equals("kind", "vip")),
        lambda a, b: transition(a, on="ok", to=COMPLETE),
        lambda a, b: transition(b, on="ok", to=COMPLETE, condition=less_than("n", 1)),
        lambda a, b: transition(b, on="ok", to=COMPLETE),
    )).definition()
    routes = d.routes("a", "ok")
    assert [e.condition is None for e in routes] == [False, False, True]


def test_conditions_may_not_repeat() -> None:
    expect_rule("condition_unique", two_steps(
        lambda a, b: transition(a, on="ok", to=b, condition=equals("k", 1)),
        lambda a, b: transition(a, on="ok", to=COMPLETE, condition=equals("k", 1)),
        lambda a, b: transition(a, on="ok", to=COMPLETE),
        lambda a, b: transition(b, on="ok", to=COMPLETE),
    ))


def test_conditional_ok_needs_fallback() -> None:
    expect_rule("conditional_fallback", two_steps(
        lambda a, b: transition(a, on="ok", to=b, condition=equals("k", 1)),
        lambda a, b: transition(b, on="ok", to=COMPLETE),
    ), subject="step 'a'")


def test_no_transition_out_of_complete() -> None:
    expect_rule("no_exit_from_complete", two_steps(
        lambda a, b: transition(a, on="ok", to=b),
        lambda a, b: transition(b, on="ok", to=COMPLETE),
        lambda a, b: transition(COMPLETE, on="ok", to=a),
    ))


def test_exactly_one_entry_step() -> None:
    err = expect_rule("entry_unique", two_steps(
        lambda a, b: transition(a, on="ok", to=COMPLETE),
        lambda a, b: transition(b, on="ok", to=COMPLETE),
    ))
    assert "'a'" in str(err) and "'b'" in str(err)


def test_every_step_needs_an_ok_route() -> None:
    expect_rule("ok_route_required", two_steps(
        lambda a, b: transition(a, on="ok", to=b),
    ), subject="step 'b'")


def test_approval_must_route_ok_and_error() -> None:
    a, council, b = step(ok_step), approval_step(output="approval"), step(other_step)
    base = {"go": manual(), "a": a, "council": council, "b": b}
    expect_rule("approval_routes", {**base, "transitions": [
        transition(a, on="ok", to=council),
        transition(council, on="ok", to=b),
        transition(b, on="ok", to=COMPLETE),
    ]}, subject="step 'council'")
    build({**base, "transitions": [
        transition(a, on="ok", to=council),
        transition(council, on="ok", to=b),
        transition(council, on="error", to=COMPLETE),
        transition(b, on="ok", to=COMPLETE),
    ]})


def test_pause_step() -> None:
    a, hold = step(ok_step), pause(output="resumed")
    build({"go": manual(), "a": a, "hold": hold, "transitions": [
        transition(a, on="ok", to=hold), transition(hold, on="ok", to=COMPLETE)]})


def test_cycles_are_refused() -> None:
    a, b, c = step(ok_step), step(other_step), step(ok_step)
    err = expect_rule("acyclic", {"go": manual(), "a": a, "b": b, "c": c, "transitions": [
        transition(a, on="ok", to=b),
        transition(b, on="ok", to=c),
        transition(c, on="ok", to=b),
    ]})
    assert "b -> c -> b" in str(err)
    expect_rule("acyclic", two_steps(
        lambda a, b: transition(a, on="ok", to=a),
        lambda a, b: transition(b, on="ok", to=COMPLETE),
    ))


def test_unreachable_steps_are_refused() -> None:
    a, b, c = step(ok_step), step(other_step), step(ok_step)
    # b and c only enter each other: 'a' is the one entry, and neither can be reached.
    d = {"go": manual(), "a": a, "b": b, "c": c, "transitions": [
        transition(a, on="ok", to=COMPLETE),
        transition(b, on="ok", to=c), transition(c, on="ok", to=b)]}
    expect_rule("reachable", d, subject="step 'b'")


def test_two_entries_are_refused() -> None:
    a, b, c = step(ok_step), step(other_step), step(ok_step)
    expect_rule("entry_unique", {"go": manual(), "a": a, "b": b, "c": c, "transitions": [
        transition(a, on="ok", to=b), transition(b, on="ok", to=COMPLETE),
        transition(c, on="ok", to=b)]})


# --------------------------------------------------------------------------- dependency mode


def test_dependency_mode_fan_out_fan_in() -> None:
    split = step(ok_step)
    left = step(other_step, after=[split])
    right = step(ok_step, after=["split"])
    join = step(other_step, after=[left, right])
    d = build({"go": manual(), "split": split, "left": left, "right": right,
               "join": join}).definition()
    assert d.mode == "dependencies"
    assert d.entries == ("split",)
    assert set(d.dependents("split")) == {"left", "right"}
    assert d.dependencies("join") == ("left", "right")


def test_dependency_mode_rules() -> None:
    a = step(ok_step)
    expect_rule("after_nonempty", {"go": manual(), "a": a, "b": step(ok_step, after=[])},
                subject="step 'b'")
    err = expect_rule("after_known", {"go": manual(), "a": a, "b": step(ok_step, after=["aa"])})
    assert "did you mean 'a'" in str(err)
    b = step(ok_step, after=["c"])
    c = step(ok_step, after=["b"])
    expect_rule("after_acyclic", {"go": manual(), "a": a, "b": b, "c": c})
    expect_rule("after_acyclic", {"go": manual(), "a": a, "b": step(ok_step, after=["b"])})
    x = step(ok_step, after=["y"])
    y = step(ok_step, after=["x"])
    expect_rule("entry_unique", {"go": manual(), "x": x, "y": y})


def test_dependency_mode_excludes_transitions() -> None:
    a = step(ok_step)
    b = step(ok_step, after=[a])
    expect_rule("single_mode", {"go": manual(), "a": a, "b": b,
                                "transitions": [transition(a, on="ok", to=COMPLETE)]},
                subject="step 'b'")


def test_dependency_mode_refuses_approvals() -> None:
    a = step(ok_step)
    expect_rule("approval_routes", {"go": manual(), "a": a, "ok": approval_step(),
                                    "b": step(ok_step, after=[a])})
