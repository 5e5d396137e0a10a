"""The building blocks a workflow class is written with, and its compiled form.

Authors call the lower-case builders (``manual``, ``cron``, ``field``, ``step``, ``wait``,
``log``, ``pause``, ``approval_step``, ``transition``, ``equals``...) in a class body; the
compiler in ``_workflow`` checks them and freezes them into a ``WorkflowDefinition``.
Everything here is immutable and JSON-describable so that a definition has a stable
fingerprint.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

__all__ = [
    "COMPLETE",
    "Backoff",
    "Condition",
    "Edge",
    "FieldSpec",
    "RetryPolicy",
    "StepSpec",
    "Transition",
    "TriggerSpec",
    "WorkflowDefinition",
    "approval_step",
    "cron",
    "equals",
    "field",
    "greater_than",
    "less_than",
    "log",
    "manual",
    "pause",
    "step",
    "transition",
    "wait",
]

#: The pseudo-step a transition targets to end the run successfully.
COMPLETE = "complete"

Seconds: TypeAlias = float | int | timedelta
StepKind = Literal["task", "wait", "log", "pause", "approval"]
Outcome = Literal["ok", "error"]
RecoveryMarker = Literal["compensation", "undo"]
CronIdempotency = Literal["return_existing_run", "skip_duplicate"]

FIELD_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "string": "string",
        "str": "string",
        "integer": "integer",
        "int": "integer",
        "float": "float",
        "boolean": "boolean",
        "bool": "boolean",
        "map": "map",
        "dict": "map",
        "list": "list",
        "datetime": "datetime",
        "date": "date",
    }
)
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
RECOVERY_MARKERS = ("compensation", "undo")
CRON_IDEMPOTENCY = ("return_existing_run", "skip_duplicate")


class _Missing:
    """Sentinel for "no default": a field without one is required."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


