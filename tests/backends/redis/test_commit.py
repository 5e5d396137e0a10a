"""The atomic commit: check order, fencing, terminal runs, resends.

``Commit`` checks, in order: an identical resend (replayed), the lease, the sequence,
a terminal run, the intent of enqueued keys. Each test below makes two checks fail at
once and shows the earlier one wins, and that nothing was written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from _redis_data import commit, dispatch, entry, facts
from _redis_proxy import LossyProxy

from squidie_backends.redis import RedisStore
from squidie_core.errors import (
    AppendConflict,
    IdempotencyConflict,
    LeaseLostError,
    RunTerminalError,
)
from squidie_core.storage import Checkpoint, Commit, Dispatch, Fact, Lease

pytestmark = pytest.mark.redis


def started(store: RedisStore, run: str = "r", *, steps: tuple[str, ...] = ("s",)) -> Lease:
    """A run with one fact and dispatches for ``steps``; the first one claimed."""
    store.commit(commit(run, 0, enqueue=[dispatch(run, s) for s in steps]))
    [lease] = store.claim("w", lease_for=30)
    return lease


def test_commit_appends_enqueues_and_settles_atomically(store: RedisStore) -> None:
    lease = started(store)
    result = store.commit(commit("r", 1, 2, settle=lease, enqueue=[dispatch("r", "next")]))
    assert (result.last_seq, result.replayed) == (3, False)
    states = {r.dispatch.step: r.state for r in store.dispatches("r")}
    assert states == {"s": "completed", "next": "available"}
    assert [f.seq for f in store.read("r")] == [1, 2, 3]
    assert [lease.key for lease in store.claim("w", lease_for=30)] == ["r:next:1"]


def test_identical_resend_is_replayed_before_any_other_check(store: RedisStore) -> None:
    lease = started(store)
    c = commit("r", 1, settle=lease, enqueue=[dispatch("r", "next")])
    store.commit(c)
    store.commit(commit("r", 2))  # the journal moved on; the lease is settled
    again = store.commit(c)
    assert again.replayed and again.last_seq == 3
    assert [r.dispatch.step for r in store.dispatches("r")] == ["s", "next"]


AWKWARD = "quote \" backslash \\ nul \x00 newline \n \u2028 é 漢字 🐙 \U0010ffff"


def test_the_request_document_carries_any_text_byte_for_byte(store: RedisStore) -> None:
    # commit.lua takes the commit as one JSON argument: the facts, the row, the
    # dispatch and the checkpoint inside it must come out of the Lua decoder unchanged,
    # or a resend would not be recognised as one.
    lease = started(store, "r")
    c = Commit(run_id="r", expected_seq=1,
               facts=[Fact(seq=2, type="note", at=1.5, body={"text": AWKWARD, AWKWARD: 1})],
               run=entry("r", workflow="wf", seq=2), settle=lease,
               enqueue=[dispatch("r", AWKWARD)],
               checkpoint=Checkpoint(seq=2, data=AWKWARD))
    assert store.commit(c).replayed is False
    assert store.read("r", after_seq=1)[0].body == {"text": AWKWARD, AWKWARD: 1}
    checkpoint = store.read_checkpoint("r")
    assert checkpoint == Checkpoint(seq=2, data=AWKWARD)
    assert [r.dispatch.step for r in store.dispatches("r")] == ["s", AWKWARD]
    assert store.commit(c).replayed is True


def test_lease_is_checked_before_the_sequence(store: RedisStore) -> None:
    lease = started(store)
    store.clock.advance(31)
    store.claim("other", lease_for=30)
    store.commit(commit("r", 1))  # and the sequence is stale too
    with pytest.raises(LeaseLostError):
        store.commit(commit("r", 1, settle=lease, kind="late"))
    assert store.head("r") == 2


def test_expired_lease_cannot_commit_even_if_nobody_took_it(store: RedisStore) -> None:
    lease = started(store)
    store.clock.advance(31)
    with pytest.raises(LeaseLostError, match="expired"):
        store.commit(commit("r", 1, settle=lease))
    assert store.head("r") == 1


def test_sequence_is_checked_before_a_terminal_run(store: RedisStore) -> None:
    store.commit(commit("r", 0))
    store.commit(commit("r", 1, status="completed"))
    with pytest.raises(AppendConflict) as info:
        store.commit(commit("r", 1, enqueue=[dispatch("r", "x")], kind="other"))
    assert info.value.actual_seq == 2


def test_terminal_run_is_checked_before_intent(store: RedisStore) -> None:
    store.commit(commit("r", 0, enqueue=[dispatch("r")]))
    store.commit(commit("r", 1, status="cancelled"))
    clash = Dispatch(**{**dispatch("r").to_dict(), "max_deliveries": 1})
    with pytest.raises(RunTerminalError) as info:
        store.commit(commit("r", 2, enqueue=[clash]))
    assert info.value.status == "cancelled"
    assert store.head("r") == 2


def test_intent_conflict_writes_nothing(store: RedisStore) -> None:
    lease = started(store)
    clash = Dispatch(**{**dispatch("r").to_dict(), "workflow": "another"})
    with pytest.raises(IdempotencyConflict):
        store.commit(commit("r", 1, settle=lease, enqueue=[dispatch("r", "ok"), clash]))
    assert store.head("r") == 1
    assert [r.dispatch.step for r in store.dispatches("r")] == ["s"]
    store.heartbeat(lease, lease_for=30)  # the lease was not settled


def test_terminal_commit_fails_every_other_dispatch(store: RedisStore) -> None:
    store.commit(commit("r", 0, enqueue=[
        dispatch("r", "a"), dispatch("r", "b"), dispatch("r", "later", delay=100),
    ]))
    store.enqueue([dispatch("r", "far", queue="elsewhere")])
    [a] = store.claim("wa", lease_for=30)
    [b] = store.claim("wb", lease_for=30)
    store.commit(commit("r", 1, status="failed", settle=a))
    states = {r.dispatch.step: (r.state, r.reason) for r in store.dispatches("r")}
    assert states == {
        "a": ("completed", None),
        "b": ("failed", "run_terminal"),
        "later": ("failed", "run_terminal"),
        "far": ("failed", "run_terminal"),
    }
    with pytest.raises(LeaseLostError):
        store.commit(commit("r", 2, settle=b))
    with pytest.raises(LeaseLostError):
        store.heartbeat(b, lease_for=30)
    store.clock.advance(200)
    assert store.claim("w", lease_for=30, queues=["default", "elsewhere"]) == []
    with pytest.raises(RunTerminalError):
        store.enqueue([dispatch("r", "more")])
    with pytest.raises(RunTerminalError):
        store.commit(commit("r", 2, enqueue=[dispatch("r", "more")]))
    depth = store.depth()
    assert all((d.visible, d.scheduled, d.claimed) == (0, 0, 0) for d in depth.values())


def test_terminal_commit_may_enqueue_and_fails_those_too(store: RedisStore) -> None:
    store.commit(commit("r", 0, status="completed", enqueue=[dispatch("r", "x")]))
    [rec] = store.dispatches("r")
    assert (rec.state, rec.reason) == ("failed", "run_terminal")


def test_receipts_after_the_end_still_append(store: RedisStore) -> None:
    store.commit(commit("r", 0, status="completed"))
    assert store.commit(commit("r", 1, status="completed", kind="replay_requested")).last_seq == 2


def test_concurrent_commits_at_the_same_sequence_exactly_one_wins(store: RedisStore) -> None:
    import threading

    store.commit(commit("r", 0))
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            store.commit(commit("r", 1, kind=f"writer-{i}"))
            outcomes.append("won")
        except AppendConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(outcomes) == ["conflict"] * 7 + ["won"]
    assert store.head("r") == 2


def test_commit_with_a_dispatch_in_another_queue(store: RedisStore) -> None:
    store.commit(commit("r", 0, enqueue=[dispatch("r", "here"), dispatch("r", "there",
                                                                         queue="q2")]))
    assert [x.key for x in store.claim("w", lease_for=30, queues=["q2"])] == ["r:there:1"]
    assert store.dispatches("r")[1].dispatch.queue == "q2"


# ------------------------------------------------------------------ lost replies


@pytest.fixture
def proxy() -> Iterator[LossyProxy]:
    p = LossyProxy()
    yield p
    p.close()


@pytest.fixture
def lossy(proxy: LossyProxy, unique_name: str,
          open_store: Callable[..., RedisStore]) -> RedisStore:
    """A store whose connection goes through the proxy (same namespace as ``store``)."""
    return RedisStore(f"redis://127.0.0.1:{proxy.port}/0?namespace={unique_name}",
                      retries=3, retry_backoff_cap=0.01)


def test_a_lost_commit_reply_is_resent_and_replayed(
    lossy: RedisStore, proxy: LossyProxy, store: RedisStore
) -> None:
    lease = started(lossy)
    proxy.lose_next_reply()
    result = lossy.commit(commit("r", 1, settle=lease, enqueue=[dispatch("r", "next")]))
    assert proxy.lost == 1
    assert result.replayed  # the second send found the first one's facts
    assert store.head("r") == 2
    assert [r.state for r in store.dispatches("r")] == ["completed", "available"]
    lossy.close()


def test_every_state_change_survives_a_lost_reply(
    lossy: RedisStore, proxy: LossyProxy, store: RedisStore
) -> None:
    def lose(op: Callable[[], object]) -> object:
        proxy.lose_next_reply()
        before = proxy.lost
        value = op()
        assert proxy.lost == before + 1
        return value

    lose(lambda: lossy.enqueue([dispatch("r", "a"), dispatch("r", "b")]))
    lose(lambda: lossy.append("r", facts(0, 1), 0))
    lose(lambda: lossy.write_checkpoint("r", Checkpoint(1, "cp")))
    leases = lose(lambda: lossy.claim("w", lease_for=30, limit=1))
    assert isinstance(leases, list) and [x.key for x in leases] == ["r:a:1"]
    [a] = leases
    # The resent claim answered with the same lease: its token is the current one.
    a = lose(lambda: lossy.heartbeat(a, lease_for=30))  # type: ignore[assignment]
    lose(lambda: lossy.retry(a, reason="again"))
    # b has been visible since the enqueue, a only since its retry: b comes first.
    [b, a2] = lossy.claim("w", lease_for=30, limit=2)
    assert (b.key, a2.key) == ("r:b:1", "r:a:1")
    lose(lambda: lossy.dead_letter(a2, "poison"))
    lose(lambda: lossy.complete(b))
    lose(lambda: lossy.redrive("r:a:1"))
    [a3] = lossy.claim("w", lease_for=30)
    lose(lambda: lossy.commit(commit("r", 1, status="completed", settle=a3)))

    records = {r.dispatch.step: r for r in store.dispatches("r")}
    assert [h["event"] for h in records["a"].history] == [
        "claimed", "retried", "claimed", "dead_lettered", "redriven", "claimed", "completed",
    ]
    assert (records["a"].fence, records["a"].deliveries) == (3, 1)
    assert [h["event"] for h in records["b"].history] == ["claimed", "completed"]
    assert store.head("r") == 2
    assert store.read_checkpoint("r") == Checkpoint(1, "cp")
    assert store.get_run("r") is not None and store.get_run("r").status == "completed"  # type: ignore[union-attr]
    lossy.close()


def test_a_start_is_one_round_trip_and_claims_the_runs_home(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's first commit claims its home queue inside ``commit.lua``: one command
    sent, and the home is there for any other client to find."""
    sent: list[str] = []
    execute = store._client.execute_command

    def record(*args: object, **kwargs: object) -> object:
        sent.append(str(args[0]))
        return execute(*args, **kwargs)

    store.commit(commit("q", 0, queue="reports"))  # the queue registered (once a store)
    monkeypatch.setattr(store._client, "execute_command", record)
    store.commit(commit("r", 0, queue="reports", enqueue=[dispatch("r", queue="reports")]))
    assert sent == ["EVALSHA"]
    assert store._client.get(store._keys.home("r")) == "reports"


