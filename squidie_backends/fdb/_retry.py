"""The adapter's retry loop: FoundationDB's ``on_error`` loop, written out.

Every store operation is a *body* ``body(tr, attempt)`` run by ``Runner.run``::

    tr = db.create_transaction()
    loop:
        tr.options.set_timeout(...); tr.options.set_retry_limit(...)
        try:   result = body(tr, attempt); tr.commit().wait(); return result
        except FDBError as e:
            if e is transaction_timed_out and resets remain: tr.reset()   # see below
            else: tr.on_error(e).wait()    # retries, or re-raises what is not retryable

It is the binding's ``@fdb.transactional`` loop plus two things the decorator cannot do:

- ``attempt`` tells the body whether an earlier attempt of *this call* may have
  committed (``commit_unknown_result`` 1021, or a timeout during commit): everything the
  body needs to recognise its own landed write (tokens, operation ids) was made before
  the loop, so the body returns the first result instead of applying twice;
- ``transaction_timed_out`` (1031), which ``on_error`` does not retry and whose commit
  may still land, is retried in a fresh transaction a few times. That is safe for the
  same reason: every body is idempotent, and every body reads (with a conflict) a key
  that it and its resend both write, so a late landing of the first attempt conflicts
  with the resend instead of applying on top of it::

      attempt 1: read head=4, write facts 5..6, head=6, commit ... timed out (1031)
      attempt 2: read head=4, write facts 5..6, head=6, commit ok  (version v2)
      attempt 1 lands late: it read head at a version < v2 and v2 wrote head:
                            not_committed, dropped. The facts exist once.

The timeout keeps every transaction far below FoundationDB's 5-second limit.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from squidie_backends.fdb._errors import map_fdb_errors

__all__ = ["Attempt", "Runner", "Stats"]

T = TypeVar("T")

NOT_COMMITTED = 1020
COMMIT_UNKNOWN_RESULT = 1021
TRANSACTION_TIMED_OUT = 1031


@dataclass(frozen=True)
class Attempt:
    """What a body knows about the attempts of the same call before it.

    Attributes:
        number: 0 for the first attempt.
        maybe_landed: An earlier attempt's commit may have been applied (1021, or a
            timeout during commit): if the body finds its own write, it is that one.
        conflicted: An earlier attempt lost a conflict (1020).
    """

    number: int = 0
    maybe_landed: bool = False
    conflicted: bool = False

    def after(self, code: int, *, during_commit: bool) -> Attempt:
        """The next attempt after an error ``code``."""
        return Attempt(
            number=self.number + 1,
            maybe_landed=self.maybe_landed or (
                during_commit and code in (COMMIT_UNKNOWN_RESULT, TRANSACTION_TIMED_OUT)
            ),
            conflicted=self.conflicted or code == NOT_COMMITTED,
        )


class Stats:
    """Counters of transactions, attempts and errors per operation (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._errors: Counter[tuple[str, int]] = Counter()

    def call(self, what: str) -> None:
        """Count one operation."""
        with self._lock:
            self._calls[what] += 1

    def error(self, what: str, code: int) -> None:
        """Count one failed attempt of ``what`` with ``code``."""
        with self._lock:
            self._errors[(what, code)] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        """``{operation: {"calls": n, "<code>": n...}}``."""
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            for what, n in self._calls.items():
                out.setdefault(what, {})["calls"] = n
            for (what, code), n in self._errors.items():
                out.setdefault(what, {"calls": 0})[str(code)] = n
            return out

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._calls.clear()
            self._errors.clear()


class Runner:
    """Runs bodies in transactions with the retry loop described in the module docstring.

    Args:
        db: The database (real or simulated).
        fdb_error: The ``FDBError`` class of that API.
        backend: The backend name for error messages.
        timeout_ms: The per-transaction timeout (``set_timeout``).
        retry_limit: ``on_error``'s retry limit (``set_retry_limit``).
        timeout_resets: How many times a timed-out transaction is started afresh.
    """

    def __init__(
        self,
        db: Any,
        fdb_error: type[BaseException],
        *,
        backend: str,
        timeout_ms: int = 3000,
        retry_limit: int = 100,
        timeout_resets: int = 5,
    ) -> None:
        self.db = db
        self.fdb_error = fdb_error
        self.backend = backend
        self.timeout_ms = timeout_ms
        self.retry_limit = retry_limit
        self.timeout_resets = timeout_resets
        self.stats = Stats()

    def run(self, what: str, body: Callable[[Any, Attempt], T]) -> T:
        """Run ``body`` until it commits; return its result.

        Raises:
            SquidieError: whatever the body raises (nothing is committed then), or the
                mapping of an ``FDBError`` that outlasted the retries (see ``_errors``).
        """
        self.stats.call(what)
        with map_fdb_errors(self.fdb_error, backend=self.backend, what=what):
            tr = self.db.create_transaction()
            attempt = Attempt()
            resets = 0
            while True:
                tr.options.set_timeout(self.timeout_ms)
                tr.options.set_retry_limit(self.retry_limit)
                during_commit = False
                try:
                    result = body(tr, attempt)
                    during_commit = True
                    tr.commit().wait()
                    return result
                except self.fdb_error as exc:
                    code = int(getattr(exc, "code", -1))
                    self.stats.error(what, code)
                    attempt = attempt.after(code, during_commit=during_commit)
                    if code == TRANSACTION_TIMED_OUT and resets < self.timeout_resets:
                        resets += 1
                        tr.reset()
                        continue
                    tr.on_error(exc).wait()
