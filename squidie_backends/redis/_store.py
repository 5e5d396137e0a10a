"""The Redis Streams store: journal, lease delivery and the atomic commit on Redis.

Features:
    - Delivery on Streams and a consumer group: visible dispatches are entries of a
      per-queue stream read with ``XREADGROUP`` (the group's pending list is the set of
      claimed dispatches); delayed visibility is a sorted set moved into the stream by
      the scripts, in visible-time order; a lapsed lease is taken over with ``XCLAIM``
      when the store clock passes its own expiry (no sweeper); dead letters go to their
      own stream with reason and delivery history and can be re-driven. Delivery counts
      are the store's own, durable, never the stream's.
    - Journal: per-run lists of facts with an expected-sequence check, checkpoints, and
      a lexicographic index for ``list_runs`` (newest first, stable cursors).
    - Every state change is one Lua script (``lua/*.lua``): checks first, writes last,
      fenced by the lease token, idempotent under a client resend (ids and tokens are
      made before sending; a resend is recognised and answered as a replay).
    - One clock: the server's ``TIME`` (plus a test offset), read inside the scripts.
    - Namespaces and Cluster-ready keys: one hash tag per queue (see ``_keys``).
    - ``wait_for_work`` blocks on ``XREAD BLOCK`` on its own connection.

URL: ``redis://[[user]:password@]host[:port][/db][?option=value&...]`` or ``rediss://``.

Options (keyword arguments or URL query parameters; see ``_config.RedisConfig``):
    ``namespace`` (default ``squidie``), ``socket_timeout`` (5 s),
    ``socket_connect_timeout`` (2 s), ``retries`` (3), ``retry_backoff_cap`` (0.5 s),
    ``max_connections`` (64), ``pool_timeout`` (10 s), ``block_timeout`` (30 s),
    ``clock_sync`` (1 s), ``health_check_interval`` (30 s);
    and redis-py's ``db``, ``client_name``, ``ssl_*``.

Requires Redis 7.0 or newer (checked when the store opens). Durability is the server's:
see ``docs/backends/redis.md`` and ``squidie_backends.redis.doctor``.

Commit atomicity and the slot layout: a commit appends to the run's journal, updates its
index rows and dispatches, and appends to its queue's stream. All of those share the
hash tag of the run's *home* queue (the queue it was first written with), because the
runtime keeps a run's dispatches in the run's queue: the commit is one script in one
slot. A run whose dispatches span queues (possible through the raw store API) is still
atomic on a single Redis server, where a script may touch any key; on Cluster such a call
fails with a clear error instead. The trade-off: a queue lives on one shard with its
runs' journals (a stream is one key, so a queue's delivery could not be split anyway);
``list_runs`` and the dead-letter listing merge per-queue indexes.

Why a stale worker cannot commit (the token check runs in the same script as the
writes)::

    worker A                       commit.lua (one slot, atomic)       worker B
    claim d (fence 1, token a)
    ... paused past its lease ...   leases[d] <= now: lapsed
                                    claim.lua: XCLAIM d to B  <------  claim d (fence 2, b)
                                    commit(settle=b) ok       <------  commit
    commit(settle=a)  ----------->  record d: token b != a,
                                    state completed: LEASE_NOT_CURRENT,
                                    nothing written
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, NoReturn

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from squidie_backends.redis._clock import RedisClock
from squidie_backends.redis._config import RedisConfig
from squidie_backends.redis._errors import map_errors
from squidie_backends.redis._keys import LAYOUT_VERSION, Keys, QueueKeys, index_member
from squidie_backends.redis._packer import command_packer
from squidie_backends.redis._scripts import Claimed, Code, DispatchArgs, Scripts
from squidie_core import _json
from squidie_core._clock import Clock
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
    SquidieError,
    StoreError,
    ValueTooLarge,
)
from squidie_core.storage import (
    COMMIT_ERRORS,
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
)

__all__ = ["CAPABILITIES", "MIN_SERVER_VERSION", "RedisStore"]

log = logging.getLogger("squidie.redis")

#: What every Redis store declares.
CAPABILITIES = Capabilities(
    durable=True,
    multi_process=True,
    multi_node=True,
    server_clock=True,
    priorities=False,
    wake_up=True,
    visibility_precision=0.001,
)

#: The oldest Redis the scripts are written for (Debian bookworm ships 7.0.15).
MIN_SERVER_VERSION = (7, 0, 0)

DEFAULT_QUEUE = "default"
_CLAIM_BATCH = 500
_HOMES_CACHE = 200_000


_LEASE_DETAIL = {
    Code.LEASE_UNKNOWN: "unknown dispatch",
    Code.LEASE_NOT_CURRENT: "another delivery holds it or it was settled",
    Code.LEASE_EXPIRED: "the lease expired",
}


def _canonical(value: Any, what: str) -> str:
    try:
        return _json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(what, f"not JSON data: {exc}") from exc


def _fact_json(fact: Fact) -> str:
    return _canonical({"seq": fact.seq, "type": fact.type, "at": fact.at, "body": fact.body},
                      "facts")


def _us(seconds: float) -> int:
    return max(round(float(seconds) * 1_000_000), 0)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


class _CommitRequest:
    """The arguments of one ``commit.lua`` call, updated by the replies asking for another
    try (a queue whose keys were not passed, an index entry under another workflow, the
    run homed in another queue than the one its first write here claimed)."""

    def __init__(self, store: RedisStore, commit: Commit, *, home: str, claim_home: bool,
                 facts: list[str], row: str) -> None:
        self.store = store
        self.commit = commit
        self.claim_home = claim_home
        self.facts = facts
        self.row = row
        self.old_workflow = commit.run.workflow
        self._home_at(home)

    def _home_at(self, home: str) -> None:
        """Group 1 is the run's home queue; then the queues of the settled lease and of
        the dispatches (every one registered)."""
        commit = self.commit
        self.home = home
        self.groups = {home: 1}
        settle_queue = commit.settle.dispatch.queue if commit.settle else None
        for q in ([settle_queue] if settle_queue else []) + [d.queue for d in commit.enqueue]:
            self.groups.setdefault(q, len(self.groups) + 1)
        self.store._register(*self.groups)

    def arguments(self) -> dict[str, Any]:
        commit, run, store = self.commit, self.commit.run, self.store
        hk = store._queue(self.home)
        groups = self.groups
        settle = None
        if commit.settle is not None:
            settle = (commit.settle.key, hash_token(commit.settle.token),
                      groups[commit.settle.dispatch.queue])
        return {
            "run_keys": [
                hk.journal(commit.run_id), hk.runs, hk.runmeta, hk.ckpt,
                hk.run_dispatches(commit.run_id), hk.ix, hk.ixs,
                hk.ixw(run.workflow), hk.ixws(run.workflow),
                hk.ixw(self.old_workflow), hk.ixws(self.old_workflow),
            ],
            "groups": [(q, store._queue(q).group) for q in groups],
            "offset_us": store._offset,
            "run_id": commit.run_id,
            "expected": commit.expected_seq,
            "facts": self.facts,
            "settle": settle,
            "enqueue": [store._dispatch_args(d, groups[d.queue]) for d in commit.enqueue],
            "row": self.row,
            "status": run.status,
            "workflow": run.workflow,
            "member": index_member(run.created_at, run.run_id),
            "terminal": commit.terminal,
            "checkpoint": ((commit.checkpoint.seq, commit.checkpoint.data)
                           if commit.checkpoint else None),
            "old_workflow": self.old_workflow,
            "home_key": store._keys.home(commit.run_id) if self.claim_home else None,
        }

    def needs_another_try(self, reply: Sequence[Any]) -> bool:
        """Whether ``reply`` asks for the call again (with the arguments updated). Any
        reply of the script means its claim of the run's home is done: the home is
        remembered, and not claimed again."""
        code = Code(reply[0])
        if self.claim_home:
            self.claim_home = False
            if code == Code.OTHER_HOME:
                self._home_at(str(reply[1]))
            self.store._remember_home(self.commit.run_id, self.home)
        if code == Code.OTHER_HOME:
            return True
        if code == Code.NEED_QUEUES:
            for q in reply[1:]:
                self.groups.setdefault(str(q), len(self.groups) + 1)
            return True
        if code == Code.REINDEX:
            self.old_workflow = str(reply[1])
            return True
        return False


class RedisStore:
    """A Squidie ``Store`` on Redis 7.0+ (see the module docstring).

    Args:
        url: ``redis://`` or ``rediss://`` URL; Squidie options may be query parameters.
        clock: Decide with this clock instead of the server's ``TIME`` (tests and
            simulations; every process sharing the store must then share the clock).
            The store then declares ``server_clock=False``.
        **options: Squidie options (override the same query parameters).

    Raises:
        InvalidArgument: an unknown or malformed option.
        BackendUnavailable: the server cannot be reached.
        StoreError: the server is older than Redis 7.0.
        SchemaVersionError: the namespace holds data of another key layout version.
    """

    name = "redis"
    capabilities = CAPABILITIES

    def __init__(
        self, url: str = "redis://127.0.0.1:6379/0", *, clock: Clock | None = None,
        **options: Any,
    ) -> None:
        self._config = RedisConfig.parse(url, options)
        config = self._config
        self._secrets = config.secrets
        self._keys = Keys(config.namespace)
        self._closed = False
        self._homes: dict[str, str] = {}
        #: A run's first commit claims its home inside ``commit.lua`` (one round trip).
        #: The home key has no queue's hash tag, so on Redis Cluster, which this store
        #: does not open yet, the claim would be a ``SET NX`` of its own first (``False``;
        #: the slot tests run both).
        self._home_in_script = True
        self._registered: set[str] = set()
        self._lock = threading.Lock()
        retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=config.retry_backoff_cap),
                      retries=config.retries)
        common: dict[str, Any] = {
            "decode_responses": True,
            "protocol": 2,
            "socket_connect_timeout": config.socket_connect_timeout,
            "health_check_interval": config.health_check_interval,
            "timeout": config.pool_timeout,
            "command_packer": command_packer(),
        }
        with self._errors():
            self._client = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
                config.url, **common, socket_timeout=config.socket_timeout, retry=retry,
                max_connections=config.max_connections,
            ))
            # Blocking reads never share a connection with scripts, and wait longer than
            # they block; a blocking read is a hint, so it is not resent.
            self._blocking = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
                config.url, **common, socket_timeout=config.block_timeout + 5.0,
                retry=Retry(ExponentialWithJitterBackoff(), retries=0),
                max_connections=config.max_connections,
            ))
        try:
            with self._errors():
                self.server_version = self._check_server()
                self._scripts = Scripts(self._client)
                self._scripts.register()
        except BaseException:
            self._disconnect()
            raise
        self._injected = clock is not None
        self.clock: Any
        if clock is not None:
            # An injected clock (tests, simulations): every script receives its time
            # instead of reading TIME, so the store is as deterministic as the memory one.
            self.clock = clock
            # Another client (a process, or a restart) cannot share an in-process clock.
            self.capabilities = replace(CAPABILITIES, server_clock=False, multi_process=False,
                                        multi_node=False, durable=False)
        else:
            self.clock = RedisClock(self._server_time, sync_interval=config.clock_sync)

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _errors(self) -> Iterator[None]:
        with map_errors(self._secrets):
            yield

    def _check_server(self) -> tuple[int, ...]:
        info = self._client.info("server")
        version = _version(str(info.get("redis_version", "0")))
        if version < MIN_SERVER_VERSION:
            raise StoreError(
                f"the Redis store needs Redis 7.0 or newer; the server is "
                f"{'.'.join(map(str, version))}"
            )
        found = self._client.set(self._keys.layout, LAYOUT_VERSION, nx=True, get=True)
        if found is not None and found != LAYOUT_VERSION:
            raise SchemaVersionError(
                f"namespace {self._keys.namespace!r} holds key layout {found!r}; this "
                f"code speaks layout {LAYOUT_VERSION!r}"
            )
        return version

    def _server_time(self) -> tuple[int, int]:
        with self._errors():
            seconds, micros = self._client.time()
        return int(seconds), int(micros)

    @property
    def _offset(self) -> int | str:
        """What scripts add to ``TIME`` — or, on an injected clock, its absolute time."""
        if self._injected:
            return f"={round(self.clock.now() * 1e6)}"
        return int(self.clock.offset_us)

    @property
    def namespace(self) -> str:
        """The key prefix of this store."""
        return self._keys.namespace

    def _queue(self, name: str) -> QueueKeys:
        return self._keys.queue(name)

    def _home(self, run_id: str) -> str | None:
        """The run's home queue, or ``None`` if the run was never written."""
        home = self._homes.get(run_id)
        if home is None:
            raw = self._client.get(self._keys.home(run_id))
            if raw is None:
                return None
            home = str(raw)
            self._remember_home(run_id, home)
        return home

    def _home_for_write(self, run_id: str, default: str) -> str:
        """The run's home queue, making it ``default`` on the run's first write."""
        home = self._homes.get(run_id)
        if home is None:
            found = self._client.set(self._keys.home(run_id), default, nx=True, get=True)
            home = default if found is None else str(found)
            self._remember_home(run_id, home)
        self._register(home)
        return home

    def _remember_home(self, run_id: str, home: str) -> None:
        if len(self._homes) >= _HOMES_CACHE:
            self._homes.clear()
        self._homes[run_id] = home

    def _register(self, *queues: str) -> None:
        new = [q for q in queues if q not in self._registered]
        if new:
            self._client.sadd(self._keys.queues, *new)
            self._registered.update(new)

    def _all_queues(self) -> list[str]:
        return sorted(str(q) for q in self._client.smembers(self._keys.queues))

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the Redis store is closed")

    # ------------------------------------------------------------------ journal

    def append(self, run_id: str, facts: Sequence[Fact], expected_seq: int) -> int:
        check_contiguous(facts, expected_seq)
        encoded = [_fact_json(f) for f in facts]
        self._check_open()
        with self._errors():
            home = self._home_for_write(run_id, DEFAULT_QUEUE)
            code, head = self._scripts.append(
                self._queue(home).journal(run_id), expected_seq, encoded
            )
        if code == Code.APPEND_CONFLICT:
            raise AppendConflict(run_id, expected_seq, head)
        return head

    def read(self, run_id: str, after_seq: int = 0) -> list[Fact]:
        self._check_open()
        with self._errors():
            home = self._home(run_id)
            if home is None:
                return []
            raw = self._client.lrange(self._queue(home).journal(run_id), max(after_seq, 0), -1)
        where = f"journal of run {run_id!r}"
        return [Fact.from_json(item, where=where) for item in raw]

    def head(self, run_id: str) -> int:
        self._check_open()
        with self._errors():
            home = self._home(run_id)
            if home is None:
                return 0
            return int(self._client.llen(self._queue(home).journal(run_id)))

    def read_checkpoint(self, run_id: str) -> Checkpoint | None:
        self._check_open()
        with self._errors():
            home = self._home(run_id)
            if home is None:
                return None
            raw = self._client.hget(self._queue(home).ckpt, run_id)
        return self._checkpoint(run_id, raw)

    @staticmethod
    def _checkpoint(run_id: str, raw: Any) -> Checkpoint | None:
        if raw is None:
            return None
        seq, sep, data = str(raw).partition("\n")
        if not sep or not seq.isdigit():
            log.warning("ignoring a malformed checkpoint of run %s", run_id)
            return None
        return Checkpoint(seq=int(seq), data=data)

    def read_runs(
        self, after: Mapping[str, int | None]
    ) -> dict[str, tuple[Checkpoint | None, list[Fact]]]:
        """``BatchReader.read_runs`` in at most two round trips: the homes not known yet
        (a claim tells them), then each run's checkpoint and journal (``read_run.lua``,
        pipelined for several runs)."""
        self._check_open()
        if not after:
            return {}
        with self._errors():
            homes = self._load_homes(after)
            calls = {}
            for run_id in after:
                if run_id in homes:
                    queue = self._queue(homes[run_id])
                    calls[run_id] = (queue.ckpt, queue.journal(run_id), run_id, after[run_id])
            if len(calls) == 1:
                replies: list[Any] = [self._scripts.read_run(*call) for call in calls.values()]
            else:
                pipe = self._client.pipeline(transaction=False)
                for call in calls.values():
                    self._scripts.queue_read_run(pipe, *call)
                # An error reply (the script unknown to a restarted server) is retried
                # alone, which loads the script again or raises the error.
                replies = [
                    self._scripts.read_run(*call) if isinstance(reply, Exception) else reply
                    for call, reply in zip(calls.values(), pipe.execute(raise_on_error=False)
                                           if calls else [], strict=True)]
        runs: dict[str, tuple[Checkpoint | None, list[Fact]]] = {}
        read = dict(zip(calls, replies, strict=True))
        for run_id, seq in after.items():
            raw, journal = read.get(run_id, (None, []))
            where = f"journal of run {run_id!r}"
            checkpoint = self._checkpoint(run_id, raw) if seq is None else None
            runs[run_id] = (checkpoint, [Fact.from_json(item, where=where) for item in journal])
        return runs

    def write_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> None:
        self._check_open()
        with self._errors():
            home = self._home_for_write(run_id, DEFAULT_QUEUE)
            self._scripts.write_checkpoint(
                self._queue(home).ckpt, run_id, checkpoint.seq, checkpoint.data
            )

    def delete_checkpoints(self, run_id: str | None = None) -> int:
        self._check_open()
        with self._errors():
            if run_id is not None:
                home = self._home(run_id)
                if home is None:
                    return 0
                return self._scripts.delete_checkpoints(self._queue(home).ckpt, run_id)
            return sum(
                self._scripts.delete_checkpoints(self._queue(q).ckpt, None)
                for q in self._all_queues()
            )

    def get_run(self, run_id: str) -> RunEntry | None:
        self._check_open()
        with self._errors():
            home = self._home(run_id)
            if home is None:
                return None
            raw = self._client.hget(self._queue(home).runs, run_id)
        return None if raw is None else self._run_entry(str(raw), run_id)

    @staticmethod
    def _run_entry(raw: str, run_id: str) -> RunEntry:
        try:
            return RunEntry(**json.loads(raw))
        except (ValueError, TypeError) as exc:
            raise CorruptDataError(f"run index row {run_id!r}", str(exc)) from exc

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
        after: str | None = None
        if cursor is not None:
            created, rid = decode_cursor(cursor, 2)
            try:
                after = index_member(float(created), str(rid))
            except (TypeError, ValueError) as exc:
                raise InvalidArgument("cursor", "not a cursor returned by a listing") from exc
        prefix = f"{status}|" if status is not None else ""
        upper = "(" + prefix + after if after is not None else (
            "(" + prefix + "~" if prefix else "+"
        )
        lower = "[" + prefix if prefix else "-"
        self._check_open()
        found: list[tuple[str, str]] = []
        with self._errors():
            for queue in self._all_queues():
                qk = self._queue(queue)
                if workflow is not None:
                    index = qk.ixws(workflow) if status is not None else qk.ixw(workflow)
                else:
                    index = qk.ixs if status is not None else qk.ix
                for member, row in self._scripts.list_runs(
                    index=index, runs=qk.runs, upper=upper, lower=lower, limit=limit + 1,
                    prefix=len(prefix),
                ):
                    if row is not None:
                        found.append((member[len(prefix):], row))
        found.sort(key=lambda pair: pair[0], reverse=True)
        rows = [self._run_entry(row, member[17:]) for member, row in found[: limit + 1]]
        page = rows[:limit]
        nxt = None
        if len(rows) > limit:
            nxt = encode_cursor(page[-1].created_at, page[-1].run_id)
        return Page(items=page, next_cursor=nxt)

    # ------------------------------------------------------------------ delivery helpers

    @staticmethod
    def _check_priorities(dispatches: Sequence[Dispatch]) -> None:
        for d in dispatches:
            if d.priority:
                raise CapabilityNotSupported("redis", "priorities")

    @staticmethod
    def _dispatch_args(d: Dispatch, group: int, run: int = 0) -> DispatchArgs:
        return DispatchArgs(
            key=d.key,
            group=group,
            intent=_canonical(list(d.intent()), "dispatch"),
            json=_canonical(d.to_dict(), "dispatch"),
            delay_us=_us(d.delay),
            max_deliveries=int(d.max_deliveries),
            run=run,
        )

    def _lease_lost(self, lease: Lease, code: Code) -> NoReturn:
        raise LeaseLostError(lease.key, _LEASE_DETAIL.get(code, code.name.lower()))

    def _record(self, raw: str | None, key: str, now_us: int) -> DispatchRecord | None:
        if raw is None:
            return None
        try:
            rec = json.loads(raw)
            state = str(rec["s"])
            visible = int(rec["v"])
            if state == "pending":
                state = "available" if visible <= now_us else "scheduled"
            expiry = rec.get("x")
            history = rec.get("h") or []
            return DispatchRecord(
                dispatch=Dispatch.from_dict(json.loads(rec["d"])),
                state=state,
                visible_at=visible / 1e6,
                deliveries=int(rec["n"]),
                fence=int(rec["f"]),
                owner_id=rec.get("w"),
                lease_expires_at=int(expiry) / 1e6 if rec["s"] == "claimed" and expiry else None,
                reason=rec.get("why"),
                history=tuple(
                    {k: (int(v) / 1e6 if k == "at" else v) for k, v in entry.items()}
                    for entry in (history if isinstance(history, list) else [])
                ),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptDataError(f"dispatch {key!r}", str(exc)) from exc

    def _now_us(self) -> int:
        if self._injected:
            now: float = self.clock.now()
            return round(now * 1e6)
        seconds, micros = self._server_time()
        return seconds * 1_000_000 + micros + int(self.clock.offset_us)

    # ------------------------------------------------------------------ delivery

    def enqueue(self, dispatches: Sequence[Dispatch]) -> None:
        if not dispatches:
            return
        self._check_priorities(dispatches)
        self._check_open()
        with self._errors():
            runs: dict[str, int] = {}
            homes: dict[str, str] = {}
            groups: dict[str, int] = {}
            args: list[DispatchArgs] = []
            for d in dispatches:
                if d.run_id not in runs:
                    runs[d.run_id] = len(runs) + 1
                    homes[d.run_id] = self._home_for_write(d.run_id, d.queue)
                if d.queue not in groups:
                    groups[d.queue] = len(groups) + 1
                args.append(self._dispatch_args(d, groups[d.queue], runs[d.run_id]))
            self._register(*groups)
            reply = self._scripts.enqueue(
                runs=[
                    (run_id, homes[run_id], self._queue(homes[run_id]).runmeta,
                     self._queue(homes[run_id]).run_dispatches(run_id))
                    for run_id in runs
                ],
                groups=[(q, self._queue(q).group) for q in groups],
                offset_us=self._offset,
                dispatches=args,
            )
        code = Code(reply[0])
        if code == Code.IDEMPOTENCY_CONFLICT:
            raise IdempotencyConflict(reply[1], "dispatch enqueued with a different intent")
        if code == Code.RUN_TERMINAL:
            raise RunTerminalError(reply[2], "enqueue", reply[1], "the run has ended")

    def claim(
        self, owner_id: str, *, lease_for: float, limit: int = 1, queues: Sequence[str] = ()
    ) -> list[Lease]:
        if limit < 1:
            raise InvalidArgument("limit", "must be at least 1")
        if lease_for <= 0:
            raise InvalidArgument("lease_for", "must be positive")
        if not isinstance(owner_id, str) or not owner_id:
            raise InvalidArgument("owner_id", "must be a non-empty string")
        names = list(dict.fromkeys(queues or (DEFAULT_QUEUE,)))
        groups = [(q, self._queue(q).group) for q in names]
        leases: list[Lease] = []
        self._check_open()
        while len(leases) < limit:
            batch = min(limit - len(leases), _CLAIM_BATCH)
            # Made before sending: a resend presents the same tokens and is recognised.
            tokens = [new_token() for _ in range(batch)]
            with self._errors():
                _, claimed = self._scripts.claim(
                    groups=groups,
                    offset_us=self._offset,
                    owner=owner_id,
                    lease_us=max(_us(lease_for), 1),
                    token_hashes=[hash_token(t) for t in tokens],
                )
            leases.extend(self._lease(c, owner_id, tokens) for c in claimed)
            if len(claimed) < batch:
                break
        return leases

    def _lease(self, claimed: Claimed, owner_id: str, tokens: list[str]) -> Lease:
        try:
            dispatch = Dispatch.from_dict(json.loads(claimed.dispatch_json))
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptDataError(f"dispatch {claimed.key!r}", str(exc)) from exc
        self._remember_home(dispatch.run_id, claimed.home)
        return Lease(
            dispatch=dispatch,
            owner_id=owner_id,
            token=tokens[claimed.index],
            fence=claimed.fence,
            delivery=claimed.delivery,
            expires_at=claimed.expires_us / 1e6,
        )

    def heartbeat(self, lease: Lease, *, lease_for: float) -> Lease:
        if lease_for <= 0:
            raise InvalidArgument("lease_for", "must be positive")
        self._check_open()
        with self._errors():
            code, expiry = self._scripts.heartbeat(
                group=self._queue(lease.dispatch.queue).group, offset_us=self._offset,
                key=lease.key, token_hash=hash_token(lease.token),
                lease_us=max(_us(lease_for), 1),
            )
        if code != Code.OK or expiry is None:
            self._lease_lost(lease, code)
        return replace(lease, expires_at=expiry / 1e6)

    def complete(self, lease: Lease) -> None:
        self._check_open()
        with self._errors():
            code = self._scripts.complete(
                group=self._queue(lease.dispatch.queue).group, offset_us=self._offset,
                key=lease.key, token_hash=hash_token(lease.token),
            )
        if code < 0:
            self._lease_lost(lease, code)

    def retry(self, lease: Lease, *, delay: float = 0.0, reason: str | None = None) -> None:
        request_id = uuid.uuid4().hex
        self._check_open()
        with self._errors():
            code = self._scripts.retry(
                group=self._queue(lease.dispatch.queue).group, offset_us=self._offset,
                key=lease.key, token_hash=hash_token(lease.token), delay_us=_us(delay),
                reason=reason, request_id=request_id,
            )
        if code < 0:
            self._lease_lost(lease, code)

    def dead_letter(self, lease: Lease, reason: str) -> None:
        request_id = uuid.uuid4().hex
        self._check_open()
        with self._errors():
            code = self._scripts.dead_letter(
                group=self._queue(lease.dispatch.queue).group, offset_us=self._offset,
                key=lease.key, token_hash=hash_token(lease.token), reason=str(reason),
                request_id=request_id,
            )
        if code < 0:
            self._lease_lost(lease, code)

    def dead_letters(
        self, *, queue: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page:
        if limit < 1:
            raise InvalidArgument("limit", "must be at least 1")
        after: tuple[tuple[int, int], str] | None = None
        if cursor is not None:
            cid, cqueue = decode_cursor(cursor, 2)
            try:
                ms, seq = str(cid).split("-")
                after = ((int(ms), int(seq)), str(cqueue))
            except ValueError as exc:
                raise InvalidArgument("cursor", "not a cursor returned by a listing") from exc
        self._check_open()
        found: list[tuple[tuple[int, int], str, str, str | None]] = []
        with self._errors():
            names = [queue] if queue is not None else self._all_queues()
            for name in names:
                qk = self._queue(name)
                start = "-"
                if after is not None:
                    cid_text = f"{after[0][0]}-{after[0][1]}"
                    start = cid_text if name > after[1] else "(" + cid_text
                for entry_id, key, raw in self._scripts.dead_letters(
                    qk.dead, qk.disp, start, limit + 1
                ):
                    ms, seq = entry_id.split("-")
                    found.append(((int(ms), int(seq)), name, key, raw))
            now_us = self._now_us()
        found.sort(key=lambda item: (item[0], item[1]))
        found = found[: limit + 1]
        page = found[:limit]
        items = [r for r in (self._record(raw, key, now_us) for _, _, key, raw in page) if r]
        nxt = None
        if len(found) > limit:
            last = page[-1]
            nxt = encode_cursor(f"{last[0][0]}-{last[0][1]}", last[1])
        return Page(items=items, next_cursor=nxt)

    def redrive(self, dispatch_key: str, *, delay: float = 0.0) -> None:
        request_id = uuid.uuid4().hex
        self._check_open()
        with self._errors():
            queues = self._all_queues()
            pipe = self._client.pipeline(transaction=False)
            for q in queues:
                pipe.hget(self._queue(q).disp, dispatch_key)
            for q, raw in zip(queues, pipe.execute(), strict=True):
                if raw is None:
                    continue
                try:
                    home = str(json.loads(raw).get("home") or q)
                except (ValueError, AttributeError) as exc:
                    raise CorruptDataError(f"dispatch {dispatch_key!r}", str(exc)) from exc
                reply = self._scripts.redrive(
                    group=self._queue(q).group, runmeta=self._queue(home).runmeta,
                    offset_us=self._offset, key=dispatch_key, delay_us=_us(delay),
                    request_id=request_id,
                )
                code = Code(reply[0])
                if code == Code.NOT_DEAD:
                    continue
                if code == Code.RUN_TERMINAL:
                    run_id = Dispatch.from_dict(json.loads(json.loads(raw)["d"])).run_id
                    raise RunTerminalError(run_id, "redrive", reply[1], "the run has ended")
                return
        raise DispatchNotFound(dispatch_key, "not dead-lettered")

    def dispatches(self, run_id: str) -> list[DispatchRecord]:
        self._check_open()
        with self._errors():
            home = self._home(run_id)
            if home is None:
                return []
            entries = {
                str(k): str(v)
                for k, v in self._client.hgetall(self._queue(home).run_dispatches(run_id)).items()
            }
            if not entries:
                return []
            ordered = sorted(
                (int(v.split("|", 1)[0]), k, v.split("|", 1)[1]) for k, v in entries.items()
            )
            pipe = self._client.pipeline(transaction=False)
            pipe.time()
            for _, key, queue in ordered:
                pipe.hget(self._queue(queue).disp, key)
            results = pipe.execute()
        seconds, micros = results[0]
        if self._injected:
            now_us = round(self.clock.now() * 1e6)
        else:
            now_us = int(seconds) * 1_000_000 + int(micros) + int(self.clock.offset_us)
        records = [
            self._record(raw, key, now_us)
            for (_, key, _), raw in zip(ordered, results[1:], strict=True)
        ]
        return [r for r in records if r is not None]

    def depth(self, queues: Sequence[str] | None = None) -> dict[str, QueueDepth]:
        self._check_open()
        out: dict[str, QueueDepth] = {}
        with self._errors():
            names = list(queues) if queues is not None else self._all_queues()
            for name in names:
                qk = self._queue(name)
                if queues is None and not self._client.exists(qk.disp):
                    continue
                visible, scheduled, claimed, dead, oldest = self._scripts.depth(
                    qk.group, self._offset
                )
                out[name] = QueueDepth(
                    visible=int(visible),
                    scheduled=int(scheduled),
                    claimed=int(claimed),
                    dead=int(dead),
                    oldest_visible_at=int(oldest) / 1e6 if oldest is not None else None,
                )
        return out

    # ------------------------------------------------------------------ commit

    def commit(self, commit: Commit) -> CommitResult:
        check_commit(commit)
        self._check_priorities(commit.enqueue)
        facts = [_fact_json(f) for f in commit.facts]
        row = _canonical(commit.run.to_dict(), "run")
        self._check_open()
        with self._errors():
            request = self._commit_request(commit, facts, row)
            for _ in range(4):
                reply = self._scripts.commit(**request.arguments())
                if not request.needs_another_try(reply):
                    break
            else:  # pragma: no cover - the layout changed under us four times
                raise StoreError(f"commit of run {commit.run_id!r} could not settle its keys")
        return self._commit_result(commit, reply)

    def commit_many(self, commits: Sequence[Commit]) -> list[CommitResult | SquidieError]:
        """The group commit: every commit's ``commit.lua`` call in one pipelined round trip.

        Each script call is atomic on its own (a group may span cluster slots, so it is
        not one script); a commit whose call asks for another try (a queue's keys not
        passed, an index to move) is sent again alone with ``commit``.
        """
        self._check_open()
        results: list[CommitResult | SquidieError | None] = [None] * len(commits)
        sent: list[tuple[int, _CommitRequest]] = []
        with self._errors():
            pipe = self._client.pipeline(transaction=False)
            for index, commit in enumerate(commits):
                try:
                    check_commit(commit)
                    self._check_priorities(commit.enqueue)
                    request = self._commit_request(
                        commit, [_fact_json(f) for f in commit.facts],
                        _canonical(commit.run.to_dict(), "run"))
                except (InvalidArgument, ValueTooLarge) as exc:
                    results[index] = exc
                    continue
                self._scripts.queue_commit(pipe, **request.arguments())
                sent.append((index, request))
            replies = pipe.execute(raise_on_error=False) if sent else []
        for (index, request), reply in zip(sent, replies, strict=True):
            commit = request.commit
            try:
                if isinstance(reply, Exception) or request.needs_another_try(reply):
                    results[index] = self.commit(commit)
                else:
                    results[index] = self._commit_result(commit, reply)
            except COMMIT_ERRORS as exc:
                results[index] = exc
        return [r for r in results if r is not None]

    def _commit_request(self, commit: Commit, facts: list[str], row: str) -> _CommitRequest:
        """Everything ``commit.lua`` needs for ``commit`` (may register queues). A run whose
        home this store does not know yet (its first write: a start) has the script claim
        it for the run's queue, in the same round trip."""
        home = self._homes.get(commit.run_id)
        if home is None and not self._home_in_script:
            home = self._home_for_write(commit.run_id, commit.run.queue)
        return _CommitRequest(self, commit, home=home or commit.run.queue,
                              claim_home=home is None, facts=facts, row=row)

    def _commit_result(self, commit: Commit, reply: Sequence[Any]) -> CommitResult:
        """``commit.lua``'s final reply as a result, or the error it stands for."""
        code = Code(reply[0])
        if code in (Code.OK, Code.REPLAYED):
            return CommitResult(last_seq=int(reply[1]), replayed=code == Code.REPLAYED)
        if code in _LEASE_DETAIL:
            assert commit.settle is not None
            self._lease_lost(commit.settle, code)
        if code == Code.APPEND_CONFLICT:
            raise AppendConflict(commit.run_id, commit.expected_seq, int(reply[1]))
        if code == Code.RUN_TERMINAL:
            raise RunTerminalError(commit.run_id, "schedule", str(reply[1]), "the run has ended")
        if code == Code.IDEMPOTENCY_CONFLICT:
            raise IdempotencyConflict(str(reply[1]), "dispatch enqueued with a different intent")
        raise StoreError(f"commit.lua replied {reply!r}")  # pragma: no cover

    def _load_homes(self, run_ids: Iterable[str]) -> dict[str, str]:
        """The home queue of each run that has one, asking in one pipelined round trip
        for those not known yet."""
        homes = {r: self._homes[r] for r in run_ids if r in self._homes}
        missing = list(dict.fromkeys(r for r in run_ids if r not in homes))
        if missing:
            pipe = self._client.pipeline(transaction=False)
            for run_id in missing:
                pipe.get(self._keys.home(run_id))
            for run_id, home in zip(missing, pipe.execute(), strict=True):
                if home is not None:
                    homes[run_id] = str(home)
                    self._remember_home(run_id, str(home))
        return homes

    # ------------------------------------------------------------------ misc

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        names = list(dict.fromkeys(queues or (DEFAULT_QUEUE,)))
        groups = [self._queue(q).group for q in names]
        streams_of = [self._queue(q).ready for q in names]
        deadline = time.monotonic() + max(timeout, 0.0)
        while not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._errors():
                visible, due_us, cursors = self._scripts.peek(groups, self._offset)
            if visible:
                return True
            block = min(remaining, self._config.block_timeout)
            due = due_us / 1e6 if due_us >= 0 else None
            if due is not None:
                block = min(block, due)
            try:
                with self._errors():
                    found = self._blocking.xread(
                        dict(zip(streams_of, cursors, strict=True)),
                        count=1, block=max(int(block * 1000), 1),
                    )
            except Exception:
                # close() disconnects the blocked socket under the read; redis-py then
                # fails in various ways (a connection error, or a ValueError on a closed
                # file): none of them matter once the store is closed.
                if self._shut():
                    return False
                raise
            if found:
                return True
            if due is not None and due <= block:
                return True
        return False

    def _shut(self) -> bool:
        return self._closed

    def _disconnect(self) -> None:
        for client in (getattr(self, "_client", None), getattr(self, "_blocking", None)):
            if client is not None:
                client.connection_pool.disconnect()

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._disconnect()

    def __repr__(self) -> str:
        return (
            f"RedisStore(url={self._config.redacted_url()!r}, "
            f"namespace={self._keys.namespace!r})"
        )
