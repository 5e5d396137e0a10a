"""The Redis key layout: every key of a namespace, and which keys share a hash tag.

A namespace ``P`` (option ``namespace``, default ``squidie``) prefixes every key, so
several applications or tenants share one Redis and an ACL pattern ``~P:*`` confines one.

**One hash tag per queue.** Everything a queue's scripts touch carries the tag
``{P:<queue>}``: the queue's delivery structures *and* the journals, index rows and
checkpoints of the runs whose *home* is that queue (the queue of the run's first write;
the runtime keeps every dispatch of a run in the run's queue). So claim, heartbeat,
complete, retry, dead-letter, redrive, enqueue and the atomic commit each touch one slot
and work unchanged on Redis Cluster. A queue cannot be spread over several shards — a
stream is one key anyway, so a queue's delivery is bounded by one shard whatever the
layout; scale out with more queues.

Keys (``<q>``, ``<run>``, ``<wf>`` are percent-encoded, see ``encode``)::

    P:layout                       STRING  layout version ("1")
    P:queues                       SET     every queue name written to (for listings)
    P:home:<run>                   STRING  the run's home queue (write-once, SET NX)

    P:{P:<q>}:ready                STREAM  visible dispatches; consumer group "squidie"
    P:{P:<q>}:delayed              ZSET    pending dispatches not yet in `ready`, by visible_at
    P:{P:<q>}:leases               ZSET    claimed dispatches, by lease expiry
    P:{P:<q>}:disp                 HASH    dispatch key -> record (JSON)
    P:{P:<q>}:meta                 HASH    cursor (group's last delivered id), dlast
    P:{P:<q>}:dead                 STREAM  dead letters (key, run, reason, deliveries, at)
    P:{P:<q>}:tokens               HASH    token hash of each current lease -> dispatch key

    P:{P:<q>}:j:<run>              LIST    the run's journal: one fact (JSON) per element
    P:{P:<q>}:rd:<run>             HASH    the run's dispatches: key -> "<n>|<queue>"
    P:{P:<q>}:runs                 HASH    run id -> index row (JSON)
    P:{P:<q>}:runmeta              HASH    run id -> {st, wf, m} (status, workflow, member)
    P:{P:<q>}:ckpt                 HASH    run id -> "<seq>\\n<checkpoint data>"
    P:{P:<q>}:ix                   ZSET    "<created>|<run>" (score 0, BYLEX), all runs
    P:{P:<q>}:ixs                  ZSET    "<status>|<created>|<run>"
    P:{P:<q>}:ixw:<wf>             ZSET    "<created>|<run>" of one workflow
    P:{P:<q>}:ixws:<wf>            ZSET    "<status>|<created>|<run>" of one workflow

``<created>`` is the run's ``created_at`` as 16 hex digits that sort like the float
(``sortable_time``), so a lexicographic range is a (created_at, run id) range.

The three un-tagged keys are single-key commands (``SET NX``, ``SADD``, ``GET``), issued
before the script that needs them; they may live on any shard. The exception, on a
standalone server: a run's first commit from a client claims ``home:<run>`` inside
``commit.lua`` (one round trip instead of two); see ``RedisStore._home_in_script``.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

from squidie_core.errors import InvalidArgument

__all__ = ["LAYOUT_VERSION", "Keys", "QueueKeys", "encode", "index_member", "sortable_time"]

#: Bumped when the layout changes incompatibly; a store refuses another version.
LAYOUT_VERSION = "1"

_NAMESPACE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# What ``quote`` leaves alone: a name made only of these is its own encoding.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def encode(name: str) -> str:
    """Percent-encode a name for use inside a key (``:``, ``{``, ``}``, ``%``... escaped).

    The encoding is injective, so distinct names never share a key, and a name can never
    close a hash tag early. UUIDs and plain identifiers pass through unchanged (and are
    recognised without calling ``quote``, which a commit would otherwise call for
    every key it names).
    """
    if _UNRESERVED.fullmatch(name):
        return name
    return quote(name, safe="-_.~")


def sortable_time(value: float) -> str:
    """Return 16 hex digits whose string order is the numeric order of ``value``."""
    (bits,) = struct.unpack(">Q", struct.pack(">d", float(value)))
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | 0x8000000000000000
    return f"{bits:016x}"


def index_member(created_at: float, run_id: str) -> str:
    """Return the run-index member of a run (``<created>|<run id>``)."""
    return f"{sortable_time(created_at)}|{run_id}"


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one queue, all sharing the queue's hash tag.

    Attributes:
        name: The queue name.
        tag: The common prefix ``P:{P:<queue>}:``.
    """

    name: str
    tag: str

    @property
    def group(self) -> tuple[str, str, str, str, str, str, str]:
        """The seven keys scripts take as a "queue group" (``lua/includes/common.lua``)."""
        t = self.tag
        return (t + "disp", t + "ready", t + "delayed", t + "leases", t + "meta", t + "dead",
                t + "tokens")

    @property
    def disp(self) -> str:
        """HASH of dispatch records."""
        return self.tag + "disp"

    @property
    def ready(self) -> str:
        """STREAM of visible dispatches."""
        return self.tag + "ready"

    @property
    def dead(self) -> str:
        """STREAM of dead letters."""
        return self.tag + "dead"

    @property
    def runs(self) -> str:
        """HASH of index rows of the runs homed here."""
        return self.tag + "runs"

    @property
    def runmeta(self) -> str:
        """HASH of index bookkeeping of the runs homed here."""
        return self.tag + "runmeta"

    @property
    def ckpt(self) -> str:
        """HASH of checkpoints of the runs homed here."""
        return self.tag + "ckpt"

    @property
    def ix(self) -> str:
        """Index of every run homed here."""
        return self.tag + "ix"

    @property
    def ixs(self) -> str:
        """Index by status."""
        return self.tag + "ixs"

    def ixw(self, workflow: str) -> str:
        """Index of one workflow."""
        return f"{self.tag}ixw:{encode(workflow)}"

    def ixws(self, workflow: str) -> str:
        """Index of one workflow, by status."""
        return f"{self.tag}ixws:{encode(workflow)}"

    def journal(self, run_id: str) -> str:
        """LIST journal of a run homed here."""
        return f"{self.tag}j:{encode(run_id)}"

    def run_dispatches(self, run_id: str) -> str:
        """HASH of a run's dispatches (key -> "<n>|<queue>")."""
        return f"{self.tag}rd:{encode(run_id)}"



class Keys:
    """The key layout of one namespace.

    Args:
        namespace: ``[A-Za-z0-9_.-]``, 1 to 64 characters.

    Raises:
        InvalidArgument: the namespace has other characters (``:`` and braces would make
            keys of two namespaces collide or break the hash tags).
    """

    def __init__(self, namespace: str) -> None:
        if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
            raise InvalidArgument(
                "namespace", "use 1 to 64 characters from A-Z a-z 0-9 _ . -"
            )
        self.namespace = namespace
        self.prefix = namespace + ":"
        self.layout = self.prefix + "layout"
        self.queues = self.prefix + "queues"
        self._queue = lru_cache(maxsize=4096)(self._make_queue)

    def home(self, run_id: str) -> str:
        """STRING naming a run's home queue."""
        return f"{self.prefix}home:{encode(run_id)}"

    def queue(self, name: str) -> QueueKeys:
        """The keys of queue ``name``."""
        return self._queue(name)

    def _make_queue(self, name: str) -> QueueKeys:
        return QueueKeys(name=name, tag=f"{self.prefix}{{{self.namespace}:{encode(name)}}}:")

    def pattern(self) -> str:
        """A ``SCAN MATCH`` pattern for every key of the namespace."""
        return self.prefix + "*"
