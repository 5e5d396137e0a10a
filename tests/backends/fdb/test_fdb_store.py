"""What is specific to the FDB adapter: replays under lost commits, chunked values, the
key layout, the error boundary, URLs and options, discovery, and the public surface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fdb
import fdb.tuple as fdbtuple
import pytest

import squidie_backends.fdb as public
from squidie_backends.fdb import SIM, FaultPlan, FaultRates, FDBStore, forget_cluster, open_store
from squidie_backends.fdb import _sim as sim
from squidie_backends.fdb._errors import FDB_ERRORS, map_fdb_errors, translate
from squidie_backends.fdb._layout import CHUNK_BYTES
from squidie_backends.fdb._retry import Attempt
from squidie_core import ManualClock, Squidie
from squidie_core._discovery import registry
from squidie_core.errors import (
    BackendUnavailable,
    CapabilityNotSupported,
    InvalidArgument,
    LeaseLostError,
    StoreError,
    ValueTooLarge,
)
from squidie_core.storage import Checkpoint, Commit, Fact, Store
from tests.backends.fdb.test_store import T0, claim_one, dispatch, entry, fact, start

LOST_REPLIES = ["unknown_applied", "unknown_dropped", "unknown_late", "timeout_late"]
ANY_FAULT = [*LOST_REPLIES, "not_committed", "too_old", "version_jump"]


class Scripted(FaultPlan):
    """Injects the queued commit outcomes, one per commit, then nothing."""

    def __init__(self) -> None:
        super().__init__(0, FaultRates.none())
        self.script: list[str | None] = []

    def on_commit(self, *, has_timeout: bool) -> str | None:
        outcome = self.script.pop(0) if self.script else None
        if outcome:
            self.injected[outcome] += 1
        return outcome

    def landing_delay(self) -> int:
        return 1


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def plan() -> Scripted:
    return Scripted()


@pytest.fixture
def store(clock: ManualClock, plan: Scripted) -> FDBStore:
    return open_store("fdb+sim://", clock=clock, faults=plan)


def lose_next_reply(store: FDBStore, plan: Scripted, outcome: str) -> None:
    plan.script.append(outcome)


def settle(store: FDBStore) -> None:
    store.database.cluster.land_pending()


# --------------------------------------------------------------------------- replays


@pytest.mark.parametrize("outcome", ANY_FAULT)
def test_commit_applies_once_whatever_happens_to_the_reply(
    store: FDBStore, plan: Scripted, outcome: str
) -> None:
    """A commit whose first attempt's reply is lost (applied, dropped, landing late) or
    that is refused before commit still applies exactly once and reports a first
    application (replayed=False): the retry recognises its own landed write."""
    start(store, "r", dispatch("r", "a"))
    lease = claim_one(store)
    lose_next_reply(store, plan, outcome)
    result = store.commit(Commit(run_id="r", expected_seq=1, facts=[fact(2), fact(3)],
                                 run=entry("r", last_seq=3), enqueue=[dispatch("r", "b")],
                                 settle=lease, checkpoint=Checkpoint(3, "s3")))
    settle(store)
    assert (result.last_seq, result.replayed) == (3, False)
    assert [f.seq for f in store.read("r")] == [1, 2, 3]
    assert [(d.dispatch.step, d.state) for d in store.dispatches("r")] == [
        ("a", "completed"), ("b", "available")]
    (completed,) = [d for d in store.dispatches("r") if d.dispatch.step == "a"]
    assert [h["event"] for h in completed.history] == ["claimed", "completed"]
    assert store.read_checkpoint("r") == Checkpoint(3, "s3")
    assert plan.injected[outcome] == 1


@pytest.mark.parametrize("outcome", ANY_FAULT)
def test_append_applies_once(store: FDBStore, plan: Scripted, outcome: str) -> None:
    """append() under a lost reply: the facts exist once and the call returns normally."""
    lose_next_reply(store, plan, outcome)
    assert store.append("r", [fact(1), fact(2)], 0) == 2
    settle(store)
    assert [f.seq for f in store.read("r")] == [1, 2]


@pytest.mark.parametrize("outcome", ANY_FAULT)
def test_claim_is_not_granted_twice(store: FDBStore, plan: Scripted, outcome: str) -> None:
    """A claim whose reply is lost returns the lease that landed (tokens are made before
    the retry loop), never a second delivery of another or the same dispatch."""
    store.enqueue([dispatch("r", "a"), dispatch("r", "b")])
    lose_next_reply(store, plan, outcome)
    lease = claim_one(store)
    settle(store)
    assert (lease.key, lease.fence, lease.delivery) == ("r:a:1", 1, 1)
    records = {d.dispatch.step: d for d in store.dispatches("r")}
    assert (records["a"].state, records["a"].fence, records["a"].deliveries) == ("claimed", 1, 1)
    assert records["b"].state == "available"
    store.complete(lease)


@pytest.mark.parametrize("outcome", ANY_FAULT)
@pytest.mark.parametrize("operation", ["heartbeat", "complete", "retry", "dead_letter"])
def test_lease_settlements_apply_once(
    store: FDBStore, plan: Scripted, clock: ManualClock, outcome: str, operation: str
) -> None:
    """heartbeat/complete/retry/dead_letter under a lost reply succeed once: a resend
    of a settlement that landed is recognised, not refused as a lost lease."""
    store.enqueue([dispatch("r", "a")])
    lease = claim_one(store, lease_for=30)
    clock.advance(5)
    lose_next_reply(store, plan, outcome)
    calls: dict[str, Callable[[], Any]] = {
        "heartbeat": lambda: store.heartbeat(lease, lease_for=30),
        "complete": lambda: store.complete(lease),
        "retry": lambda: store.retry(lease, delay=1, reason="later"),
        "dead_letter": lambda: store.dead_letter(lease, "bad"),
    }
    calls[operation]()
    settle(store)
    (rec,) = store.dispatches("r")
    expected = {"heartbeat": ("claimed", ["claimed"]),
                "complete": ("completed", ["claimed", "completed"]),
                "retry": ("scheduled", ["claimed", "retried"]),
                "dead_letter": ("dead_lettered", ["claimed", "dead_lettered"])}[operation]
    assert (rec.state, [h["event"] for h in rec.history]) == expected
    if operation == "heartbeat":
        assert rec.lease_expires_at == clock.now() + 30
    if operation == "dead_letter":
        assert [d.dispatch.key for d in store.dead_letters().items] == ["r:a:1"]


@pytest.mark.parametrize("outcome", ANY_FAULT)
def test_redrive_enqueue_and_checkpoints_apply_once(
    store: FDBStore, plan: Scripted, outcome: str
) -> None:
    """redrive (receipt), enqueue (idempotent by key), write/delete checkpoints under a
    lost reply: each takes effect once and returns what a single call returns."""
    store.enqueue([dispatch("r", "a")])
    store.dead_letter(claim_one(store), "bad")
    lose_next_reply(store, plan, outcome)
    store.redrive("r:a:1")
    settle(store)
    assert store.dead_letters().items == []
    assert [h["event"] for h in store.dispatches("r")[0].history][-1] == "redriven"

    lose_next_reply(store, plan, outcome)
    store.enqueue([dispatch("r", "b"), dispatch("r", "c")])
    settle(store)
    assert [d.dispatch.step for d in store.dispatches("r")] == ["a", "b", "c"]

    store.write_checkpoint("r", Checkpoint(1, "one"))
    store.write_checkpoint("q", Checkpoint(1, "q"))
    lose_next_reply(store, plan, outcome)
    assert store.delete_checkpoints("r") == 1
    settle(store)
    lose_next_reply(store, plan, outcome)
    assert store.delete_checkpoints() == 1
    settle(store)
    assert store.read_checkpoint("q") is None


def test_commit_resend_after_its_lease_was_settled_is_a_replay(store: FDBStore) -> None:
    """Check 1 comes first: a resend by the caller (not an internal retry) reports
    replayed=True even though its lease is no longer current."""
    start(store, "r", dispatch("r", "a"))
    lease = claim_one(store)
    c = Commit(run_id="r", expected_seq=1, facts=[fact(2)], run=entry("r", last_seq=2),
               settle=lease)
    assert store.commit(c).replayed is False
    assert store.commit(c).replayed is True


def test_timed_out_transactions_are_retried_then_reported(
    store: FDBStore, plan: Scripted
) -> None:
    """transaction_timed_out (1031) is not retried by on_error; the adapter starts a
    fresh transaction a few times (its operations are idempotent), then reports the
    backend unavailable with the FoundationDB code."""
    plan.script.extend(["timeout_late"] * 3)
    store.append("r", [fact(1)], 0)
    settle(store)
    assert store.read("r") == [fact(1)]
    plan.script.extend(["timeout_late"] * 6)
    with pytest.raises(BackendUnavailable) as info:
        store.append("r", [fact(2)], 1)
    assert info.value.fdb_code == 1031  # type: ignore[attr-defined]
    assert "transaction_timed_out" in str(info.value)
    settle(store)
    assert [f.seq for f in store.read("r")] == [1, 2]  # it did land, late: idempotent


def test_retry_limit_is_reported(clock: ManualClock, plan: Scripted) -> None:
    """Retries outlasting retry_limit surface as BackendUnavailable naming the code."""
    store = open_store("fdb+sim://", clock=clock, faults=plan, retry_limit=3)
    plan.script.extend(["not_committed"] * 4)
    with pytest.raises(BackendUnavailable, match="not_committed"):
        store.enqueue([dispatch("r")])
    assert store.dispatches("r") == []
    assert store.stats()["enqueue"] == {"calls": 1, "1020": 4}


def test_attempt_tracks_what_may_have_landed() -> None:
    """Attempt.after: only a lost reply *during commit* means an earlier attempt may
    have applied; a conflict only marks the call as contended."""
    a = Attempt().after(1020, during_commit=True)
    assert (a.number, a.maybe_landed, a.conflicted) == (1, False, True)
    assert a.after(1021, during_commit=True).maybe_landed
    assert a.after(1031, during_commit=True).maybe_landed
    assert not a.after(1031, during_commit=False).maybe_landed


# --------------------------------------------------------------------------- values


def test_large_values_are_chunked(store: FDBStore) -> None:
    """Values over 90 kB are stored in pieces under 100 kB (FoundationDB's limit) and
    read back whole; replacing a chunked value leaves no stale pieces."""
    big = "x" * 500_000
    store.append("r", [fact(1, "big", blob=big), fact(2)], 0)
    assert store.read("r")[0].body == {"blob": big}
    assert store.read("r", after_seq=1) == [fact(2)]
    cluster = store.database.cluster
    assert max(len(v) for v in cluster.dump().values()) <= CHUNK_BYTES + 1
    store.write_checkpoint("r", Checkpoint(2, "y" * 1_500_000))
    assert store.read_checkpoint("r") == Checkpoint(2, "y" * 1_500_000)
    keys_before = len(cluster.dump())
    store.write_checkpoint("r", Checkpoint(3, "small"))
    assert store.read_checkpoint("r") == Checkpoint(3, "small")
    assert keys_before - len(cluster.dump()) == 17  # the 1.5 MB value's pieces are gone


def test_values_over_the_limit_are_refused_clearly(store: FDBStore) -> None:
    """A fact or checkpoint over 2 MB encoded is refused with ValueTooLarge and nothing
    is written; a commit's oversized checkpoint is skipped (facts are the truth)."""
    with pytest.raises(ValueTooLarge) as info:
        store.append("r", [fact(1, "big", blob="x" * 2_100_000)], 0)
    assert info.value.limit == 2_000_000 and info.value.size > 2_000_000
    assert store.head("r") == 0
    with pytest.raises(ValueTooLarge):
        store.write_checkpoint("r", Checkpoint(1, "x" * 2_100_000))
    result = store.commit(Commit(run_id="r", expected_seq=0, facts=[fact(1)], run=entry("r"),
                                 checkpoint=Checkpoint(1, "x" * 2_100_000)))
    assert result.last_seq == 1 and store.read_checkpoint("r") is None
    assert store.capabilities.max_value_bytes == 2_000_000  # what is refused is declared


def test_long_journals_are_read_in_pages(store: FDBStore) -> None:
    """A journal longer than one read page (2,000 rows) comes back whole and in order,
    chunked facts included."""
    facts = [fact(i, "big" if i % 700 == 0 else "note", blob="z" * (200_000 if i % 700 == 0
                                                                    else 10))
             for i in range(1, 2_501)]
    for lo in range(0, 2_500, 500):
        store.append("r", facts[lo:lo + 500], lo)
    assert store.read("r") == facts
    assert store.read("r", after_seq=1999) == facts[1999:]
    big = [fact(i, "big", blob=str(i) * 450_000) for i in range(1, 4)]
    big += [fact(i, "big", blob="b" * 900_000) for i in range(4, 21)]
    for lo in range(0, 20, 2):
        store.append("big", big[lo:lo + 2], lo)
    assert store.read("big") == big  # ~16 MB: pages cut by bytes, inside chunked facts
    assert store.stats()["read"]["calls"] >= 4


# --------------------------------------------------------------------------- layout


def test_every_key_lives_in_the_namespace_and_is_a_tuple(clock: ManualClock) -> None:
    """The layout is tuple-encoded under ("squidie", namespace); two namespaces on one
    cluster never see each other; clear_namespace removes only its own keys."""
    try:
        a = open_store("fdb+sim://?cluster=layout&namespace=a", clock=clock)
        b = open_store("fdb+sim://", cluster="layout", namespace="b", clock=clock)
        for s in (a, b):
            start(s, "r", dispatch("r", "x"), dispatch("r", "y", delay=5))
            s.dead_letter(claim_one(s), "bad")
            s.write_checkpoint("r", Checkpoint(1, "c"))
        assert a.database.cluster is b.database.cluster
        keys = list(a.database.cluster.dump())
        assert {fdbtuple.unpack(k)[:2] for k in keys} == {("squidie", "a"), ("squidie", "b")}
        assert {fdbtuple.unpack(k)[2] for k in keys} >= {
            "m", "h", "j", "cs", "cd", "r", "i", "d", "v", "rd", "x", "xq", "xp", "q"}
        assert [d.dispatch.key for d in a.dead_letters().items] == ["r:x:1"]
        a.clear_namespace()
        assert a.get_run("r") is None and a.dispatches("r") == []
        assert b.get_run("r") is not None and len(b.dispatches("r")) == 2
    finally:
        forget_cluster("layout")


def test_claim_ties_are_broken_by_key(store: FDBStore) -> None:
    """Same priority and visibility: the dispatch key decides (the contract's tiebreak)."""
    store.enqueue([dispatch("r", "b"), dispatch("r", "a"), dispatch("r", "c")])
    assert [lease.key for lease in store.claim("w", lease_for=5, limit=3)] == [
        "r:a:1", "r:b:1", "r:c:1"]


def test_capabilities() -> None:
    """The simulator is not durable nor shared across processes; a cluster is both."""
    sim_store = open_store("fdb+sim://")
    assert sim_store.capabilities.priorities and not sim_store.capabilities.durable
    assert not sim_store.capabilities.multi_process and not sim_store.capabilities.wake_up
    cluster = FDBStore(SIM.open(), SIM, simulated=False)
    assert cluster.capabilities.durable and cluster.capabilities.multi_node
    with pytest.raises(CapabilityNotSupported):
        sim_store.wait_for_work(["default"], 0.01)


# --------------------------------------------------------------------------- errors


def test_every_error_the_adapter_can_meet_is_mapped() -> None:
    """Each code the simulator raises has a mapping, under FoundationDB's own name."""
    assert set(sim.ERRORS) <= set(FDB_ERRORS)
    for code, name in sim.ERRORS.items():
        assert FDB_ERRORS[code][0] == name
        error = translate(code, backend="fdb", what="op")
        assert isinstance(error, FDB_ERRORS[code][1]) and error.fdb_code == code  # type: ignore[attr-defined]
        assert name in str(error)


def test_retryable_codes_become_backend_unavailable() -> None:
    """What on_error retries can only escape as 'unavailable'; size errors are
    ValueTooLarge; API misuse is a StoreError."""
    for code in sim.RETRYABLE | {1031}:
        assert isinstance(translate(code, backend="fdb", what="x"), BackendUnavailable)
    for code in (2101, 2102, 2103):
        error = translate(code, backend="fdb", what="commit")
        assert isinstance(error, ValueTooLarge) and error.limit in (10_000_000, 10_000, 100_000)
    assert type(translate(2000, backend="fdb", what="x")) is StoreError
    assert type(translate(9999, backend="fdb", what="x")) is StoreError


def test_the_boundary_passes_squidie_and_foreign_errors_through() -> None:
    """map_fdb_errors translates FDBError only: Squidie errors and others pass as they are."""
    with pytest.raises(LeaseLostError), map_fdb_errors(sim.FDBError, backend="fdb", what="x"):
        raise LeaseLostError("k")
    with pytest.raises(KeyError), map_fdb_errors(sim.FDBError, backend="fdb", what="x"):
        raise KeyError("k")
    with pytest.raises(BackendUnavailable) as info, map_fdb_errors(
        sim.FDBError, backend="fdb", what="claim"
    ):
        raise sim.FDBError(1020)
    assert isinstance(info.value.__cause__, sim.FDBError)


# --------------------------------------------------------------------------- URLs


def test_url_options_and_keywords(clock: ManualClock) -> None:
    """Options come as query parameters or keywords (keywords win)."""
    try:
        s = open_store("fdb+sim://?namespace=app&cluster=urls&faults=1&seed=3&timeout_ms=900",
                       clock=clock, namespace="other")
        assert s.layout.namespace == "other" and s.clock is clock
        assert isinstance(s.database.faults, FaultPlan) and s.database.faults.seed == 3
        assert s._runner.timeout_ms == 900
        assert open_store("fdb+sim://?faults=0").database.faults is None
    finally:
        forget_cluster("urls")


@pytest.mark.parametrize(("url", "options", "match"), [
    ("fdb+sim://?namspace=x", {}, "did you mean 'namespace'"),
    ("fdb+sim://some/path", {}, "takes no path"),
    ("fdb+sim://?faults=lots", {}, "rate multiplier"),
    ("fdb+sim://?seed=x&faults=1", {}, "integer"),
    ("fdb://", {"cluster": "x"}, "unknown option for fdb://"),
    ("redis://x", {}, "not an fdb"),
])
def test_bad_urls_and_options(url: str, options: dict[str, Any], match: str) -> None:
    """Bad URLs and options are refused with a clear InvalidArgument."""
    with pytest.raises(InvalidArgument, match=match):
        open_store(url, **options)


def test_a_cluster_url_without_the_client_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without libfdb_c the binding cannot select an API version: the error says what to
    install and points at the simulator; an older API version already selected is
    refused too."""
    def no_library(version: int) -> None:
        raise Exception("Unable to locate the FoundationDB API shared library!")

    monkeypatch.setattr(fdb, "is_api_version_selected", lambda: False)
    monkeypatch.setattr(fdb, "api_version", no_library)
    with pytest.raises(BackendUnavailable, match=r"libfdb_c.*fdb\+sim"):
        open_store("fdb:///etc/foundationdb/fdb.cluster")
    monkeypatch.setattr(fdb, "is_api_version_selected", lambda: True)
    monkeypatch.setattr(fdb, "get_api_version", lambda: 620)
    with pytest.raises(BackendUnavailable, match="730 or newer"):
        open_store("fdb://")


def test_discovery_opens_both_schemes(clock: ManualClock) -> None:
    """The plugin registers fdb and fdb+sim; Squidie.from_url opens the simulator."""
    found = {b.info.name: b for b in registry().backends()}
    assert found["fdb"].info.schemes == ("fdb",) and found["fdb"].info.extra == "fdb"
    assert found["fdb-sim"].info.schemes == ("fdb+sim",)
    assert found["fdb"].info.capabilities is not None
    assert found["fdb"].info.capabilities.multi_node
    engine = Squidie.from_url("fdb+sim://", store_options={"clock": clock})
    assert isinstance(engine.store, FDBStore) and engine.store.clock is clock
    assert isinstance(engine.store, Store)


def test_public_surface() -> None:
    """__all__ lists exactly the public names, and each exists."""
    assert sorted(public.__all__) == sorted(
        ["FDBStore", "SIM", "FaultPlan", "FaultRates", "SimCluster", "SimDatabase",
         "enable_versionstamps", "forget_cluster", "open_store", "shared_cluster"])
    for module in (public, sim):
        for name in module.__all__:
            assert hasattr(module, name), name


def test_repr_names_no_secrets() -> None:
    """A store's repr names its kind and namespace only."""
    s = open_store("fdb+sim://?namespace=ns")
    assert repr(s) == "FDBStore(simulated private sim cluster, namespace='ns')"


def test_facts_round_trip_exactly(store: FDBStore) -> None:
    """Fact bodies come back equal (unicode, nesting, floats)."""
    body = {"ünï": "cødé ✓", "n": [1, 2.5, {"deep": [None, True]}], "f": 1e-9}
    store.append("r", [Fact(seq=1, type="x", at=T0 + 0.123456, body=body)], 0)
    assert store.read("r") == [Fact(seq=1, type="x", at=T0 + 0.123456, body=body)]
