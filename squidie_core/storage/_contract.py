"""The storage contract: what every backend provides, in backend-neutral terms.

A store is a ``JournalStore`` (ordered per-run facts, optimistic conflicts, checkpoints,
a run index) plus a ``LeaseDelivery`` (dispatches delivered under fenced leases) plus one
atomic ``commit`` joining them. No SQL, no connections, no transactions appear here.

Time: every duration is relative (``delay``, ``lease_for``), measured by the store's one
clock (``store.clock``), and every absolute time a store reports (``visible_at``,
``expires_at``) is in that clock's epoch seconds. That is what lets a server-clock store
(Redis ``TIME``) and an injected-clock store (memory, SQL) honour the same contract.

Why commits are fenced — the race a lease alone does not prevent::

    worker A                          store                           worker B
    claim d (fence 1, token a) ---->  d claimed by A until t+30
    ... GC pause 45 s ...             lease expires at t+30
                                      d claimable again  <----------  claim d (fence 2, b)
                                                                      runs the step
                                      commit(settle=b) ok  <--------  commit outcome
    wakes up, commit(settle=a) --->   token a is not current:
                                      LeaseLostError, nothing written

Without the token check in the same atomic write, A's stale outcome would be appended
after B's and the step would be "committed" twice.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol, runtime_checkable

from squidie_core import _json
from squidie_core._clock import Clock
from squidie_core.errors import (
    ConflictError,
    CorruptDataError,
    InvalidArgument,
    InvalidTransitionError,
    LeaseLostError,
    SquidieError,
    ValueTooLarge,
)

__all__ = [
    "DISPATCH_STATES",
    "QUEUE_NAME",
    "RUN_STATUSES",
    "TERMINAL_STATUSES",
    "Capabilities",
    "Checkpoint",
    "Commit",
    "CommitResult",
    "Dispatch",
    "DispatchRecord",
    "DispatchState",
    "Fact",
    "JournalStore",
    "Lease",
    "LeaseDelivery",
    "Page",
    "QueueDepth",
    "RunEntry",
    "Store",
    "check_commit",
    "check_contiguous",
    "check_queue_name",
    "decode_cursor",
    "encode_cursor",
    "hash_token",
    "new_token",
    "same_facts",
]

#: Every status a run can have, in lifecycle order.
RUN_STATUSES = ("new", "started", "running", "idle", "paused", "completed", "failed", "cancelled")
#: The statuses after which a run never changes again (except receipts such as replay).
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})

DispatchState = Literal[
    "available", "scheduled", "claimed", "completed", "failed", "dead_lettered"
]
#: What a queue name may look like (ASCII, so stores can index it compactly).
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")

#: Every state a dispatch can be reported in.
DISPATCH_STATES: tuple[str, ...] = (
    "available", "scheduled", "claimed", "completed", "failed", "dead_lettered"
)


# --------------------------------------------------------------------------- journal data


@dataclass(frozen=True, slots=True)
class Fact:
    """One journal entry: something that happened to a run.

    Attributes:
        seq: Position in the run's journal, contiguous from 1.
        type: The fact type (``run_started``, ``attempt_succeeded``...).
        at: When the runtime recorded it, in the store clock's epoch seconds.
        body: The fact's JSON data.
    """

    seq: int
    type: str
    at: float
    body: Mapping[str, Any]

    def to_json(self) -> str:
        """Encode as compact JSON (``{"seq","type","at","body"}``)."""
        return _json.dumps({"seq": self.seq, "type": self.type, "at": self.at, "body": self.body})

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "journal") -> Fact:
        """Decode a fact written by ``to_json``; ``CorruptDataError`` if it is not one."""
        try:
            data = _json.loads(text)
            return cls(
                seq=int(data["seq"]),
                type=str(data["type"]),
                at=float(data["at"]),
                body=data["body"] if isinstance(data["body"], dict) else _bad(),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptDataError(where, f"undecodable fact: {exc}") from exc


def _bad() -> Any:
    raise TypeError("fact body is not a JSON object")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A run's folded state as of a sequence, stored so reads need not replay history.

    The store treats ``data`` as opaque text; the runtime decodes it and falls back to a
    full rebuild when it cannot (or when ``seq`` is beyond the journal).

    Attributes:
        seq: The last fact sequence the state covers.
        data: The encoded state.
    """

    seq: int
    data: str


