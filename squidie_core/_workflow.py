"""The ``Workflow`` base class and the compiler that checks a class when it is created.

A workflow is a class whose body declares triggers, steps and transitions::

    class RingErrand(Workflow):
        leave_shire = manual(ring_id=field(str), bearer=field(str, default="Frodo"))

        pack_lembas = step(PackLembas)
        cross_moria = step(CrossMoria, retry=RetryPolicy(max_attempts=3))

        transitions = [
            transition(pack_lembas, on="ok", to=cross_moria),
            transition(cross_moria, on="ok", to=COMPLETE),
        ]

The metaclass records the class body in declaration order and refuses a name bound twice
(which Python would otherwise overwrite silently). ``compile_workflow`` applies every
rule of SEMANTICS.md "Definitions" and raises ``DefinitionError`` naming the workflow, the
step or transition, and the rule.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from squidie_core._definition import (
    COMPLETE,
    CRON_IDEMPOTENCY,
    LOG_LEVELS,
    MISSING,
    RECOVERY_MARKERS,
    Edge,
    FieldSpec,
    StepSpec,
    Transition,
    TriggerSpec,
    WorkflowDefinition,
    replace_name,
)
from squidie_core.errors import DefinitionError

__all__ = ["Workflow", "compile_workflow", "definition_of"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")
_STEP_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
_RESERVED = frozenset({COMPLETE, "transitions"})


class _ClassBody(dict[str, Any]):
    """The namespace of a workflow class body; remembers specs bound twice."""

    def __init__(self) -> None:
        super().__init__()
        self.rebound: list[str] = []

    def __setitem__(self, key: str, value: Any) -> None:
        if (
            key in self
            and isinstance(value, StepSpec | TriggerSpec)
            and isinstance(self[key], StepSpec | TriggerSpec)
        ):
            self.rebound.append(key)
        super().__setitem__(key, value)


class WorkflowMeta(type):
    """Compiles every concrete ``Workflow`` subclass when the class statement runs."""

    @classmethod
    def __prepare__(
        cls, cls_name: str, bases: tuple[type, ...], /, **kwargs: Any
    ) -> _ClassBody:
        return _ClassBody()

    def __new__(
        mcs,
        cls_name: str,
        bases: tuple[type, ...],
        namespace: dict[str, Any],
        /,
        **kwargs: Any,
    ) -> WorkflowMeta:
        name = cls_name
        options = {k: kwargs.pop(k) for k in ("name", "queue", "abstract") if k in kwargs}
        if kwargs:
            raise DefinitionError(
                name, None, "class_options", f"unknown class option(s): {', '.join(kwargs)}"
            )
        rebound = namespace.rebound if isinstance(namespace, _ClassBody) else []
        cls = super().__new__(mcs, name, bases, dict(namespace))
        if not bases or options.get("abstract", False):
            return cls
        workflow = options.get("name", name)
        if rebound:
            raise DefinitionError(
                workflow,
                f"name {rebound[0]!r}",
                "unique_names",
                f"{rebound[0]!r} is declared twice in the class body; the first declaration "
                "would be silently lost",
            )
        cls.__squidie__ = compile_workflow(  # type: ignore[attr-defined]
            cls, namespace, name=workflow, queue=options.get("queue", "default")
        )
        return cls


class Workflow(metaclass=WorkflowMeta):
    """Base class of every workflow; see the module docstring for the syntax.

    Class keywords:
        name: The name stored in runs (default: the class name). Keep it stable: runs in
            the store refer to it.
        queue: The queue this workflow's runs use unless ``start`` names another.
        abstract: ``True`` for an intermediate base class that is not compiled.
    """

    __squidie__: ClassVar[WorkflowDefinition]

    @classmethod
    def definition(cls) -> WorkflowDefinition:
        """Return the compiled definition of this workflow class."""
        return definition_of(cls)

    @classmethod
    def validate_payload(cls, trigger: str, payload: Mapping[str, Any] | None) -> dict[str, Any]:
        """Apply defaults and check a payload for ``trigger``; see ``validate_payload``."""
        from squidie_core._payload import validate_payload

        return validate_payload(definition_of(cls), trigger, payload)


def definition_of(workflow: Any) -> WorkflowDefinition:
    """Return the compiled definition of a workflow class (or pass a definition through)."""
    if isinstance(workflow, WorkflowDefinition):
        return workflow
    definition = getattr(workflow, "__squidie__", None)
    if not isinstance(definition, WorkflowDefinition):
        raise TypeError(f"{workflow!r} is not a compiled Workflow class")
    return definition


# --------------------------------------------------------------------------- compiler


def compile_workflow(
    cls: type, namespace: Mapping[str, Any], *, name: str, queue: str = "default"
) -> WorkflowDefinition:
    """Check a workflow class body and freeze it into a ``WorkflowDefinition``.

    Raises:
        DefinitionError: naming the workflow, the step or transition, and the rule.
    """
    c = _Compiler(name)
    c.check_name(queue, "queue")
    from squidie_core.storage import QUEUE_NAME

    if not QUEUE_NAME.match(queue):
        c.fail(None, "queue_name", f"queue {queue!r} is not a valid queue name")
    triggers = c.triggers(namespace)
    steps = c.steps(namespace)
    declared = namespace.get("transitions", ())
    if isinstance(declared, Transition):
        declared = (declared,)
    if not isinstance(declared, list | tuple):
        c.fail(None, "transitions_list", "`transitions` must be a list of transition(...)")
    uses_after = [s.name for s in steps.values() if s.after is not None]
    if declared and uses_after:
        c.fail(
            f"step {uses_after[0]!r}",
            "single_mode",
            "a workflow uses transitions or after=, not both",
        )
    mode: Literal["transitions", "dependencies"]
    if uses_after:
        mode = "dependencies"
        entries, dependents = c.dependencies(steps)
        edges: tuple[Edge, ...] = ()
        routes: dict[tuple[str, str], tuple[Edge, ...]] = {}
    else:
        mode = "transitions"
        edges = c.edges(declared, steps)
        routes = c.routes(edges)
        entries = c.transition_graph(steps, edges, routes)
        dependents = {}
    description = {
        "name": name,
        "queue": queue,
        "mode": mode,
        "triggers": [t.describe() for t in triggers.values()],
        "steps": [s.describe() for s in steps.values()],
        "transitions": [e.describe() for e in edges],
    }
    fingerprint = hashlib.sha256(
        json.dumps(description, sort_keys=True, default=repr).encode()
    ).hexdigest()[:16]
    return WorkflowDefinition(
        name=name,
        queue=queue,
        cls=cls,
        triggers=MappingProxyType(triggers),
        steps=MappingProxyType(steps),
        edges=edges,
        mode=mode,
        entries=entries,
        fingerprint=fingerprint,
        _routes=MappingProxyType(routes),
        _dependents=MappingProxyType(dependents),
    )


class _Compiler:
    def __init__(self, workflow: str) -> None:
        self.workflow = workflow
        self.names: dict[int, str] = {}
        if not _NAME.match(workflow):
            self.fail(None, "workflow_name", f"workflow name {workflow!r} is not a valid name")

    def fail(self, subject: str | None, rule: str, detail: str) -> Any:
        raise DefinitionError(self.workflow, subject, rule, detail)

    def check_name(self, value: Any, what: str) -> None:
        if not isinstance(value, str) or not _NAME.match(value):
            self.fail(None, f"{what}_name", f"{what} {value!r} is not a valid name")

    # ------------------------------------------------------------------ triggers

    def triggers(self, namespace: Mapping[str, Any]) -> dict[str, TriggerSpec]:
        found: dict[str, TriggerSpec] = {}
        field_types: dict[str, tuple[str, str]] = {}
        for attr, value in namespace.items():
            if not isinstance(value, TriggerSpec):
                continue
            subject = f"trigger {attr!r}"
            if not _STEP_NAME.match(attr):
                self.fail(subject, "trigger_name", "trigger names are lower_snake_case")
            if value.kind == "cron":
                self._check_cron(subject, value)
            for fname, spec in value.fields.items():
                self._check_field(f"{subject}, field {fname!r}", spec)
                if value.kind == "cron" and spec.required:
                    self.fail(
                        f"{subject}, field {fname!r}",
                        "cron_field_default",
                        "a cron delivery carries no payload, so every cron field needs a "
                        "default",
                    )
                seen = field_types.get(fname)
                if seen and seen[0] != spec.type:
                    self.fail(
                        f"{subject}, field {fname!r}",
                        "field_type_consistent",
                        f"field {fname!r} is {spec.type} here but {seen[0]} in trigger "
                        f"{seen[1]!r}",
                    )
                field_types[fname] = (spec.type, attr)
            found[attr] = replace_name(value, attr)
        if not found:
            self.fail(None, "trigger_required", "declare at least one trigger (manual() or cron())")
        return found

    def _check_cron(self, subject: str, trig: TriggerSpec) -> None:
        from cronsim import CronSim, CronSimError

        expr = trig.expression
        if not isinstance(expr, str) or not expr.strip():
            self.fail(subject, "cron_expression", "a cron trigger needs an expression")
        try:
            CronSim(str(expr), datetime(2000, 1, 1, tzinfo=UTC))
        except (CronSimError, ValueError, KeyError, IndexError) as exc:
            self.fail(subject, "cron_expression", f"invalid cron expression {expr!r}: {exc}")
        tz = trig.timezone
        try:
            if not isinstance(tz, str) or not tz:
                raise zoneinfo.ZoneInfoNotFoundError(repr(tz))
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            self.fail(subject, "cron_timezone", f"{tz!r} is not an IANA timezone ({exc})")
        if trig.idempotency not in CRON_IDEMPOTENCY:
            self.fail(
                subject,
                "cron_idempotency",
                f"idempotency must be one of {', '.join(CRON_IDEMPOTENCY)}, "
                f"not {trig.idempotency!r}",
            )

    def _check_field(self, subject: str, spec: Any) -> None:
        from squidie_core._payload import FIELD_CHECKS, check_value

        if not isinstance(spec, FieldSpec):
            self.fail(subject, "field_spec", "payload fields are declared with field(type, ...)")
        if spec.type not in FIELD_CHECKS:
            self.fail(
                subject,
                "field_type",
                f"unknown field type {spec.type!r} (string, integer, float, boolean, map, "
                "list, datetime, date)",
            )
        if spec.default is not MISSING and spec.default is not None:
            problem = check_value(spec.type, spec.default)[1]
            if problem:
                self.fail(subject, "field_default", f"default {spec.default!r}: {problem}")

    # ------------------------------------------------------------------ steps

    def steps(self, namespace: Mapping[str, Any]) -> dict[str, StepSpec]:
        declared: dict[int, str] = {}
        found: dict[str, StepSpec] = {}
        for attr, value in namespace.items():
            if not isinstance(value, StepSpec):
                continue
            subject = f"step {attr!r}"
            if id(value) in declared:
                self.fail(
                    subject,
                    "unique_names",
                    f"the same step object is bound to {declared[id(value)]!r} and {attr!r}",
                )
            declared[id(value)] = attr
            if attr in _RESERVED or not _STEP_NAME.match(attr):
                self.fail(
                    subject,
                    "step_name",
                    "step names are lower_snake_case and may not be 'complete'",
                )
            self._check_step(subject, value)
            found[attr] = value
        if not found:
            self.fail(None, "step_required", "declare at least one step")
        names = {id(spec): n for n, spec in found.items()}
        self.names = names
        resolved: dict[str, StepSpec] = {}
        for attr, spec in found.items():
            after = None
            if spec.after is not None:
                after = tuple(self._ref(f"step {attr!r}", "after_known", a, names, found)
                              for a in spec.after)
            resolved[attr] = replace_name(
                StepSpec(**{**_fields(spec), "after": after}), attr
            )
        return resolved

    def _check_step(self, subject: str, spec: StepSpec) -> None:
        if spec.kind == "task":
            self._check_impl(subject, "step_impl", spec.impl)
        if spec.compensate is not None:
            if spec.kind != "task":
                self.fail(subject, "compensate_impl", "only task steps can be compensated")
            self._check_impl(subject, "compensate_impl", spec.compensate)
        if spec.kind == "wait":
            d = spec.duration
            if d is None or math.isnan(d) or d <= 0 or math.isinf(d):
                self.fail(subject, "wait_duration", "a wait needs a positive, finite duration")
        if spec.kind == "log":
            if not isinstance(spec.message, str):
                self.fail(subject, "log_message", "a log step needs a message string")
            if spec.level not in LOG_LEVELS:
                self.fail(
                    subject,
                    "log_level",
                    f"level must be one of {', '.join(LOG_LEVELS)}, not {spec.level!r}",
                )
        retry = spec.retry
        if (
            isinstance(retry.max_attempts, bool)
            or not isinstance(retry.max_attempts, int)
            or retry.max_attempts < 1
        ):
            self.fail(
                subject,
                "retry_max_attempts",
                f"max_attempts must be a positive integer, not {retry.max_attempts!r}",
            )
        b = retry.backoff
        if b.kind not in ("fixed", "exponential"):
            self.fail(subject, "retry_backoff", f"unknown backoff type {b.kind!r}")
        if not (
            all(isinstance(v, int | float) and math.isfinite(v) for v in (b.min, b.max))
            and b.min >= 0
        ):
            self.fail(subject, "retry_backoff", "backoff min and max must be finite and >= 0")
        if b.max < b.min:
            self.fail(
                subject, "retry_backoff", f"backoff max ({b.max}) must be >= min ({b.min})"
            )
        if not 0.0 <= b.jitter <= 1.0:
            self.fail(subject, "retry_backoff", f"jitter must be in [0, 1], not {b.jitter}")
        if spec.input is not None:
            for key, path in spec.input.items():
                if not isinstance(path, str) or not path or any(
                    not part for part in path.split(".")
                ):
                    self.fail(
                        subject,
                        "input_mapping",
                        f"input {key!r} maps to {path!r}, which is not a dotted path",
                    )
        if spec.output is not None and (
            not isinstance(spec.output, str) or not _STEP_NAME.match(spec.output)
        ):
            self.fail(
                subject,
                "output_key",
                f"output must be a lower_snake_case key, not {spec.output!r}",
            )
        if spec.after is not None and not spec.after:
            self.fail(subject, "after_nonempty", "after= needs at least one step")

    def _check_impl(self, subject: str, rule: str, impl: Any) -> None:
        from squidie_core._steps import Step

        if inspect.isclass(impl):
            if not issubclass(impl, Step):
                self.fail(subject, rule, f"{impl.__name__} must subclass squidie_core.Step")
            run = getattr(impl, "run", None)
            if run is None or run is Step.run:
                self.fail(subject, rule, f"{impl.__name__} must define run(self, input, ctx)")
            self._check_arity(subject, rule, run, 3, f"{impl.__name__}.run")
        elif callable(impl):
            self._check_arity(subject, rule, impl, 2, getattr(impl, "__name__", repr(impl)))
        else:
            self.fail(subject, rule, f"{impl!r} is neither a Step subclass nor a function")

    def _check_arity(self, subject: str, rule: str, fn: Any, count: int, label: str) -> None:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return
        try:
            sig.bind(*range(count))
        except TypeError:
            takes = "(self, input, ctx)" if count == 3 else "(input, ctx)"
            self.fail(subject, rule, f"{label} must accept {takes}")

    def _ref(
        self,
        subject: str,
        rule: str,
        ref: Any,
        names: Mapping[int, str],
        steps: Mapping[str, StepSpec],
        *,
        allow_complete: bool = False,
    ) -> str:
        if isinstance(ref, StepSpec):
            name = names.get(id(ref))
            if name is None:
                self.fail(subject, rule, "refers to a step that is not declared in this class")
            return str(name)
        if allow_complete and ref == COMPLETE:
            return COMPLETE
        if isinstance(ref, str) and ref in steps:
            return ref
        import difflib

        close = difflib.get_close_matches(str(ref), list(steps), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return str(self.fail(subject, rule, f"unknown step {ref!r}{hint}"))

    # ------------------------------------------------------------------ transitions

    def edges(self, declared: Any, steps: Mapping[str, StepSpec]) -> tuple[Edge, ...]:
        names = self.names
        edges: list[Edge] = []
        for index, t in enumerate(declared):
            label = f"transition #{index + 1}"
            if not isinstance(t, Transition):
                self.fail(label, "transitions_list", f"{t!r} is not a transition(...)")
            if t.source == COMPLETE:
                self.fail(label, "no_exit_from_complete", "no transition may leave 'complete'")
            source = self._ref(label, "transition_from", t.source, names, steps)
            to = self._ref(label, "transition_to", t.to, names, steps, allow_complete=True)
            label = f"transition {source}:{t.on}:{to}"
            if t.on not in ("ok", "error"):
                self.fail(label, "transition_outcome", f"on must be 'ok' or 'error', not {t.on!r}")
            if t.recovery is not None:
                if t.on != "error":
                    self.fail(label, "recovery_on_error", "recovery markers only on error routes")
                if t.recovery not in RECOVERY_MARKERS:
                    self.fail(
                        label,
                        "recovery_marker",
                        f"recovery must be one of {', '.join(RECOVERY_MARKERS)}",
                    )
            if t.condition is not None:
                from squidie_core._definition import Condition

                c = t.condition
                if not isinstance(c, Condition) or c.op not in (
                    "equals", "greater_than", "less_than"
                ):
                    self.fail(label, "transition_condition", f"{c!r} is not a condition")
                if not isinstance(c.path, str) or not c.path:
                    self.fail(label, "transition_condition", "a condition needs a dotted path")
            if to == source:
                self.fail(label, "acyclic", "a step may not route to itself")
            edges.append(
                Edge(source=source, on=t.on, to=to, recovery=t.recovery, condition=t.condition)
            )
        return tuple(edges)

    def routes(self, edges: tuple[Edge, ...]) -> dict[tuple[str, str], tuple[Edge, ...]]:
        grouped: dict[tuple[str, str], list[Edge]] = {}
        for edge in edges:
            group = grouped.setdefault((edge.source, edge.on), [])
            label = f"transition {edge.key}"
            if edge.condition is None and any(e.condition is None for e in group):
                self.fail(
                    label,
                    "unconditional_unique",
                    f"step {edge.source!r} already has an unconditional {edge.on!r} transition",
                )
            if edge.condition is not None and any(e.condition == edge.condition for e in group):
                self.fail(
                    label,
                    "condition_unique",
                    f"the same condition is used twice for {edge.source}:{edge.on}",
                )
            group.append(edge)
        # Conditional routes are tried in declaration order, the unconditional one last.
        return {
            key: tuple(sorted(group, key=lambda e: e.condition is None))
            for key, group in grouped.items()
        }

    def transition_graph(
        self,
        steps: Mapping[str, StepSpec],
        edges: tuple[Edge, ...],
        routes: Mapping[tuple[str, str], tuple[Edge, ...]],
    ) -> tuple[str, ...]:
        for name, spec in steps.items():
            subject = f"step {name!r}"
            ok = routes.get((name, "ok"), ())
            error = routes.get((name, "error"), ())
            if spec.kind == "approval" and (not ok or not error):
                self.fail(
                    subject,
                    "approval_routes",
                    "an approval step must route both 'ok' (approve) and 'error' (reject)",
                )
            if not ok:
                self.fail(
                    subject,
                    "ok_route_required",
                    f"no 'ok' transition leaves {name!r}; add "
                    f"transition({name}, on='ok', to=COMPLETE) or to the next step",
                )
            for outcome, group in (("ok", ok), ("error", error)):
                if group and all(e.condition is not None for e in group) and outcome == "ok":
                    self.fail(
                        subject,
                        "conditional_fallback",
                        "conditional 'ok' transitions need an unconditional 'ok' fallback",
                    )
        targets = {e.to for e in edges}
        entries = [n for n in steps if n not in targets]
        if len(entries) != 1:
            detail = (
                "no step is free of incoming transitions"
                if not entries
                else f"steps {', '.join(repr(e) for e in entries)} have no incoming transition"
            )
            self.fail(None, "entry_unique", f"exactly one entry step is required: {detail}")
        entry = entries[0]
        # Acyclic and reachable, by depth-first search from the entry.
        adjacency: dict[str, list[str]] = {n: [] for n in steps}
        for e in edges:
            if e.to != COMPLETE:
                adjacency[e.source].append(e.to)
        state: dict[str, int] = {}

        def visit(node: str, path: list[str]) -> None:
            state[node] = 1
            for nxt in adjacency[node]:
                if state.get(nxt) == 1:
                    cycle = " -> ".join([*path[path.index(nxt):], nxt])
                    self.fail(
                        f"step {nxt!r}",
                        "acyclic",
                        f"transitions form a cycle ({cycle}); use retries and waits instead",
                    )
                if nxt not in state:
                    visit(nxt, [*path, nxt])
            state[node] = 2

        visit(entry, [entry])
        unreachable = [n for n in steps if n not in state]
        if unreachable:
            self.fail(
                f"step {unreachable[0]!r}",
                "reachable",
                f"step {unreachable[0]!r} cannot be reached from the entry step {entry!r}",
            )
        return (entry,)

    def dependencies(
        self, steps: Mapping[str, StepSpec]
    ) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
        dependents: dict[str, list[str]] = {n: [] for n in steps}
        for name, spec in steps.items():
            if spec.kind == "approval":
                self.fail(
                    f"step {name!r}",
                    "approval_routes",
                    "approval steps need ok and error routes, which dependency mode has not",
                )
            for dep in spec.after or ():
                if dep == name:
                    self.fail(f"step {name!r}", "after_acyclic", "a step cannot come after itself")
                dependents[dep].append(name)
        roots = tuple(n for n, s in steps.items() if s.after is None)
        if not roots:
            self.fail(None, "entry_unique", "every step has after=; at least one must not")
        state: dict[str, int] = {}

        def visit(node: str, path: list[str]) -> None:
            state[node] = 1
            for nxt in dependents[node]:
                if state.get(nxt) == 1:
                    cycle = " -> ".join([*path[path.index(nxt):], nxt])
                    self.fail(f"step {nxt!r}", "after_acyclic", f"after= forms a cycle ({cycle})")
                if nxt not in state:
                    visit(nxt, [*path, nxt])
            state[node] = 2

        for root in roots:
            visit(root, [root])
        cyclic = [n for n in steps if n not in state]
        if cyclic:
            self.fail(f"step {cyclic[0]!r}", "after_acyclic", "after= forms a cycle")
        return roots, {k: tuple(v) for k, v in dependents.items()}


def _fields(spec: StepSpec) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}