def to_seconds(value: Seconds) -> float:
    """Return a duration given as seconds or a ``timedelta`` as float seconds."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a duration must be seconds or a timedelta, not {value!r}")
    return float(value)


# --------------------------------------------------------------------------- payload


@dataclass(frozen=True)
class FieldSpec:
    """A typed payload field of a trigger.

    Attributes:
        type: One of ``string, integer, float, boolean, map, list, datetime, date``.
        default: The value used when the field is absent (``MISSING``: required).
        description: Free text shown in ``describe()``.
    """

    type: str
    default: Any = MISSING
    description: str | None = None

    @property
    def required(self) -> bool:
        """Whether a payload must carry this field (it has no default)."""
        return self.default is MISSING


_PY_TYPE_NAMES: Mapping[Any, str] = MappingProxyType(
    {str: "string", int: "integer", float: "float", bool: "boolean", dict: "map", list: "list"}
)


def field(type: Any, *, default: Any = MISSING, description: str | None = None) -> FieldSpec:
    """Declare a payload field.

    Args:
        type: A Python type (``str, int, float, bool, dict, list``, ``datetime``, ``date``)
            or a type name (``"string"``, ``"integer"``, ``"float"``, ``"boolean"``,
            ``"map"``, ``"list"``, ``"datetime"``, ``"date"``).
        default: The value to use when the payload leaves the field out. Without one the
            field is required.
        description: Free text for tooling.

    Returns:
        The field spec, checked when the workflow class is created.
    """
    import datetime as _dt

    if isinstance(type, str):
        name = FIELD_TYPES.get(type, type)
    elif type is _dt.datetime:
        name = "datetime"
    elif type is _dt.date:
        name = "date"
    else:
        name = _PY_TYPE_NAMES.get(type, getattr(type, "__name__", repr(type)))
    return FieldSpec(type=name, default=default, description=description)


# --------------------------------------------------------------------------- triggers


@dataclass(frozen=True)
class TriggerSpec:
    """A way to start a run: ``manual()`` or ``cron(...)``.

    Attributes:
        kind: ``"manual"`` or ``"cron"``.
        fields: The payload fields, by name.
        expression: The cron expression (cron triggers only).
        timezone: The IANA timezone the expression is read in (cron only).
        idempotency: What a duplicate cron delivery does (cron only).
        name: Filled in by the compiler from the class attribute.
    """

    kind: Literal["manual", "cron"]
    fields: Mapping[str, FieldSpec]
    expression: str | None = None
    timezone: str | None = None
    idempotency: str | None = None
    name: str = ""

    def describe(self) -> dict[str, Any]:
        """Return the trigger as JSON-ready data."""
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "fields": {
                n: {
                    "type": f.type,
                    "required": f.required,
                    **({} if f.required else {"default": f.default}),
                }
                for n, f in self.fields.items()
            },
        }
        if self.kind == "cron":
            data.update(
                expression=self.expression, timezone=self.timezone, idempotency=self.idempotency
            )
        return data


def manual(**fields: FieldSpec) -> TriggerSpec:
    """Declare a manual trigger (started through ``Squidie.start``).

    Args:
        **fields: Payload fields by name, each built with ``field(...)``.
    """
    return TriggerSpec(kind="manual", fields=MappingProxyType(dict(fields)))


def cron(
    expression: str,
    *,
    timezone: str = "Etc/UTC",
    idempotency: CronIdempotency = "return_existing_run",
    **fields: FieldSpec,
) -> TriggerSpec:
    """Declare a cron trigger; a host scheduler delivers its windows.

    Args:
        expression: A five-field cron expression such as ``"0 9 * * 1-5"``.
        timezone: An IANA timezone name the expression is read in.
        idempotency: ``"return_existing_run"`` (a duplicate delivery returns the run it
            started) or ``"skip_duplicate"`` (a duplicate delivery is skipped).
        **fields: Payload fields; a cron delivery carries no payload, so each needs a
            default.
    """
    return TriggerSpec(
        kind="cron",
        fields=MappingProxyType(dict(fields)),
        expression=expression,
        timezone=timezone,
        idempotency=idempotency,
    )


# --------------------------------------------------------------------------- retries


@dataclass(frozen=True)
class Backoff:
    """How long to wait before the next attempt.

    Attributes:
        kind: ``"fixed"`` (always ``min``) or ``"exponential"``
            (``min(min * 2**(attempt-1), max)``).
        min: The first (or only) delay, in seconds.
        max: The cap, in seconds.
        jitter: A fraction in ``[0, 1]``; the delay is multiplied by a random factor in
            ``[1 - jitter, 1 + jitter]`` and capped at ``max``.
    """

    kind: Literal["fixed", "exponential"] = "fixed"
    min: float = 0.0
    max: float = 0.0
    jitter: float = 0.0

    @classmethod
    def fixed(cls, delay: Seconds, *, jitter: float | bool = 0.0) -> Backoff:
        """The same delay before every retry."""
        seconds = to_seconds(delay)
        return cls("fixed", seconds, seconds, _jitter(jitter))

    @classmethod
    def exponential(
        cls, *, min: Seconds, max: Seconds, jitter: float | bool = 0.0
    ) -> Backoff:
        """Doubling delays from ``min`` up to ``max``."""
        return cls("exponential", to_seconds(min), to_seconds(max), _jitter(jitter))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Return the delay in seconds before the attempt after ``attempt`` (1-based)."""
        if self.kind == "fixed":
            base = self.min
        else:
            exponent = min(attempt - 1, 62)
            base = min(self.min * (2.0**exponent), self.max)
        if self.jitter and base > 0:
            factor = (rng or random).uniform(1.0 - self.jitter, 1.0 + self.jitter)
            base = min(base * factor, self.max)
        return max(base, 0.0)

    def describe(self) -> dict[str, Any]:
        """Return the backoff as JSON-ready data."""
        return {"type": self.kind, "min": self.min, "max": self.max, "jitter": self.jitter}


