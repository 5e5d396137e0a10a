"""Cluster readiness without a cluster: every script call of the runtime's flows touches
exactly one hash slot (computed with CRC16 as Redis Cluster does).

No Redis Cluster can run here; this checks the key design that makes the store
cluster-compatible, not a cluster deployment.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import _redis_flows as flows
import pytest
from redis.crc import key_slot

from squidie_backends.redis import RedisStore
from squidie_backends.redis._keys import encode
from squidie_core import Squidie
from squidie_core.storage import Checkpoint, Dispatch

pytestmark = pytest.mark.redis


@pytest.fixture(params=["standalone", "cluster"])
def slots(store: RedisStore, monkeypatch: pytest.MonkeyPatch,
          request: pytest.FixtureRequest) -> Counter[str]:
    """Fail any script call whose keys span several slots; count calls per script.

    On a standalone server (the store's default) a run's first commit also claims the
    run's home, an untagged single key passed last; with the Cluster path the store
    claims it with a command of its own first, and every call is one slot."""
    calls: Counter[str] = Counter()
    original = store._scripts.call
    standalone = request.param == "standalone"
    if not standalone:
        monkeypatch.setattr(store, "_home_in_script", False)
    home = store._keys.home("")

    def checked(name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        tagged = keys
        if name == "commit" and keys[-1].startswith(home):
            assert standalone, "commit.lua claimed a run's home on the Cluster path"
            calls["home claimed"] += 1
            tagged = keys[:-1]
        used = {key_slot(k.encode()) for k in tagged}
        assert len(used) == 1, f"{name}.lua touches {len(used)} slots: {keys}"
        calls[name] += 1
        return original(name, keys, args)

    monkeypatch.setattr(store._scripts, "call", checked)
    return calls


def test_every_script_of_the_runtime_flows_touches_one_slot(
    store: RedisStore, slots: Counter[str]
) -> None:
    engine = Squidie(store, workflows=[flows.ThreeSteps, flows.Flaky, flows.OtherQueue,
                                       flows.Approval])
    runs = [engine.start(flows.ThreeSteps).run_id, engine.start(flows.Flaky).run_id,
            engine.start(flows.OtherQueue).run_id, engine.start(flows.Approval).run_id]
    for queues in (["default"], ["reports"]):
        while engine.execute_next(owner_id="w", queues=queues, heartbeat_interval=0):
            pass
    store.clock.advance(10)
    while engine.execute_next(owner_id="w", queues=["default"], heartbeat_interval=0):
        pass
    engine.cancel(runs[3], actor="ops")
    # Delivery operations outside the engine, one queue at a time.
    start = engine.start(flows.ThreeSteps)
    [lease] = store.claim("w", lease_for=30, queues=["default"])
    lease = store.heartbeat(lease, lease_for=30)
    store.retry(lease, delay=0)
    [lease] = store.claim("w", lease_for=30, queues=["default"])
    store.dead_letter(lease, "poison")
    store.redrive(lease.key)
    [lease] = store.claim("w", lease_for=30, queues=["default"])
    store.complete(lease)
    store.enqueue([Dispatch.from_dict({**lease.dispatch.to_dict(), "key": "extra",
                                       "step": "a", "attempt": 9})])
    store.append(start.run_id, [], store.head(start.run_id))
    store.write_checkpoint(start.run_id, Checkpoint(1, "cp"))
    store.delete_checkpoints(start.run_id)
    store.depth(["default"])
    store.dead_letters(queue="default")
    store.list_runs()
    store.wait_for_work(["default"], 0.01)
    statuses = {engine.inspect_run(r)["status"] for r in runs}
    assert statuses == {"completed", "cancelled"}
    assert engine.inspect_run(start.run_id)["status"] == "started"
    from squidie_backends.redis._scripts import SCRIPT_NAMES

    assert set(slots) - {"home claimed"} == set(SCRIPT_NAMES)
    # The five starts' first commits claimed their homes in the script, or none did.
    assert slots["home claimed"] == (5 if store._home_in_script else 0)


def test_a_run_and_its_queue_share_one_slot(store: RedisStore) -> None:
    qk = store._queue("payments")
    keys = [*qk.group, qk.journal("run-1"), qk.run_dispatches("run-1"), qk.runs, qk.ckpt,
            qk.runmeta, qk.ix, qk.ixs, qk.ixw("wf"), qk.ixws("wf")]
    assert len({key_slot(k.encode()) for k in keys}) == 1
    weird = store._queue("a}b{c:d%")
    assert len({key_slot(k.encode()) for k in [*weird.group, weird.journal("x}")]}) == 1
    assert weird.ready != store._queue("a").ready


@pytest.mark.parametrize("name", [
    "3f2b8c1e-1111-2222-3333-444455556666", "plain.name_v2~x", "", "a:b", "{tag}", "50%",
    "é", "🐙", "a b", "a/b", "x\x00y",
])
def test_a_name_in_a_key_is_its_percent_encoding(name: str) -> None:
    # Plain names skip ``quote`` but must encode exactly as it would: the layout on a
    # server written by an earlier version names the same keys.
    assert encode(name) == quote(name, safe="-_.~")