@dataclass(frozen=True, slots=True)
class RunEntry:
    """A run's row in the index behind ``list_runs`` (no payload, no secrets).

    Attributes:
        run_id: The run's id.
        workflow: The workflow name.
        trigger: The trigger name.
        status: One of ``RUN_STATUSES``.
        queue: The run's queue.
        created_at: When the run started (store clock).
        updated_at: When the run last changed (store clock).
        last_seq: The journal sequence this row reflects.
        parent_run_id: The parent of a child run.
    """

    run_id: str
    workflow: str
    trigger: str
    status: str
    queue: str
    created_at: float
    updated_at: float
    last_seq: int
    parent_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as JSON-ready data."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing.

    Attributes:
        items: The entries on this page.
        next_cursor: Pass as ``cursor=`` for the next page; ``None`` on the last page.
    """

    items: list[Any]
    next_cursor: str | None = None


def encode_cursor(*parts: Any) -> str:
    """Encode a listing position (e.g. ``created_at, run_id``) as an opaque string."""
    return base64.urlsafe_b64encode(_json.dumps(list(parts)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """Decode ``encode_cursor`` output; ``InvalidArgument`` for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = _json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidArgument("cursor", "not a cursor returned by a listing") from exc
    if not isinstance(parts, list) or len(parts) != arity:
        raise InvalidArgument("cursor", "not a cursor returned by this listing")
    return parts


# --------------------------------------------------------------------------- delivery data


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A step attempt that is ready to run (or will be, after ``delay``).

    Attributes:
        key: ``"{run_id}:{step}:{attempt}"``; the dispatch's identity and idempotency key.
        run_id: The run it belongs to.
        workflow: The workflow name (lets a worker refuse unknown workflows cheaply).
        step: The step name.
        attempt: The attempt number, from 1.
        queue: The queue it is delivered from (see ``QUEUE_NAME``).
        priority: Lower runs first among visible dispatches of a queue (capability
            ``priorities``; must be 0 on stores without it).
        delay: Seconds from the store's now until it becomes visible.
        max_deliveries: Deliveries allowed before a claim dead-letters it instead.
    """

    key: str
    run_id: str
    workflow: str
    step: str
    attempt: int
    queue: str = "default"
    priority: int = 0
    delay: float = 0.0
    max_deliveries: int = 5

    @staticmethod
    def make_key(run_id: str, step: str, attempt: int) -> str:
        """Return the canonical dispatch key."""
        return f"{run_id}:{step}:{attempt}"

    def intent(self) -> tuple[Any, ...]:
        """What must match for a second enqueue of the same key to be a no-op.

        ``delay`` is excluded: a resend computes visibility again.
        """
        return (
            self.run_id, self.workflow, self.step, self.attempt, self.queue, self.priority,
            self.max_deliveries,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the dispatch as JSON-ready data."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Dispatch:
        """Rebuild a dispatch from ``to_dict`` output."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True, slots=True)
class Lease:
    """A claim on one dispatch, valid until ``expires_at`` unless taken over.

    Attributes:
        dispatch: The dispatch claimed.
        owner_id: Who claimed it.
        token: The fencing secret; stores keep only ``hash_token(token)``.
        fence: Increases on every delivery of this dispatch, redrives included.
        delivery: Deliveries since the dispatch was enqueued or re-driven (1 = first).
        expires_at: When the lease lapses (store clock).
    """

    dispatch: Dispatch
    owner_id: str
    token: str = field(repr=False)
    fence: int
    delivery: int
    expires_at: float

    @property
    def key(self) -> str:
        """The dispatch key."""
        return self.dispatch.key


