"""Simulated transactions, with the Python binding's names and FoundationDB's semantics.

What a ``SimTransaction`` does, and the FoundationDB behaviour each part follows:

- **Read version**: taken lazily at the first read (or ``get_read_version``, or at commit
  for a write-only transaction). Every read sees the database as of that version
  (MVCC), plus the transaction's own writes (read-your-writes, the default).
- **Read-conflict ranges**: a serializable ``get`` adds ``[key, key+\\x00)`` unless the
  key's value is fully determined by the transaction's own ``set``/``clear`` (the
  client's ``updateConflictMap`` rule); a range read adds ``[begin, end)``, or only up to
  the last key returned when a ``limit`` was reached (``[begin, last+\\x00)`` forward,
  ``[last, end)`` in reverse). Snapshot reads (``tr.snapshot``) add nothing.
  ``add_read_conflict_range``/``_key`` add ranges explicitly.
- **Write-conflict ranges**: every ``set``, ``clear``, ``clear_range`` and atomic
  operation adds its key or range; atomic operations add *no* read conflict (they are
  write-only). A versionstamped key adds the range of keys it may become.
- **Limits**: keys over 10,000 bytes (2102), values over 100,000 bytes (2103), keys at or
  above ``\\xff`` (2004) and inverted ranges (2005) fail the next read or commit, as the
  binding's deferred errors do; the transaction's affected data (mutations plus conflict
  ranges) over 10,000,000 bytes, or the ``size_limit`` option, fails the commit (2101);
  a read version older than 5 s fails reads and the commit (1007).
- **Versionstamps**: ``set_versionstamped_key``/``_value`` take the binding's format (4-byte
  little-endian offset suffix, as produced by ``fdb.tuple.pack_with_versionstamp``); the
  10 bytes are substituted at commit. Reading such a key in the same transaction raises
  ``accessed_unreadable`` (1036).
- **Options**: ``timeout`` (from creation, kept across ``on_error``, cleared by
  ``reset``: 1031 afterwards), ``retry_limit``, ``max_retry_delay``, ``size_limit``.
- **on_error**: for retryable codes (``RETRYABLE``) it resets the transaction (keeping
  the options above and the timeout's start) and returns a future that waits a jittered
  exponential backoff; otherwise, or past ``retry_limit``, the future re-raises the error.
- **Read-only transactions** (no mutation, no write-conflict range) always commit.

Faults come from the database's ``FaultPlan`` (see ``_faults``).
"""

from __future__ import annotations

import functools
import inspect
import random
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from squidie_backends.fdb._sim._cluster import (
    Mutation,
    Range,
    versionstamp_bytes,
)
from squidie_backends.fdb._sim._errors import RETRYABLE, FDBError
from squidie_backends.fdb._sim._faults import FaultPlan

if TYPE_CHECKING:
    from squidie_backends.fdb._sim._cluster import SimCluster

__all__ = [
    "DatabaseOptions",
    "KeySelector",
    "KeyValue",
    "SimDatabase",
    "SimRange",
    "SimTransaction",
    "SimValue",
    "StreamingMode",
    "TransactionOptions",
    "keys_of",
    "transactional",
]

KEY_SIZE_LIMIT = 10_000
VALUE_SIZE_LIMIT = 100_000
TRANSACTION_SIZE_LIMIT = 10_000_000
_MAX_KEY = b"\xff"
_INITIAL_BACKOFF = 0.01
_MAX_BACKOFF = 1.0


# --------------------------------------------------------------------------- values


class SimValue:
    """The result of ``get``: the binding's ``Value`` (a future that acts like bytes).

    Attributes:
        value: The bytes, or ``None`` when the key is absent.
    """

    __slots__ = ("value",)

    def __init__(self, value: bytes | None) -> None:
        self.value = value

    def wait(self) -> SimValue:
        """Return self (the value is already there)."""
        return self

    def present(self) -> bool:
        """Whether the key exists."""
        return self.value is not None

    def is_ready(self) -> bool:
        """Always ``True``."""
        return True

    def __bytes__(self) -> bytes:
        if self.value is None:
            raise TypeError("the key is absent (present() is False)")
        return self.value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SimValue):
            return self.value == other.value
        return self.value == other

    def __hash__(self) -> int:
        return hash(self.value)

    def __len__(self) -> int:
        return len(bytes(self))

    def __repr__(self) -> str:
        return repr(self.value)


