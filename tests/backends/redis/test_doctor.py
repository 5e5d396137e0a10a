"""``doctor``: what the server's persistence settings guarantee, and warnings."""

from __future__ import annotations

from pathlib import Path

import pytest
from _redis_server import RedisServer

from squidie_backends.redis import RedisStore, doctor

pytestmark = pytest.mark.redis


def findings_of(tmp_path: Path, *args: str) -> dict[str, str]:
    server = RedisServer(tmp_path, *args).start()
    try:
        store = RedisStore(server.url)
        try:
            found = doctor(store)
        finally:
            store.close()
    finally:
        server.stop()
    assert [f.level for f in found] == sorted(
        (f.level for f in found), key=["warning", "info", "ok"].index
    )
    return {f.code: f.level for f in found}


def test_the_test_server_has_persistence_off(store: RedisStore) -> None:
    found = doctor(store)
    assert found[0].code == "persistence_off" and found[0].level == "warning"
    assert "appendonly yes" in found[0].message
    assert found[0].to_dict()["code"] == "persistence_off"


def test_aof_always_is_fully_durable(tmp_path: Path) -> None:
    found = findings_of(tmp_path, "--appendonly", "yes", "--appendfsync", "always")
    assert found == {"aof_always": "ok", "server_version": "ok"}


def test_aof_everysec_may_lose_a_second_on_power_loss(tmp_path: Path) -> None:
    found = findings_of(tmp_path, "--appendonly", "yes", "--appendfsync", "everysec")
    assert found["aof_everysec"] == "info" and "warning" not in found.values()


def test_aof_without_fsync_warns(tmp_path: Path) -> None:
    found = findings_of(tmp_path, "--appendonly", "yes", "--appendfsync", "no")
    assert found["aof_no_fsync"] == "warning"


def test_rdb_snapshots_only_warn(tmp_path: Path) -> None:
    assert findings_of(tmp_path, "--save", "60 1")["rdb_only"] == "warning"


def test_an_evicting_memory_policy_warns(tmp_path: Path) -> None:
    found = findings_of(tmp_path, "--appendonly", "yes", "--appendfsync", "always",
                        "--maxmemory-policy", "allkeys-lru")
    assert found["eviction"] == "warning"


def test_without_config_access_info_is_used(tmp_path: Path) -> None:
    found = findings_of(tmp_path, "--appendonly", "yes", "--rename-command", "CONFIG", "")
    assert found["aof_fsync_unknown"] == "info" and "warning" not in found.values()
