"""The Lua scripts: loaded from ``lua/*.lua``, registered once per client, typed wrappers.

Each ``lua/<name>.lua`` is one atomic operation whose header documents every
``KEYS[n]``, ``ARGV[n]`` and reply. A line ``--! include <name>`` is replaced by
``lua/includes/<name>.lua`` when the script is loaded (a leading ``#!lua`` line stays
first). Scripts are sent once per client with ``SCRIPT LOAD`` and then called with
``EVALSHA``; a ``NOSCRIPT`` reply (the server restarted or flushed its script cache) loads
the script again and repeats the call, which is safe because every script is idempotent
under a resend.

Replies are ``[code, ...]``; negative codes are failures mapped to ``Code`` and from there
(in ``_store``) to Squidie errors.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from importlib import resources
from typing import Any

import redis

from squidie_core import _json

__all__ = ["SCRIPT_NAMES", "Claimed", "Code", "DispatchArgs", "Scripts", "load_sources"]

SCRIPT_NAMES = (
    "append",
    "claim",
    "commit",
    "complete",
    "dead_letter",
    "dead_letters",
    "delete_checkpoints",
    "depth",
    "enqueue",
    "heartbeat",
    "list_runs",
    "peek",
    "read_run",
    "redrive",
    "retry",
    "write_checkpoint",
)

_INCLUDE = re.compile(r"^--! include ([a-z_]+)\s*$", re.MULTILINE)


class Code(IntEnum):
    """Reply codes of the scripts (``lua/includes/common.lua`` defines the same)."""

    OK = 0
    REPLAYED = 1
    LEASE_UNKNOWN = -1
    LEASE_NOT_CURRENT = -2
    LEASE_EXPIRED = -3
    APPEND_CONFLICT = -4
    RUN_TERMINAL = -5
    IDEMPOTENCY_CONFLICT = -6
    NEED_QUEUES = -7
    REINDEX = -8
    NOT_DEAD = -9
    OTHER_HOME = -10


def _read(path: str) -> str:
    return resources.files("squidie_backends.redis").joinpath(path).read_text("utf-8")


def load_sources() -> dict[str, str]:
    """Return every script's source with its includes inlined, by name."""
    sources: dict[str, str] = {}
    for name in SCRIPT_NAMES:
        text = _read(f"lua/{name}.lua")
        sources[name] = _INCLUDE.sub(lambda m: _read(f"lua/includes/{m.group(1)}.lua"), text)
    return sources


_SOURCES: dict[str, str] | None = None
_SOURCES_LOCK = threading.Lock()


def _sources() -> dict[str, str]:
    global _SOURCES
    with _SOURCES_LOCK:
        if _SOURCES is None:
            _SOURCES = load_sources()
        return _SOURCES


@dataclass(frozen=True, slots=True)
class DispatchArgs:
    """One dispatch as the enqueue and commit scripts take it.

    Attributes:
        key: The dispatch key.
        group: The 1-based number of its queue group in the call.
        intent: Its canonical intent (compared as a string by the scripts).
        json: Its JSON (stored opaquely).
        delay_us: Delay in microseconds (>= 0).
        max_deliveries: Deliveries before a claim dead-letters it.
        run: The 1-based number of its run in the call (enqueue only).
    """

    key: str
    group: int
    intent: str
    json: str
    delay_us: int
    max_deliveries: int
    run: int = 0


@dataclass(frozen=True, slots=True)
class Claimed:
    """One lease granted by ``claim.lua``.

    Attributes:
        queue: The queue it came from.
        key: The dispatch key.
        dispatch_json: The dispatch as enqueued.
        fence: The new fence.
        delivery: Deliveries since enqueue or redrive.
        expires_us: Lease expiry (store clock, µs).
        home: The home queue of the dispatch's run.
        index: Which of the request's tokens it was granted with (0-based).
    """

    queue: str
    key: str
    dispatch_json: str
    fence: int
    delivery: int
    expires_us: int
    home: str
    index: int