def _jitter(value: float | bool) -> float:
    if value is True:
        return 0.5
    if value is False:
        return 0.0
    return float(value)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a step is attempted and how long to wait in between.

    Attributes:
        max_attempts: Attempts in total, including the first; at least 1.
        backoff: The delay between attempts.
    """

    max_attempts: int = 1
    backoff: Backoff = dc_field(default_factory=Backoff)

    @classmethod
    def coerce(cls, value: RetryPolicy | Mapping[str, Any] | int | None) -> RetryPolicy:
        """Build a policy from a policy, an ``int`` (max attempts) or the seed's dict form.

        The dict form is ``{"max_attempts": 5, "backoff": {"type": "exponential",
        "min": 1, "max": 30, "jitter": 0.2}}`` with durations in seconds.
        """
        if value is None:
            return cls()
        if isinstance(value, RetryPolicy):
            return value
        if isinstance(value, bool):
            raise TypeError(f"retry must be a RetryPolicy, a mapping or an int, not {value!r}")
        if isinstance(value, int):
            return cls(max_attempts=value)
        if not isinstance(value, Mapping):
            raise TypeError(f"retry must be a RetryPolicy, a mapping or an int, not {value!r}")
        unknown = set(value) - {"max_attempts", "backoff"}
        if unknown:
            raise TypeError(f"unknown retry option(s): {', '.join(sorted(unknown))}")
        backoff = value.get("backoff")
        if isinstance(backoff, Mapping):
            unknown = set(backoff) - {"type", "min", "max", "jitter", "delay"}
            if unknown:
                raise TypeError(f"unknown backoff option(s): {', '.join(sorted(unknown))}")
            kind = backoff.get("type", "fixed")
            if kind == "fixed":
                backoff = Backoff.fixed(
                    backoff.get("delay", backoff.get("min", 0)), jitter=backoff.get("jitter", 0)
                )
            elif kind == "exponential":
                backoff = Backoff.exponential(
                    min=backoff.get("min", 0),
                    max=backoff.get("max", backoff.get("min", 0)),
                    jitter=backoff.get("jitter", 0),
                )
            else:
                raise TypeError(f"unknown backoff type {kind!r} (fixed or exponential)")
        elif backoff is None:
            backoff = Backoff()
        elif not isinstance(backoff, Backoff):
            raise TypeError(f"backoff must be a Backoff or a mapping, not {backoff!r}")
        return cls(max_attempts=value.get("max_attempts", 1), backoff=backoff)

    def describe(self) -> dict[str, Any]:
        """Return the policy as JSON-ready data."""
        return {"max_attempts": self.max_attempts, "backoff": self.backoff.describe()}


# --------------------------------------------------------------------------- steps

InputMapping: TypeAlias = Mapping[str, str]


@dataclass(frozen=True, eq=False)
class StepSpec:
    """One step of a workflow, as declared; ``name`` is filled in by the compiler.

    Compared by identity, so two declarations with the same options stay two steps.

    Attributes:
        kind: ``task`` (user code), or a built-in: ``wait``, ``log``, ``pause``,
            ``approval``.
        impl: The ``Step`` subclass or function run by a ``task`` step.
        input: Which keys of the run state the step receives (``None``: the whole state),
            as ``{input key: dotted path}``.
        output: Store the step's output under this key instead of merging it.
        retry: Attempts and backoff.
        compensate: An undo step run if the run later fails without a recovery route.
        irreversible: Completing this step blocks replay unless explicitly allowed.
        after: Dependency mode: the steps that must succeed before this one runs.
        duration: The delay of a ``wait`` step, in seconds.
        message: The message of a ``log`` step (``str.format`` fields from the run state).
        level: The level of a ``log`` step.
        name: Filled in by the compiler from the class attribute.
    """

    kind: StepKind
    impl: Any = None
    input: InputMapping | None = None
    output: str | None = None
    retry: RetryPolicy = dc_field(default_factory=RetryPolicy)
    compensate: Any = None
    irreversible: bool = False
    after: tuple[Any, ...] | None = None
    duration: float | None = None
    message: str | None = None
    level: str | None = None
    name: str = ""

    def describe(self) -> dict[str, Any]:
        """Return the step as JSON-ready data (used for ``describe()`` and the fingerprint)."""
        data: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.impl is not None:
            data["impl"] = _qualname(self.impl)
        if self.input is not None:
            data["input"] = dict(self.input)
        if self.output is not None:
            data["output"] = self.output
        if self.retry.max_attempts != 1:
            data["retry"] = self.retry.describe()
        if self.compensate is not None:
            data["compensate"] = _qualname(self.compensate)
        if self.irreversible:
            data["irreversible"] = True
        if self.after is not None:
            data["after"] = [_step_ref_name(a) for a in self.after]
        if self.duration is not None:
            data["duration"] = self.duration
        if self.message is not None:
            data["message"] = self.message
            data["level"] = self.level
        return data


def _qualname(obj: Any) -> str:
    module = getattr(obj, "__module__", "?")
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)
    return f"{module}.{name}"


def _step_ref_name(ref: Any) -> str:
    if isinstance(ref, StepSpec):
        return ref.name or "<unnamed step>"
    return str(ref)


def _coerce_input(value: Any) -> InputMapping | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): v for k, v in value.items()})
    if isinstance(value, Sequence):
        return MappingProxyType(
            {str(p).rsplit(".", 1)[-1] if isinstance(p, str) else repr(p): p for p in value}
        )
    raise TypeError(f"input must be a list of paths or a mapping of key to path, not {value!r}")


def _common(
    kind: StepKind,
    *,
    impl: Any = None,
    input: Any = None,
    output: str | None = None,
    retry: RetryPolicy | Mapping[str, Any] | int | None = None,
    compensate: Any = None,
    irreversible: bool = False,
    after: Sequence[Any] | None = None,
    **extra: Any,
) -> StepSpec:
    return StepSpec(
        kind=kind,
        impl=impl,
        input=_coerce_input(input),
        output=output,
        retry=RetryPolicy.coerce(retry),
        compensate=compensate,
        irreversible=irreversible,
        after=None if after is None else tuple(after),
        **extra,
    )


def step(
    impl: Any,
    *,
    input: Any = None,
    output: str | None = None,
    retry: RetryPolicy | Mapping[str, Any] | int | None = None,
    compensate: Any = None,
    irreversible: bool = False,
    after: Sequence[Any] | None = None,
) -> StepSpec:
    """Declare a step that runs user code.

    Args:
        impl: A ``Step`` subclass (its ``run(self, input, ctx)`` is called) or a function
            ``fn(input, ctx)``; either may be ``async``.
        input: What the step receives from the run state: a list of dotted paths (the key
            is the last segment) or a mapping ``{key: "dotted.path"}``. Default: the
            whole state.
        output: Store the step's output under this key of the run state instead of merging
            its keys into the state.
        retry: A ``RetryPolicy``, an ``int`` (max attempts) or the dict form.
        compensate: A ``Step`` subclass or function that undoes this step; it runs, in
            reverse completion order, when the run fails without a recovery route.
        irreversible: Completing this step blocks ``replay`` unless
            ``allow_irreversible=True``.
        after: Dependency mode: the steps (objects or names) that must all succeed first.
    """
    return _common(
        "task",
        impl=impl,
        input=input,
        output=output,
        retry=retry,
        compensate=compensate,
        irreversible=irreversible,
        after=after,
    )


def wait(duration: Seconds, *, after: Sequence[Any] | None = None) -> StepSpec:
    """Declare a durable timer: its successor becomes visible ``duration`` later.

    No worker sleeps; the wait is a dispatch with delayed visibility.

    Args:
        duration: Seconds (or a ``timedelta``); must be positive.
        after: Dependency mode predecessors.
    """
    try:
        seconds = to_seconds(duration)
    except TypeError:
        seconds = math.nan
    return _common("wait", duration=seconds, after=after)


def log(message: str, *, level: str = "info", after: Sequence[Any] | None = None) -> StepSpec:
    """Declare a step that writes ``message`` to the ``squidie.workflow`` logger.

    Args:
        message: Text with optional ``{key}`` fields filled from the run state.
        level: ``debug``, ``info``, ``warning``, ``error`` or ``critical``.
        after: Dependency mode predecessors.
    """
    return _common("log", message=message, level=level, after=after)


def pause(*, output: str | None = None, after: Sequence[Any] | None = None) -> StepSpec:
    """Declare a manual pause: the run parks until ``resume``.

    Args:
        output: Store the resume receipt (actor, comment, metadata) under this key.
        after: Dependency mode predecessors.
    """
    return _common("pause", output=output, after=after)


def approval_step(*, output: str | None = None) -> StepSpec:
    """Declare a human approval: the run parks until ``approve`` or ``reject``.

    ``approve`` follows the ``ok`` transition (the decision stored under ``output``),
    ``reject`` follows ``error``; both routes are required.

    Args:
        output: Store the decision (actor, comment, metadata, approved) under this key.
    """
    return _common("approval", output=output)


# --------------------------------------------------------------------------- transitions


@dataclass(frozen=True)
class Condition:
    """A test on the run state that selects a transition.

    Attributes:
        path: A dotted path into the run state (``error.type`` on ``error`` transitions).
        op: ``equals``, ``greater_than`` or ``less_than``.
        value: The value compared against.
    """

    path: str
    op: Literal["equals", "greater_than", "less_than"]
    value: Any

    def matches(self, state: Mapping[str, Any]) -> bool:
        """Return whether the state satisfies the condition (a missing path never does)."""
        found, actual = lookup_path(state, self.path)
        if not found:
            return False
        if self.op == "equals":
            return bool(actual == self.value)
        try:
            if self.op == "greater_than":
                return bool(actual > self.value)
            return bool(actual < self.value)
        except TypeError:
            return False

    def describe(self) -> dict[str, Any]:
        """Return the condition as JSON-ready data."""
        return {"path": self.path, "op": self.op, "value": self.value}


def equals(path: str, value: Any) -> Condition:
    """A condition: the value at ``path`` equals ``value``."""
    return Condition(path, "equals", value)


def greater_than(path: str, value: Any) -> Condition:
    """A condition: the value at ``path`` is greater than ``value``."""
    return Condition(path, "greater_than", value)


def less_than(path: str, value: Any) -> Condition:
    """A condition: the value at ``path`` is less than ``value``."""
    return Condition(path, "less_than", value)


def lookup_path(state: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """Follow a dotted path through nested mappings (and list indexes).

    Returns:
        ``(found, value)``.
    """
    current: Any = state
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return False, None
    return True, current


@dataclass(frozen=True)
class Transition:
    """A route out of a step, as declared (steps by object or by name).

    Attributes:
        source: The step the route leaves.
        on: ``"ok"`` or ``"error"``.
        to: The next step, or ``"complete"``.
        recovery: ``None``, ``"compensation"`` or ``"undo"``; error routes only.
        condition: Take this route only when the condition holds.
    """

    source: Any
    on: str
    to: Any
    recovery: str | None = None
    condition: Condition | None = None


def transition(
    source: Any,
    *,
    on: Outcome,
    to: Any,
    recovery: RecoveryMarker | None = None,
    condition: Condition | None = None,
) -> Transition:
    """Declare a route between steps.

    Args:
        source: The step (object or name) the route leaves.
        on: The outcome that takes it: ``"ok"`` or ``"error"``.
        to: The next step (object or name) or ``COMPLETE``.
        recovery: A recovery marker recorded when the route is taken (error routes
            only): ``"compensation"`` or ``"undo"``.
        condition: ``equals(...)``, ``greater_than(...)`` or ``less_than(...)``.
    """
    return Transition(source=source, on=on, to=to, recovery=recovery, condition=condition)


@dataclass(frozen=True)
class Edge:
    """A compiled transition, between step names.

    Attributes:
        source: The step the edge leaves.
        on: ``"ok"`` or ``"error"``.
        to: The target step name or ``"complete"``.
        recovery: The recovery marker, error edges only.
        condition: The condition, if any.
    """

    source: str
    on: str
    to: str
    recovery: str | None = None
    condition: Condition | None = None

    @property
    def key(self) -> str:
        """The edge's id in the run graph: ``"from:outcome:to"``."""
        return f"{self.source}:{self.on}:{self.to}"

    def describe(self) -> dict[str, Any]:
        """Return the edge as JSON-ready data."""
        data: dict[str, Any] = {"from": self.source, "on": self.on, "to": self.to}
        if self.recovery:
            data["recovery"] = self.recovery
        if self.condition:
            data["condition"] = self.condition.describe()
        return data