class KeyValue:
    """One row of a range read (unpacks as ``key, value``)."""

    __slots__ = ("key", "value")

    def __init__(self, key: bytes, value: bytes) -> None:
        self.key = key
        self.value = value

    def __iter__(self) -> Iterator[bytes]:
        yield self.key
        yield self.value

    def __repr__(self) -> str:
        return f"{self.key!r}: {self.value!r}"


class SimRange:
    """The result of ``get_range``: iterate it, or ``to_list()``."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[KeyValue]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[KeyValue]:
        return iter(self._rows)

    def to_list(self) -> list[KeyValue]:
        """Every row, as a list."""
        return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


class KeySelector:
    """The binding's ``KeySelector`` (only the two "first greater" forms are supported)."""

    def __init__(self, key: bytes, or_equal: bool, offset: int) -> None:
        self.key = key
        self.or_equal = or_equal
        self.offset = offset

    @classmethod
    def first_greater_or_equal(cls, key: bytes) -> KeySelector:
        """The first key ``>= key``."""
        return cls(key, False, 1)

    @classmethod
    def first_greater_than(cls, key: bytes) -> KeySelector:
        """The first key ``> key``."""
        return cls(key, True, 1)

    @classmethod
    def last_less_than(cls, key: bytes) -> KeySelector:
        """The last key ``< key`` (not supported by the simulator's reads)."""
        return cls(key, False, 0)

    @classmethod
    def last_less_or_equal(cls, key: bytes) -> KeySelector:
        """The last key ``<= key`` (not supported by the simulator's reads)."""
        return cls(key, True, 0)

    def __repr__(self) -> str:
        return f"KeySelector({self.key!r}, {self.or_equal!r}, {self.offset!r})"


class StreamingMode:
    """The binding's streaming modes (accepted and ignored: reads are local)."""

    want_all = -2
    iterator = -1
    exact = 0
    small = 1
    medium = 2
    large = 3
    serial = 4


class _Future:
    """A completed binding future: ``wait()`` returns the result or raises the error."""

    __slots__ = ("_delay", "_error", "_result")

    def __init__(self, result: Any = None, error: FDBError | None = None,
                 delay: float = 0.0) -> None:
        self._result = result
        self._error = error
        self._delay = delay

    def wait(self) -> Any:
        """Return the result (after the backoff, for ``on_error``) or raise the error."""
        if self._delay > 0:
            time.sleep(self._delay)
            self._delay = 0.0
        if self._error is not None:
            raise self._error
        return self._result

    def is_ready(self) -> bool:
        """Always ``True``."""
        return True


class _StampFuture:
    """``get_versionstamp()``: ready once the transaction has committed."""

    __slots__ = ("_tr",)

    def __init__(self, tr: SimTransaction) -> None:
        self._tr = tr

    def wait(self) -> bytes:
        """The versionstamp, or the commit's error (2021 if there was no commit)."""
        if self._tr._stamp is None:
            raise self._tr._commit_error or FDBError(2021)
        return self._tr._stamp

    def is_ready(self) -> bool:
        """Whether the commit has finished."""
        return self._tr._stamp is not None or self._tr._commit_error is not None


def _as_bytes(value: Any, what: str) -> bytes:
    if hasattr(value, "as_foundationdb_key") and what == "Key":
        value = value.as_foundationdb_key()
    if hasattr(value, "as_foundationdb_value") and what == "Value":
        value = value.as_foundationdb_value()
    if not isinstance(value, bytes):
        raise TypeError(f"{what} must be of type bytes")
    return value


def _key_after(key: bytes) -> bytes:
    return key + b"\x00"


# --------------------------------------------------------------------------- options


