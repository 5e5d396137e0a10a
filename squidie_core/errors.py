"""Every error Squidie raises, as one tree.

Each class says when it is raised and how it differs from its nearest sibling. Every
instance carries a stable ``code`` (a string that never changes between releases, for
logs, the CLI's ``--json`` output and HTTP APIs) and the structured fields that explain
it (``run_id``, ``expected_seq``, ``dispatch_key``...), so callers never parse messages::

    SquidieError
    ├── DefinitionError (ValueError)        a workflow class breaks a rule, at import time
    ├── PayloadError (ValueError)           a start payload does not fit its trigger
    ├── StepOutputError (ValueError)        a step returned something that is not JSON
    ├── InvalidArgument (ValueError)        a command argument or filter is not acceptable
    ├── NotFoundError (LookupError)
    │   ├── RunNotFound                     no run with that id
    │   ├── WorkflowNotFound                no registered workflow with that name
    │   ├── TriggerNotFound                 the workflow has no trigger with that name
    │   └── DispatchNotFound                no dispatch (or dead letter) with that key
    ├── InvalidTransitionError              a command that the run's state does not allow
    │   └── RunTerminalError                the run already completed, failed or was cancelled
    ├── ConflictError                       a write lost a race or contradicts an earlier one
    │   ├── AppendConflict                  the journal moved past ``expected_seq``
    │   └── IdempotencyConflict             a key reused with a different intent
    ├── LeaseLostError                      a fencing token is stale, expired or unknown
    ├── StoreError                          the storage layer cannot do what was asked
    │   ├── BackendUnavailable (ConnectionError)  the backend cannot be reached
    │   ├── CorruptDataError                a stored row, key or checkpoint cannot be read
    │   ├── ValueTooLarge (ValueError)      a payload, output or fact exceeds the limit
    │   ├── SchemaVersionError              the store's schema is not one this code speaks
    │   └── CapabilityNotSupported          an optional behaviour the store does not declare
    └── PluginError                         discovery or loading of an adapter failed
        ├── UnknownBackend (LookupError)    no adapter registered for a URL's scheme
        └── MissingDriver (ImportError)     the adapter's driver is not installed

Conflicts and lease loss are the two errors the runtime expects in normal operation under
concurrency: ``AppendConflict`` means "re-read and decide again", ``LeaseLostError`` means
"someone else owns this attempt now; discard your result".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AppendConflict",
    "BackendUnavailable",
    "CapabilityNotSupported",
    "ConflictError",
    "CorruptDataError",
    "DefinitionError",
    "DispatchNotFound",
    "FieldError",
    "IdempotencyConflict",
    "InvalidArgument",
    "InvalidTransitionError",
    "LeaseLostError",
    "MissingDriver",
    "NotFoundError",
    "PayloadError",
    "PluginError",
    "RunNotFound",
    "RunTerminalError",
    "SchemaVersionError",
    "SquidieError",
    "StepOutputError",
    "StoreError",
    "TriggerNotFound",
    "UnknownBackend",
    "ValueTooLarge",
    "WorkflowNotFound",
]


class SquidieError(Exception):
    """Raised when Squidie refuses or fails an operation on purpose; the root of the tree.

    Catch it to handle every Squidie error at once; catch a subclass for one kind.

    Attributes:
        code: A stable, machine-readable identifier of the error kind.
    """

    code = "squidie_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        """Return the error as JSON-ready data: ``code``, ``message`` and its fields."""
        data: dict[str, Any] = {"code": self.code, "message": self.message}
        for key, value in vars(self).items():
            if key not in data and not key.startswith("_") and key != "args":
                data[key] = value
        return data


class DefinitionError(SquidieError, ValueError):
    """Raised when a workflow class breaks a definition rule, at class creation.

    Unlike ``PayloadError`` (bad data for a valid workflow), this is a bug in the code that
    defines the workflow; it surfaces at import time so it never reaches a running system.

    Attributes:
        workflow: The workflow class name.
        subject: The step, trigger or transition at fault (``None`` for the whole class).
        rule: A short stable name of the rule that was broken.
    """

    code = "definition_invalid"

    def __init__(self, workflow: str, subject: str | None, rule: str, detail: str) -> None:
        where = f"workflow {workflow!r}" + (f", {subject}" if subject else "")
        super().__init__(f"{where}: {detail} [rule: {rule}]")
        self.workflow = workflow
        self.subject = subject
        self.rule = rule


class FieldError:
    """One problem with one payload field (not an exception: ``PayloadError`` lists them)."""

    __slots__ = ("field", "problem")

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem

    def __repr__(self) -> str:
        return f"FieldError({self.field!r}, {self.problem!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, FieldError)
            and (self.field, self.problem) == (other.field, other.problem)
        )

    def __hash__(self) -> int:
        return hash((self.field, self.problem))


class PayloadError(SquidieError, ValueError):
    """Raised when a payload does not fit its trigger's fields; nothing is written.

    Every bad field is reported at once in ``errors``, not just the first one.

    Attributes:
        workflow: The workflow name.
        trigger: The trigger name.
        errors: One ``FieldError`` per problem.
    """

    code = "payload_invalid"

    def __init__(self, workflow: str, trigger: str, errors: Sequence[FieldError]) -> None:
        listed = "; ".join(f"{e.field}: {e.problem}" for e in errors)
        super().__init__(f"invalid payload for {workflow}.{trigger}: {listed}")
        self.workflow = workflow
        self.trigger = trigger
        self.errors = list(errors)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["errors"] = [{"field": e.field, "problem": e.problem} for e in self.errors]
        return data


class StepOutputError(SquidieError, ValueError):
    """Raised when a step returns a value that cannot be stored as JSON.

    The runtime records it as a non-retryable failure of that attempt: rerunning the same
    code would return the same unstorable value.
    """

    code = "step_output_invalid"

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"step {step!r} returned an invalid output: {detail}")
        self.step = step


class InvalidArgument(SquidieError, ValueError):
    """Raised when a command argument or a listing filter is not acceptable.

    For example ``approve`` without an ``actor``, ``list_runs(status="bogus")`` or a
    malformed cursor. Unlike ``InvalidTransitionError`` the run's state is not the issue:
    the same call would be refused for any run. Nothing is written.

    Attributes:
        argument: The argument at fault.
    """

    code = "invalid_argument"

    def __init__(self, argument: str, detail: str) -> None:
        super().__init__(f"invalid {argument}: {detail}")
        self.argument = argument


class NotFoundError(SquidieError, LookupError):
    """Raised when something looked up by name or id does not exist."""

    code = "not_found"


class RunNotFound(NotFoundError):
    """Raised when no run has the given id."""

    code = "run_not_found"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r}")
        self.run_id = run_id


class WorkflowNotFound(NotFoundError):
    """Raised when a workflow name is not registered with the engine.

    Attributes:
        workflow: The name that was asked for.
        known: The names that are registered (for "did you mean").
    """

    code = "workflow_not_found"

    def __init__(self, workflow: str, known: Sequence[str] = ()) -> None:
        hint = _did_you_mean(workflow, known)
        super().__init__(f"unknown workflow {workflow!r}{hint}")
        self.workflow = workflow
        self.known = sorted(known)


class TriggerNotFound(NotFoundError):
    """Raised when a workflow has no trigger with the given name (or the kind asked for)."""

    code = "trigger_not_found"

    def __init__(self, workflow: str, trigger: str, known: Sequence[str] = ()) -> None:
        hint = _did_you_mean(trigger, known)
        super().__init__(f"workflow {workflow!r} has no trigger {trigger!r}{hint}")
        self.workflow = workflow
        self.trigger = trigger


class DispatchNotFound(NotFoundError):
    """Raised when no dispatch (or dead letter, for a re-drive) has the given key."""

    code = "dispatch_not_found"

    def __init__(self, dispatch_key: str, detail: str = "") -> None:
        super().__init__(f"no dispatch {dispatch_key!r}{': ' + detail if detail else ''}")
        self.dispatch_key = dispatch_key


class InvalidTransitionError(SquidieError):
    """Raised when a command does not fit the run's current state.

    For example ``approve`` on a run parked at a ``pause()`` step, ``resume`` on a run that
    is not paused, or ``replay`` of a run that has not finished. Nothing is written.

    Attributes:
        run_id: The run the command was for.
        command: The command name.
        status: The run's status when the command was refused.
    """

    code = "invalid_transition"

    def __init__(self, run_id: str, command: str, status: str, detail: str) -> None:
        super().__init__(f"cannot {command} run {run_id!r} (status {status}): {detail}")
        self.run_id = run_id
        self.command = command
        self.status = status


class RunTerminalError(InvalidTransitionError):
    """Raised when a command or write targets a run that is already terminal.

    A special case of ``InvalidTransitionError``: no command but ``replay`` (and reads) can
    ever succeed on this run again.
    """

    code = "run_terminal"


class ConflictError(SquidieError):
    """Raised when a write lost a race or contradicts an earlier write."""

    code = "conflict"


class AppendConflict(ConflictError):
    """Raised when a journal append or commit was based on a stale sequence.

    Nothing was written. The caller should re-read the run and decide again; the runtime
    does this itself.

    Attributes:
        run_id: The run whose journal moved.
        expected_seq: The last sequence the writer had seen.
        actual_seq: The journal's real last sequence (``None`` if the store cannot tell).
    """

    code = "append_conflict"

    def __init__(self, run_id: str, expected_seq: int, actual_seq: int | None) -> None:
        super().__init__(
            f"journal of run {run_id!r} is at seq {actual_seq}, not {expected_seq}: "
            "someone else appended first"
        )
        self.run_id = run_id
        self.expected_seq = expected_seq
        self.actual_seq = actual_seq


class IdempotencyConflict(ConflictError):
    """Raised when an idempotency key (or a dispatch key) is reused for a different intent.

    Unlike ``AppendConflict`` this is not a race to retry: the same key was given to two
    different requests, which is a caller bug.

    Attributes:
        key: The key that was reused.
    """

    code = "idempotency_conflict"

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"key {key!r} was already used for a different request: {detail}")
        self.key = key


class LeaseLostError(SquidieError):
    """Raised when an operation presents a fencing token that is no longer current.

    The lease expired, was taken over by another worker, or its dispatch was settled or
    cancelled. Nothing was written: the holder must discard its result.

    Attributes:
        dispatch_key: The dispatch the lease was for.
    """

    code = "lease_lost"

    def __init__(self, dispatch_key: str, detail: str = "") -> None:
        super().__init__(
            f"lease on dispatch {dispatch_key!r} is no longer held"
            + (f": {detail}" if detail else "")
        )
        self.dispatch_key = dispatch_key


class StoreError(SquidieError):
    """Raised when the storage layer fails in a way that is not a race."""

    code = "store_error"


class BackendUnavailable(StoreError, ConnectionError):
    """Raised when the backend cannot be reached after bounded transient retries.

    The message names the backend but never carries credentials.
    """

    code = "backend_unavailable"

    def __init__(self, backend: str, detail: str) -> None:
        super().__init__(f"{backend} is unavailable: {detail}")
        self.backend = backend


class CorruptDataError(StoreError):
    """Raised when a stored row, key, fact or checkpoint cannot be decoded.

    Attributes:
        where: What was being read (a run id, a dispatch key, a table).
    """

    code = "corrupt_data"

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"corrupt data in {where}: {detail}")
        self.where = where


class ValueTooLarge(StoreError, ValueError):
    """Raised when a payload, output or fact exceeds the configured size limit.

    Attributes:
        what: What was too large.
        size: Its encoded size in bytes.
        limit: The limit in bytes.
    """

    code = "value_too_large"

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} is {size} bytes encoded; the limit is {limit} bytes")
        self.what = what
        self.size = size
        self.limit = limit


class SchemaVersionError(StoreError):
    """Raised when a store's schema version is missing or newer than this code understands."""

    code = "schema_version"