# --------------------------------------------------------------------------- definition


@dataclass(frozen=True)
class WorkflowDefinition:
    """The immutable, checked form of a workflow class.

    Attributes:
        name: The workflow name stored in runs (class keyword ``name=``, default the class
            name).
        queue: The default queue of its runs.
        cls: The workflow class.
        triggers: Triggers by name.
        steps: Steps by name, in declaration order.
        edges: Transitions (transition mode) in declaration order.
        mode: ``"transitions"`` or ``"dependencies"`` (``after=``).
        entries: The step(s) a run starts with.
        fingerprint: A hash of the graph; changes when steps, options or routes change.
    """

    name: str
    queue: str
    cls: type
    triggers: Mapping[str, TriggerSpec]
    steps: Mapping[str, StepSpec]
    edges: tuple[Edge, ...]
    mode: Literal["transitions", "dependencies"]
    entries: tuple[str, ...]
    fingerprint: str
    _routes: Mapping[tuple[str, str], tuple[Edge, ...]] = dc_field(repr=False, default_factory=dict)
    _dependents: Mapping[str, tuple[str, ...]] = dc_field(repr=False, default_factory=dict)

    def routes(self, source: str, on: str) -> tuple[Edge, ...]:
        """Return the edges leaving ``source`` on ``on``, conditional ones first."""
        return self._routes.get((source, on), ())

    def dependents(self, name: str) -> tuple[str, ...]:
        """Dependency mode: the steps that list ``name`` in their ``after=``."""
        return self._dependents.get(name, ())

    def dependencies(self, name: str) -> tuple[str, ...]:
        """Dependency mode: the names in the step's ``after=``."""
        after = self.steps[name].after
        return tuple(after) if after else ()

    def trigger(self, name: str) -> TriggerSpec:
        """Return the trigger with that name or raise ``TriggerNotFound``."""
        from squidie_core.errors import TriggerNotFound

        try:
            return self.triggers[name]
        except KeyError:
            raise TriggerNotFound(self.name, name, list(self.triggers)) from None

    def describe(self) -> dict[str, Any]:
        """Return the whole definition as JSON-ready data."""
        return {
            "name": self.name,
            "queue": self.queue,
            "mode": self.mode,
            "entries": list(self.entries),
            "fingerprint": self.fingerprint,
            "triggers": [t.describe() for t in self.triggers.values()],
            "steps": [s.describe() for s in self.steps.values()],
            "transitions": [e.describe() for e in self.edges],
        }


def replace_name(spec: Any, name: str) -> Any:
    """Return a copy of a frozen spec with its ``name`` filled in."""
    return dataclasses.replace(spec, name=name)


StepCallable: TypeAlias = Callable[..., Any]