class TransactionOptions:
    """``tr.options``: the options the simulator honours (others raise AttributeError)."""

    def __init__(self, tr: SimTransaction) -> None:
        self._tr = weakref.proxy(tr)

    def set_timeout(self, milliseconds: int) -> None:
        """Cancel the transaction ``milliseconds`` after it was created (0: never)."""
        if milliseconds < 0:
            raise FDBError(2006)
        self._tr._timeout = milliseconds / 1000.0 if milliseconds else None

    def set_retry_limit(self, retries: int) -> None:
        """Let ``on_error`` retry at most ``retries`` times (-1: no limit)."""
        self._tr._retry_limit = None if retries < 0 else retries

    def set_max_retry_delay(self, milliseconds: int) -> None:
        """Cap ``on_error``'s backoff."""
        self._tr._max_delay = max(milliseconds, 0) / 1000.0

    def set_size_limit(self, size: int) -> None:
        """Lower the transaction size limit (32 to 10,000,000 bytes)."""
        if not 32 <= size <= TRANSACTION_SIZE_LIMIT:
            raise FDBError(2006)
        self._tr._size_limit = size

    def set_snapshot_ryw_enable(self) -> None:
        """Snapshot reads see the transaction's writes (the default)."""
        self._tr._snapshot_ryw = True

    def set_snapshot_ryw_disable(self) -> None:
        """Snapshot reads ignore the transaction's writes."""
        self._tr._snapshot_ryw = False


class DatabaseOptions:
    """``db.options``: defaults applied to every new transaction."""

    def __init__(self, db: SimDatabase) -> None:
        self._db = weakref.proxy(db)

    def set_transaction_timeout(self, milliseconds: int) -> None:
        """Default ``timeout`` for new transactions."""
        self._db._defaults["timeout"] = milliseconds

    def set_transaction_retry_limit(self, retries: int) -> None:
        """Default ``retry_limit`` for new transactions."""
        self._db._defaults["retry_limit"] = retries

    def set_transaction_size_limit(self, size: int) -> None:
        """Default ``size_limit`` for new transactions."""
        self._db._defaults["size_limit"] = size


# --------------------------------------------------------------------------- transactions


class _Reads:
    """The read half of a transaction (``tr`` itself, or ``tr.snapshot``)."""

    _snapshot: bool
    _tr: SimTransaction

    def get(self, key: Any) -> SimValue:
        """Read one key (``present()`` is False when it is absent)."""
        return self._tr._get(_as_bytes(key, "Key"), snapshot=self._snapshot)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            return self.get_range(key.start, key.stop, reverse=(key.step == -1))
        return self.get(key)

    def get_range(
        self,
        begin: Any,
        end: Any,
        limit: int = 0,
        reverse: bool = False,
        streaming_mode: int = StreamingMode.iterator,
    ) -> SimRange:
        """Read the rows in ``[begin, end)`` (up to ``limit``; 0: all), in key order."""
        return self._tr._get_range(begin, end, limit, reverse, snapshot=self._snapshot)

    def get_range_startswith(self, prefix: bytes, *args: Any, **kwargs: Any) -> SimRange:
        """Read every row whose key starts with ``prefix``."""
        prefix = _as_bytes(prefix, "Key")
        return self.get_range(prefix, _strinc(prefix), *args, **kwargs)

    def get_read_version(self) -> _Future:
        """The transaction's read version (taken now if it has none yet)."""
        return _Future(self._tr._read_version())


class _Snapshot(_Reads):
    def __init__(self, tr: SimTransaction) -> None:
        self._tr = weakref.proxy(tr)
        self._snapshot = True