class Scripts:
    """The scripts registered with one redis-py client, called through typed wrappers.

    Args:
        client: A redis-py client with ``decode_responses=True``.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._sources = _sources()
        self._sha = {
            name: hashlib.sha1(src.encode("utf-8")).hexdigest()
            for name, src in self._sources.items()
        }

    def register(self) -> None:
        """Send every script to the server once (``SCRIPT LOAD``, one round trip)."""
        pipe = self._client.pipeline(transaction=False)
        for src in self._sources.values():
            pipe.script_load(src)
        for name, sha in zip(self._sources, pipe.execute(), strict=True):
            if sha != self._sha[name]:  # pragma: no cover - a server hashing differently
                self._sha[name] = sha

    def call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a script by name with ``EVALSHA``, loading it again after ``NOSCRIPT``."""
        try:
            return self._client.evalsha(self._sha[name], len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            self._client.script_load(self._sources[name])
            return self._client.evalsha(self._sha[name], len(keys), *keys, *args)

    # ------------------------------------------------------------------ wrappers

    def append(self, journal: str, expected: int, facts: Sequence[str]) -> tuple[Code, int]:
        """``append.lua``: returns (code, head)."""
        reply = self.call("append", [journal], [expected, len(facts), *facts])
        return Code(reply[0]), int(reply[1])

    def write_checkpoint(self, ckpt: str, run_id: str, seq: int, data: str) -> bool:
        """``write_checkpoint.lua``: whether it was stored."""
        reply = self.call("write_checkpoint", [ckpt], [run_id, seq, data])
        return bool(reply[1])

    def delete_checkpoints(self, ckpt: str, run_id: str | None) -> int:
        """``delete_checkpoints.lua``: how many were deleted."""
        reply = self.call("delete_checkpoints", [ckpt], [run_id or ""])
        return int(reply[1])

    def commit(self, **arguments: Any) -> list[Any]:
        """``commit.lua`` (see ``commit_call`` for the arguments): the raw reply
        (``[code, ...]``)."""
        keys, args = self.commit_call(**arguments)
        return list(self.call("commit", keys, args))

    def queue_commit(self, pipe: redis.client.Pipeline, **arguments: Any) -> None:
        """Queue a ``commit.lua`` call on a pipeline (its reply comes from ``execute``)."""
        keys, args = self.commit_call(**arguments)
        pipe.evalsha(self._sha["commit"], len(keys), *keys, *args)

    @staticmethod
    def commit_call(
        *,
        run_keys: Sequence[str],
        groups: Sequence[tuple[str, Sequence[str]]],
        offset_us: int | str,
        run_id: str,
        expected: int,
        facts: Sequence[str],
        settle: tuple[str, str, int] | None,
        enqueue: Sequence[DispatchArgs],
        row: str,
        status: str,
        workflow: str,
        member: str,
        terminal: bool,
        checkpoint: tuple[int, str] | None,
        old_workflow: str,
        home_key: str | None = None,
    ) -> tuple[list[str], list[Any]]:
        """``commit.lua``'s keys and arguments: ``run_keys`` are KEYS[1..11]; ``groups``
        (queue, 7 keys) follow, then ``home_key`` if the commit claims the run's home.
        Everything but the clock offset goes as one JSON argument."""
        keys = list(run_keys)
        for _, group_keys in groups:
            keys.extend(group_keys)
        if home_key is not None:
            keys.append(home_key)
        request: dict[str, Any] = {
            "run": run_id, "expected": expected, "facts": facts,
            "enqueue": [[d.key, d.group, d.intent, d.json, d.delay_us, d.max_deliveries]
                        for d in enqueue],
            "row": row, "status": status, "workflow": workflow, "member": member,
            "terminal": terminal, "old_workflow": old_workflow,
            "queues": [name for name, _ in groups],
        }
        if settle is not None:
            request["settle"] = settle
        if checkpoint is not None:
            request["checkpoint"] = checkpoint
        if home_key is not None:
            request["claim_home"] = True
        # Strings go as they are (UTF-8, no escaping to ASCII).
        return keys, [offset_us, _json.dumps(request)]

    def enqueue(
        self,
        *,
        runs: Sequence[tuple[str, str, str, str]],
        groups: Sequence[tuple[str, Sequence[str]]],
        offset_us: int | str,
        dispatches: Sequence[DispatchArgs],
    ) -> list[Any]:
        """``enqueue.lua``: ``runs`` are (run id, home, runmeta key, rd key)."""
        keys: list[str] = []
        for _, _, meta, rd in runs:
            keys += [meta, rd]
        for _, group_keys in groups:
            keys.extend(group_keys)
        args: list[Any] = [offset_us, len(runs), len(groups), len(dispatches)]
        args += [run_id for run_id, _, _, _ in runs]
        args += [name for name, _ in groups]
        for d in dispatches:
            args += [d.key, d.run, d.group, d.intent, d.json, d.delay_us, d.max_deliveries]
        args += [home for _, home, _, _ in runs]
        return list(self.call("enqueue", keys, args))

    def claim(
        self,
        *,
        groups: Sequence[tuple[str, Sequence[str]]],
        offset_us: int | str,
        owner: str,
        lease_us: int,
        token_hashes: Sequence[str],
    ) -> tuple[Code, list[Claimed]]:
        """``claim.lua``: the leases granted, in claim order."""
        keys: list[str] = []
        for _, group_keys in groups:
            keys.extend(group_keys)
        args: list[Any] = [
            offset_us, owner, lease_us, len(token_hashes), *token_hashes,
            len(groups), *(name for name, _ in groups),
        ]
        reply = self.call("claim", keys, args)
        leases = [
            Claimed(
                queue=str(item[0]),
                key=str(item[1]),
                dispatch_json=str(item[2]),
                fence=int(item[3]),
                delivery=int(item[4]),
                expires_us=int(item[5]),
                home=str(item[6]),
                index=i,
            )
            for i, item in enumerate(reply[1:])
        ]
        return Code(reply[0]), leases

    def heartbeat(
        self, *, group: Sequence[str], offset_us: int | str, key: str, token_hash: str,
        lease_us: int,
    ) -> tuple[Code, int | None]:
        """``heartbeat.lua``: (code, new expiry µs)."""
        reply = self.call("heartbeat", group, [offset_us, key, token_hash, lease_us])
        return Code(reply[0]), (int(reply[1]) if len(reply) > 1 else None)

    def complete(
        self, *, group: Sequence[str], offset_us: int | str, key: str, token_hash: str
    ) -> Code:
        """``complete.lua``."""
        return Code(self.call("complete", group, [offset_us, key, token_hash])[0])

    def retry(
        self,
        *,
        group: Sequence[str],
        offset_us: int | str,
        key: str,
        token_hash: str,
        delay_us: int,
        reason: str | None,
        request_id: str,
    ) -> Code:
        """``retry.lua``."""
        args = [offset_us, key, token_hash, delay_us, reason or "", request_id]
        return Code(self.call("retry", group, args)[0])

    def dead_letter(
        self,
        *,
        group: Sequence[str],
        offset_us: int | str,
        key: str,
        token_hash: str,
        reason: str,
        request_id: str,
    ) -> Code:
        """``dead_letter.lua``."""
        args = [offset_us, key, token_hash, reason, request_id]
        return Code(self.call("dead_letter", group, args)[0])

    def redrive(
        self,
        *,
        group: Sequence[str],
        runmeta: str,
        offset_us: int | str,
        key: str,
        delay_us: int,
        request_id: str,
    ) -> list[Any]:
        """``redrive.lua``: the raw reply."""
        return list(self.call("redrive", [*group, runmeta], [offset_us, key, delay_us,
                                                               request_id]))

    def depth(self, group: Sequence[str], offset_us: int | str) -> list[Any]:
        """``depth.lua``: [visible, scheduled, claimed, dead, oldest µs or None]."""
        return list(self.call("depth", group, [offset_us]))

    def peek(
        self, groups: Sequence[Sequence[str]], offset_us: int | str
    ) -> tuple[bool, int, list[str]]:
        """``peek.lua``: (visible now, µs until next due or -1, cursor per group)."""
        keys = [k for g in groups for k in g]
        reply = self.call("peek", keys, [offset_us, len(groups)])
        return bool(reply[0]), int(reply[1]), [str(c) for c in reply[2:]]

    def read_run(self, ckpt: str, journal: str, run_id: str,
                 after: int | None) -> tuple[str | None, list[str]]:
        """``read_run.lua``: (the checkpoint as stored, if asked for (``after`` is
        ``None``) and present; the journal entries after it, or after ``after``)."""
        reply = self.call("read_run", [ckpt, journal], [run_id, -1 if after is None else after])
        return reply[0], list(reply[1])

    def queue_read_run(self, pipe: redis.client.Pipeline, ckpt: str, journal: str,
                       run_id: str, after: int | None) -> None:
        """Queue a ``read_run.lua`` call on a pipeline (its reply comes from ``execute``)."""
        pipe.evalsha(self._sha["read_run"], 2, ckpt, journal, run_id,
                     -1 if after is None else after)

    def list_runs(
        self, *, index: str, runs: str, upper: str, lower: str, limit: int, prefix: int
    ) -> list[tuple[str, str | None]]:
        """``list_runs.lua``: (member, row JSON) pairs, newest first."""
        reply = self.call("list_runs", [index, runs], [upper, lower, limit, prefix])
        return [(reply[i], reply[i + 1]) for i in range(0, len(reply), 2)]

    def dead_letters(
        self, dead: str, disp: str, start: str, count: int
    ) -> list[tuple[str, str, str | None]]:
        """``dead_letters.lua``: (entry id, dispatch key, record JSON) triples."""
        reply = self.call("dead_letters", [dead, disp], [start, count])
        return [(reply[i], reply[i + 1], reply[i + 2]) for i in range(0, len(reply), 3)]
