"""Reference workflows and the scenarios that drive them, for ``RuntimeSuite``.

Each scenario is a list of operations (start, drain the queue, move time, approve,
cancel, crash a worker...). ``RuntimeSuite`` runs the same operations through
``squidie_core.Squidie`` on the store under test and on a fresh memory store side by
side, and after every operation compares what each engine shows: the runs' facts
(normalised: times, durations, owners and fences removed), statuses, ``inspect_run``,
``explain_run`` reasons and next actions, graph statuses and dispatch states.

Everything that could differ between two honest stores is made deterministic: run ids
come from idempotency keys, child keys and cron windows; backoff jitter from a seeded
``random.Random``; time moves only when an operation moves both clocks by the same
amount. The workflows are registered under names starting with ``conformance.``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from squidie_core import (
    COMPLETE,
    Backoff,
    Error,
    NonRetryableError,
    Payload,
    Retry,
    RetryPolicy,
    Runner,
    Squidie,
    StepContext,
    Workflow,
    approval_step,
    cron,
    manual,
    pause,
    step,
    transition,
    wait,
)
from squidie_core import field as payload_field
from squidie_core.errors import SquidieError

__all__ = ["SCENARIOS", "WORKFLOWS", "Scenario", "Side", "WorkerCrash"]

#: The engine running the current operation (steps that issue commands read it).
CURRENT: contextvars.ContextVar[Side] = contextvars.ContextVar("conformance_side")


class WorkerCrash(BaseException):
    """Raised by a step to kill its worker mid-step: nothing is settled or committed.

    A ``BaseException`` so the engine does not record it as a step failure; the driver
    catches it as a real worker's process would die.
    """


def _flags() -> dict[str, Any]:
    return CURRENT.get().flags


# --------------------------------------------------------------------------- steps


def reserve(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"reserved": input["order_id"], "attempt_seen": ctx.attempt}


def charge(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"charged": input["order_id"], "key": ctx.idempotency_key}


def ship(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"shipped": True}


def flaky(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    if ctx.attempt < 3:
        raise ConnectionError(f"upstream timeout on attempt {ctx.attempt}")
    return {"flaky_ok_on": ctx.attempt}


def patient(input: Mapping[str, Any], ctx: StepContext) -> Any:
    if ctx.attempt == 1:
        return Retry("rate limited", after=15)
    return {"patient_ok_on": ctx.attempt}


def refuse(input: Mapping[str, Any], ctx: StepContext) -> Any:
    return Error("card declined", details={"code": 51})


def explode(input: Mapping[str, Any], ctx: StepContext) -> Any:
    raise NonRetryableError("the payment provider rejected the request")


def fallback(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"fell_back": True}


def undo(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"undone": ctx.step}


def cancel_myself(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    # An operator cancels the run while this step is running.
    CURRENT.get().engine.cancel(ctx.run_id, actor="operator", reason="customer called")
    return {"finished_anyway": True}


def overtaken(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    # The first holder stalls past its lease; a second worker takes the attempt over and
    # commits it while the first is still "running". The first one's commit must fail.
    side = CURRENT.get()
    if not side.flags.get("overtaken"):
        side.flags["overtaken"] = True
        side.clock.advance(WORKER_LEASE + 1)
        side.flags["rescue"] = drain("rescuer")(side)
    return {"done_by_attempt": ctx.attempt}


def crash_unless_healed(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    if not _flags().get("healed"):
        raise WorkerCrash(f"worker killed running {ctx.step}")
    return {"survived": True}


def spawn_children(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    ids = [
        ctx.start_child_run(Child, {"parcel": parcel}, child_key=f"parcel-{parcel}").run_id
        for parcel in input["parcels"]
    ]
    return {"children": ids}


def deliver(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"delivered": input["parcel"]}


def branch(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {f"branch_{ctx.step}": ctx.step}


def join(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"joined": sorted(k for k in input if k.startswith("branch_"))}


def build_digest(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"digest_for": input["schedule"]["window"]}


# --------------------------------------------------------------------------- workflows


class Sequential(Workflow, name="conformance.Sequential"):
    place = manual(order_id=payload_field(str), note=payload_field(str, default="none"))
    reserve = step(reserve)
    charge = step(charge, input=["order_id"], output="charge")
    ship = step(ship)
    transitions = [
        transition(reserve, on="ok", to=charge),
        transition(charge, on="ok", to=ship),
        transition(ship, on="ok", to=COMPLETE),
    ]


class Retrying(Workflow, name="conformance.Retrying"):
    go = manual()
    flaky = step(flaky, retry=RetryPolicy(
        max_attempts=4, backoff=Backoff.exponential(min=10, max=40, jitter=0.2)))
    patient = step(patient, retry=RetryPolicy(max_attempts=2, backoff=Backoff.fixed(5)))
    transitions = [
        transition(flaky, on="ok", to=patient),
        transition(patient, on="ok", to=COMPLETE),
    ]


class Waiting(Workflow, name="conformance.Waiting"):
    go = manual()
    prepare = step(ship)
    cool_down = wait(30)
    finish = step(fallback)
    transitions = [
        transition(prepare, on="ok", to=cool_down),
        transition(cool_down, on="ok", to=finish),
        transition(finish, on="ok", to=COMPLETE),
    ]


class Approval(Workflow, name="conformance.Approval"):
    go = manual(amount=payload_field(int))
    draft = step(ship)
    review = approval_step(output="decision")
    publish = step(charge, input={"order_id": "decision.actor"})
    discard = step(fallback)
    transitions = [
        transition(draft, on="ok", to=review),
        transition(review, on="ok", to=publish),
        transition(review, on="error", to=discard, recovery="compensation"),
        transition(publish, on="ok", to=COMPLETE),
        transition(discard, on="ok", to=COMPLETE),
    ]


class Pausing(Workflow, name="conformance.Pausing"):
    go = manual()
    prepare = step(ship)
    hold = pause(output="resumed_by")
    finish = step(fallback)
    transitions = [
        transition(prepare, on="ok", to=hold),
        transition(hold, on="ok", to=finish),
        transition(finish, on="ok", to=COMPLETE),
    ]


class Cancelling(Workflow, name="conformance.Cancelling"):
    go = manual()
    long_job = step(cancel_myself)
    follow_up = step(ship)
    transitions = [
        transition(long_job, on="ok", to=follow_up),
        transition(follow_up, on="ok", to=COMPLETE),
    ]


class Child(Workflow, name="conformance.Child"):
    ship_parcel = manual(parcel=payload_field(str))
    drop_off = step(deliver)
    transitions = [transition(drop_off, on="ok", to=COMPLETE)]


class Parent(Workflow, name="conformance.Parent"):
    go = manual(parcels=payload_field(list))
    fan_out = step(spawn_children)
    wrap_up = step(ship)
    transitions = [
        transition(fan_out, on="ok", to=wrap_up),
        transition(wrap_up, on="ok", to=COMPLETE),
    ]


class Compensating(Workflow, name="conformance.Compensating"):
    go = manual(trip=payload_field(str, default="Rivendell"))
    book_hotel = step(ship, compensate=undo)
    book_flight = step(reserve, input={"order_id": "trip"}, compensate=undo)
    pay = step(refuse)
    transitions = [
        transition(book_hotel, on="ok", to=book_flight),
        transition(book_flight, on="ok", to=pay),
        transition(pay, on="ok", to=COMPLETE),
    ]


class Recovering(Workflow, name="conformance.Recovering"):
    go = manual()
    pay = step(explode)
    manual_review = step(fallback)
    transitions = [
        transition(pay, on="ok", to=COMPLETE),
        transition(pay, on="error", to=manual_review, recovery="undo"),
        transition(manual_review, on="ok", to=COMPLETE),
    ]


class FanOut(Workflow, name="conformance.FanOut"):
    go = manual()
    fetch = step(ship)
    left = step(branch, after=[fetch])
    middle = step(branch, after=[fetch])
    right = step(branch, after=[fetch])
    merge = step(join, after=[left, middle, right])


class Digest(Workflow, name="conformance.Digest"):
    nightly = cron("0 3 * * *", timezone="Etc/UTC", idempotency="return_existing_run")
    build = step(build_digest)
    transitions = [transition(build, on="ok", to=COMPLETE)]


class DigestOnce(Workflow, name="conformance.DigestOnce"):
    nightly = cron("0 3 * * *", timezone="Etc/UTC", idempotency="skip_duplicate")
    build = step(build_digest)
    transitions = [transition(build, on="ok", to=COMPLETE)]


class Overtaken(Workflow, name="conformance.Overtaken"):
    go = manual()
    slow = step(overtaken)
    transitions = [transition(slow, on="ok", to=COMPLETE)]


class Crashing(Workflow, name="conformance.Crashing"):
    go = manual()
    fragile = step(crash_unless_healed)
    transitions = [transition(fragile, on="ok", to=COMPLETE)]


WORKFLOWS: tuple[type[Workflow], ...] = (
    Sequential, Retrying, Waiting, Approval, Pausing, Cancelling, Child, Parent,
    Compensating, Recovering, FanOut, Digest, DigestOnce, Overtaken, Crashing,
)

# --------------------------------------------------------------------------- driving


@dataclass
class Side:
    """One engine of the side-by-side run: its store, clock, known runs and flags."""

    name: str
    engine: Squidie
    clock: Any
    runs: dict[str, str] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)
    prefix: str = ""


Op = Callable[[Side], Any]

#: Lease taken by the driver's worker (long enough that real time never expires it).
WORKER_LEASE = 120.0
MAX_DRAIN = 200


def start(label: str, workflow: type[Workflow], payload: Mapping[str, Any] | None = None,
          *, key: str | None = None) -> Op:
    """Start a run with an idempotency key (deterministic run id) and remember it."""

    def op(side: Side) -> Any:
        result = side.engine.start(workflow, None, payload,
                                   idempotency_key=side.prefix + (key or label))
        side.runs.setdefault(label, result.run_id)
        return {"run_id": result.run_id, "status": result.status, "created": result.created}

    return op


def drain(owner: str = "worker") -> Op:
    """Execute visible dispatches until none is left (a crashing step kills one worker)."""

    def op(side: Side) -> Any:
        done: list[Any] = []
        for _ in range(MAX_DRAIN):
            try:
                result = side.engine.execute_next(
                    owner_id=owner, lease_for=WORKER_LEASE, heartbeat_interval=0
                )
            except WorkerCrash as crash:
                done.append(["crash", str(crash)])
                return done
            if result is None:
                return done
            done.append([result.step, result.attempt, result.outcome, result.run_status])
        raise AssertionError("drain did not finish: a runaway workflow")

    return op


def advance(seconds: float) -> Op:
    """Move the side's clock (the store's) forward."""

    def op(side: Side) -> Any:
        side.clock.advance(seconds)
        return seconds

    return op


def command(name: str, label: str, **options: Any) -> Op:
    """Issue ``approve``/``reject``/``resume``/``cancel`` on a known run."""

    def op(side: Side) -> Any:
        result = getattr(side.engine, name)(side.runs[label], **options)
        return {"status": result.status, "duplicate": result.duplicate,
                "command": result.command}

    return op


def abandon(owner: str, lease_for: float) -> Op:
    """A worker claims the next dispatch and dies without running it."""

    def op(side: Side) -> Any:
        leases = side.engine.store.claim(owner, lease_for=lease_for,
                                         queues=side.engine.queues())
        return [lease.key for lease in leases]

    return op


def deliver_cron(workflow: type[Workflow], day: int, *, signal_id: str | None = None) -> Op:
    """Deliver one nightly cron window, as a host scheduler would."""

    def op(side: Side) -> Any:
        window = (datetime(2026, 3, day, 3, tzinfo=UTC), datetime(2026, 3, day + 1, 3,
                                                                   tzinfo=UTC))
        result = Runner(side.engine).perform(
            Payload.cron(workflow, "nightly", signal_id=signal_id, intended_window=window)
        )
        if result is None:
            return None
        side.runs.setdefault(f"cron-{day}", result.run_id)
        return {"run_id": result.run_id, "status": result.status, "created": result.created}

    return op


def replay(label: str, new_label: str) -> Op:
    """Replay a finished run (with an idempotency key, so the new id is deterministic)."""

    def op(side: Side) -> Any:
        result = side.engine.replay(side.runs[label], idempotency_key=side.prefix + new_label)
        side.runs.setdefault(new_label, result.run_id)
        return {"run_id": result.run_id, "status": result.status}

    return op


def redrive(label: str, step_name: str, attempt: int = 1) -> Op:
    """Re-drive a dead-lettered dispatch of a known run."""

    def op(side: Side) -> Any:
        side.engine.redrive(f"{side.runs[label]}:{step_name}:{attempt}")
        return True

    return op


def set_flag(name: str, value: Any) -> Op:
    """Change a flag the steps read (for example: stop crashing)."""

    def op(side: Side) -> Any:
        side.flags[name] = value
        return value

    return op


def checkpoints_deleted() -> Op:
    """Delete every checkpoint: nothing a run shows may change."""

    def op(side: Side) -> Any:
        return side.engine.store.delete_checkpoints() >= 0

    return op


def attempt(op: Op) -> Op:
    """Run ``op`` and return the error class it raised instead of failing (both sides
    must raise the same error)."""

    def wrapped(side: Side) -> Any:
        try:
            return {"returned": op(side)}
        except SquidieError as exc:
            return {"raised": type(exc).__name__, "code": exc.code}

    return wrapped


@dataclass(frozen=True)
class Scenario:
    """A named list of operations run identically on both sides."""

    name: str
    ops: tuple[tuple[str, Op], ...]


def _s(name: str, *ops: tuple[str, Op]) -> Scenario:
    return Scenario(name, tuple(ops))


SCENARIOS: tuple[Scenario, ...] = (
    _s("sequential_steps",
       ("start", start("order", Sequential, {"order_id": "A-1"})),
       ("drain", drain()),
       ("delete checkpoints", checkpoints_deleted())),
    _s("retries_with_backoff",
       ("start", start("flaky", Retrying)),
       ("drain", drain()),
       ("too early", advance(5)), ("drain early", drain()),
       ("first backoff", advance(13)), ("drain", drain()),
       ("second backoff", advance(25)), ("drain", drain()),
       ("retry after", advance(16)), ("drain", drain())),
    _s("durable_wait",
       ("start", start("wait", Waiting)),
       ("drain", drain()),
       ("not yet", advance(20)), ("drain early", drain()),
       ("elapsed", advance(11)), ("drain", drain())),
    _s("approval_approved",
       ("start", start("post", Approval, {"amount": 3})),
       ("drain", drain()),
       ("wrong command", attempt(command("resume", "post", actor="ops"))),
       ("approve", command("approve", "post", actor="elrond", comment="fine",
                           idempotency_key="approve-1")),
       ("approve again", command("approve", "post", actor="elrond", comment="fine",
                                 idempotency_key="approve-1")),
       ("drain", drain())),
    _s("approval_rejected",
       ("start", start("post", Approval, {"amount": 9})),
       ("drain", drain()),
       ("reject", command("reject", "post", actor="saruman", comment="no")),
       ("drain", drain()),
       ("reject ended run", attempt(command("reject", "post", actor="saruman")))),
    _s("pause_and_resume",
       ("start", start("hold", Pausing)),
       ("drain", drain()),
       ("approve is wrong", attempt(command("approve", "hold", actor="ops"))),
       ("resume", command("resume", "hold", actor="ops", metadata={"ticket": 7,
                                                                   "api_key": "hidden"})),
       ("drain", drain())),
    _s("cancel_during_a_step",
       ("start", start("doomed", Cancelling)),
       ("drain", drain()),
       ("cancel again", attempt(command("cancel", "doomed"))),
       ("drain", drain())),
    _s("child_runs",
       ("start", start("party", Parent, {"parcels": ["p1", "p2", "p3"]})),
       ("drain", drain())),
    _s("compensation",
       ("start", start("trip", Compensating, {})),
       ("drain", drain())),
    _s("error_route_with_recovery_marker",
       ("start", start("pay", Recovering)),
       ("drain", drain())),
    _s("dependency_fan_out_fan_in",
       ("start", start("fan", FanOut)),
       ("drain", drain())),
    _s("cron_duplicate_delivery",
       ("deliver", deliver_cron(Digest, 10)),
       ("deliver again", deliver_cron(Digest, 10)),
       ("skip duplicate", deliver_cron(DigestOnce, 11, signal_id="night-11")),
       ("skipped", deliver_cron(DigestOnce, 11, signal_id="night-11")),
       ("drain", drain())),
    _s("idempotent_start",
       ("start", start("once", Sequential, {"order_id": "B-2"}, key="order-B-2")),
       ("start again", start("twice", Sequential, {"order_id": "B-2"}, key="order-B-2")),
       ("conflicting payload", attempt(start("thrice", Sequential, {"order_id": "C-3"},
                                             key="order-B-2"))),
       ("drain", drain()),
       ("start after completion", start("late", Sequential, {"order_id": "B-2"},
                                        key="order-B-2"))),
    _s("replay_of_a_finished_run",
       ("start", start("order", Sequential, {"order_id": "R-1"})),
       ("replay unfinished", attempt(replay("order", "again"))),
       ("drain", drain()),
       ("replay", replay("order", "again")),
       ("drain", drain())),
    _s("abandoned_lease_is_taken_over",
       ("start", start("order", Sequential, {"order_id": "L-1"})),
       ("worker dies", abandon("crashed-worker", 60)),
       ("drain while leased", drain()),
       ("lease expires", advance(61)),
       ("drain", drain())),
    _s("holder_paused_past_its_lease",
       ("start", start("slow", Overtaken)),
       ("drain", drain()),
       ("what the rescuer did", lambda side: side.flags.get("rescue"))),
    _s("crashing_worker_dead_letters_then_redrive",
       ("start", start("fragile", Crashing)),
       ("crash 1", drain()), ("lease expires", advance(WORKER_LEASE + 1)),
       ("crash 2", drain()), ("lease expires", advance(WORKER_LEASE + 1)),
       ("crash 3", drain()), ("lease expires", advance(WORKER_LEASE + 1)),
       ("buried", drain()),
       ("fixed", set_flag("healed", True)),
       ("redrive", redrive("fragile", "fragile")),
       ("drain", drain())),
)