def test_a_first_commit_here_of_a_run_homed_elsewhere_goes_to_its_home(
    open_store: Callable[..., RedisStore]
) -> None:
    """A client that does not know a run yet claims the home its commit names; the run's
    real home wins, the commit is sent again with that home's keys, and nothing is
    written under the home it named."""
    first = open_store()
    first.commit(commit("r", 0, queue="reports", enqueue=[dispatch("r", queue="reports")]))
    other = open_store()
    # A commit naming another queue for the run (possible through the raw store API):
    # the run is found where it lives, and the journal moves on there.
    assert other.commit(commit("r", 1, queue="default")).last_seq == 2
    assert [f.seq for f in first.read("r")] == [1, 2]
    assert other._client.get(other._keys.home("r")) == "reports"
    assert not other._client.exists(other._queue("default").journal("r"))
    # A start of the same run from a third client is the conflict it is, at its home.
    with pytest.raises(AppendConflict) as raised:
        open_store().commit(commit("r", 0, queue="default", kind="other"))
    assert raised.value.actual_seq == 2
    assert not other._client.exists(other._queue("default").journal("r"))
    # The same through the group commit, from a client that knows nothing.
    [result] = open_store().commit_many([commit("r", 2, queue="default")])
    assert not isinstance(result, Exception) and result.last_seq == 3
    assert [f.seq for f in first.read("r")] == [1, 2, 3]
