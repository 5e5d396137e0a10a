"""The engine's cache of folded run state: one journal read per step, never stale."""

from __future__ import annotations

from typing import Any

import pytest

from squidie_core import Squidie, open_store
from squidie_core.errors import InvalidArgument

from . import _flows as f


class CountingStore:
    """Wraps a store and counts its journal reads."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads: list[tuple[str, int]] = []
        self.checkpoint_reads = 0

    def read(self, run_id: str, after_seq: int = 0) -> Any:
        self.reads.append((run_id, after_seq))
        return self.inner.read(run_id, after_seq)

    def read_checkpoint(self, run_id: str) -> Any:
        self.checkpoint_reads += 1
        return self.inner.read_checkpoint(run_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_step_after_another_engine_moved_the_run_sees_its_facts() -> None:
    store = open_store("memory://")
    mine, theirs = Squidie(store, workflows=[f.Three]), Squidie(store, workflows=[f.Three])
    run = mine.start(f.Three, "go", {"counter": 0})
    assert mine.execute_next(owner_id="mine", heartbeat_interval=0).step == "one"
    # Another process runs step two while this engine still caches the state after one.
    assert theirs.execute_next(owner_id="theirs", heartbeat_interval=0).step == "two"
    done = mine.execute_next(owner_id="mine", heartbeat_interval=0)
    assert (done.step, done.outcome, done.run_status) == ("three", "ok", "completed")
    # Step three ran on step two's output: a stale cached state would have given 2.
    assert mine.load(run.run_id).context["counter"] == 3
    assert mine._states == {}  # a run that ended leaves the cache


def test_a_cached_run_costs_one_journal_read_per_step() -> None:
    store = CountingStore(open_store("memory://"))
    engine = Squidie(store, workflows=[f.Three])  # type: ignore[arg-type]
    run = engine.start(f.Three, "go", {"counter": 0})
    store.reads.clear()
    store.checkpoint_reads = 0
    while engine.execute_next(owner_id="w", heartbeat_interval=0):
        pass
    # Step one loads the run (checkpoint, then every fact); steps two and three read
    # only the facts after the sequence cached when the step before committed.
    assert store.checkpoint_reads == 1
    afters = [after for _, after in store.reads]
    assert len(afters) == 3
    assert afters[0] == 0
    assert 0 < afters[1] < afters[2]
    assert engine.load(run.run_id).context["counter"] == 3


def test_the_cache_can_be_turned_off_and_is_bounded() -> None:
    store = CountingStore(open_store("memory://"))
    engine = Squidie(store, workflows=[f.Three], state_cache=0)  # type: ignore[arg-type]
    engine.start(f.Three)
    while engine.execute_next(owner_id="w", heartbeat_interval=0):
        pass
    assert store.checkpoint_reads == 3
    assert all(after == 0 for _, after in store.reads)
    small = Squidie(open_store("memory://"), workflows=[f.Three], state_cache=2)
    for _ in range(4):
        small.start(f.Three)
    for _ in range(4):  # step one of each run: four runs cached, the oldest two evicted
        small.execute_next(owner_id="w", heartbeat_interval=0)
    assert len(small._states) == 2
    with pytest.raises(InvalidArgument):
        Squidie(open_store("memory://"), state_cache=-1)
