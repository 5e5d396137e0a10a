"""The simulated cluster: multi-version storage, the version clock and the resolver.

One ``SimCluster`` is one FoundationDB database as every client sees it. It keeps, per
key, the history of values by commit version (MVCC), hands out read versions, and
commits transactions the way FoundationDB's commit pipeline does:

1. the transaction's read version must still be inside the 5-second MVCC window
   (5,000,000 versions), else ``transaction_too_old`` (1007);
2. no transaction that committed after its read version may have written a key inside
   one of its read-conflict ranges, else ``not_committed`` (1020);
3. it gets a commit version greater than every read version handed out so far, its
   mutations are applied in program order at that version (atomic operations against
   the latest value, versionstamps substituted with the commit version), and its
   write-conflict ranges are logged for later resolutions.

(The client checks the size limit, ``transaction_too_large`` 2101, before any of this.)

Versions advance about 1,000,000 per second of real time, as in FoundationDB, and a
simulated recovery makes them jump by 100,000,000. The store's lease clock is unrelated:
this clock only decides MVCC visibility and transaction age.

A commit whose reply was lost (``commit_unknown_result`` or ``transaction_timed_out``
injected by a ``FaultPlan``) can be kept *pending* and resolved a few commits later,
against its original read version: it lands only if nothing it read changed meanwhile.
"""

from __future__ import annotations

import bisect
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from squidie_backends.fdb._sim._errors import FDBError

__all__ = [
    "MVCC_WINDOW",
    "RECOVERY_JUMP",
    "VERSIONS_PER_SECOND",
    "Mutation",
    "SimCluster",
]

VERSIONS_PER_SECOND = 1_000_000
MVCC_WINDOW = 5 * VERSIONS_PER_SECOND
RECOVERY_JUMP = 100 * VERSIONS_PER_SECOND
_GC_EVERY = 64
_SCAN_BATCH = 256

Range = tuple[bytes, bytes]


@dataclass(frozen=True, slots=True)
class Mutation:
    """One buffered write, applied at commit in program order.

    Attributes:
        op: ``set``, ``clear``, ``clear_range``, an atomic operation name
            (``add``, ``bit_and``...), ``set_versionstamped_key`` or
            ``set_versionstamped_value``.
        key: The key (the begin key for ``clear_range``; for a versionstamped key, the
            key with its 4-byte offset suffix).
        param: The value, the end key (``clear_range``) or the atomic operand.
    """

    op: str
    key: bytes
    param: bytes = b""

    @property
    def independent(self) -> bool:
        """Whether the key's value after this mutation does not depend on the one before."""
        return self.op in ("set", "clear", "clear_range")

    def covers(self, key: bytes) -> bool:
        """Whether this mutation touches ``key`` (versionstamped keys excluded)."""
        if self.op == "clear_range":
            return self.key <= key < self.param
        if self.op == "set_versionstamped_key":
            return False
        return self.key == key

    def apply(self, current: bytes | None) -> bytes | None:
        """The key's value after this mutation, given its value before."""
        if self.op == "set":
            return self.param
        if self.op in ("clear", "clear_range"):
            return None
        return ATOMIC_OPS[self.op](current, self.param)

    def size(self) -> int:
        """FoundationDB's "affected data" of the mutation, in bytes."""
        return len(self.key) + len(self.param)


# --------------------------------------------------------------------------- atomic ops
# Semantics from FoundationDB's MutationType documentation (fdb.options): little-endian
# integers; a missing or shorter existing value is extended with zero bytes, a longer
# one truncated to the operand's length.


def _fit(current: bytes | None, length: int) -> bytes:
    current = current or b""
    return current[:length].ljust(length, b"\x00")


def _add(current: bytes | None, param: bytes) -> bytes:
    a = int.from_bytes(_fit(current, len(param)), "little")
    b = int.from_bytes(param, "little")
    return ((a + b) % (1 << (8 * len(param)))).to_bytes(len(param), "little") if param else b""


def _bitwise(fn: Callable[[int, int], int], missing_is_param: bool) -> Callable[
    [bytes | None, bytes], bytes
]:
    def op(current: bytes | None, param: bytes) -> bytes:
        if current is None and missing_is_param:
            return param
        base = _fit(current, len(param))
        return bytes(fn(x, y) for x, y in zip(base, param, strict=True))

    return op


