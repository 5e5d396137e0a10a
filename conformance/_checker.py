"""The history checker: is what a store kept consistent with "exactly-once journal"?

After any run (a randomised chaos campaign, a production incident, a migration), call
``check_history(store)``. It reads only durable data: each run's facts, the store's
records of the run's dispatches, and the run index. It never needs the workflow
definitions, so it can check any store, ours or yours. Rules (each ``Violation.rule``):

``contiguous``
    The journal reads back as sequences ``1..n`` in order.
``one_outcome_per_attempt``
    Each step attempt has at most one ``attempt_started`` and at most one outcome
    (``attempt_succeeded`` or ``attempt_failed``): it was committed once, however often it
    was delivered.
``outcome_was_scheduled``
    An attempt's facts follow a ``dispatch_scheduled`` for that attempt.
``one_terminal_state``
    At most one of ``run_completed``, ``run_failed``, ``run_cancelled``.
``nothing_after_terminal``
    After the terminal fact only receipts (``command_received``, ``replay_requested``).
``fenced_outcome``
    The dispatch of each committed attempt is ``completed`` and its last fence is the fence
    the outcome was committed with. A stale holder's commit landing after a takeover
    leaves a fence mismatch (or a dispatch that is not completed) behind: no fact was
    written by a stale lease.
``live_run_has_live_dispatch``
    A run that has not ended is parked (pause, approval) or has, for every attempt it
    waits for, a dispatch that is ``available``, ``scheduled`` or ``claimed``: it is
    still live, not stuck. (A dead-lettered attempt is reported unless
    ``allow_dead_letters``.)
``ended_run_has_no_live_dispatch``
    No dispatch of an ended run can still be claimed.
``dead_letter_has_reason``
    Every dead-lettered dispatch says why (a non-empty ``reason``), so an operator can
    decide whether to re-drive it.
``index_matches_journal``
    The run index row's ``last_seq`` is the journal's head and its status is terminal
    exactly when the journal is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from squidie_core.storage import TERMINAL_STATUSES, Dispatch, Fact, Store

__all__ = ["HistoryReport", "Violation", "check_history"]

_TERMINAL_FACTS = {"run_completed": "completed", "run_failed": "failed",
                   "run_cancelled": "cancelled"}
_AFTER_TERMINAL = {"command_received", "replay_requested"}
_OUTCOMES = {"attempt_succeeded", "attempt_failed"}
_LIVE = {"available", "scheduled", "claimed"}
_PARK = {"approval_requested": "approval", "paused": "pause"}
_UNPARK = {"approval_granted", "approval_rejected", "resumed"}


@dataclass(frozen=True)
class Violation:
    """One broken rule in one run.

    Attributes:
        run_id: The run.
        rule: The rule's stable name (see the module docstring).
        detail: What was found.
    """

    run_id: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.run_id}: [{self.rule}] {self.detail}"


@dataclass
class HistoryReport:
    """What ``check_history`` found.

    Attributes:
        runs: Runs checked.
        facts: Facts read.
        ended: Runs with a terminal fact.
        live: Runs still live (parked or with live dispatches).
        violations: Every broken rule.
    """

    runs: int = 0
    facts: int = 0
    ended: int = 0
    live: int = 0
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no rule was broken."""
        return not self.violations

    def rules(self) -> Counter[str]:
        """How often each rule was broken."""
        return Counter(v.rule for v in self.violations)

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` listing the violations (first 30) if there are any."""
        if self.violations:
            listed = "\n".join(f"  {v}" for v in self.violations[:30])
            more = len(self.violations) - 30
            raise AssertionError(
                f"{len(self.violations)} history violation(s) in {self.runs} runs:\n{listed}"
                + (f"\n  ... and {more} more" if more > 0 else "")
            )


def _all_runs(store: Store) -> Iterator[str]:
    cursor = None
    while True:
        page = store.list_runs(limit=500, cursor=cursor)
        yield from (row.run_id for row in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return


def check_history(
    store: Store, run_ids: Iterable[str] | None = None, *, allow_dead_letters: bool = False
) -> HistoryReport:
    """Check the durable history of runs against the rules in the module docstring.

    Args:
        store: Any ``Store``.
        run_ids: The runs to check (default: every run in the index).
        allow_dead_letters: Accept a live run waiting on a dead-lettered dispatch (an
            operator must re-drive it) instead of reporting it stuck.

    Returns:
        A ``HistoryReport``; call ``assert_ok()`` on it in tests.
    """
    report = HistoryReport()
    for run_id in (run_ids if run_ids is not None else _all_runs(store)):
        report.runs += 1
        facts = store.read(run_id)
        report.facts += len(facts)
        _check_run(store, run_id, facts, report, allow_dead_letters)
    return report


def _key(run_id: str, body: Any) -> str:
    return Dispatch.make_key(run_id, str(body.get("step")), int(body.get("attempt", 0)))


def _check_run(
    store: Store, run_id: str, facts: list[Fact], report: HistoryReport,
    allow_dead_letters: bool,
) -> None:
    def flag(rule: str, detail: str) -> None:
        report.violations.append(Violation(run_id, rule, detail))

    if [f.seq for f in facts] != list(range(1, len(facts) + 1)):
        flag("contiguous", f"sequences read back as {[f.seq for f in facts][:20]}")
    scheduled: set[str] = set()
    started: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    fences: dict[str, list[int]] = {}
    terminal: list[Fact] = []
    parked: str | None = None
    for fact in facts:
        body = fact.body
        if terminal and fact.type not in _AFTER_TERMINAL:
            flag("nothing_after_terminal",
                 f"{fact.type} at seq {fact.seq} after {terminal[0].type} at seq "
                 f"{terminal[0].seq}")
        if fact.type == "dispatch_scheduled":
            scheduled.add(str(body.get("key") or _key(run_id, body)))
        elif fact.type == "attempt_started":
            key = _key(run_id, body)
            started[key] += 1
            fences.setdefault(key, []).append(int(body.get("fence", -1)))
            if key not in scheduled:
                flag("outcome_was_scheduled", f"{key} started at seq {fact.seq} but was "
                                              "never scheduled")
        elif fact.type in _OUTCOMES:
            outcomes[_key(run_id, body)] += 1
        elif fact.type in _TERMINAL_FACTS:
            terminal.append(fact)
        elif fact.type in _PARK:
            parked = str(body.get("step"))
        elif fact.type in _UNPARK:
            parked = None
    for key in (started + outcomes):
        if started[key] > 1 or outcomes[key] > 1:
            flag("one_outcome_per_attempt",
                 f"{key} committed {max(started[key], outcomes[key])} times (fences "
                 f"{fences.get(key)})")
    if len(terminal) > 1:
        flag("one_terminal_state", f"{[f.type for f in terminal]} at seqs "
                                   f"{[f.seq for f in terminal]}")

    records = {r.dispatch.key: r for r in store.dispatches(run_id)}
    for key, seen in fences.items():
        record = records.get(key)
        if record is None:
            flag("fenced_outcome", f"{key} was committed but the store has no dispatch")
        elif record.state != "completed":
            flag("fenced_outcome", f"{key} was committed but its dispatch is {record.state} "
                                   f"({record.reason})")
        elif record.fence != seen[-1]:
            flag("fenced_outcome", f"{key} was committed with fence {seen[-1]} but the "
                                   f"dispatch's last delivery had fence {record.fence}")

    for key, record in sorted(records.items()):
        if record.state == "dead_lettered" and not (record.reason or "").strip():
            flag("dead_letter_has_reason", f"{key} was dead-lettered without a reason")

    ended = bool(terminal)
    if ended:
        report.ended += 1
        live = sorted(k for k, r in records.items() if r.state in _LIVE)
        if live:
            flag("ended_run_has_no_live_dispatch", f"still deliverable: {live}")
    else:
        waiting = sorted(scheduled - set(outcomes))
        if parked is not None:
            report.live += 1
        elif not waiting:
            flag("live_run_has_live_dispatch", "the run has not ended and waits for nothing")
        else:
            missing = [k for k in waiting if k not in records]
            dead = [k for k in waiting if k in records and records[k].state == "dead_lettered"]
            gone = [k for k in waiting if k in records
                    and records[k].state not in _LIVE | {"dead_lettered"}]
            if missing or gone or (dead and not allow_dead_letters):
                flag("live_run_has_live_dispatch",
                     f"waits for {waiting} but missing={missing} dead_lettered={dead} "
                     f"settled={[(k, records[k].state) for k in gone]}")
            else:
                report.live += 1

    row = store.get_run(run_id)
    head = facts[-1].seq if facts else 0
    if row is None:
        if facts:
            flag("index_matches_journal", "the run has facts but no index row")
    else:
        if row.last_seq != head:
            flag("index_matches_journal", f"index last_seq {row.last_seq}, journal head {head}")
        if (row.status in TERMINAL_STATUSES) != ended:
            flag("index_matches_journal", f"index status {row.status!r} but the journal "
                                          f"{'has' if ended else 'has no'} terminal fact")
