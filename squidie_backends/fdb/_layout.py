"""The FoundationDB key layout: one tuple-layer subspace per namespace.

Every key of a store lives under ``Subspace(("squidie", namespace))``. Below it (tuple
elements after the namespace prefix; ``vs`` is a versionstamp, ``p`` a priority):

=====================================  ===============================================
key                                    value
=====================================  ===============================================
``("m", "schema")``                    schema version (``b"1"``)
``("h", run_id)``                      the journal head: its last sequence (tuple int)
``("j", run_id, seq)``                 one fact, JSON (a chunked value, see below)
``("cs", run_id)``                     the checkpoint's sequence (tuple int)
``("cd", run_id)``                     the checkpoint ``{"seq", "data"}`` (chunked)
``("r", run_id)``                      the run's index row, ``RunEntry`` JSON (chunked)
``("i", "a", created_at, run_id)``     list_runs index, all runs (empty value)
``("i", "w", workflow, created, id)``  ... by workflow
``("i", "s", status, created, id)``    ... by status
``("i", "ws", wf, status, created, id)`` ... by workflow and status
``("d", dispatch_key)``                the dispatch record, JSON (chunked)
``("v", queue, p, vest, dispatch_key)`` the visibility index: ``b"p"`` (pending, vests
                                       when visible) or ``b"c"`` (claimed, vests when the
                                       lease expires)
``("rd", run_id, vs)``                 a run's dispatches in enqueue order (value: key)
``("l", token_hash)``                  the dispatch a live lease token holds (value: key)
``("x", vs)``                          dead letters, oldest first (value: key)
``("xq", queue, vs)``                  ... per queue
``("xp", dispatch_key)``               where the dead letter sits (value: packed ``(vs,)``)
``("q", queue)``                       every queue that ever had a dispatch
``("rc", op_id)``                      an operation's receipt (JSON), for replays
``("rx", expires_at, op_id)``          receipts by expiry, for their clean-up
=====================================  ===============================================

Chunked values: FoundationDB refuses values over 100,000 bytes (``value_too_large``).
A value up to ``CHUNK_BYTES`` is stored inline as ``b"\\x00" + data``; a larger one as
``b"\\x01" + pack((chunks, length))`` at its key plus ``chunks`` pieces at
``key + pack((i,))`` — tuple children of the key, so they sort right after it and one
range read returns a value with its chunks (the journal reads facts that way). Every
piece is written in the same transaction as the header, so a reader never sees half a
value.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import fdb.tuple as fdbtuple
from fdb.subspace_impl import Subspace

from squidie_core import _json
from squidie_core.errors import CorruptDataError

__all__ = [
    "CHUNK_BYTES",
    "SCHEMA_VERSION",
    "KeyRange",
    "Layout",
    "Space",
    "decode_json",
    "encode_json",
    "read_value",
    "read_values",
    "write_value",
]

SCHEMA_VERSION = b"1"
#: The largest piece stored under one key (FoundationDB's limit is 100,000 bytes).
CHUNK_BYTES = 90_000
_INLINE = 0
_CHUNKED = 1


class KeyRange(NamedTuple):
    """A half-open key range ``[start, stop)``."""

    start: bytes
    stop: bytes


class Space:
    """A typed face of the binding's ``Subspace`` (the binding has no type hints).

    Args:
        prefix: Tuple elements of the prefix.
        raw: Raw bytes before them.
    """

    __slots__ = ("_sub",)

    def __init__(self, prefix: tuple[Any, ...] = (), raw: bytes = b"") -> None:
        self._sub = Subspace(prefix, raw)

    def key(self) -> bytes:
        """The raw prefix."""
        return bytes(self._sub.key())

    def pack(self, items: tuple[Any, ...] = ()) -> bytes:
        """The key of ``items`` in this space."""
        return bytes(self._sub.pack(items))

    def pack_with_versionstamp(self, items: tuple[Any, ...]) -> bytes:
        """A key with one incomplete versionstamp, for ``set_versionstamped_key``."""
        return bytes(self._sub.pack_with_versionstamp(items))

    def unpack(self, key: bytes) -> tuple[Any, ...]:
        """The tuple a key of this space encodes."""
        return tuple(self._sub.unpack(key))

    def range(self, items: tuple[Any, ...] = ()) -> KeyRange:
        """Every key extending ``items`` in this space."""
        r = self._sub.range(items)
        return KeyRange(bytes(r.start), bytes(r.stop))

    def subspace(self, items: tuple[Any, ...]) -> Space:
        """The space of keys extending ``items``."""
        return Space(items, self.key())

    def __getitem__(self, name: Any) -> Space:
        return self.subspace((name,))

    def __repr__(self) -> str:
        return f"Space({self.key()!r})"


def children(key: bytes) -> tuple[bytes, bytes]:
    """The range of the tuple children of ``key`` (where its chunks live)."""
    return key + b"\x00", key + b"\xff"


class Layout:
    """Key builders for one namespace (see the module docstring for the table).

    Args:
        namespace: The namespace; stores with different namespaces never see each other.
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.root = Space(("squidie", namespace))
        r = self.root
        self.schema_key = r.pack(("m", "schema"))
        self._head, self._journal = r["h"], r["j"]
        self._cp_seq, self._cp_data = r["cs"], r["cd"]
        self._run, self._index = r["r"], r["i"]
        self._disp, self._vis, self._run_disp = r["d"], r["v"], r["rd"]
        self._lease = r["l"]
        self._dead, self._dead_q, self._dead_ptr = r["x"], r["xq"], r["xp"]
        self._queues = r["q"]
        self._receipt, self._receipt_exp = r["rc"], r["rx"]

    # ------------------------------------------------------------------ journal

    def head(self, run_id: str) -> bytes:
        """The journal head of a run."""
        return self._head.pack((run_id,))

    def fact(self, run_id: str, seq: int) -> bytes:
        """One fact."""
        return self._journal.pack((run_id, seq))

    def facts(self, run_id: str, first_seq: int = 1) -> tuple[bytes, bytes]:
        """The range of a run's facts from ``first_seq`` on."""
        return self._journal.pack((run_id, first_seq)), self._journal.range((run_id,)).stop

    def unpack_fact(self, key: bytes) -> tuple[Any, ...]:
        """``(run_id, seq)`` for a fact key, ``(run_id, seq, i)`` for one of its chunks."""
        return self._journal.unpack(key)

    def checkpoint_seq(self, run_id: str) -> bytes:
        """The checkpoint's sequence."""
        return self._cp_seq.pack((run_id,))

    def checkpoint(self, run_id: str) -> bytes:
        """The checkpoint itself."""
        return self._cp_data.pack((run_id,))

    def checkpoint_seqs(self) -> tuple[bytes, bytes]:
        """Every checkpoint sequence key."""
        r = self._cp_seq.range()
        return r.start, r.stop

    def run_of_checkpoint_seq(self, key: bytes) -> str:
        """The run id of a checkpoint sequence key."""
        return str(self._cp_seq.unpack(key)[0])

    # ------------------------------------------------------------------ runs

    def run(self, run_id: str) -> bytes:
        """The run's index row."""
        return self._run.pack((run_id,))

    def run_index_keys(
        self, workflow: str, status: str, created_at: float, run_id: str
    ) -> list[bytes]:
        """The four list_runs index keys of one run."""
        i = self._index
        return [
            i.pack(("a", created_at, run_id)),
            i.pack(("w", workflow, created_at, run_id)),
            i.pack(("s", status, created_at, run_id)),
            i.pack(("ws", workflow, status, created_at, run_id)),
        ]

    def run_index(self, workflow: str | None, status: str | None) -> Space:
        """The index subspace serving a list_runs filter (entries end with created, id)."""
        if workflow is not None and status is not None:
            return self._index.subspace(("ws", workflow, status))
        if workflow is not None:
            return self._index.subspace(("w", workflow))
        if status is not None:
            return self._index.subspace(("s", status))
        return self._index.subspace(("a",))

    # ------------------------------------------------------------------ delivery

    def dispatch(self, key: str) -> bytes:
        """A dispatch record."""
        return self._disp.pack((key,))

    def visibility(self, queue: str, priority: int, vest: float, key: str) -> bytes:
        """An entry of the visibility index."""
        return self._vis.pack((queue, priority, vest, key))

    def visibility_queue(self, queue: str) -> Space:
        """A queue's part of the visibility index."""
        return self._vis.subspace((queue,))

    def run_dispatch_stamped(self, run_id: str, user_version: int) -> bytes:
        """A run-dispatch key with an incomplete versionstamp (for set_versionstamped_key)."""
        return self._run_disp.pack_with_versionstamp(
            (run_id, fdbtuple.Versionstamp(user_version=user_version))
        )

    def run_dispatches(self, run_id: str) -> tuple[bytes, bytes]:
        """The range of a run's dispatches, in enqueue order."""
        r = self._run_disp.range((run_id,))
        return r.start, r.stop

    def lease(self, token_hash: str) -> bytes:
        """The lease entry of a live token."""
        return self._lease.pack((token_hash,))

    def dead_stamped(self, user_version: int) -> bytes:
        """A dead-letter key with an incomplete versionstamp."""
        return self._dead.pack_with_versionstamp(
            (fdbtuple.Versionstamp(user_version=user_version),)
        )

    def dead_queue_stamped(self, queue: str, user_version: int) -> bytes:
        """A per-queue dead-letter key with an incomplete versionstamp."""
        return self._dead_q.pack_with_versionstamp(
            (queue, fdbtuple.Versionstamp(user_version=user_version))
        )

    def dead_pointer(self, key: str) -> bytes:
        """Where a dispatch's dead letter sits."""
        return self._dead_ptr.pack((key,))

    @staticmethod
    def dead_pointer_value(user_version: int) -> bytes:
        """The value of a dead pointer, with an incomplete versionstamp."""
        return bytes(fdbtuple.pack_with_versionstamp(
            (fdbtuple.Versionstamp(user_version=user_version),)
        ))

    def dead_keys(self, stamp: fdbtuple.Versionstamp, queue: str) -> tuple[bytes, bytes]:
        """The two dead-letter keys of a (complete) versionstamp."""
        return self._dead.pack((stamp,)), self._dead_q.pack((queue, stamp))

    def dead_listing(self, queue: str | None) -> Space:
        """The dead letters, all or of one queue (entries end with the versionstamp)."""
        return self._dead if queue is None else self._dead_q.subspace((queue,))

    def queue(self, name: str) -> bytes:
        """A queue's registry key."""
        return self._queues.pack((name,))

    def queues(self) -> Space:
        """The queue registry."""
        return self._queues

    def receipt(self, op_id: str) -> bytes:
        """An operation's receipt."""
        return self._receipt.pack((op_id,))

    def receipt_expiry(self, expires_at: float, op_id: str) -> bytes:
        """A receipt's entry in the expiry index."""
        return self._receipt_exp.pack((expires_at, op_id))

    def receipts_expired(self, now: float) -> tuple[bytes, bytes]:
        """The expiry index up to (and including) ``now``."""
        return self._receipt_exp.range().start, self._receipt_exp.pack((now,)) + b"\xff"

    def unpack_receipt_expiry(self, key: bytes) -> tuple[Any, ...]:
        """``(expires_at, op_id)``."""
        return self._receipt_exp.unpack(key)