@dataclass(frozen=True, slots=True)
class DispatchRecord:
    """A dispatch as the store holds it, for inspection and dead-letter listings.

    Attributes:
        dispatch: The dispatch.
        state: One of ``DISPATCH_STATES`` (``available``/``scheduled`` computed against
            the store's now).
        visible_at: When it is (or was) visible.
        deliveries: Deliveries since enqueue or last re-drive.
        fence: The last fence handed out (0: never delivered).
        owner_id: The current or last holder.
        lease_expires_at: When the current lease lapses (``claimed`` only).
        reason: Why it was dead-lettered or failed.
        history: One entry per delivery or settlement, oldest first (JSON).
    """

    dispatch: Dispatch
    state: str
    visible_at: float
    deliveries: int
    fence: int
    owner_id: str | None = None
    lease_expires_at: float | None = None
    reason: str | None = None
    history: tuple[Mapping[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON-ready data."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["dispatch"] = self.dispatch.to_dict()
        data["history"] = [dict(h) for h in self.history]
        return data


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """Counts of one queue's dispatches.

    Attributes:
        visible: Claimable now.
        scheduled: Becoming visible later.
        claimed: Under a lease (expired leases included until re-claimed).
        dead: Dead-lettered.
        oldest_visible_at: ``visible_at`` of the oldest claimable dispatch, if any.
    """

    visible: int = 0
    scheduled: int = 0
    claimed: int = 0
    dead: int = 0
    oldest_visible_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the counts as JSON-ready data."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class Commit:
    """One atomic write: facts, next dispatches, the current lease settled, the index.

    Attributes:
        run_id: The run written to.
        expected_seq: The journal's last sequence as the writer last read it.
        facts: New facts with sequences ``expected_seq + 1 ...``, contiguous.
        enqueue: Dispatches to make deliverable (after their ``delay``).
        settle: The lease whose dispatch this commit completes, if any.
        run: The run's index row after this commit.
        checkpoint: A new checkpoint to store with it (optional).
    """

    run_id: str
    expected_seq: int
    facts: Sequence[Fact]
    run: RunEntry
    enqueue: Sequence[Dispatch] = ()
    settle: Lease | None = None
    checkpoint: Checkpoint | None = None

    @property
    def terminal(self) -> bool:
        """Whether the commit ends the run (its other dispatches are then failed)."""
        return self.run.status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What a commit did.

    Attributes:
        last_seq: The journal's last sequence after the commit.
        replayed: ``True`` when this exact commit had already been applied (a resend
            after a lost reply) and nothing new was written.
    """

    last_seq: int
    replayed: bool = False


# --------------------------------------------------------------------------- capabilities


@dataclass(frozen=True)
class Capabilities:
    """Optional behaviours a store declares; everything else in the contract is required.

    Every flag is off by default. The conformance suite reports a test that needs an
    undeclared capability as "not supported", and the runtime raises
    ``CapabilityNotSupported`` rather than quietly behaving differently.
    """

    durable: bool = False
    """Committed data survives a restart of the client process and of the server."""
    multi_process: bool = False
    """Several processes on one machine may share the store concurrently."""
    multi_node: bool = False
    """Several machines may share the store concurrently."""
    server_clock: bool = False
    """The store's clock is the server's and cannot be injected (tests advance it)."""
    priorities: bool = False
    """``Dispatch.priority`` orders claims within a queue."""
    wake_up: bool = False
    """``wait_for_work`` blocks until work may be visible instead of raising."""
    visibility_precision: float = 0.001
    """Delayed visibility and lease expiry are honoured to within this many seconds."""
    embedded: bool = False
    """The store runs inside the client process (an embedded database, e.g. SQLite):
    its operations wait on no network and spend this process's CPU, so a worker's slots
    gain nothing by running them at the same time and take turns (``Worker``)."""
    max_value_bytes: int | None = None
    """The largest encoded payload, output or checkpoint the store accepts (None: no limit
    beyond the runtime's own)."""

    def to_dict(self) -> dict[str, Any]:
        """Return the declaration as JSON-ready data."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def describe(cls) -> dict[str, str]:
        """Return each capability's one-line documentation."""
        import ast
        import inspect
        import textwrap

        docs: dict[str, str] = {}
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
            ):
                docs[node.target.id] = " ".join(str(nxt.value.value).split())
        return docs


# --------------------------------------------------------------------------- tokens


def new_token() -> str:
    """Return a new random fencing token (never stored in clear)."""
    return secrets.token_urlsafe(18)


def hash_token(token: str) -> str:
    """Return the stored form of a fencing token."""
    return hashlib.sha256(token.encode()).hexdigest()[:40]


# --------------------------------------------------------------------------- protocols


@runtime_checkable
class JournalStore(Protocol):
    """Per-run threads of facts, appended in order with optimistic conflict detection."""

    def append(self, run_id: str, facts: Sequence[Fact], expected_seq: int) -> int:
        """Append facts after ``expected_seq``, all or nothing.

        Args:
            run_id: The run.
            facts: Facts numbered ``expected_seq + 1 ...`` contiguously.
            expected_seq: The sequence the writer last read (0: the run has no facts).

        Returns:
            The new last sequence.

        Raises:
            AppendConflict: the journal's last sequence is not ``expected_seq``; nothing
                was written. An identical resend of an append that landed returns
                normally instead.
            ValueError: the facts are not numbered contiguously from ``expected_seq + 1``.
        """
        ...

    def read(self, run_id: str, after_seq: int = 0) -> list[Fact]:
        """Return the run's facts with ``seq > after_seq``, in order (``[]`` if none)."""
        ...

    def head(self, run_id: str) -> int:
        """Return the run's last sequence (0 when it has no facts)."""
        ...

    def read_checkpoint(self, run_id: str) -> Checkpoint | None:
        """Return the run's latest checkpoint, if one is stored."""
        ...

    def write_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> None:
        """Store a checkpoint unless a newer one (higher ``seq``) is already stored."""
        ...

    def delete_checkpoints(self, run_id: str | None = None) -> int:
        """Delete the run's checkpoint (every checkpoint when ``None``); return how many."""
        ...

    def get_run(self, run_id: str) -> RunEntry | None:
        """Return the run's index row, if the run exists."""
        ...

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """List index rows, newest first (``created_at`` then ``run_id`` descending).

        Served from an index, never a scan of facts. ``cursor`` is a previous page's
        ``next_cursor``; rows created after the first page do not shift later pages.
        """
        ...


@runtime_checkable
class LeaseDelivery(Protocol):
    """Dispatches delivered to one holder at a time under fenced, expiring leases."""

    def enqueue(self, dispatches: Sequence[Dispatch]) -> None:
        """Make dispatches deliverable after their ``delay``.

        Idempotent by key: the same key with the same ``intent()`` is a no-op.

        Raises:
            IdempotencyConflict: a key already exists with a different intent.
            RunTerminalError: the dispatch's run is terminal in the run index.
            CapabilityNotSupported: a non-zero priority without ``priorities``.
        """
        ...

    def claim(
        self, owner_id: str, *, lease_for: float, limit: int = 1, queues: Sequence[str] = ()
    ) -> list[Lease]:
        """Lease up to ``limit`` visible dispatches from ``queues`` (default: ``default``).

        Visible means ``available`` with ``visible_at <= now``, or ``claimed`` with an
        expired lease. Order: priority (if supported), then earliest ``visible_at``, then
        key; a claimed dispatch whose lease expired counts as visible from the lease's
        ``expires_at`` (a lease moves the dispatch's visibility forward). Each returned
        lease has a new token and a higher fence. A dispatch already delivered
        ``max_deliveries`` times is dead-lettered (reason ``delivery_limit_exceeded``)
        instead of being returned.
        """
        ...

    def heartbeat(self, lease: Lease, *, lease_for: float) -> Lease:
        """Extend a live lease to ``now + lease_for`` and return the updated lease.

        Raises:
            LeaseLostError: the token is not current or the lease already expired.
        """
        ...

    def complete(self, lease: Lease) -> None:
        """Settle the dispatch as completed (idempotent for the same token).

        Raises:
            LeaseLostError: the token is not current, or the lease expired.
        """
        ...

    def retry(self, lease: Lease, *, delay: float = 0.0, reason: str | None = None) -> None:
        """Release the lease; the dispatch becomes visible again after ``delay``.

        The delivery counts toward ``max_deliveries``.

        Raises:
            LeaseLostError: the token is not current, or the lease expired.
        """
        ...

    def dead_letter(self, lease: Lease, reason: str) -> None:
        """Move the dispatch to the dead letters with ``reason``.

        Raises:
            LeaseLostError: the token is not current, or the lease expired.
        """
        ...

    def dead_letters(
        self, *, queue: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """List dead-lettered ``DispatchRecord``s, oldest first."""
        ...

    def redrive(self, dispatch_key: str, *, delay: float = 0.0) -> None:
        """Make a dead letter deliverable again with a fresh delivery count.

        Raises:
            DispatchNotFound: no dead letter has that key.
            RunTerminalError: its run has become terminal meanwhile.
        """
        ...

    def dispatches(self, run_id: str) -> list[DispatchRecord]:
        """Return every dispatch of a run, in enqueue order (for inspection)."""
        ...

    def depth(self, queues: Sequence[str] | None = None) -> dict[str, QueueDepth]:
        """Return counts per queue (every queue with dispatches when ``None``)."""
        ...


@runtime_checkable
class BatchCommitter(Protocol):
    """The optional group commit a store may add to ``Store`` (workers batch through it).

    A store without it is committed to one ``commit`` at a time (``commit_each``); one with
    it saves round trips and transactions when a worker commits several outcomes at once.
    """

    def commit_many(self, commits: Sequence[Commit]) -> list[CommitResult | SquidieError]:
        """Apply each commit as ``commit`` would, in order; one result per commit.

        Each commit stays atomic on its own and is judged by the same checks, in the
        same order, as if committed alone after the ones before it: one commit failing
        (``LeaseLostError``, ``AppendConflict``...) does not undo or block the others, and
        its error is returned in its place instead of raised. Errors that are not about
        one commit (``BackendUnavailable``, a closed store) are raised; commits of that
        call may then be applied or not, exactly as a ``commit`` whose reply was lost, and
        a resend is safe.
        """
        ...


@runtime_checkable
class BatchReader(Protocol):
    """The optional batched read a store may add to ``Store`` (workers load a claimed
    batch's runs through it)."""

    def read_runs(
        self, after: Mapping[str, int | None]
    ) -> dict[str, tuple[Checkpoint | None, list[Fact]]]:
        """Read several runs at once: ``{run_id: (checkpoint, facts)}`` for each key.

        For a run mapped to ``None`` the checkpoint is read too and the facts are those
        after it (all of them without one); for a run mapped to a sequence, the
        checkpoint is ``None`` and the facts are those after that sequence. A run with no
        facts comes back as ``(None, [])``. Raises ``CorruptDataError`` as ``read`` does.
        """
        ...


@runtime_checkable
class ClaimReader(Protocol):
    """The optional read a store may add to ``Store`` to load claimed runs with less
    than a read of their own (a worker loads the runs of each claim through it)."""

    def read_claimed(
        self, leases: Sequence[Lease], after: Mapping[str, int | None]
    ) -> dict[str, tuple[Checkpoint | None, list[Fact]]]:
        """``read_runs(after)`` for the runs of ``leases``, just claimed by this caller.

        The answer for a run may be the journal as it was when its lease was claimed
        (a store may read the runs together with the claim) rather than as it is now:
        what a read made right after the claim would have returned. It is never older
        than that claim. Runs with no lease among ``leases``, or none from the store's
        latest claim for this caller, are read as ``read_runs`` reads them.
        """
        ...


@runtime_checkable
class Store(JournalStore, LeaseDelivery, Protocol):
    """A complete backend: journal, delivery, and the atomic commit joining them.

    Attributes:
        name: A short backend name for messages (``memory``, ``sqlite``, ``redis``...).
        clock: The one clock behind every lease and visibility decision.
        capabilities: The optional behaviours this store declares.
    """

    name: str
    clock: Clock
    capabilities: Capabilities

    def commit(self, commit: Commit) -> CommitResult:
        """Apply a ``Commit`` atomically: all of it, or nothing.

        Checks, in order, before writing anything:

        1. an identical commit already applied (its facts are in the journal) — return
           ``CommitResult(replayed=True)``; resends are safe;
        2. ``settle``'s token is current and unexpired, else ``LeaseLostError``;
        3. the journal is at ``expected_seq``, else ``AppendConflict``;
        4. the run is not terminal in the index when the commit enqueues, else
           ``RunTerminalError``;
        5. every enqueued key is new or has the same intent, else
           ``IdempotencyConflict``.

        Then it appends the facts, enqueues the dispatches (existing identical keys are
        skipped), completes the settled dispatch, upserts the run index row and stores the
        checkpoint. If the run becomes terminal, every other dispatch of the run that has
        not completed is failed (reason ``run_terminal``) so none can be claimed,
        completed or scheduled again.
        """
        ...

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        """Block up to ``timeout`` seconds until work may be visible (capability ``wake_up``).

        A hint only; never needed for correctness. Returns ``True`` if woken early.

        Raises:
            CapabilityNotSupported: the store does not declare ``wake_up``.
        """
        ...

    def close(self) -> None:
        """Release connections and threads; the store is unusable afterwards."""
        ...


# --------------------------------------------------------------------------- adapter helpers


def check_queue_name(queue: str) -> str:
    """Return ``queue`` if it is a valid queue name, else raise ``InvalidArgument``.

    Queue names are ASCII letters, digits, ``_``, ``.`` and ``-``, 1 to 128 characters.
    """
    if not isinstance(queue, str) or not QUEUE_NAME.match(queue):
        raise InvalidArgument(
            "queue", f"{queue!r} is not a queue name (ASCII letters, digits, '_', '.', '-'; "
            "at most 128 characters)"
        )
    return queue


def check_contiguous(facts: Sequence[Fact], expected_seq: int) -> None:
    """Raise ``ValueError`` unless ``facts`` are numbered ``expected_seq + 1 ...``.

    Adapters call this before writing (``check_commit`` calls it for commits); it is a
    caller bug, not a conflict.
    """
    if expected_seq < 0:
        raise ValueError(f"expected_seq must be >= 0, not {expected_seq}")
    for offset, fact in enumerate(facts, start=1):
        if fact.seq != expected_seq + offset:
            raise ValueError(
                f"facts must be numbered {expected_seq + 1}.. contiguously; "
                f"found seq {fact.seq} at position {offset}"
            )


def check_commit(commit: Commit) -> None:
    """Raise ``ValueError`` for a malformed ``Commit`` (a caller bug, not a conflict).

    Checks contiguous fact numbering, that the index row and the settled lease belong to
    the committed run, and that enqueued dispatches do too.
    """
    check_contiguous(commit.facts, commit.expected_seq)
    if commit.run.run_id != commit.run_id:
        raise ValueError("commit.run describes another run")
    if commit.settle is not None and commit.settle.dispatch.run_id != commit.run_id:
        raise ValueError("commit.settle is a lease on another run's dispatch")
    for dispatch in commit.enqueue:
        if dispatch.run_id != commit.run_id:
            raise ValueError(f"dispatch {dispatch.key!r} belongs to another run")


#: The errors that are about one commit, not the backend: ``commit_many`` returns them in
#: the commit's place instead of raising.
COMMIT_ERRORS: tuple[type[SquidieError], ...] = (
    ConflictError, LeaseLostError, InvalidTransitionError, InvalidArgument, ValueTooLarge,
)


def commit_each(store: Store, commits: Sequence[Commit]) -> list[CommitResult | SquidieError]:
    """``BatchCommitter.commit_many`` for any store: ``store.commit`` one after another.

    Errors about one commit (``COMMIT_ERRORS``) are returned in its place; any other
    error is raised.
    """
    results: list[CommitResult | SquidieError] = []
    for commit in commits:
        try:
            results.append(store.commit(commit))
        except COMMIT_ERRORS as exc:
            results.append(exc)
    return results


def commit_many(store: Store, commits: Sequence[Commit]) -> list[CommitResult | SquidieError]:
    """Commit several outcomes through the store's group commit, or one at a time."""
    batch = getattr(store, "commit_many", None)
    if batch is None:
        return commit_each(store, commits)
    results: list[CommitResult | SquidieError] = batch(commits)
    return results


def read_runs(
    store: Store, after: Mapping[str, int | None]
) -> dict[str, tuple[Checkpoint | None, list[Fact]]]:
    """``BatchReader.read_runs`` through the store's own, or run by run."""
    batch = getattr(store, "read_runs", None)
    if batch is not None:
        found: dict[str, tuple[Checkpoint | None, list[Fact]]] = batch(after)
        return found
    runs: dict[str, tuple[Checkpoint | None, list[Fact]]] = {}
    for run_id, seq in after.items():
        checkpoint = store.read_checkpoint(run_id) if seq is None else None
        base = seq if seq is not None else (checkpoint.seq if checkpoint else 0)
        runs[run_id] = (checkpoint, store.read(run_id, after_seq=base))
    return runs


def read_claimed(
    store: Store, leases: Sequence[Lease], after: Mapping[str, int | None]
) -> dict[str, tuple[Checkpoint | None, list[Fact]]]:
    """``ClaimReader.read_claimed`` through the store's own, or ``read_runs``."""
    own = getattr(store, "read_claimed", None)
    if own is not None:
        found: dict[str, tuple[Checkpoint | None, list[Fact]]] = own(leases, after)
        return found
    return read_runs(store, after)


def _canonical(fact: Fact) -> str:
    return _json.dumps([fact.seq, fact.type, fact.at, _sorted(fact.body)])


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted(v) for v in value]
    return value


def same_facts(stored: Sequence[Fact], requested: Sequence[Fact]) -> bool:
    """Whether ``stored`` are exactly the ``requested`` facts (a resend that landed).

    Compared as canonical JSON, so a tuple written and a list read back are equal.
    """
    return len(stored) == len(requested) and all(
        _canonical(a) == _canonical(b) for a, b in zip(stored, requested, strict=True)
    )