def _le_compare(pick_max: bool) -> Callable[[bytes | None, bytes], bytes]:
    def op(current: bytes | None, param: bytes) -> bytes:
        if current is None:
            return param
        base = _fit(current, len(param))
        a, b = int.from_bytes(base, "little"), int.from_bytes(param, "little")
        return (base if a >= b else param) if pick_max else (base if a <= b else param)

    return op


def _byte_compare(pick_max: bool) -> Callable[[bytes | None, bytes], bytes]:
    def op(current: bytes | None, param: bytes) -> bytes:
        if current is None:
            return param
        return max(current, param) if pick_max else min(current, param)

    return op


def _append_if_fits(current: bytes | None, param: bytes) -> bytes:
    joined = (current or b"") + param
    return joined if len(joined) <= 100_000 else (current or b"")


def _compare_and_clear(current: bytes | None, param: bytes) -> bytes | None:
    return None if current == param else current


ATOMIC_OPS: dict[str, Callable[[bytes | None, bytes], bytes | None]] = {
    "add": _add,
    "bit_and": _bitwise(lambda x, y: x & y, missing_is_param=True),
    "bit_or": _bitwise(lambda x, y: x | y, missing_is_param=False),
    "bit_xor": _bitwise(lambda x, y: x ^ y, missing_is_param=False),
    "max": _le_compare(pick_max=True),
    "min": _le_compare(pick_max=False),
    "byte_max": _byte_compare(pick_max=True),
    "byte_min": _byte_compare(pick_max=False),
    "append_if_fits": _append_if_fits,
    "compare_and_clear": _compare_and_clear,
}


def versionstamp_bytes(version: int, batch_order: int = 0) -> bytes:
    """The 10-byte transaction versionstamp: commit version (8, big-endian) + order (2)."""
    return struct.pack(">QH", version, batch_order)


def splice_versionstamp(data: bytes, stamp: bytes) -> bytes:
    """Replace the 10 bytes at the offset named by ``data``'s 4-byte suffix with ``stamp``."""
    (offset,) = struct.unpack("<I", data[-4:])
    body = data[:-4]
    return body[:offset] + stamp + body[offset + 10 :]


# --------------------------------------------------------------------------- ranges


def intersects(reads: Sequence[Range], writes: Sequence[Range]) -> bool:
    """Whether any half-open range in ``reads`` overlaps any in ``writes``."""
    if not reads or not writes:
        return False
    rs, ws = sorted(reads), sorted(writes)
    i = j = 0
    while i < len(rs) and j < len(ws):
        (rb, re), (wb, we) = rs[i], ws[j]
        if re <= wb:
            i += 1
        elif we <= rb:
            j += 1
        else:
            return True
    return False


@dataclass
class _Pending:
    """A commit whose reply was lost and which may still land."""

    read_version: int
    reads: list[Range]
    writes: list[Range]
    mutations: list[Mutation]
    land_at: int
    landed: list[int] = field(default_factory=list)