# --------------------------------------------------------------------------- values


def encode_json(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes."""
    return _json.dumps(value).encode("utf-8")


def decode_json(data: bytes, where: str) -> Any:
    """Decode JSON bytes; ``CorruptDataError`` naming ``where`` if they are not JSON."""
    try:
        return _json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptDataError(where, f"undecodable JSON: {exc}") from exc


def write_value(tr: Any, key: bytes, data: bytes, *, fresh: bool = False) -> None:
    """Store ``data`` at ``key``, chunked when larger than ``CHUNK_BYTES``.

    Args:
        tr: The transaction.
        key: The key.
        data: The bytes.
        fresh: The key is known to be new (skip clearing old chunks).
    """
    if not fresh:
        tr.clear_range(*children(key))
    if len(data) <= CHUNK_BYTES:
        tr.set(key, bytes([_INLINE]) + data)
        return
    pieces = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]
    tr.set(key, bytes([_CHUNKED]) + fdbtuple.pack((len(pieces), len(data))))
    for i, piece in enumerate(pieces):
        tr.set(key + fdbtuple.pack((i,)), piece)


def clear_value(tr: Any, key: bytes) -> None:
    """Remove a value and its chunks."""
    tr.clear(key)
    tr.clear_range(*children(key))


def decode_header(raw: bytes, where: str) -> tuple[bytes | None, int, int]:
    """Split a stored header: ``(inline data, 0, 0)`` or ``(None, chunks, length)``."""
    if raw[:1] == bytes([_INLINE]):
        return raw[1:], 0, 0
    if raw[:1] == bytes([_CHUNKED]):
        try:
            chunks, length = fdbtuple.unpack(raw[1:])
        except (ValueError, IndexError, TypeError) as exc:
            raise CorruptDataError(where, f"bad chunk header: {exc}") from exc
        return None, int(chunks), int(length)
    raise CorruptDataError(where, "unknown value encoding")


def join_chunks(pieces: list[bytes], chunks: int, length: int, where: str) -> bytes:
    """Reassemble a chunked value, checking it is complete."""
    data = b"".join(pieces)
    if len(pieces) != chunks or len(data) != length:
        raise CorruptDataError(
            where, f"chunked value incomplete: {len(pieces)}/{chunks} pieces, "
            f"{len(data)}/{length} bytes"
        )
    return data


def _finish(reader: Any, key: bytes, raw: Any, where: str) -> bytes | None:
    if not raw.present():
        return None
    inline, chunks, length = decode_header(raw.value, where)
    if inline is not None:
        return inline
    lo, hi = children(key)
    pieces = [kv.value for kv in reader.get_range(lo, hi, limit=chunks)]
    return join_chunks(pieces, chunks, length, where)


def read_value(reader: Any, key: bytes, where: str) -> bytes | None:
    """Read a value written by ``write_value`` (``reader``: a transaction or its snapshot)."""
    return _finish(reader, key, reader.get(key).wait(), where)


def read_values(reader: Any, keys: list[bytes], where: str) -> list[bytes | None]:
    """``read_value`` for many keys, with every read in flight at once.

    The binding's ``get`` returns a future: issuing them all before waiting on any
    costs one round trip to the cluster instead of one per key.
    """
    futures = [reader.get(key) for key in keys]
    return [_finish(reader, key, future.wait(), where) for key, future in zip(
        keys, futures, strict=True)]
