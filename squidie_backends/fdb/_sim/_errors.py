"""FoundationDB error codes as the simulator raises them.

Names and numbers come from FoundationDB's "Error Codes" page
(https://apple.github.io/foundationdb/api-error-codes.html). The three predicate sets
follow the client's ``fdb_error_predicate`` and ``Transaction::onError``:

- ``RETRYABLE``: ``on_error`` resets the transaction and lets the loop run again;
- ``MAYBE_COMMITTED``: the commit may have been applied (``commit_unknown_result``);
- ``RETRYABLE_NOT_COMMITTED``: retryable and certainly not applied.

``transaction_timed_out`` (1031) is *not* retryable: ``on_error`` rethrows it, and a
commit that timed out may still land later.
"""

from __future__ import annotations

__all__ = [
    "ERRORS",
    "MAYBE_COMMITTED",
    "RETRYABLE",
    "RETRYABLE_NOT_COMMITTED",
    "FDBError",
]

#: Every code the simulator can raise, with FoundationDB's name for it.
ERRORS: dict[int, str] = {
    1004: "timed_out",
    1007: "transaction_too_old",
    1009: "future_version",
    1020: "not_committed",
    1021: "commit_unknown_result",
    1025: "transaction_cancelled",
    1031: "transaction_timed_out",
    1036: "accessed_unreadable",
    1037: "process_behind",
    1038: "database_locked",
    1042: "proxy_memory_limit_exceeded",
    1051: "batch_transaction_throttled",
    1213: "tag_throttled",
    2000: "client_invalid_operation",
    2004: "key_outside_legal_range",
    2005: "inverted_range",
    2006: "invalid_option_value",
    2017: "used_during_commit",
    2021: "no_commit_version",
    2101: "transaction_too_large",
    2102: "key_too_large",
    2103: "value_too_large",
}

_DESCRIPTIONS: dict[int, str] = {
    1004: "Operation timed out",
    1007: "Transaction is too old to perform reads or be committed",
    1009: "Request for future version",
    1020: "Transaction not committed due to conflict with another transaction",
    1021: "Transaction may or may not have committed",
    1025: "Operation aborted because the transaction was cancelled",
    1031: "Operation aborted because the transaction timed out",
    1036: "Read or wrote an unreadable key",
    1037: "Storage process does not have recent mutations",
    1038: "Database is locked",
    1042: "Proxy commit memory limit exceeded",
    1051: "Batch GRV request rate limit exceeded",
    1213: "Transaction tag is being throttled",
    2000: "Invalid API call",
    2004: "Key outside legal range",
    2005: "Range begin key larger than end key",
    2006: "Option set with an invalid value",
    2017: "Operation issued while a commit was outstanding",
    2021: "Transaction does not have a valid commit version",
    2101: "Transaction exceeds byte limit",
    2102: "Key length exceeds limit",
    2103: "Value length exceeds limit",
}

RETRYABLE_NOT_COMMITTED: frozenset[int] = frozenset(
    {1007, 1009, 1020, 1037, 1038, 1042, 1051, 1213}
)
MAYBE_COMMITTED: frozenset[int] = frozenset({1021})
RETRYABLE: frozenset[int] = RETRYABLE_NOT_COMMITTED | MAYBE_COMMITTED


class FDBError(Exception):
    """The simulator's ``fdb.FDBError``: an error code plus FoundationDB's description.

    Attributes:
        code: The numeric error code (see ``ERRORS``).
    """

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code

    @property
    def description(self) -> str:
        """FoundationDB's text for the code."""
        return _DESCRIPTIONS.get(self.code, "Unknown error")

    @property
    def name(self) -> str:
        """FoundationDB's name for the code (``not_committed``...)."""
        return ERRORS.get(self.code, "unknown_error")

    def __str__(self) -> str:
        return f"{self.description} ({self.code})"

    def __repr__(self) -> str:
        return f"FDBError({self.code})"