class SimCluster:
    """One simulated FoundationDB database, shared by every client that opens it.

    Args:
        name: A label for reprs (clusters opened by name are shared per process).
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self._lock = threading.RLock()
        self._keys: list[bytes] = []
        self._history: dict[bytes, list[tuple[int, bytes | None]]] = {}
        self._t0 = time.monotonic()
        self._offset = 0
        self._committed = 0
        self._last_read_version = 0
        self._log: list[tuple[int, list[Range]]] = []
        self._active: dict[int, int] = {}
        self._pending: list[_Pending] = []
        self._commits = 0
        self._dirty: set[bytes] = set()
        #: Counters: commits, conflicts, too_old, late landings (for tests and reports).
        self.stats: dict[str, int] = {
            "commits": 0, "conflicts": 0, "too_old": 0, "landed_late": 0,
            "dropped_late": 0, "recoveries": 0,
        }

    # ------------------------------------------------------------------ versions

    def _clock_version(self) -> int:
        return int((time.monotonic() - self._t0) * VERSIONS_PER_SECOND) + self._offset

    def current_version(self) -> int:
        """The version the cluster is at now (advances with time, ~1e6 per second)."""
        with self._lock:
            return max(self._committed, self._last_read_version, self._clock_version())

    def get_read_version(self) -> int:
        """Hand out a read version: every commit acknowledged so far is visible at it."""
        with self._lock:
            version = self.current_version()
            self._last_read_version = version
            return version

    def recover(self, jump: int = RECOVERY_JUMP) -> None:
        """Simulate a recovery: versions jump forward; transactions in flight grow too old."""
        with self._lock:
            self._offset += jump
            self.stats["recoveries"] += 1

    def too_old(self, read_version: int) -> bool:
        """Whether a read version has left the 5-second MVCC window."""
        return self.current_version() - read_version > MVCC_WINDOW

    def register(self, read_version: int) -> None:
        """Pin ``read_version``: garbage collection keeps what a reader at it can see."""
        with self._lock:
            self._active[read_version] = self._active.get(read_version, 0) + 1

    def unregister(self, read_version: int) -> None:
        """Release a pin taken by ``register``."""
        with self._lock:
            left = self._active.get(read_version, 0) - 1
            if left > 0:
                self._active[read_version] = left
            else:
                self._active.pop(read_version, None)

    # ------------------------------------------------------------------ reads

    @staticmethod
    def _at(history: list[tuple[int, bytes | None]], version: int) -> bytes | None:
        for v, value in reversed(history):
            if v <= version:
                return value
        return None

    def read(self, key: bytes, version: int) -> bytes | None:
        """The value of ``key`` at ``version`` (``None``: absent)."""
        with self._lock:
            history = self._history.get(key)
            return None if history is None else self._at(history, version)

    def scan(
        self, begin: bytes, end: bytes, version: int, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield the live ``(key, value)`` pairs in ``[begin, end)`` at ``version``, in order.

        Reads in batches, releasing the lock between them; keys are located again by
        value after each batch, so concurrent commits and garbage collection are safe.
        """
        cursor_lo, cursor_hi = begin, end
        while True:
            batch: list[tuple[bytes, bytes]] = []
            with self._lock:
                if reverse:
                    i = bisect.bisect_left(self._keys, cursor_hi) - 1
                    while i >= 0 and len(batch) < _SCAN_BATCH:
                        key = self._keys[i]
                        if key < cursor_lo:
                            break
                        value = self._at(self._history[key], version)
                        if value is not None:
                            batch.append((key, value))
                        cursor_hi = key
                        i -= 1
                    exhausted = i < 0 or self._keys[i] < cursor_lo
                else:
                    i = bisect.bisect_left(self._keys, cursor_lo)
                    while i < len(self._keys) and len(batch) < _SCAN_BATCH:
                        key = self._keys[i]
                        if key >= cursor_hi:
                            break
                        value = self._at(self._history[key], version)
                        if value is not None:
                            batch.append((key, value))
                        cursor_lo = key + b"\x00"
                        i += 1
                    exhausted = i >= len(self._keys) or self._keys[i] >= cursor_hi
            yield from batch
            if exhausted:
                return

    # ------------------------------------------------------------------ commits

    def _next_version(self) -> int:
        return max(self._committed + 1, self._last_read_version + 1, self._clock_version())

    def _write(self, key: bytes, value: bytes | None, version: int) -> None:
        self._dirty.add(key)
        history = self._history.get(key)
        if history is None:
            if value is None:
                return
            self._history[key] = [(version, value)]
            bisect.insort(self._keys, key)
        elif history[-1][0] == version:
            history[-1] = (version, value)
        else:
            history.append((version, value))

    def _latest(self, key: bytes) -> bytes | None:
        history = self._history.get(key)
        return history[-1][1] if history else None

    def _apply(self, mutations: Sequence[Mutation], version: int) -> None:
        stamp = versionstamp_bytes(version)
        for m in mutations:
            if m.op == "set":
                self._write(m.key, m.param, version)
            elif m.op == "clear":
                self._write(m.key, None, version)
            elif m.op == "clear_range":
                lo = bisect.bisect_left(self._keys, m.key)
                hi = bisect.bisect_left(self._keys, m.param)
                for key in self._keys[lo:hi]:
                    if self._history[key][-1][1] is not None:
                        self._write(key, None, version)
            elif m.op == "set_versionstamped_key":
                self._write(splice_versionstamp(m.key, stamp), m.param, version)
            elif m.op == "set_versionstamped_value":
                self._write(m.key, splice_versionstamp(m.param, stamp), version)
            else:
                self._write(m.key, ATOMIC_OPS[m.op](self._latest(m.key), m.param), version)

    def _resolve(
        self,
        read_version: int,
        reads: Sequence[Range],
        writes: list[Range],
        mutations: Sequence[Mutation],
    ) -> int:
        """Check age and conflicts, then apply; return the commit version."""
        if self.too_old(read_version):
            self.stats["too_old"] += 1
            raise FDBError(1007)
        for version, written in reversed(self._log):
            if version <= read_version:
                break
            if intersects(reads, written):
                self.stats["conflicts"] += 1
                raise FDBError(1020)
        version = self._next_version()
        self._apply(mutations, version)
        self._log.append((version, writes))
        self._committed = version
        self._commits += 1
        self.stats["commits"] += 1
        if self._commits % _GC_EVERY == 0:
            self._gc()
        return version

    def commit(
        self,
        read_version: int,
        reads: Sequence[Range],
        writes: list[Range],
        mutations: Sequence[Mutation],
    ) -> int:
        """Resolve and apply one transaction (see the module docstring); return its version.

        Raises:
            FDBError: 1007 (too old) or 1020 (conflict); nothing was applied.
        """
        with self._lock:
            self._land_due()
            return self._resolve(read_version, reads, writes, mutations)

    # ------------------------------------------------------------------ late landings

    def defer(
        self,
        read_version: int,
        reads: Sequence[Range],
        writes: list[Range],
        mutations: Sequence[Mutation],
        *,
        after_commits: int,
    ) -> None:
        """Keep a commit in flight; it is resolved after ``after_commits`` more commits."""
        with self._lock:
            self._pending.append(
                _Pending(read_version, list(reads), list(writes), list(mutations),
                         land_at=self._commits + after_commits)
            )
            self._active[read_version] = self._active.get(read_version, 0) + 1

    def _land(self, pending: _Pending) -> None:
        self.unregister(pending.read_version)
        try:
            pending.landed.append(
                self._resolve(pending.read_version, pending.reads, pending.writes,
                              pending.mutations)
            )
            self.stats["landed_late"] += 1
        except FDBError:
            self.stats["dropped_late"] += 1

    def _land_due(self) -> None:
        if not self._pending:
            return
        due = [p for p in self._pending if p.land_at <= self._commits]
        if due:
            self._pending = [p for p in self._pending if p.land_at > self._commits]
            for pending in due:
                self._land(pending)

    def land_pending(self) -> int:
        """Resolve every commit still in flight now; return how many there were."""
        with self._lock:
            pending, self._pending = self._pending, []
            for p in pending:
                self._land(p)
            return len(pending)

    @property
    def pending(self) -> int:
        """How many lost commits are still in flight."""
        with self._lock:
            return len(self._pending)

    # ------------------------------------------------------------------ housekeeping

    def _gc(self) -> None:
        """Forget history no reader can see: older than every pinned read version."""
        horizon = self.current_version() - MVCC_WINDOW
        if self._active:
            horizon = min(horizon, *self._active)
        if self._pending:
            horizon = min(horizon, *(p.read_version for p in self._pending))
        cut = 0
        while cut < len(self._log) and self._log[cut][0] <= horizon:
            cut += 1
        if cut:
            del self._log[:cut]
        dead: list[bytes] = []
        revisit: set[bytes] = set()
        for key in self._dirty:
            history = self._history.get(key)
            if history is None:
                continue
            keep = 0
            for i in range(len(history) - 1, -1, -1):
                if history[i][0] <= horizon:
                    keep = i
                    break
            if keep:
                del history[:keep]
            if len(history) == 1 and history[0][1] is None and history[0][0] <= horizon:
                dead.append(key)
            elif len(history) > 1 or history[0][1] is None:
                revisit.add(key)
        self._dirty = revisit
        if dead:
            gone = set(dead)
            for key in dead:
                del self._history[key]
            self._keys = [k for k in self._keys if k not in gone]

    def dump(self) -> dict[bytes, bytes]:
        """Every live key and its latest value (for tests and debugging)."""
        with self._lock:
            return {
                k: h[-1][1] for k in self._keys
                if (h := self._history[k]) and h[-1][1] is not None
            }

    def __repr__(self) -> str:
        return (f"SimCluster(name={self.name!r}, keys={len(self._keys)}, "
                f"version={self._committed})")
