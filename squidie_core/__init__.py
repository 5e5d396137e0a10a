"""Squidie: durable workflows for Python on the database you already have.

Public surface:

- authoring: ``Workflow``, ``Step``, ``manual``, ``cron``, ``field``, ``step``, ``wait``,
  ``log``, ``pause``, ``approval_step``, ``transition``, ``COMPLETE``, ``equals``,
  ``greater_than``, ``less_than``, ``RetryPolicy``, ``Backoff``
- step results: ``Error``, ``Retry``, ``NonRetryableError``, ``StepContext``,
  ``Outcome``, ``normalize_outcome``
- definitions: ``WorkflowDefinition``, ``validate_payload``
- the engine: ``Squidie``, ``StartResult``, ``CommandResult``, ``ExecuteResult``,
  ``Payload``, ``Runner``, ``open_store``
- hosting: ``Worker``, ``Scheduler``
- clocks: ``Clock``, ``SystemClock``, ``ManualClock``
- errors: ``squidie_core.errors`` (the tree is drawn there); the common ones are
  re-exported here.

Subpackages: ``squidie_core.storage`` (the contract for backend authors),
``squidie_core.hookspecs`` (plugin hooks), ``squidie_core.testing`` (a harness).
"""

from squidie_core._clock import Clock, ManualClock, SystemClock
from squidie_core._cron import Payload, Runner
from squidie_core._definition import (
    COMPLETE,
    Backoff,
    RetryPolicy,
    WorkflowDefinition,
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
from squidie_core._discovery import open_store
from squidie_core._payload import validate_payload
from squidie_core._runtime import CommandResult, ExecuteResult, Squidie, StartResult
from squidie_core._scheduler import Scheduler
from squidie_core._steps import (
    Error,
    NonRetryableError,
    Outcome,
    Retry,
    Step,
    StepContext,
    normalize_outcome,
)
from squidie_core._worker import Worker
from squidie_core._workflow import Workflow
from squidie_core.errors import (
    AppendConflict,
    DefinitionError,
    InvalidArgument,
    InvalidTransitionError,
    LeaseLostError,
    PayloadError,
    RunNotFound,
    SquidieError,
    WorkflowNotFound,
)

__version__ = "0.1.0"

__all__ = [
    "COMPLETE",
    "AppendConflict",
    "Backoff",
    "Clock",
    "CommandResult",
    "DefinitionError",
    "Error",
    "ExecuteResult",
    "InvalidArgument",
    "InvalidTransitionError",
    "LeaseLostError",
    "ManualClock",
    "NonRetryableError",
    "Outcome",
    "Payload",
    "PayloadError",
    "Retry",
    "RetryPolicy",
    "RunNotFound",
    "Runner",
    "Scheduler",
    "Squidie",
    "SquidieError",
    "StartResult",
    "Step",
    "StepContext",
    "SystemClock",
    "Worker",
    "Workflow",
    "WorkflowDefinition",
    "WorkflowNotFound",
    "__version__",
    "approval_step",
    "cron",
    "equals",
    "field",
    "greater_than",
    "less_than",
    "log",
    "manual",
    "normalize_outcome",
    "open_store",
    "pause",
    "step",
    "transition",
    "validate_payload",
    "wait",
]
