"""The FoundationDB store: the whole storage contract on FoundationDB transactions.

Features: a journal with contiguous sequences and the expected-sequence check inside the
transaction; checkpoints; a ``list_runs`` index (newest first, stable cursor); lease
delivery modelled on Apple's QuiCK and FoundationDB's TaskBucket — visibility by
*vesting time* (a lease moves its item's vesting time to the lease's expiry, so an
expired lease is simply visible again and no sweeper is needed), claims by a snapshot
probe of the visibility index plus a conflict on the one record taken, fencing tokens
(only their hashes stored), priorities, dead letters ordered by versionstamp, re-drive;
every operation idempotent under ``commit_unknown_result``; values over 90 kB chunked.

URL: ``fdb://[cluster-file-path][?namespace=NAME]`` — a real cluster through the official
bindings (``pip install foundationdb`` and FoundationDB's client library ``libfdb_c``).
``fdb+sim://[?namespace=...&cluster=NAME&faults=1&seed=7]`` — the in-process simulator,
a test tool (see ``docs/backends/fdb.md``).

Options (keyword arguments, or URL query parameters): ``namespace`` (default
``default``), ``clock`` (the lease clock; default ``SystemClock``), ``timeout_ms``
(per-transaction timeout, default 3000), ``retry_limit`` (default 100); simulator only:
``cluster`` (share one simulated cluster per name), ``faults`` (0 off, 1 default rates,
N times the rates, or a ``FaultPlan``), ``seed`` (fault seed, default 0),
``backoff_scale``.

Clock: every vesting time and lease expiry is read from the store's injected clock (the
runtime's clock). FoundationDB's read version is not used as a clock: it is only roughly
a microsecond count, differs per transaction, and jumps by ~100 s on recovery.

How a claim avoids double delivery (and why claimers rarely collide)::

    claimer A                                  claimer B
    snapshot-read visibility index: d1, d2...  snapshot-read the same (no conflict)
    pick d2 (random among the first W           pick d1
      when contended); read record d2          read record d1
      (serializable: the conflict key)           (serializable)
    write d2 claimed, move its index entry     write d1 claimed, move its index entry
    commit ok                                  commit ok: neither read what the other
                                               wrote; had both picked d2, the second
                                               commit would get not_committed (1020)
                                               and retry with a fresh probe.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import fdb.tuple as fdbtuple

from squidie_backends.fdb._layout import (
    SCHEMA_VERSION,
    Layout,
    clear_value,
    decode_header,
    decode_json,
    encode_json,
    join_chunks,
    read_value,
    read_values,
    write_value,
)
from squidie_backends.fdb._records import Record
from squidie_backends.fdb._retry import Attempt, Runner
from squidie_core._clock import Clock, SystemClock
from squidie_core.errors import (
    AppendConflict,
    CapabilityNotSupported,
    CorruptDataError,
    DispatchNotFound,
    IdempotencyConflict,
    InvalidArgument,
    LeaseLostError,
    RunTerminalError,
    SchemaVersionError,
    ValueTooLarge,
)
from squidie_core.storage import (
    TERMINAL_STATUSES,
    Capabilities,
    Checkpoint,
    Commit,
    CommitResult,
    Dispatch,
    DispatchRecord,
    Fact,
    Lease,
    Page,
    QueueDepth,
    RunEntry,
    check_commit,
    check_contiguous,
    decode_cursor,
    encode_cursor,
    hash_token,
    new_token,
    same_facts,
)

__all__ = ["CLUSTER_CAPABILITIES", "SIM_CAPABILITIES", "FDBStore"]

log = logging.getLogger("squidie.fdb")

#: The largest single encoded value (fact, checkpoint, record, run row) the store writes,
#: declared as ``Capabilities.max_value_bytes`` (the runtime's own payload and output cap,
#: 1 MiB by default, keeps facts below it).
MAX_VALUE_BYTES = 2_000_000
#: The most a commit may write in one transaction (FoundationDB's hard limit is 10 MB).
TRANSACTION_BUDGET = 4_000_000
#: Rows read per transaction by listings that page through several transactions.
_PAGE_ROWS = 2_000
#: Bytes of journal read per transaction (a page stops at whichever limit comes first).
_PAGE_BYTES = 4_000_000
#: Claim candidates considered per queue when claimers contend (QuiCK's "top k").
_SPREAD = 64
#: Conflict-free claims before a store forgets it saw contention.
_CONTENTION_MEMORY = 64
_RECEIPT_TTL = 3_600.0

CLUSTER_CAPABILITIES = Capabilities(
    durable=True, multi_process=True, multi_node=True, priorities=True,
    visibility_precision=0.0, max_value_bytes=MAX_VALUE_BYTES,
)
SIM_CAPABILITIES = Capabilities(
    priorities=True, visibility_precision=0.0, max_value_bytes=MAX_VALUE_BYTES,
)


def _pack_int(value: int) -> bytes:
    return bytes(fdbtuple.pack((value,)))


def _unpack_int(raw: bytes, where: str) -> int:
    try:
        return int(fdbtuple.unpack(raw)[0])
    except (ValueError, IndexError, TypeError) as exc:
        raise CorruptDataError(where, f"not a packed integer: {exc}") from exc


def _get(reader: Any, key: bytes) -> bytes | None:
    value = reader.get(key).wait()
    return bytes(value.value) if value.present() else None


class FDBStore:
    """A ``Store`` on FoundationDB (or its simulator); see the module docstring.

    Args:
        db: An ``fdb.Database`` (or ``SimDatabase``).
        api: The ``fdb`` module after ``api_version`` (or the simulator's ``SIM``).
        clock: The lease clock (inject a ``ManualClock`` in tests).
        namespace: The namespace (a tuple-layer subspace); stores in different
            namespaces of one cluster never see each other.
        simulated: Declares the simulator's capabilities instead of a cluster's.
        timeout_ms: Per-transaction timeout.
        retry_limit: ``on_error`` retries per operation.
        label: How the store names its database in reprs and messages.
    """

    name = "fdb"

    def __init__(
        self,
        db: Any,
        api: Any,
        *,
        clock: Clock | None = None,
        namespace: str = "default",
        simulated: bool = False,
        timeout_ms: int = 3000,
        retry_limit: int = 100,
        label: str = "fdb",
    ) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise InvalidArgument("namespace", "must be a non-empty string")
        self.clock: Clock = clock or SystemClock()
        self.capabilities = SIM_CAPABILITIES if simulated else CLUSTER_CAPABILITIES
        self.layout = Layout(namespace)
        self.simulated = simulated
        self._db = db
        self._api = api
        self._label = label
        self._runner = Runner(db, api.FDBError, backend=self.name, timeout_ms=timeout_ms,
                              retry_limit=retry_limit)
        self._claims = threading.Lock()
        self._inflight = 0
        self._contention = 0
        self._rng = random.Random()
        self._closed = False
        self._check_schema()

    # ------------------------------------------------------------------ plumbing

    @property
    def database(self) -> Any:
        """The underlying ``fdb.Database`` (or ``SimDatabase``)."""
        return self._db

    def stats(self) -> dict[str, dict[str, int]]:
        """Operations run and failed attempts per FoundationDB error code, per operation."""
        return self._runner.stats.snapshot()

    def _run(self, what: str, body: Any) -> Any:
        return self._runner.run(what, body)

    def _check_schema(self) -> None:
        key = self.layout.schema_key

        def body(tr: Any, attempt: Attempt) -> None:
            found = _get(tr, key)
            if found is None:
                tr.set(key, SCHEMA_VERSION)
            elif found != SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"namespace {self.layout.namespace!r} has schema {found!r}; "
                    f"this code speaks {SCHEMA_VERSION!r}"
                )

        self._run("open", body)

    def _read_record(self, reader: Any, key: str) -> Record | None:
        where = f"dispatch {key!r}"
        data = read_value(reader, self.layout.dispatch(key), where)
        return None if data is None else Record.from_bytes(data, where)

    def _read_records(self, reader: Any, keys: list[str]) -> list[Record | None]:
        """Read many records with their reads in flight together."""
        datas = read_values(reader, [self.layout.dispatch(k) for k in keys], "dispatches")
        return [None if data is None else Record.from_bytes(data, f"dispatch {key!r}")
                for key, data in zip(keys, datas, strict=True)]

    def _put_record(self, tr: Any, rec: Record, *, fresh: bool = False) -> None:
        data = rec.to_bytes()
        if len(data) > MAX_VALUE_BYTES:
            raise ValueTooLarge(f"dispatch record {rec.dispatch.key!r}", len(data),
                                MAX_VALUE_BYTES)
        write_value(tr, self.layout.dispatch(rec.dispatch.key), data, fresh=fresh)

    def _index(self, tr: Any, rec: Record) -> None:
        vest = rec.vest()
        if vest is not None:
            d = rec.dispatch
            tr.set(self.layout.visibility(d.queue, d.priority, vest, d.key),
                   b"c" if rec.state == "claimed" else b"p")

    def _unindex(self, tr: Any, rec: Record, vest: float | None) -> None:
        if vest is not None:
            d = rec.dispatch
            tr.clear(self.layout.visibility(d.queue, d.priority, vest, d.key))

    def _read_run(self, reader: Any, run_id: str) -> RunEntry | None:
        data = read_value(reader, self.layout.run(run_id), f"run {run_id!r}")
        return None if data is None else self._decode_run(run_id, data)

    @staticmethod
    def _decode_run(run_id: str, data: bytes) -> RunEntry:
        where = f"run {run_id!r}"
        raw = decode_json(data, where)
        try:
            return RunEntry(**raw)
        except TypeError as exc:
            raise CorruptDataError(where, f"undecodable run entry: {exc}") from exc

    # ------------------------------------------------------------------ receipts

    def _receipt(self, reader: Any, op_id: str) -> Any:
        raw = _get(reader, self.layout.receipt(op_id))
        return None if raw is None else decode_json(raw, f"receipt {op_id}")["result"]

    def _put_receipt(self, tr: Any, op_id: str, result: Any, now: float) -> None:
        """Record an operation's result for its resends; sweep a few expired receipts."""
        lo, hi = self.layout.receipts_expired(now)
        for row in tr.snapshot.get_range(lo, hi, limit=8):
            _, old = self.layout.unpack_receipt_expiry(row.key)
            tr.clear(row.key)
            tr.clear(self.layout.receipt(str(old)))
        expires = now + _RECEIPT_TTL
        tr.set(self.layout.receipt(op_id), encode_json({"result": result, "expires": expires}))
        tr.set(self.layout.receipt_expiry(expires, op_id), b"")

    # ------------------------------------------------------------------ journal

    def _encode_facts(self, run_id: str, facts: Sequence[Fact]) -> list[tuple[int, bytes]]:
        encoded = []
        for fact in facts:
            data = fact.to_json().encode("utf-8")
            if len(data) > MAX_VALUE_BYTES:
                raise ValueTooLarge(f"fact {fact.seq} of run {run_id!r}", len(data),
                                    MAX_VALUE_BYTES)
            encoded.append((fact.seq, data))
        return encoded

    def _read_head(self, reader: Any, run_id: str) -> int:
        raw = _get(reader, self.layout.head(run_id))
        return 0 if raw is None else _unpack_int(raw, f"journal head of run {run_id!r}")

    def _decode_facts(self, run_id: str, rows: Sequence[Any]) -> list[tuple[int, Fact | None]]:
        """Group journal rows into facts: ``(seq, fact)``, ``fact`` None if chunks are cut."""
        out: list[tuple[int, Fact | None]] = []
        i = 0
        while i < len(rows):
            key = self.layout.unpack_fact(rows[i].key)
            seq = int(key[1])
            where = f"fact {seq} of run {run_id!r}"
            if len(key) != 2:
                raise CorruptDataError(where, "chunk without its header")
            inline, chunks, length = decode_header(rows[i].value, where)
            i += 1
            if inline is not None:
                out.append((seq, Fact.from_json(inline, where)))
                continue
            pieces: list[bytes] = []
            while i < len(rows) and len(pieces) < chunks:
                sub = self.layout.unpack_fact(rows[i].key)
                if len(sub) != 3 or int(sub[1]) != seq:
                    break
                pieces.append(rows[i].value)
                i += 1
            if len(pieces) < chunks and i == len(rows):
                out.append((seq, None))
                break
            out.append((seq, Fact.from_json(join_chunks(pieces, chunks, length, where), where)))
        return out

    def _read_fact_range(self, reader: Any, run_id: str, first: int, count: int) -> list[Fact]:
        lo, _ = self.layout.facts(run_id, first)
        hi = self.layout.fact(run_id, first + count)
        rows = list(reader.get_range(lo, hi))
        return [f for _, f in self._decode_facts(run_id, rows) if f is not None]

    def _landed(self, tr: Any, run_id: str, facts: Sequence[Fact], expected: int,
                head: int) -> bool:
        if not facts or head < expected + len(facts):
            return False
        return same_facts(self._read_fact_range(tr, run_id, expected + 1, len(facts)), facts)

    def _write_facts(self, tr: Any, run_id: str, encoded: Sequence[tuple[int, bytes]],
                     expected: int) -> None:
        for seq, data in encoded:
            write_value(tr, self.layout.fact(run_id, seq), data, fresh=True)
        if encoded:
            tr.set(self.layout.head(run_id), _pack_int(expected + len(encoded)))

    def append(self, run_id: str, facts: Sequence[Fact], expected_seq: int) -> int:
        check_contiguous(facts, expected_seq)
        encoded = self._encode_facts(run_id, facts)
        if sum(len(d) for _, d in encoded) > TRANSACTION_BUDGET:
            raise ValueTooLarge(f"append to run {run_id!r}", sum(len(d) for _, d in encoded),
                                TRANSACTION_BUDGET)

        def body(tr: Any, attempt: Attempt) -> int:
            head = self._read_head(tr, run_id)
            if self._landed(tr, run_id, facts, expected_seq, head):
                return expected_seq + len(facts)
            if head != expected_seq:
                raise AppendConflict(run_id, expected_seq, head)
            self._write_facts(tr, run_id, encoded, expected_seq)
            return head + len(encoded)

        return int(self._run("append", body))

    def read(self, run_id: str, after_seq: int = 0) -> list[Fact]:
        # Facts never change once written, so a long journal is read in pages, one
        # transaction each (each far below the 5-second limit).
        out: list[Fact] = []
        first = max(after_seq, 0) + 1
        while True:

            def body(tr: Any, attempt: Attempt, first: int = first) -> tuple[list[Any], bool]:
                lo, hi = self.layout.facts(run_id, first)
                rows, size = [], 0
                for row in tr.snapshot.get_range(lo, hi, limit=_PAGE_ROWS):
                    rows.append(row)
                    size += len(row.value)
                    if size >= _PAGE_BYTES:
                        return rows, True
                return rows, len(rows) == _PAGE_ROWS

            rows, full = self._run("read", body)
            groups = self._decode_facts(run_id, rows)
            if not full:
                out.extend(f for _, f in groups if f is not None)
                return out
            # A full page may end inside a fact: keep whole facts, resume at the last one.
            if len(groups) > 1:
                groups = groups[:-1]
            out.extend(f for _, f in groups if f is not None)
            first = groups[-1][0] + 1 if groups[-1][1] is not None else groups[-1][0]

    def head(self, run_id: str) -> int:
        return int(self._run("head", lambda tr, a: self._read_head(tr.snapshot, run_id)))

    # ------------------------------------------------------------------ checkpoints

    def _encode_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> bytes:
        data = encode_json({"seq": checkpoint.seq, "data": checkpoint.data})
        if len(data) > MAX_VALUE_BYTES:
            raise ValueTooLarge(f"checkpoint of run {run_id!r}", len(data), MAX_VALUE_BYTES)
        return data

    def _put_checkpoint(self, tr: Any, run_id: str, seq: int, data: bytes) -> None:
        tr.set(self.layout.checkpoint_seq(run_id), _pack_int(seq))
        write_value(tr, self.layout.checkpoint(run_id), data)

    def read_checkpoint(self, run_id: str) -> Checkpoint | None:
        where = f"checkpoint of run {run_id!r}"
        data = self._run(
            "read_checkpoint",
            lambda tr, a: read_value(tr.snapshot, self.layout.checkpoint(run_id), where),
        )
        if data is None:
            return None
        try:
            raw = decode_json(data, where)
            return Checkpoint(seq=int(raw["seq"]), data=str(raw["data"]))
        except (CorruptDataError, KeyError, TypeError, ValueError) as exc:
            # Checkpoints are an optimisation: an unreadable one means a full rebuild.
            log.warning("ignoring unreadable %s: %s", where, exc)
            return None

    def write_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> None:
        data = self._encode_checkpoint(run_id, checkpoint)

        def body(tr: Any, attempt: Attempt) -> None:
            raw = _get(tr, self.layout.checkpoint_seq(run_id))
            if raw is not None and _unpack_int(raw, run_id) > checkpoint.seq:
                return
            self._put_checkpoint(tr, run_id, checkpoint.seq, data)

        self._run("write_checkpoint", body)

    def delete_checkpoints(self, run_id: str | None = None) -> int:
        layout = self.layout
        if run_id is not None:
            op_id = uuid.uuid4().hex

            def one(tr: Any, attempt: Attempt) -> int:
                if attempt.maybe_landed and (done := self._receipt(tr, op_id)) is not None:
                    return int(done)
                if _get(tr, layout.checkpoint_seq(run_id)) is None:
                    return 0
                tr.clear(layout.checkpoint_seq(run_id))
                clear_value(tr, layout.checkpoint(run_id))
                self._put_receipt(tr, op_id, 1, self.clock.now())
                return 1

            return int(self._run("delete_checkpoints", one))
        total = 0
        while True:
            op_id = uuid.uuid4().hex

            def batch(tr: Any, attempt: Attempt, op_id: str = op_id) -> list[int]:
                if attempt.maybe_landed and (done := self._receipt(tr, op_id)) is not None:
                    return list(done)
                lo, hi = layout.checkpoint_seqs()
                rows = list(tr.get_range(lo, hi, limit=_PAGE_ROWS // 4))
                for row in rows:
                    rid = layout.run_of_checkpoint_seq(row.key)
                    tr.clear(row.key)
                    clear_value(tr, layout.checkpoint(rid))
                result = [len(rows), int(len(rows) == _PAGE_ROWS // 4)]
                if rows:
                    self._put_receipt(tr, op_id, result, self.clock.now())
                return result

            count, more = self._run("delete_checkpoints", batch)
            total += int(count)
            if not more:
                return total

    # ------------------------------------------------------------------ runs

    def get_run(self, run_id: str) -> RunEntry | None:
        entry: RunEntry | None = self._run(
            "get_run", lambda tr, a: self._read_run(tr.snapshot, run_id)
        )
        return entry

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        if limit < 1:
            raise InvalidArgument("limit", "must be at least 1")
        index = self.layout.run_index(workflow, status)
        lo, hi = index.range().start, index.range().stop
        if cursor is not None:
            created, rid = decode_cursor(cursor, 2)
            try:
                hi = index.pack((float(created), str(rid)))
            except (TypeError, ValueError) as exc:
                raise InvalidArgument("cursor", "not a cursor returned by list_runs") from exc

        def body(tr: Any, attempt: Attempt) -> list[RunEntry]:
            snap = tr.snapshot
            rows = list(snap.get_range(lo, hi, limit=limit + 1, reverse=True))
            run_ids = [str(index.unpack(row.key)[-1]) for row in rows]
            datas = read_values(snap, [self.layout.run(r) for r in run_ids], "run index")
            entries = []
            for run_id, data in zip(run_ids, datas, strict=True):
                if data is None:
                    raise CorruptDataError(f"run {run_id!r}", "indexed but has no row")
                entries.append(self._decode_run(run_id, data))
            return entries

        entries: list[RunEntry] = self._run("list_runs", body)
        page = entries[:limit]
        nxt = None
        if len(entries) > limit:
            nxt = encode_cursor(page[-1].created_at, page[-1].run_id)
        return Page(items=list(page), next_cursor=nxt)

    def _upsert_run(self, tr: Any, old: RunEntry | None, new: RunEntry) -> None:
        layout = self.layout
        new_keys = layout.run_index_keys(new.workflow, new.status, new.created_at, new.run_id)
        if old is not None:
            old_keys = layout.run_index_keys(old.workflow, old.status, old.created_at,
                                             old.run_id)
            for key in set(old_keys) - set(new_keys):
                tr.clear(key)
            new_keys = [k for k in new_keys if k not in old_keys]
        for key in new_keys:
            tr.set(key, b"")
        data = encode_json(new.to_dict())
        if len(data) > MAX_VALUE_BYTES:
            raise ValueTooLarge(f"index row of run {new.run_id!r}", len(data), MAX_VALUE_BYTES)
        write_value(tr, layout.run(new.run_id), data)

    # ------------------------------------------------------------------ enqueue

    def _check_enqueue(self, tr: Any, dispatches: Sequence[Dispatch]) -> list[Dispatch]:
        """Contract checks of ``enqueue`` (reads each key: the enqueue's conflict keys)."""
        fresh: list[Dispatch] = []
        runs: dict[str, RunEntry | None] = {}
        for d in dispatches:
            if d.priority and not self.capabilities.priorities:
                raise CapabilityNotSupported(self.name, "priorities")
            existing = self._read_record(tr, d.key)
            if existing is not None:
                if existing.dispatch.intent() != d.intent():
                    raise IdempotencyConflict(d.key, "dispatch enqueued with a different intent")
                continue
            if any(f.key == d.key for f in fresh):
                continue
            if d.run_id not in runs:
                runs[d.run_id] = self._read_run(tr, d.run_id)
            run = runs[d.run_id]
            if run is not None and run.status in TERMINAL_STATUSES:
                raise RunTerminalError(d.run_id, "enqueue", run.status, "the run has ended")
            fresh.append(d)
        return fresh

    def _new_records(self, tr: Any, fresh: Sequence[Dispatch], now: float) -> list[Record]:
        """Records for new dispatches, with their run and queue entries written."""
        records = []
        queues = set()
        for i, d in enumerate(fresh):
            records.append(Record(dispatch=d, visible_at=now + max(d.delay, 0.0)))
            tr.set_versionstamped_key(self.layout.run_dispatch_stamped(d.run_id, i),
                                      d.key.encode("utf-8"))
            queues.add(d.queue)
        for queue in queues:
            # A snapshot check first: most enqueues would otherwise all write one key.
            key = self.layout.queue(queue)
            if _get(tr.snapshot, key) is None:
                tr.set(key, b"")
        return records

    def enqueue(self, dispatches: Sequence[Dispatch]) -> None:
        if not dispatches:
            return

        def body(tr: Any, attempt: Attempt) -> None:
            fresh = self._check_enqueue(tr, dispatches)
            for rec in self._new_records(tr, fresh, self.clock.now()):
                self._index(tr, rec)
                self._put_record(tr, rec, fresh=True)

        self._run("enqueue", body)

    # ------------------------------------------------------------------ leases

    def _live(self, tr: Any, lease: Lease, now: float) -> Record:
        rec = self._read_record(tr, lease.key)
        if rec is None:
            raise LeaseLostError(lease.key, "unknown dispatch")
        if rec.state != "claimed" or rec.token_hash != hash_token(lease.token):
            raise LeaseLostError(lease.key, "another delivery holds it or it was settled")
        if rec.lease_expires_at is None or rec.lease_expires_at <= now:
            raise LeaseLostError(lease.key, "the lease expired")
        return rec

    def _settle(self, tr: Any, rec: Record, state: str, now: float, *,
                token_hash: str | None, reason: str | None = None) -> None:
        vest = rec.vest()
        if rec.state == "claimed" and rec.token_hash:
            tr.clear(self.layout.lease(rec.token_hash))
        rec.state = state
        rec.reason = reason
        rec.lease_expires_at = None
        if token_hash is not None:
            rec.settled = [token_hash, state]
        rec.remember({"event": state, "fence": rec.fence, "at": now,
                      **({"reason": reason} if reason else {})})
        self._unindex(tr, rec, vest)
        self._put_record(tr, rec)

    def _bury(self, tr: Any, rec: Record, reason: str, now: float, user_version: int) -> None:
        layout, d = self.layout, rec.dispatch
        vest = rec.vest()
        if rec.state == "claimed" and rec.token_hash:
            tr.clear(layout.lease(rec.token_hash))
        rec.state = "dead_lettered"
        rec.reason = reason
        rec.lease_expires_at = None
        rec.token_hash = None
        rec.remember({"event": "dead_lettered", "reason": reason, "at": now})
        self._unindex(tr, rec, vest)
        key = d.key.encode("utf-8")
        tr.set_versionstamped_key(layout.dead_stamped(user_version), key)
        tr.set_versionstamped_key(layout.dead_queue_stamped(d.queue, user_version), key)
        tr.set_versionstamped_value(layout.dead_pointer(d.key),
                                    layout.dead_pointer_value(user_version))
        self._put_record(tr, rec)

    def _enter_claim(self) -> bool:
        with self._claims:
            self._inflight += 1
            return self._inflight > 1 or self._contention > 0

    def _leave_claim(self, conflicted: bool) -> None:
        with self._claims:
            self._inflight -= 1
            if conflicted:
                self._contention = _CONTENTION_MEMORY
            elif self._contention:
                self._contention -= 1

    def claim(
        self, owner_id: str, *, lease_for: float, limit: int = 1, queues: Sequence[str] = ()
    ) -> list[Lease]:
        if limit < 1:
            raise InvalidArgument("limit", "must be at least 1")
        if lease_for <= 0:
            raise InvalidArgument("lease_for", "must be positive")
        names = list(queues or ("default",))
        # Made before the retry loop: a resend of a claim that landed finds its leases.
        tokens = [new_token() for _ in range(limit)]
        hashes = [hash_token(t) for t in tokens]
        contended = self._enter_claim()
        # Keys (and fences) the previous attempt tried to take. After a conflict, a fence
        # that moved shows another claimer took them: then this client spreads its
        # claims (QuiCK's random probe) instead of everyone retrying on the head.
        aimed: dict[str, int] = {}
        saw_contention = [False]

        def body(tr: Any, attempt: Attempt) -> list[Lease]:
            now = self.clock.now()
            for h in hashes:
                # Makes this claim and any resend of it conflict (see _retry).
                tr.add_read_conflict_key(self.layout.lease(h))
            if attempt.maybe_landed:
                landed = self._claimed_before(tr, tokens, hashes)
                if landed:
                    return landed
            if attempt.conflicted and not saw_contention[0]:
                saw_contention[0] = self._taken_by_others(tr, aimed)
            aimed.clear()
            return self._claim_some(tr, owner_id, lease_for=lease_for, limit=limit,
                                    queues=names, tokens=tokens, hashes=hashes, now=now,
                                    spread=contended or saw_contention[0], aimed=aimed)

        try:
            leases: list[Lease] = self._run("claim", body)
        finally:
            self._leave_claim(saw_contention[0])
        return leases

    def _taken_by_others(self, tr: Any, aimed: dict[str, int]) -> bool:
        """Whether another claimer took a record the previous attempt aimed at."""
        for key, fence in aimed.items():
            rec = self._read_record(tr.snapshot, key)
            if rec is not None and rec.fence != fence:
                return True
        return False

    def _claimed_before(self, tr: Any, tokens: Sequence[str],
                        hashes: Sequence[str]) -> list[Lease]:
        found = []
        for token, h in zip(tokens, hashes, strict=True):
            raw = _get(tr, self.layout.lease(h))
            if raw is None:
                continue
            rec = self._read_record(tr, raw.decode("utf-8"))
            if rec is not None and rec.state == "claimed" and rec.token_hash == h:
                assert rec.owner_id is not None and rec.lease_expires_at is not None
                found.append(Lease(rec.dispatch, rec.owner_id, token, rec.fence,
                                   rec.deliveries, rec.lease_expires_at))
        return found

    def _visible(
        self, snap: Any, queue: str, now: float, want: int,
        after: tuple[int, float, str] | None,
    ) -> tuple[list[tuple[int, float, str]], bool]:
        """Probe a queue's visibility index (snapshot: no conflict ranges).

        Returns up to ``want`` entries ``(priority, vest, key)`` with ``vest <= now``,
        after ``after``, in claim order, and whether more may follow.
        """
        sub = self.layout.visibility_queue(queue)
        out: list[tuple[int, float, str]] = []
        begin = sub.range().start if after is None else sub.pack(after) + b"\x00"
        end = sub.range().stop
        while len(out) < want:
            first = list(snap.get_range(begin, end, limit=1))
            if not first:
                return out, False
            priority = int(sub.unpack(first[0].key)[0])
            lo = max(begin, sub.pack((priority,)))
            hi = sub.pack((priority, now)) + b"\xff"
            if lo < hi:
                need = want - len(out)
                rows = list(snap.get_range(lo, hi, limit=need))
                out.extend((priority, float(v), str(k))
                           for _, v, k in (sub.unpack(r.key) for r in rows))
                if len(rows) == need:
                    return out, True
            begin = sub.range((priority,)).stop
        return out, True

    def _claim_some(
        self, tr: Any, owner_id: str, *, lease_for: float, limit: int,
        queues: Sequence[str], tokens: Sequence[str], hashes: Sequence[str], now: float,
        spread: bool, aimed: dict[str, int],
    ) -> list[Lease]:
        want = max(limit * 4, _SPREAD) if spread else limit + 4
        leases: list[Lease] = []
        buried = 0
        after: dict[str, tuple[int, float, str] | None] = dict.fromkeys(queues)
        more = dict.fromkeys(queues, True)
        first_round = True
        for _ in range(16):
            candidates: list[tuple[int, float, str, str]] = []
            for q in queues:
                if not more[q]:
                    continue
                found, more[q] = self._visible(tr.snapshot, q, now, want, after[q])
                if found:
                    after[q] = found[-1]
                candidates.extend((p, v, k, q) for p, v, k in found)
            if not candidates:
                break
            candidates.sort()
            if spread and first_round:
                # QuiCK's random probe: try random candidates among the first ``want``,
                # so concurrent claimers rarely take the same record.
                self._rng.shuffle(candidates)
            first_round = False
            for _p, vest, key, _q in candidates:
                if len(leases) >= limit:
                    break
                rec = self._read_record(tr, key)  # serializable: the one conflict key
                if rec is None or rec.vest() != vest or vest > now:
                    continue
                aimed[key] = rec.fence
                if rec.state == "claimed":
                    rec.remember({"event": "lease_expired", "fence": rec.fence,
                                  "owner": rec.owner_id})
                if rec.deliveries >= rec.dispatch.max_deliveries:
                    self._bury(tr, rec, "delivery_limit_exceeded", now, buried)
                    buried += 1
                    continue
                leases.append(self._grant(tr, rec, owner_id, lease_for=lease_for, now=now,
                                          token=tokens[len(leases)],
                                          token_hash=hashes[len(leases)]))
            if len(leases) >= limit or not any(more.values()):
                break
        return leases

    def _grant(self, tr: Any, rec: Record, owner_id: str, *, lease_for: float, now: float,
               token: str, token_hash: str) -> Lease:
        vest = rec.vest()
        if rec.state == "claimed" and rec.token_hash:
            tr.clear(self.layout.lease(rec.token_hash))
        self._unindex(tr, rec, vest)
        rec.state = "claimed"
        rec.deliveries += 1
        rec.fence += 1
        rec.owner_id = owner_id
        rec.token_hash = token_hash
        rec.lease_expires_at = now + lease_for
        rec.settled = None
        rec.remember({"event": "claimed", "fence": rec.fence, "owner": owner_id, "at": now})
        self._index(tr, rec)
        tr.set(self.layout.lease(token_hash), rec.dispatch.key.encode("utf-8"))
        self._put_record(tr, rec)
        return Lease(dispatch=rec.dispatch, owner_id=owner_id, token=token, fence=rec.fence,
                     delivery=rec.deliveries, expires_at=rec.lease_expires_at)

    def heartbeat(self, lease: Lease, *, lease_for: float) -> Lease:
        if lease_for <= 0:
            raise InvalidArgument("lease_for", "must be positive")

        def body(tr: Any, attempt: Attempt) -> Lease:
            now = self.clock.now()
            rec = self._live(tr, lease, now)
            self._unindex(tr, rec, rec.vest())
            rec.lease_expires_at = now + lease_for
            self._index(tr, rec)
            self._put_record(tr, rec)
            return replace(lease, expires_at=rec.lease_expires_at)

        renewed: Lease = self._run("heartbeat", body)
        return renewed

    def complete(self, lease: Lease) -> None:
        token_hash = hash_token(lease.token)

        def body(tr: Any, attempt: Attempt) -> None:
            rec = self._read_record(tr, lease.key)
            if rec is not None and rec.state == "completed" and rec.token_hash == token_hash:
                return
            now = self.clock.now()
            self._settle(tr, self._live(tr, lease, now), "completed", now,
                         token_hash=token_hash)

        self._run("complete", body)

    def retry(self, lease: Lease, *, delay: float = 0.0, reason: str | None = None) -> None:
        token_hash = hash_token(lease.token)

        def body(tr: Any, attempt: Attempt) -> None:
            now = self.clock.now()
            rec = self._read_record(tr, lease.key)
            if attempt.maybe_landed and rec is not None and rec.settled == [token_hash,
                                                                            "retried"]:
                return  # our own earlier attempt landed
            rec = self._live(tr, lease, now)
            self._unindex(tr, rec, rec.vest())
            tr.clear(self.layout.lease(token_hash))
            rec.state = "pending"
            rec.visible_at = now + max(delay, 0.0)
            rec.lease_expires_at = None
            rec.token_hash = None
            rec.settled = [token_hash, "retried"]
            rec.remember({"event": "retried", "fence": rec.fence, "at": now,
                          **({"reason": reason} if reason else {})})
            self._index(tr, rec)
            self._put_record(tr, rec)

        self._run("retry", body)

    def dead_letter(self, lease: Lease, reason: str) -> None:
        token_hash = hash_token(lease.token)

        def body(tr: Any, attempt: Attempt) -> None:
            rec = self._read_record(tr, lease.key)
            if attempt.maybe_landed and rec is not None and rec.settled == [
                token_hash, "dead_lettered"
            ]:
                return  # our own earlier attempt landed
            now = self.clock.now()
            rec = self._live(tr, lease, now)
            rec.settled = [token_hash, "dead_lettered"]
            self._bury(tr, rec, reason, now, 0)

        self._run("dead_letter", body)

    def dead_letters(
        self, *, queue: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page:
        if limit < 1:
            raise InvalidArgument("limit", "must be at least 1")
        listing = self.layout.dead_listing(queue)
        lo, hi = listing.range().start, listing.range().stop
        if cursor is not None:
            tr_version, user_version = decode_cursor(cursor, 2)
            try:
                stamp = fdbtuple.Versionstamp(bytes.fromhex(str(tr_version)), int(user_version))
            except (TypeError, ValueError) as exc:
                raise InvalidArgument("cursor", "not a cursor returned by dead_letters") from exc
            lo = listing.pack((stamp,)) + b"\x00"

        def body(tr: Any, attempt: Attempt) -> list[tuple[Any, Record]]:
            snap = tr.snapshot
            rows = list(snap.get_range(lo, hi, limit=limit + 1))
            keys = [row.value.decode("utf-8") for row in rows]
            out = []
            for row, key, rec in zip(rows, keys, self._read_records(snap, keys), strict=True):
                if rec is None:
                    raise CorruptDataError(f"dead letter {key!r}", "no dispatch record")
                out.append((listing.unpack(row.key)[-1], rec))
            return out

        found: list[tuple[Any, Record]] = self._run("dead_letters", body)
        now = self.clock.now()
        page = found[:limit]
        nxt = None
        if len(found) > limit:
            stamp = page[-1][0]
            nxt = encode_cursor(stamp.tr_version.hex(), stamp.user_version)
        return Page(items=[rec.to_record(now) for _, rec in page], next_cursor=nxt)

    def redrive(self, dispatch_key: str, *, delay: float = 0.0) -> None:
        op_id = uuid.uuid4().hex
        layout = self.layout

        def body(tr: Any, attempt: Attempt) -> None:
            if attempt.maybe_landed and self._receipt(tr, op_id) is not None:
                return
            rec = self._read_record(tr, dispatch_key)
            if rec is None or rec.state != "dead_lettered":
                raise DispatchNotFound(dispatch_key, "not dead-lettered")
            run = self._read_run(tr, rec.dispatch.run_id)
            if run is not None and run.status in TERMINAL_STATUSES:
                raise RunTerminalError(run.run_id, "redrive", run.status, "the run has ended")
            now = self.clock.now()
            pointer = _get(tr, layout.dead_pointer(dispatch_key))
            if pointer is not None:
                (stamp,) = fdbtuple.unpack(pointer)
                for key in layout.dead_keys(stamp, rec.dispatch.queue):
                    tr.clear(key)
                tr.clear(layout.dead_pointer(dispatch_key))
            rec.state = "pending"
            rec.deliveries = 0
            rec.reason = None
            rec.visible_at = now + max(delay, 0.0)
            rec.remember({"event": "redriven", "at": now})
            self._index(tr, rec)
            self._put_record(tr, rec)
            self._put_receipt(tr, op_id, True, now)

        self._run("redrive", body)

    def dispatches(self, run_id: str) -> list[DispatchRecord]:
        lo, hi = self.layout.run_dispatches(run_id)

        def body(tr: Any, attempt: Attempt) -> list[Record]:
            snap = tr.snapshot
            keys = [row.value.decode("utf-8") for row in snap.get_range(lo, hi)]
            return [rec for rec in self._read_records(snap, keys) if rec is not None]

        records: list[Record] = self._run("dispatches", body)
        now = self.clock.now()
        return [rec.to_record(now) for rec in records]

    def depth(self, queues: Sequence[str] | None = None) -> dict[str, QueueDepth]:
        now = self.clock.now()
        if queues is None:
            registry = self.layout.queues()

            def names_body(tr: Any, attempt: Attempt) -> list[str]:
                r = registry.range()
                return [str(registry.unpack(row.key)[0])
                        for row in tr.snapshot.get_range(r.start, r.stop)]

            names: list[str] = self._run("depth", names_body)
        else:
            names = list(queues)
        return {q: self._depth_of(q, now) for q in names}

    def _count(self, begin: bytes, end: bytes, tally: Any) -> None:
        """Feed every row of ``[begin, end)`` to ``tally``, a page per transaction."""
        while True:

            def body(tr: Any, attempt: Attempt, begin: bytes = begin) -> list[Any]:
                return list(tr.snapshot.get_range(begin, end, limit=_PAGE_ROWS))

            rows = self._run("depth", body)
            for row in rows:
                tally(row)
            if len(rows) < _PAGE_ROWS:
                return
            begin = rows[-1].key + b"\x00"

    def _depth_of(self, queue: str, now: float) -> QueueDepth:
        sub = self.layout.visibility_queue(queue)
        counts: dict[str, Any] = {"visible": 0, "scheduled": 0, "claimed": 0, "dead": 0,
                                  "oldest_visible_at": None}

        def tally(row: Any) -> None:
            _, vest, _ = sub.unpack(row.key)
            if row.value == b"c":
                counts["claimed"] += 1
            elif vest <= now:
                counts["visible"] += 1
                oldest = counts["oldest_visible_at"]
                counts["oldest_visible_at"] = vest if oldest is None else min(oldest, vest)
            else:
                counts["scheduled"] += 1

        def tally_dead(row: Any) -> None:
            counts["dead"] += 1

        r = sub.range()
        self._count(r.start, r.stop, tally)
        dead = self.layout.dead_listing(queue).range()
        self._count(dead.start, dead.stop, tally_dead)
        return QueueDepth(**counts)

    # ------------------------------------------------------------------ commit

    def _run_records(self, tr: Any, run_id: str) -> list[Record]:
        lo, hi = self.layout.run_dispatches(run_id)
        keys = [row.value.decode("utf-8") for row in tr.get_range(lo, hi)]
        return [rec for rec in self._read_records(tr, keys) if rec is not None]

    def commit(self, commit: Commit) -> CommitResult:
        """Apply a ``Commit`` in one transaction (checks in the contract's order).

        A terminal commit racing a claim of one of the run's other dispatches::

            claimer                                  terminal commit (cancel)
            snapshot probe: d2 visible               read head, run row
            read record d2 (conflict key)            read the run's records (d2 pending)
            write d2 claimed        commit ok  ----> d2 was written after its read version:
                                                     not_committed; retried: reads d2
                                                     claimed, fails it (run_terminal)
            commit(settle=d2) ---------------------> token not current: LeaseLostError

        Had the terminal commit won, the claim would conflict instead and find d2 failed.
        """
        check_commit(commit)
        run_id, expected = commit.run_id, commit.expected_seq
        encoded = self._encode_facts(run_id, commit.facts)
        size = sum(len(d) for _, d in encoded) + len(encode_json(commit.run.to_dict()))
        if size > TRANSACTION_BUDGET:
            raise ValueTooLarge(f"commit to run {run_id!r}", size, TRANSACTION_BUDGET)
        checkpoint = None
        if commit.checkpoint is not None:
            try:
                checkpoint = self._encode_checkpoint(run_id, commit.checkpoint)
            except ValueTooLarge as exc:
                log.warning("not storing the checkpoint with this commit: %s", exc)
        inline = checkpoint is not None and size + len(checkpoint) <= TRANSACTION_BUDGET
        settle_hash = hash_token(commit.settle.token) if commit.settle is not None else None

        def body(tr: Any, attempt: Attempt) -> CommitResult:
            now = self.clock.now()
            head = self._read_head(tr, run_id)
            # 1. an identical commit already applied: by a resend, or by an earlier
            #    attempt of this very call whose reply was lost.
            if self._landed(tr, run_id, commit.facts, expected, head):
                return CommitResult(head, replayed=not attempt.maybe_landed)
            # 2. the lease is current.
            settled = None
            if commit.settle is not None:
                settled = self._live(tr, commit.settle, now)
            # 3. the journal is where the writer last read it.
            if head != expected:
                raise AppendConflict(run_id, expected, head)
            # 4. no scheduling into a terminal run.
            old = self._read_run(tr, run_id)
            if commit.enqueue and old is not None and old.status in TERMINAL_STATUSES:
                raise RunTerminalError(run_id, "schedule", old.status, "the run has ended")
            # 5. enqueued keys are new or identical.
            fresh = self._check_enqueue(tr, commit.enqueue)
            others = self._run_records(tr, run_id) if commit.terminal else []
            # Every check passed (and every read is done): write.
            self._write_facts(tr, run_id, encoded, expected)
            records = self._new_records(tr, fresh, now)
            if settled is not None:
                self._settle(tr, settled, "completed", now, token_hash=settle_hash)
            self._upsert_run(tr, old, commit.run)
            if inline and checkpoint is not None and commit.checkpoint is not None:
                stored = _get(tr, self.layout.checkpoint_seq(run_id))
                # A newer checkpoint (written meanwhile) is never replaced by an older one.
                if stored is None or _unpack_int(stored, run_id) <= commit.checkpoint.seq:
                    self._put_checkpoint(tr, run_id, commit.checkpoint.seq, checkpoint)
            settled_key = settled.dispatch.key if settled is not None else None
            for rec in records:
                if commit.terminal:
                    rec.state = "failed"
                    rec.reason = "run_terminal"
                    rec.remember({"event": "failed", "fence": 0, "at": now,
                                  "reason": "run_terminal"})
                else:
                    self._index(tr, rec)
                self._put_record(tr, rec, fresh=True)
            for rec in others:
                if rec.dispatch.key != settled_key and rec.state in ("pending", "claimed"):
                    self._settle(tr, rec, "failed", now, token_hash=None, reason="run_terminal")
            return CommitResult(expected + len(encoded))

        result: CommitResult = self._run("commit", body)
        if checkpoint is not None and not inline and not result.replayed:
            assert commit.checkpoint is not None
            self.write_checkpoint(run_id, commit.checkpoint)
        return result

    # ------------------------------------------------------------------ misc

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        raise CapabilityNotSupported(self.name, "wake_up")

    def close(self) -> None:
        # The binding keeps one network thread per process and closes nothing per
        # database; the simulator holds no resources. Nothing to release.
        self._closed = True

    def clear_namespace(self) -> None:
        """Delete every key of this store's namespace (tests and tear-downs)."""
        r = self.layout.root.range()

        def body(tr: Any, attempt: Attempt) -> None:
            tr.clear_range(r.start, r.stop)

        self._run("clear_namespace", body)
        self._check_schema()

    def __repr__(self) -> str:
        kind = "simulated" if self.simulated else "cluster"
        return f"FDBStore({kind} {self._label}, namespace={self.layout.namespace!r})"