class CapabilityNotSupported(StoreError):
    """Raised when a caller asks a store for an optional behaviour it does not declare.

    Attributes:
        capability: The capability field name (see ``squidie_core.storage.Capabilities``).
    """

    code = "capability_not_supported"

    def __init__(self, backend: str, capability: str) -> None:
        super().__init__(f"the {backend} store does not support {capability!r}")
        self.backend = backend
        self.capability = capability


class PluginError(SquidieError):
    """Raised when discovering or loading a storage adapter fails."""

    code = "plugin_error"


class UnknownBackend(PluginError, LookupError):
    """Raised when no loaded adapter handles a store URL's scheme."""

    code = "unknown_backend"

    def __init__(self, scheme: str, known: Sequence[str]) -> None:
        hint = _did_you_mean(scheme, known)
        listed = ", ".join(sorted(known)) or "none"
        super().__init__(f"no backend for scheme {scheme!r}{hint} (known: {listed})")
        self.scheme = scheme


class MissingDriver(PluginError, ImportError):
    """Raised when an adapter is registered but its driver library is not installed."""

    code = "missing_driver"

    def __init__(self, backend: str, module: str, extra: str) -> None:
        super().__init__(
            f"the {backend} backend needs the {module!r} package: "
            f"pip install 'squidie[{extra}]'"
        )
        self.backend = backend
        self.module = module
        self.extra = extra


def _did_you_mean(word: str, known: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
