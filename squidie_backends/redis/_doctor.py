"""Configuration checks of a Redis store's server, for ``squidie doctor``.

Squidie's durability on Redis is the server's: a commit is acknowledged once Redis has
applied it in memory, and survives a restart only as far as the server's persistence
settings say. ``doctor(store)`` reads them and says what they guarantee:

=============================================  =========================================
``appendonly yes`` + ``appendfsync always``    every acknowledged commit survives a crash
                                               of Redis or of the machine (fsync before
                                               the reply)
``appendonly yes`` + ``appendfsync everysec``  a Redis crash loses nothing acknowledged;
                                               a power loss or kernel crash loses up to
                                               about one second of commits
``appendonly yes`` + ``appendfsync no``        the kernel flushes when it likes (about
                                               30 s on Linux) for a machine crash
RDB snapshots only (``save ...``)              everything since the last snapshot
no persistence                                 everything, on any restart
=============================================  =========================================

It also warns when ``maxmemory-policy`` lets Redis evict keys (an evicted journal is a
lost run). Where ``CONFIG`` is not allowed (managed services), ``INFO`` is used instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import redis

if TYPE_CHECKING:
    from squidie_backends.redis._store import RedisStore

__all__ = ["Finding", "doctor"]


@dataclass(frozen=True)
class Finding:
    """One observation about the server.

    Attributes:
        level: ``ok``, ``info`` or ``warning``.
        code: A stable identifier (``persistence_off``, ``aof_everysec``...).
        message: What it means for Squidie's data, and what to change.
    """

    level: str
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Return the finding as JSON-ready data."""
        return asdict(self)


def _settings(client: redis.Redis) -> dict[str, str]:
    try:
        found = client.config_get("*")
        return {str(k): str(v) for k, v in found.items()}
    except redis.exceptions.ResponseError:
        # CONFIG is renamed or forbidden (managed Redis): read what INFO tells.
        info = client.info("persistence")
        memory = client.info("memory")
        settings = {
            "appendonly": "yes" if int(info.get("aof_enabled", 0)) else "no",
            "appendfsync": "unknown",
            "maxmemory-policy": str(memory.get("maxmemory_policy", "")),
        }
        if int(info.get("rdb_saves", 0)) or info.get("rdb_last_save_time"):
            settings["save"] = "unknown"
        return settings


def doctor(store: RedisStore) -> list[Finding]:
    """Check the server behind ``store``; warnings first.

    Raises:
        BackendUnavailable: the server cannot be reached.
    """
    client = store._client
    with store._errors():
        settings = _settings(client)
        version = ".".join(map(str, store.server_version))
    findings = [Finding("ok", "server_version", f"Redis {version}")]
    aof = settings.get("appendonly", "no") == "yes"
    fsync = settings.get("appendfsync", "everysec")
    save = settings.get("save", "").strip()
    if not aof and not save:
        findings.append(Finding(
            "warning", "persistence_off",
            "persistence is off (appendonly no, no RDB snapshots): a restart of Redis "
            "loses every run, journal and queue; set `appendonly yes` and "
            "`appendfsync always` (or `everysec`)",
        ))
    elif not aof:
        findings.append(Finding(
            "warning", "rdb_only",
            "only RDB snapshots are on: a crash loses every commit since the last "
            f"snapshot (save {save!r}); set `appendonly yes`",
        ))
    elif fsync == "always":
        findings.append(Finding(
            "ok", "aof_always",
            "appendonly yes, appendfsync always: every acknowledged commit is on disk",
        ))
    elif fsync == "unknown":
        findings.append(Finding(
            "info", "aof_fsync_unknown",
            "appendonly yes; the appendfsync policy cannot be read without CONFIG: "
            "`always` keeps every acknowledged commit, `everysec` may lose ~1 s on power loss",
        ))
    elif fsync == "everysec":
        findings.append(Finding(
            "info", "aof_everysec",
            "appendonly yes, appendfsync everysec: a Redis crash loses nothing "
            "acknowledged; a power loss or kernel crash loses up to ~1 s of commits",
        ))
    else:
        findings.append(Finding(
            "warning", "aof_no_fsync",
            f"appendonly yes, appendfsync {fsync}: the kernel decides when commits reach "
            "the disk (~30 s); set `appendfsync always` or `everysec`",
        ))
    policy = settings.get("maxmemory-policy", "noeviction")
    if policy and policy != "noeviction":
        findings.append(Finding(
            "warning", "eviction",
            f"maxmemory-policy is {policy}: under memory pressure Redis may evict "
            "journals and queues; set `maxmemory-policy noeviction`",
        ))
    if settings.get("cluster-enabled") == "yes":
        findings.append(Finding(
            "info", "cluster",
            "Redis Cluster: every script touches one slot (a queue's hash tag); a queue "
            "and the runs homed in it live on one shard",
        ))
    order = {"warning": 0, "info": 1, "ok": 2}
    return sorted(findings, key=lambda f: order.get(f.level, 3))
