"""The one boundary where FoundationDB errors become Squidie errors.

Every transaction the adapter runs goes through ``map_fdb_errors``. By the time an
``FDBError`` reaches it, the retry loop has already retried whatever ``on_error``
accepts (conflicts, ``commit_unknown_result``, too-old read versions...) and every
operation is idempotent under those retries; what is left is one of:

- a transient condition that outlasted the retries (contention, a recovery, the cluster
  unreachable) → ``BackendUnavailable``;
- a size limit (key, value or transaction) → ``ValueTooLarge``;
- a misuse of the API, which would be a bug in this adapter → ``StoreError``.

``FDB_ERRORS`` lists every code the adapter can meet (the simulator raises exactly these,
and a test checks that none is left unmapped).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from squidie_core.errors import BackendUnavailable, SquidieError, StoreError, ValueTooLarge

__all__ = ["FDB_ERRORS", "SIZE_LIMITS", "map_fdb_errors", "translate"]

#: code -> (FoundationDB's name, the Squidie error it becomes).
FDB_ERRORS: dict[int, tuple[str, type[StoreError]]] = {
    1004: ("timed_out", BackendUnavailable),
    1007: ("transaction_too_old", BackendUnavailable),
    1009: ("future_version", BackendUnavailable),
    1020: ("not_committed", BackendUnavailable),
    1021: ("commit_unknown_result", BackendUnavailable),
    1025: ("transaction_cancelled", BackendUnavailable),
    1031: ("transaction_timed_out", BackendUnavailable),
    1036: ("accessed_unreadable", StoreError),
    1037: ("process_behind", BackendUnavailable),
    1038: ("database_locked", BackendUnavailable),
    1042: ("proxy_memory_limit_exceeded", BackendUnavailable),
    1051: ("batch_transaction_throttled", BackendUnavailable),
    1213: ("tag_throttled", BackendUnavailable),
    2000: ("client_invalid_operation", StoreError),
    2004: ("key_outside_legal_range", StoreError),
    2005: ("inverted_range", StoreError),
    2006: ("invalid_option_value", StoreError),
    2017: ("used_during_commit", StoreError),
    2021: ("no_commit_version", StoreError),
    2101: ("transaction_too_large", ValueTooLarge),
    2102: ("key_too_large", ValueTooLarge),
    2103: ("value_too_large", ValueTooLarge),
}

#: The limit behind each size error, in bytes.
SIZE_LIMITS: dict[int, int] = {2101: 10_000_000, 2102: 10_000, 2103: 100_000}


def translate(code: int, *, backend: str, what: str) -> StoreError:
    """Return the Squidie error for FoundationDB error ``code`` met during ``what``."""
    name, kind = FDB_ERRORS.get(code, ("unknown_error", StoreError))
    if kind is BackendUnavailable:
        error: StoreError = BackendUnavailable(
            backend, f"{what} gave up after retries: {name} ({code})"
        )
    elif kind is ValueTooLarge:
        limit = SIZE_LIMITS[code]
        error = ValueTooLarge.__new__(ValueTooLarge)
        SquidieError.__init__(
            error, f"{what}: FoundationDB refused it with {name} ({code}); "
            f"the limit is {limit} bytes"
        )
        error.what, error.size, error.limit = what, None, limit  # type: ignore[assignment]
    else:
        error = StoreError(f"{backend}: {what} failed with {name} ({code})")
    error.fdb_code = code  # type: ignore[attr-defined]
    return error


@contextmanager
def map_fdb_errors(
    fdb_error: type[BaseException], *, backend: str, what: str
) -> Iterator[None]:
    """Turn an escaping ``fdb_error`` (the real or simulated ``FDBError``) into Squidie's.

    Squidie errors raised inside (``LeaseLostError``, ``AppendConflict``...) pass through.

    Args:
        fdb_error: The ``FDBError`` class of the API in use.
        backend: The backend name for messages (never a credential).
        what: The operation, for messages (``commit``, ``claim``...).
    """
    try:
        yield
    except SquidieError:
        raise
    except fdb_error as exc:
        code = int(getattr(exc, "code", -1))
        raise translate(code, backend=backend, what=what) from exc