class SimTransaction(_Reads):
    """A simulated ``fdb.Transaction`` (see the module docstring for its semantics)."""

    def __init__(self, db: SimDatabase) -> None:
        self.db = db
        self._snapshot = False
        self._cluster: SimCluster = db.cluster
        self._faults: FaultPlan | None = db.faults
        self.options = TransactionOptions(self)
        self.snapshot = _Snapshot(self)
        self._pin: weakref.finalize[Any, Any] | None = None
        self._rv: int | None = None
        self._full_reset()

    @property
    def _tr(self) -> SimTransaction:  # type: ignore[override]
        return self

    # ------------------------------------------------------------------ state

    def _full_reset(self) -> None:
        self._created = time.monotonic()
        self._retries = 0
        defaults = self.db._defaults
        timeout = defaults.get("timeout", 0)
        self._timeout: float | None = timeout / 1000.0 if timeout else None
        limit = defaults.get("retry_limit", -1)
        self._retry_limit: int | None = None if limit < 0 else limit
        self._max_delay = _MAX_BACKOFF
        self._size_limit = defaults.get("size_limit", TRANSACTION_SIZE_LIMIT)
        self._snapshot_ryw = True
        self._clear_work()

    def _clear_work(self) -> None:
        self._release()
        self._mutations: list[Mutation] = []
        self._reads: list[Range] = []
        self._writes: list[Range] = []
        self._unreadable: list[Range] = []
        self._deferred: FDBError | None = None
        self._state = "open"
        self._aged = False
        self._committed_version: int | None = None
        self._stamp: bytes | None = None
        self._commit_error: FDBError | None = None

    def _release(self) -> None:
        if self._pin is not None:
            self._pin()
            self._pin = None
        self._rv = None

    def _read_version(self) -> int:
        self._check_open()
        if self._rv is None:
            self._rv = self._cluster.get_read_version()
            self._cluster.register(self._rv)
            self._pin = weakref.finalize(self, self._cluster.unregister, self._rv)
        return self._rv

    def _check_open(self) -> None:
        if self._state == "cancelled":
            raise FDBError(1025)
        if self._state == "timed_out" or (
            self._timeout is not None and time.monotonic() - self._created > self._timeout
        ):
            self._state = "timed_out"
            raise FDBError(1031)
        if self._state == "committed":
            raise FDBError(2000)

    def _check_read(self) -> int:
        self._check_open()
        if self._deferred is not None:
            raise self._deferred
        first = self._rv is None
        rv = self._read_version()
        if first and self._faults is not None:
            # Read faults are drawn once per attempt, when it takes its read version.
            fault = self._faults.on_read()
            if fault == "pause":
                self._aged = True
            elif fault == "future_version":
                raise FDBError(1009)
        if self._aged or self._cluster.too_old(rv):
            self._aged = True
            raise FDBError(1007)
        return rv

    def _defer(self, code: int) -> None:
        if self._deferred is None:
            self._deferred = FDBError(code)

    # ------------------------------------------------------------------ reads

    def _check_readable(self, begin: bytes, end: bytes) -> None:
        for lo, hi in self._unreadable:
            if lo < end and begin < hi:
                raise FDBError(1036)

    def _ryw(self, key: bytes, rv: int, stored: Any = ...) -> tuple[bytes | None, bool]:
        # ``stored`` is the key's value at the read version when the caller has it
        # (``...``: read it here).
        """The key's value as this transaction sees it, and whether it is independent."""
        ops = [m for m in self._mutations if m.covers(key)]
        start, independent = 0, False
        for i in range(len(ops) - 1, -1, -1):
            if ops[i].independent:
                start, independent = i, True
                break
        if independent:
            value = ops[start].apply(None)
            rest = ops[start + 1 :]
        else:
            value = self._cluster.read(key, rv) if stored is ... else stored
            rest = ops
        for m in rest:
            value = m.apply(value)
        return value, independent

    def _get(self, key: bytes, *, snapshot: bool) -> SimValue:
        rv = self._check_read()
        if key >= _MAX_KEY:
            raise FDBError(2004)
        self._check_readable(key, _key_after(key))
        if snapshot and not self._snapshot_ryw:
            return SimValue(self._cluster.read(key, rv))
        value, independent = self._ryw(key, rv)
        if not snapshot and not independent:
            self._reads.append((key, _key_after(key)))
        return SimValue(value)

    def _bound(self, selector: Any, default: bytes) -> bytes:
        if selector is None:
            return default
        if isinstance(selector, KeySelector):
            if selector.offset != 1:
                raise NotImplementedError("the simulator supports first_greater_* selectors")
            key = _as_bytes(selector.key, "Key")
            return _key_after(key) if selector.or_equal else key
        return _as_bytes(selector, "Key")

    def _get_range(
        self, begin: Any, end: Any, limit: int, reverse: bool, *, snapshot: bool
    ) -> SimRange:
        rv = self._check_read()
        lo, hi = self._bound(begin, b""), self._bound(end, _MAX_KEY)
        if hi > _MAX_KEY or lo > _MAX_KEY:
            raise FDBError(2004)
        if limit < 0:
            raise ValueError("limit must be >= 0")
        if lo >= hi:
            return SimRange([])
        self._check_readable(lo, hi)
        rows: list[KeyValue] = []
        with_writes = not (snapshot and not self._snapshot_ryw)
        for key, value in self._merged(lo, hi, rv, reverse, with_writes):
            rows.append(KeyValue(key, value))
            if limit and len(rows) >= limit:
                break
        if not snapshot:
            if limit and len(rows) >= limit:
                last = rows[-1].key
                self._reads.append((last, hi) if reverse else (lo, _key_after(last)))
            else:
                self._reads.append((lo, hi))
        return SimRange(rows)

    def _merged(
        self, lo: bytes, hi: bytes, rv: int, reverse: bool, with_writes: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        stored = self._cluster.scan(lo, hi, rv, reverse=reverse)
        if not with_writes or not self._mutations:
            yield from stored
            return
        written = sorted(
            {m.key for m in self._mutations
             if m.op not in ("clear_range", "set_versionstamped_key") and lo <= m.key < hi},
            reverse=reverse,
        )
        pending = iter(written)
        nxt_written = next(pending, None)
        nxt_stored = next(stored, None)
        while nxt_written is not None or nxt_stored is not None:
            take_written = nxt_stored is None or (
                nxt_written is not None
                and ((nxt_written > nxt_stored[0]) if reverse else (nxt_written < nxt_stored[0]))
            )
            if take_written:
                assert nxt_written is not None
                key, base = nxt_written, cast(Any, ...)
                if nxt_stored is not None and nxt_stored[0] == key:
                    base = nxt_stored[1]
                    nxt_stored = next(stored, None)
                nxt_written = next(pending, None)
            else:
                assert nxt_stored is not None
                key, base = nxt_stored
                if nxt_written == key:
                    nxt_written = next(pending, None)
                nxt_stored = next(stored, None)
            value, _ = self._ryw(key, rv, base)
            if value is not None:
                yield key, value

    # ------------------------------------------------------------------ writes

    def _check_write(self) -> None:
        self._check_open()

    def _add_mutation(self, mutation: Mutation, write: Range) -> None:
        self._mutations.append(mutation)
        self._writes.append(write)

    def set(self, key: Any, value: Any) -> None:
        """Buffer ``key = value``."""
        self._check_write()
        key, value = _as_bytes(key, "Key"), _as_bytes(value, "Value")
        if self._bad_key(key) or self._bad_value(value):
            return
        self._add_mutation(Mutation("set", key, value), (key, _key_after(key)))

    def __setitem__(self, key: Any, value: Any) -> None:
        self.set(key, value)

    def clear(self, key: Any) -> None:
        """Buffer the removal of ``key``."""
        self._check_write()
        key = _as_bytes(key, "Key")
        if self._bad_key(key):
            return
        self._add_mutation(Mutation("clear", key), (key, _key_after(key)))

    def clear_range(self, begin: Any, end: Any) -> None:
        """Buffer the removal of every key in ``[begin, end)``."""
        self._check_write()
        lo = b"" if begin is None else _as_bytes(begin, "Key")
        hi = _MAX_KEY if end is None else _as_bytes(end, "Key")
        if lo > hi:
            self._defer(2005)
            return
        if hi > _MAX_KEY:
            self._defer(2004)
            return
        if lo == hi:
            return
        self._add_mutation(Mutation("clear_range", lo, hi), (lo, hi))

    def clear_range_startswith(self, prefix: Any) -> None:
        """Buffer the removal of every key starting with ``prefix``."""
        prefix = _as_bytes(prefix, "Key")
        self.clear_range(prefix, _strinc(prefix))

    def __delitem__(self, key: Any) -> None:
        if isinstance(key, slice):
            self.clear_range(key.start, key.stop)
        else:
            self.clear(key)

    def _bad_key(self, key: bytes) -> bool:
        if len(key) > KEY_SIZE_LIMIT:
            self._defer(2102)
            return True
        if key >= _MAX_KEY:
            self._defer(2004)
            return True
        return False

    def _bad_value(self, value: bytes) -> bool:
        if len(value) > VALUE_SIZE_LIMIT:
            self._defer(2103)
            return True
        return False

    def _atomic(self, op: str, key: Any, param: Any) -> None:
        self._check_write()
        key, param = _as_bytes(key, "Key"), _as_bytes(param, "Value")
        if self._bad_key(key) or self._bad_value(param):
            return
        self._add_mutation(Mutation(op, key, param), (key, _key_after(key)))

    def add(self, key: Any, param: Any) -> None:
        """Atomically add a little-endian integer (write-only: no read conflict)."""
        self._atomic("add", key, param)

    def bit_and(self, key: Any, param: Any) -> None:
        """Atomic bitwise and."""
        self._atomic("bit_and", key, param)

    def bit_or(self, key: Any, param: Any) -> None:
        """Atomic bitwise or."""
        self._atomic("bit_or", key, param)

    def bit_xor(self, key: Any, param: Any) -> None:
        """Atomic bitwise xor."""
        self._atomic("bit_xor", key, param)

    def max(self, key: Any, param: Any) -> None:
        """Atomic little-endian maximum."""
        self._atomic("max", key, param)

    def min(self, key: Any, param: Any) -> None:
        """Atomic little-endian minimum."""
        self._atomic("min", key, param)

    def byte_max(self, key: Any, param: Any) -> None:
        """Atomic lexicographic maximum."""
        self._atomic("byte_max", key, param)

    def byte_min(self, key: Any, param: Any) -> None:
        """Atomic lexicographic minimum."""
        self._atomic("byte_min", key, param)

    def append_if_fits(self, key: Any, param: Any) -> None:
        """Atomically append, unless the value would exceed 100,000 bytes."""
        self._atomic("append_if_fits", key, param)

    def compare_and_clear(self, key: Any, param: Any) -> None:
        """Atomically clear the key if its value equals ``param``."""
        self._atomic("compare_and_clear", key, param)

    @staticmethod
    def _stamp_offset(data: bytes) -> int | None:
        if len(data) < 4:
            return None
        offset = int.from_bytes(data[-4:], "little")
        return offset if offset + 10 <= len(data) - 4 else None

    def set_versionstamped_key(self, key: Any, param: Any) -> None:
        """Set a key whose 10 bytes at the encoded offset become the commit versionstamp."""
        self._check_write()
        key, param = _as_bytes(key, "Key"), _as_bytes(param, "Value")
        offset = self._stamp_offset(key)
        if offset is None:
            self._defer(2000)
            return
        body = key[:-4]
        if self._bad_key(body) or self._bad_value(param):
            return
        lowest = body[:offset] + versionstamp_bytes(self._rv or 0) + body[offset + 10:]
        highest = _key_after(body[:offset] + b"\xff" * 10 + body[offset + 10:])
        self._unreadable.append((lowest, highest))
        self._add_mutation(Mutation("set_versionstamped_key", key, param), (lowest, highest))

    def set_versionstamped_value(self, key: Any, param: Any) -> None:
        """Set a value whose 10 bytes at the encoded offset become the commit versionstamp."""
        self._check_write()
        key, param = _as_bytes(key, "Key"), _as_bytes(param, "Value")
        offset = self._stamp_offset(param)
        if offset is None:
            self._defer(2000)
            return
        if self._bad_key(key) or self._bad_value(param[:-4]):
            return
        self._unreadable.append((key, _key_after(key)))
        self._add_mutation(Mutation("set_versionstamped_value", key, param),
                           (key, _key_after(key)))

    # ------------------------------------------------------------------ conflict ranges

    def add_read_conflict_range(self, begin: Any, end: Any) -> None:
        """Make the commit fail if anything in ``[begin, end)`` changed since the read."""
        lo, hi = _as_bytes(begin, "Key"), _as_bytes(end, "Key")
        if lo < hi:
            self._reads.append((lo, hi))

    def add_read_conflict_key(self, key: Any) -> None:
        """``add_read_conflict_range(key, key + b'\\x00')``."""
        key = _as_bytes(key, "Key")
        self.add_read_conflict_range(key, _key_after(key))

    def add_write_conflict_range(self, begin: Any, end: Any) -> None:
        """Make concurrent readers of ``[begin, end)`` conflict, as if it were written."""
        lo, hi = _as_bytes(begin, "Key"), _as_bytes(end, "Key")
        if lo < hi:
            self._writes.append((lo, hi))

    def add_write_conflict_key(self, key: Any) -> None:
        """``add_write_conflict_range(key, key + b'\\x00')``."""
        key = _as_bytes(key, "Key")
        self.add_write_conflict_range(key, _key_after(key))

    # ------------------------------------------------------------------ commit

    def get_approximate_size(self) -> _Future:
        """The transaction's affected data so far, in bytes."""
        return _Future(self._size())

    def _size(self) -> int:
        return (sum(m.size() for m in self._mutations)
                + sum(len(b) + len(e) for b, e in self._reads)
                + sum(len(b) + len(e) for b, e in self._writes))

    def commit(self) -> _Future:
        """Commit: the future's ``wait()`` returns, or raises the ``FDBError``."""
        try:
            self._commit()
        except FDBError as exc:
            self._commit_error = exc
            return _Future(error=exc)
        return _Future()

    def _commit(self) -> None:
        self._check_open()
        if self._deferred is not None:
            raise self._deferred
        if not self._mutations and not self._writes:
            # A read-only transaction always commits (nothing to resolve).
            self._state = "committed"
            self._committed_version = -1
            self._release()
            return
        if self._size() > self._size_limit:
            raise FDBError(2101)
        rv = self._read_version()
        if self._aged:
            raise FDBError(1007)
        fault = None
        if self._faults is not None:
            fault = self._faults.on_commit(has_timeout=self._timeout is not None)
        if fault == "not_committed":
            raise FDBError(1020)
        if fault == "too_old":
            raise FDBError(1007)
        if fault == "version_jump":
            self._cluster.recover()
        if fault in ("unknown_late", "timeout_late"):
            assert self._faults is not None
            self._cluster.defer(rv, self._reads, self._writes, self._mutations,
                                after_commits=self._faults.landing_delay())
            raise FDBError(1021 if fault == "unknown_late" else 1031)
        if fault == "unknown_dropped":
            raise FDBError(1021)
        version = self._cluster.commit(rv, self._reads, list(self._writes), self._mutations)
        if fault == "unknown_applied":
            raise FDBError(1021)
        self._state = "committed"
        self._committed_version = version
        self._stamp = versionstamp_bytes(version)
        self._release()

    def get_committed_version(self) -> int:
        """The commit version (-1 for a read-only commit).

        Raises:
            FDBError: 2021 when the transaction has not committed.
        """
        if self._committed_version is None:
            raise FDBError(2021)
        return self._committed_version

    def get_versionstamp(self) -> _StampFuture:
        """The 10-byte versionstamp of the commit (``wait()`` after ``commit``)."""
        return _StampFuture(self)

    # ------------------------------------------------------------------ retry loop

    def on_error(self, error: Any) -> _Future:
        """Decide whether the loop may retry after ``error`` (an ``FDBError`` or code).

        Returns a future whose ``wait()`` sleeps the backoff and returns when the error is
        retryable (the transaction is reset, keeping its options), or raises the error.
        """
        if isinstance(error, FDBError):
            code = error.code
        elif isinstance(error, int):
            code = error
        else:
            raise error
        timed_out = self._timeout is not None and (
            time.monotonic() - self._created > self._timeout
        )
        if timed_out:
            self._state = "timed_out"
            return _Future(error=FDBError(1031))
        if code not in RETRYABLE or (
            self._retry_limit is not None and self._retries >= self._retry_limit
        ):
            return _Future(error=FDBError(code))
        self._retries += 1
        ceiling = min(self._max_delay, _INITIAL_BACKOFF * 2 ** (self._retries - 1))
        delay = (self._faults.backoff(ceiling) if self._faults is not None
                 else random.uniform(0.0, ceiling)) * self.db.backoff_scale
        self._clear_work()
        return _Future(delay=delay)

    def reset(self) -> None:
        """Roll back completely, as if this were a new transaction (options included)."""
        self._full_reset()

    def cancel(self) -> None:
        """Cancel: every later use raises ``transaction_cancelled`` until ``reset``."""
        self._release()
        self._state = "cancelled"

    def __repr__(self) -> str:
        return (f"SimTransaction(read_version={self._rv}, mutations={len(self._mutations)}, "
                f"state={self._state})")


def _strinc(key: bytes) -> bytes:
    stripped = key.rstrip(b"\xff")
    if not stripped:
        raise ValueError("Key must contain at least one byte not equal to 0xFF.")
    return stripped[:-1] + bytes([stripped[-1] + 1])


# --------------------------------------------------------------------------- database


class SimDatabase:
    """A client's handle on a ``SimCluster``: the simulated ``fdb.Database``.

    Args:
        cluster: The cluster.
        faults: The faults this client suffers (``None``: none).
        backoff_scale: Multiplies ``on_error``'s backoff (FoundationDB's starts at 10 ms
            and doubles up to 1 s; the default keeps tests quick).
    """

    def __init__(self, cluster: SimCluster, faults: FaultPlan | None = None,
                 backoff_scale: float = 0.05) -> None:
        self.cluster = cluster
        self.faults = faults
        self.backoff_scale = backoff_scale
        self._defaults: dict[str, int] = {}
        self.options = DatabaseOptions(self)

    def create_transaction(self) -> SimTransaction:
        """A new transaction."""
        return SimTransaction(self)

    # The binding's Database convenience methods, each its own retried transaction.

    def get(self, key: bytes) -> bytes | None:
        """Read one key in its own transaction."""
        value: bytes | None = _db_get(self, key)
        return value

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            return self.get_range(key.start, key.stop, reverse=(key.step == -1))
        return self.get(key)

    def get_range(self, begin: Any, end: Any, limit: int = 0,
                  reverse: bool = False) -> list[KeyValue]:
        """Read a range in its own transaction."""
        rows: list[KeyValue] = _db_get_range(self, begin, end, limit, reverse)
        return rows

    def set(self, key: bytes, value: bytes) -> None:
        """Write one key in its own transaction."""
        _db_set(self, key, value)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        _db_set(self, key, value)

    def clear(self, key: bytes) -> None:
        """Clear one key in its own transaction."""
        _db_clear(self, key, None)

    def clear_range(self, begin: bytes, end: bytes) -> None:
        """Clear a range in its own transaction."""
        _db_clear(self, begin, end)

    def __repr__(self) -> str:
        return f"SimDatabase({self.cluster!r}, faults={self.faults!r})"


# --------------------------------------------------------------------------- transactional


def transactional(*tr_args: Any, **tr_kwargs: Any) -> Any:
    """The binding's ``@fdb.transactional`` decorator, for simulated databases.

    Called with a ``SimDatabase`` in the ``tr`` parameter (or the one named by
    ``parameter=``), it creates a transaction and runs the retry loop: call the
    function, commit, and on ``FDBError`` wait for ``tr.on_error(e.code)`` and call it
    again — so after ``commit_unknown_result`` the function may run (and apply) twice.
    Called with a transaction, it just calls the function (no commit). Generator
    functions are refused, as the binding does since API version 630.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        parameter = tr_kwargs.get("parameter", "tr")
        unwrapped = inspect.unwrap(func)
        index = inspect.getfullargspec(unwrapped).args.index(parameter)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if inspect.isgeneratorfunction(func):
                raise ValueError("Generators can not be wrapped with fdb.transactional")
            if isinstance(args[index], _Reads):
                return func(*args, **kwargs)
            largs = list(args)
            tr = largs[index] = args[index].create_transaction()
            while True:
                try:
                    ret = func(*largs, **kwargs)
                    if inspect.isgenerator(ret):
                        raise ValueError("Generators can not be wrapped with fdb.transactional")
                    tr.commit().wait()
                    return ret
                except FDBError as e:
                    tr.on_error(e.code).wait()

        return wrapper

    if not tr_args:
        return decorate
    if len(tr_args) == 1 and not tr_kwargs:
        return decorate(tr_args[0])
    raise ValueError("Invalid use of transactional decorator.")


@transactional
def _db_get(tr: SimTransaction, key: bytes) -> Any:
    return tr.get(key).value


@transactional
def _db_get_range(tr: SimTransaction, begin: Any, end: Any, limit: int,
                  reverse: bool) -> Any:
    return tr.get_range(begin, end, limit=limit, reverse=reverse).to_list()


@transactional
def _db_set(tr: SimTransaction, key: bytes, value: bytes) -> None:
    tr.set(key, value)


@transactional
def _db_clear(tr: SimTransaction, begin: bytes, end: bytes | None) -> None:
    if end is None:
        tr.clear(begin)
    else:
        tr.clear_range(begin, end)


def keys_of(rows: Iterable[KeyValue]) -> list[bytes]:
    """The keys of range-read rows (a small convenience for tests)."""
    return [row.key for row in rows]

