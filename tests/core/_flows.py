"""Workflows shared by the core runtime tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from squidie_core import (
    COMPLETE,
    Backoff,
    Error,
    Retry,
    RetryPolicy,
    Step,
    StepContext,
    Workflow,
    approval_step,
    cron,
    equals,
    field,
    greater_than,
    log,
    manual,
    pause,
    step,
    transition,
    wait,
)

# A switchboard tests flip to make steps fail, block or count calls.
CALLS: dict[str, int] = {}
FAIL: dict[str, Any] = {}


def reset() -> None:
    CALLS.clear()
    FAIL.clear()


def _count(name: str) -> int:
    CALLS[name] = CALLS.get(name, 0) + 1
    return CALLS[name]


def incr(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Takes a dict, returns it with the counter incremented (benchmark W1's step)."""
    _count(ctx.step)
    return {"counter": int(input.get("counter", 0)) + 1}


class Three(Workflow):
    go = manual(counter=field(int, default=0))
    one = step(incr)
    two = step(incr)
    three = step(incr)
    transitions = [
        transition(one, on="ok", to=two),
        transition(two, on="ok", to=three),
        transition(three, on="ok", to=COMPLETE),
    ]


def flaky(input: Mapping[str, Any], ctx: StepContext) -> Any:
    n = _count("flaky")
    plan = FAIL.get("flaky", [])
    if n <= len(plan):
        kind = plan[n - 1]
        if kind == "raise":
            raise RuntimeError(f"flaky failure {n}")
        if kind == "retry_after":
            return Retry("come back later", after=42)
        if kind == "error":
            return Error("fatal", details={"n": n})
    return {"flaky_ok": n}


class Flaky(Workflow):
    go = manual()
    work = step(
        flaky,
        retry=RetryPolicy(max_attempts=3, backoff=Backoff.exponential(min=10, max=15)),
    )
    transitions = [transition(work, on="ok", to=COMPLETE)]


def recover(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"recovered": True}


class FlakyWithRoute(Workflow):
    go = manual()
    work = step(flaky, retry=2)
    fallback = step(recover)
    transitions = [
        transition(work, on="ok", to=COMPLETE),
        transition(work, on="error", to=fallback, recovery="undo"),
        transition(fallback, on="ok", to=COMPLETE),
    ]


def charge(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    _count("charge")
    return {"charged": input["amount"]}


def refund(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    _count("refund")
    return {"refunded": True}


def reserve(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    _count("reserve")
    return {"reserved": True}


def release(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    _count("release")
    return {}


def ship(input: Mapping[str, Any], ctx: StepContext) -> Any:
    _count("ship")
    return Error("no courier")


class Saga(Workflow):
    order = manual(amount=field(int))
    reserve = step(reserve, compensate=release)
    charge = step(charge, compensate=refund, irreversible=False)
    ship = step(ship)
    transitions = [
        transition(reserve, on="ok", to=charge),
        transition(charge, on="ok", to=ship),
        transition(ship, on="ok", to=COMPLETE),
    ]


class Timer(Workflow):
    go = manual()
    before = step(incr)
    nap = wait(60)
    after = step(incr)
    transitions = [
        transition(before, on="ok", to=nap),
        transition(nap, on="ok", to=after),
        transition(after, on="ok", to=COMPLETE),
    ]


class Approval(Workflow):
    request = manual(amount=field(int, default=10))
    prepare = step(incr)
    council = approval_step(output="approval")
    proceed = step(incr)
    decline = step(recover)
    transitions = [
        transition(prepare, on="ok", to=council),
        transition(council, on="ok", to=proceed),
        transition(council, on="error", to=decline, recovery="compensation"),
        transition(proceed, on="ok", to=COMPLETE),
        transition(decline, on="ok", to=COMPLETE),
    ]


class Hold(Workflow):
    go = manual()
    first = step(incr)
    hold = pause(output="resumed_by")
    note = log("resumed after {counter} steps", level="info")
    transitions = [
        transition(first, on="ok", to=hold),
        transition(hold, on="ok", to=note),
        transition(note, on="ok", to=COMPLETE),
    ]


def score(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"score": input["points"] * 2}


def tag(name: str) -> Any:
    def fn(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
        return {"tier": name}

    fn.__name__ = f"tag_{name}"
    return fn


class Branch(Workflow):
    go = manual(points=field(int), kind=field(str, default="normal"))
    rate = step(score)
    gold = step(tag("gold"))
    vip = step(tag("vip"))
    basic = step(tag("basic"))
    transitions = [
        transition(rate, on="ok", to=vip, condition=equals("kind", "vip")),
        transition(rate, on="ok", to=gold, condition=greater_than("score", 100)),
        transition(rate, on="ok", to=basic),
        transition(gold, on="ok", to=COMPLETE),
        transition(vip, on="ok", to=COMPLETE),
        transition(basic, on="ok", to=COMPLETE),
    ]


def part(name: str) -> Any:
    def fn(input: Mapping[str, Any], ctx: StepContext) -> Any:
        _count(name)
        if FAIL.get(name):
            return Error(f"{name} failed")
        return {name: True}

    fn.__name__ = f"part_{name}"
    return fn


class FanOut(Workflow):
    go = manual()
    split = step(part("split"))
    left = step(part("left"), after=["split"], compensate=part("undo_left"))
    right = step(part("right"), after=["split"])
    join = step(part("join"), after=["left", "right"])


def invite(input: Mapping[str, Any], ctx: StepContext) -> Any:
    n = _count("invite")
    ids = []
    for guest in input["guests"]:
        child = ctx.start_child_run(Three, {"counter": 100}, child_key=f"guest-{guest}",
                                    metadata={"guest": guest, "api_key": "sk-live-123"})
        ids.append(child.run_id)
    if FAIL.get("invite") and n == 1:
        raise RuntimeError("mail server down after starting children")
    return {"children": ids}


class Party(Workflow):
    plan = manual(guests=field(list))
    invite = step(invite, retry=2)
    transitions = [transition(invite, on="ok", to=COMPLETE)]


class Nightly(Workflow):
    nightly = cron("0 2 * * *", timezone="Europe/Paris", idempotency="return_existing_run")
    skipper = cron("30 2 * * *", idempotency="skip_duplicate")
    run = step(incr)
    transitions = [transition(run, on="ok", to=COMPLETE)]


def pay(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"paid": True}


class Payment(Workflow):
    go = manual(amount=field(int, default=1))
    pay = step(pay, irreversible=True)
    transitions = [transition(pay, on="ok", to=COMPLETE)]


class Emails(Workflow, queue="emails"):
    go = manual()
    send = step(incr)
    transitions = [transition(send, on="ok", to=COMPLETE)]


class Blocking(Step):
    """Its first call blocks until the test sets ``FAIL['gate']``; later calls pass.

    ``FAIL['started']`` (an Event) is set when the first call begins.
    """

    def run(self, input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
        n = _count("blocking")
        if n == 1:
            started = FAIL.get("started")
            if started is not None:
                started.set()
            gate = FAIL.get("gate")
            if gate is not None and not gate.wait(30):
                raise TimeoutError("the test never opened the gate")
        return {"blocked_call": n}


class Slow(Workflow):
    go = manual()
    block = step(Blocking)
    after = step(incr)
    transitions = [
        transition(block, on="ok", to=after),
        transition(after, on="ok", to=COMPLETE),
    ]
