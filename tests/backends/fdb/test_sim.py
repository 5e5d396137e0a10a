"""The simulator against FoundationDB's documented behaviour.

Each test names the documented behaviour it checks. Sources:

- [DG] Developer Guide, https://apple.github.io/foundationdb/developer-guide.html
  (transactions, conflict ranges, snapshot reads, versionstamps, atomic operations);
- [KL] Known Limitations, https://apple.github.io/foundationdb/known-limitations.html;
- [EC] Error Codes, https://apple.github.io/foundationdb/api-error-codes.html;
- [PY] Python API, https://apple.github.io/foundationdb/api-python.html (``on_error``,
  ``@fdb.transactional``, options, ``Transaction.snapshot``);
- [WIKI] apple/foundationdb wiki "Difference between snapshot reads and regular reads";
- [RYW] ``ReadYourWrites.actor.cpp`` ``updateConflictMap``: a read of a key the
  transaction itself set or cleared adds no read-conflict range.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import fdb.tuple as fdbtuple
import pytest

from squidie_backends.fdb._sim import (
    MVCC_WINDOW,
    RECOVERY_JUMP,
    SIM,
    FaultPlan,
    FaultRates,
    FDBError,
    SimDatabase,
    forget_cluster,
)

K = fdbtuple.pack


def code_of(fn: Callable[[], Any]) -> int:
    with pytest.raises(FDBError) as info:
        fn()
    return int(info.value.code)


@pytest.fixture
def db() -> SimDatabase:
    return SIM.open()


def put(db: SimDatabase, **items: bytes) -> None:
    tr = db.create_transaction()
    for k, v in items.items():
        tr.set(k.encode(), v)
    tr.commit().wait()


# --------------------------------------------------------------------------- MVCC, RYW


def test_reads_see_a_snapshot_at_the_read_version(db: SimDatabase) -> None:
    """[DG] All reads of a transaction see the database as of its read version: a
    commit by another transaction after it is not visible to it."""
    put(db, a=b"1")
    t1 = db.create_transaction()
    assert t1.get(b"a").wait().value == b"1"
    put(db, a=b"2", b=b"new")
    assert t1.get(b"a").value == b"1"
    assert t1.get(b"b").present() is False
    assert [kv.key for kv in t1.get_range(b"", b"\xff")] == [b"a"]
    assert db.create_transaction().get(b"a").value == b"2"


def test_read_your_writes(db: SimDatabase) -> None:
    """[DG] Reads in a transaction see its own earlier writes (sets, clears, ranges)."""
    put(db, a=b"1", b=b"2", c=b"3", d=b"4")
    tr = db.create_transaction()
    tr.set(b"b", b"two")
    tr.clear(b"c")
    tr.set(b"e", b"5")
    tr.clear_range(b"d", b"d\xff")
    assert tr.get(b"b").value == b"two"
    assert tr.get(b"c").present() is False
    assert [(kv.key, kv.value) for kv in tr.get_range(b"", b"\xff")] == [
        (b"a", b"1"), (b"b", b"two"), (b"e", b"5")]
    assert [kv.key for kv in tr.get_range(b"", b"\xff", reverse=True, limit=2)] == [b"e", b"b"]
    tr.set(b"d", b"back")
    assert tr.get(b"d").value == b"back"


def test_mutations_apply_in_program_order(db: SimDatabase) -> None:
    """[DG] A transaction's mutations take effect in the order they were issued."""
    tr = db.create_transaction()
    tr.set(b"k1", b"a")
    tr.clear_range(b"k", b"l")
    tr.set(b"k2", b"b")
    tr.add(b"n", struct.pack("<q", 5))
    tr.set(b"n", struct.pack("<q", 1))
    tr.add(b"n", struct.pack("<q", 2))
    tr.commit().wait()
    assert db.get(b"k1") is None
    assert db.get(b"k2") == b"b"
    assert struct.unpack("<q", db.get(b"n") or b"")[0] == 3


# --------------------------------------------------------------------------- conflicts


def test_a_read_key_written_by_a_later_commit_conflicts(db: SimDatabase) -> None:
    """[DG] A transaction conflicts (not_committed, 1020 [EC]) when a key it read was
    written by a transaction that committed after its read version."""
    put(db, a=b"1")
    t1 = db.create_transaction()
    t1.get(b"a").wait()
    put(db, a=b"2")
    t1.set(b"other", b"x")
    assert code_of(lambda: t1.commit().wait()) == 1020
    assert db.get(b"other") is None


def test_snapshot_reads_add_no_conflict(db: SimDatabase) -> None:
    """[DG][WIKI] Snapshot reads are not added to the read-conflict ranges."""
    put(db, a=b"1")
    t1 = db.create_transaction()
    assert t1.snapshot.get(b"a").value == b"1"
    list(t1.snapshot.get_range(b"", b"\xff"))
    put(db, a=b"2", z=b"new")
    t1.set(b"other", b"x")
    t1.commit().wait()
    assert db.get(b"other") == b"x"


def test_snapshot_reads_see_own_writes_by_default(db: SimDatabase) -> None:
    """[PY] snapshot_ryw_enable is the default: snapshot reads see the transaction's
    writes; snapshot_ryw_disable turns that off."""
    tr = db.create_transaction()
    tr.set(b"a", b"mine")
    assert tr.snapshot.get(b"a").value == b"mine"
    tr.options.set_snapshot_ryw_disable()
    assert tr.snapshot.get(b"a").present() is False


def test_range_read_conflicts_cover_phantoms(db: SimDatabase) -> None:
    """[DG] A range read conflicts with any later write inside the range, including a
    key that did not exist when it was read."""
    put(db, a=b"1", c=b"3")
    t1 = db.create_transaction()
    list(t1.get_range(b"a", b"d"))
    put(db, b=b"2")
    t1.set(b"x", b"1")
    assert code_of(lambda: t1.commit().wait()) == 1020


def test_limited_range_read_conflicts_only_up_to_last_key(db: SimDatabase) -> None:
    """[DG] When a range read stops at its limit, only the keys up to the last one
    returned are in the read-conflict range (forward: [begin, last]; reverse: [last, end))."""
    put(db, a=b"1", b=b"2", c=b"3", d=b"4")
    t1 = db.create_transaction()
    assert [kv.key for kv in t1.get_range(b"a", b"z", limit=2)] == [b"a", b"b"]
    put(db, c=b"changed", zz=b"1")
    t1.set(b"x", b"1")
    t1.commit().wait()  # c is beyond the last key returned: no conflict

    t2 = db.create_transaction()
    list(t2.get_range(b"a", b"z", limit=2))
    put(db, b=b"changed")
    t2.set(b"x", b"2")
    assert code_of(lambda: t2.commit().wait()) == 1020

    t3 = db.create_transaction()
    assert [kv.key for kv in t3.get_range(b"a", b"\xff", limit=1, reverse=True)] == [b"zz"]
    put(db, a=b"changed")
    t3.set(b"x", b"3")
    t3.commit().wait()  # a is before the last key of a reverse read: no conflict


def test_atomic_operations_are_write_only(db: SimDatabase) -> None:
    """[DG] Atomic operations add no read conflict: two concurrent increments of one
    counter both commit, and the result is their sum."""
    t1, t2 = db.create_transaction(), db.create_transaction()
    t1.get(b"unrelated").wait()
    t2.get(b"unrelated").wait()
    t1.add(b"counter", struct.pack("<q", 1))
    t2.add(b"counter", struct.pack("<q", 2))
    t1.commit().wait()
    t2.commit().wait()
    assert struct.unpack("<q", db.get(b"counter") or b"")[0] == 3


def test_atomic_operation_semantics(db: SimDatabase) -> None:
    """[PY] MutationType: little-endian add/max/min, bitwise ops, byte_min/byte_max,
    compare_and_clear, append_if_fits on missing and existing values."""
    tr = db.create_transaction()
    tr.bit_and(b"and", b"\x0f")
    tr.bit_or(b"or", b"\x0f")
    tr.max(b"max", b"\x05")
    tr.min(b"min", b"\x05")
    tr.byte_max(b"bmax", b"b")
    tr.append_if_fits(b"app", b"ab")
    tr.set(b"cac", b"same")
    tr.commit().wait()
    tr = db.create_transaction()
    tr.bit_and(b"and", b"\x3c")
    tr.bit_xor(b"or", b"\xff")
    tr.max(b"max", b"\x03")
    tr.min(b"min", b"\x03")
    tr.byte_max(b"bmax", b"a")
    tr.append_if_fits(b"app", b"cd")
    tr.compare_and_clear(b"cac", b"same")
    tr.add(b"wrap", b"\xff")
    tr.add(b"wrap", b"\x02")
    tr.commit().wait()
    assert db.get(b"and") == b"\x0c"
    assert db.get(b"or") == b"\xf0"
    assert db.get(b"max") == b"\x05"
    assert db.get(b"min") == b"\x03"
    assert db.get(b"bmax") == b"b"
    assert db.get(b"app") == b"abcd"
    assert db.get(b"cac") is None
    assert db.get(b"wrap") == b"\x01"


def test_reading_a_key_after_an_atomic_op_conflicts(db: SimDatabase) -> None:
    """[RYW] Reading a key the transaction only changed by an atomic operation reads the
    database (its value depends on it) and so adds a read conflict; reading a key the
    transaction set does not."""
    put(db, n=struct.pack("<q", 10), s=b"x")
    t1 = db.create_transaction()
    t1.add(b"n", struct.pack("<q", 1))
    assert struct.unpack("<q", t1.get(b"n").value or b"")[0] == 11
    put(db, n=struct.pack("<q", 100))
    assert code_of(lambda: t1.commit().wait()) == 1020

    t2 = db.create_transaction()
    t2.set(b"s", b"mine")
    assert t2.get(b"s").value == b"mine"
    put(db, s=b"theirs")
    t2.commit().wait()  # no read conflict on s: blind write, last committer wins
    assert db.get(b"s") == b"mine"


def test_explicit_conflict_ranges(db: SimDatabase) -> None:
    """[PY] add_read_conflict_key makes a transaction conflict as if it had read the key;
    add_write_conflict_key makes readers conflict as if it had written it."""
    t1 = db.create_transaction()
    t1.get(b"x").wait()
    t1.add_read_conflict_key(b"guard")
    put(db, guard=b"1")
    t1.set(b"y", b"1")
    assert code_of(lambda: t1.commit().wait()) == 1020

    reader = db.create_transaction()
    reader.get(b"watched").wait()
    writer = db.create_transaction()
    writer.add_write_conflict_key(b"watched")
    writer.commit().wait()
    reader.set(b"z", b"1")
    assert code_of(lambda: reader.commit().wait()) == 1020


def test_blind_writes_do_not_conflict(db: SimDatabase) -> None:
    """[DG] Conflicts are read-write only: two transactions writing the same key without
    reading it both commit, the later commit's value wins."""
    t1, t2 = db.create_transaction(), db.create_transaction()
    t1.set(b"k", b"first")
    t2.set(b"k", b"second")
    t1.commit().wait()
    t2.commit().wait()
    assert db.get(b"k") == b"second"


def test_read_only_transactions_always_commit(db: SimDatabase) -> None:
    """[DG] A transaction that writes nothing commits without conflict checks (its
    committed version is -1 [PY])."""
    put(db, a=b"1")
    t1 = db.create_transaction()
    t1.get(b"a").wait()
    put(db, a=b"2")
    t1.commit().wait()
    assert t1.get_committed_version() == -1


# --------------------------------------------------------------------------- versionstamps


def test_versionstamped_keys_are_substituted_at_commit(db: SimDatabase) -> None:
    """[DG] set_versionstamped_key replaces the incomplete versionstamp packed by
    fdb.tuple.pack_with_versionstamp with the commit's 10-byte versionstamp, which
    get_versionstamp returns; later commits get larger stamps; the user version orders
    stamps within one transaction."""
    stamps = []
    for _ in range(2):
        tr = db.create_transaction()
        for uv in (1, 0):
            tr.set_versionstamped_key(
                fdbtuple.pack_with_versionstamp(("log", fdbtuple.Versionstamp(user_version=uv))),
                b"v%d" % uv,
            )
        vs = tr.get_versionstamp()
        tr.commit().wait()
        stamps.append(vs.wait())
        assert len(stamps[-1]) == 10
        assert struct.unpack(">Q", stamps[-1][:8])[0] == tr.get_committed_version()
    assert stamps[0] < stamps[1]
    rows = db.get_range(*_prefix_range(K(("log",))))
    keys = [fdbtuple.unpack(kv.key)[1] for kv in rows]
    assert [k.tr_version for k in keys] == [stamps[0], stamps[0], stamps[1], stamps[1]]
    assert [k.user_version for k in keys] == [0, 1, 0, 1]
    assert [kv.value for kv in rows] == [b"v0", b"v1", b"v0", b"v1"]


def test_versionstamped_value(db: SimDatabase) -> None:
    """[DG] set_versionstamped_value substitutes the stamp inside the value."""
    tr = db.create_transaction()
    tr.set_versionstamped_value(
        b"ptr", fdbtuple.pack_with_versionstamp((fdbtuple.Versionstamp(user_version=7),)))
    tr.commit().wait()
    (stamp,) = fdbtuple.unpack(db.get(b"ptr") or b"")
    assert stamp.is_complete() and stamp.user_version == 7
    assert stamp.tr_version == tr.get_versionstamp().wait()


def test_versionstamped_keys_are_unreadable_in_their_transaction(db: SimDatabase) -> None:
    """[EC] Reading what a versionstamp operation will write, in the same transaction,
    fails with accessed_unreadable (1036)."""
    tr = db.create_transaction()
    tr.set_versionstamped_key(
        fdbtuple.pack_with_versionstamp(("log", fdbtuple.Versionstamp())), b"v")
    assert code_of(lambda: tr.get_range(*_prefix_range(K(("log",))))) == 1036
    tr2 = db.create_transaction()
    tr2.set_versionstamped_value(
        b"ptr", fdbtuple.pack_with_versionstamp((fdbtuple.Versionstamp(),)))
    assert code_of(lambda: tr2.get(b"ptr")) == 1036
    assert tr2.get(b"other").present() is False


def test_bad_versionstamp_offset_is_an_invalid_operation(db: SimDatabase) -> None:
    """[EC] A versionstamp offset beyond the key fails with client_invalid_operation."""
    tr = db.create_transaction()
    tr.set_versionstamped_key(b"short" + struct.pack("<I", 50), b"v")
    assert code_of(lambda: tr.commit().wait()) == 2000


# --------------------------------------------------------------------------- limits


def test_key_and_value_size_limits(db: SimDatabase) -> None:
    """[KL] Keys cannot exceed 10,000 bytes (key_too_large, 2102) and values 100,000
    bytes (value_too_large, 2103); the binding reports them on the next read or commit."""
    tr = db.create_transaction()
    tr.set(b"k" * 10_000, b"ok")
    tr.set(b"v", b"x" * 100_000)
    tr.commit().wait()
    tr = db.create_transaction()
    tr.set(b"k" * 10_001, b"v")
    assert code_of(lambda: tr.get(b"a")) == 2102
    assert code_of(lambda: tr.commit().wait()) == 2102
    tr = db.create_transaction()
    tr.set(b"v", b"x" * 100_001)
    assert code_of(lambda: tr.commit().wait()) == 2103
    assert db.get(b"v") == b"x" * 100_000


def test_system_keys_are_outside_the_legal_range(db: SimDatabase) -> None:
    """[EC] Keys at or above \\xff are system keys: key_outside_legal_range (2004)."""
    tr = db.create_transaction()
    assert code_of(lambda: tr.get(b"\xff/x")) == 2004
    tr.set(b"\xff/x", b"v")
    assert code_of(lambda: tr.commit().wait()) == 2004


def test_transaction_size_limit(db: SimDatabase) -> None:
    """[KL] A transaction cannot exceed 10,000,000 bytes of affected data
    (transaction_too_large, 2101); the size_limit option lowers that [PY]."""
    tr = db.create_transaction()
    for i in range(101):
        tr.set(b"big%03d" % i, b"x" * 99_990)
    assert tr.get_approximate_size().wait() > 10_000_000
    assert code_of(lambda: tr.commit().wait()) == 2101
    assert db.get(b"big000") is None
    tr = db.create_transaction()
    tr.options.set_size_limit(1_000)
    tr.set(b"k", b"x" * 2_000)
    assert code_of(lambda: tr.commit().wait()) == 2101


def test_transactions_older_than_five_seconds_are_too_old(db: SimDatabase) -> None:
    """[KL] A transaction cannot read or commit more than 5 s (5,000,000 versions) after
    its read version: transaction_too_old (1007)."""
    tr = db.create_transaction()
    tr.get(b"a").wait()
    db.cluster.recover(MVCC_WINDOW + 1)
    assert code_of(lambda: tr.get(b"b")) == 1007
    tr2 = db.create_transaction()
    tr2.get(b"a").wait()
    tr2.set(b"a", b"1")
    db.cluster.recover(MVCC_WINDOW + 1)
    assert code_of(lambda: tr2.commit().wait()) == 1007


def test_versions_advance_about_a_million_per_second(db: SimDatabase) -> None:
    """[DG] Versions advance about 1,000,000 per second; a recovery jumps ~100 s."""
    v1 = db.create_transaction().get_read_version().wait()
    time.sleep(0.02)
    v2 = db.create_transaction().get_read_version().wait()
    assert 10_000 < v2 - v1 < 5_000_000
    db.cluster.recover()
    v3 = db.create_transaction().get_read_version().wait()
    assert v3 - v2 >= RECOVERY_JUMP


def test_commit_checks_size_before_age_before_conflicts(db: SimDatabase) -> None:
    """[DG] The client refuses an oversized transaction before sending it; the resolver
    checks the read version's age before conflicts."""
    put(db, a=b"1")
    tr = db.create_transaction()
    tr.get(b"a").wait()
    tr.options.set_size_limit(100)
    tr.set(b"b", b"x" * 200)
    put(db, a=b"2")
    db.cluster.recover(MVCC_WINDOW + 1)
    assert code_of(lambda: tr.commit().wait()) == 2101
    tr = db.create_transaction()
    tr.get(b"a").wait()
    tr.set(b"b", b"small")
    put(db, a=b"3")
    db.cluster.recover(MVCC_WINDOW + 1)
    assert code_of(lambda: tr.commit().wait()) == 1007


# --------------------------------------------------------------------------- retry loop


def test_on_error_retries_retryable_codes_and_resets(db: SimDatabase) -> None:
    """[PY] on_error resets the transaction and returns a future that is ready for a
    retryable error (1020, 1021, 1007, 1009...); otherwise the future raises it."""
    for code in (1020, 1021, 1007, 1009):
        tr = db.create_transaction()
        tr.set(b"k", b"v")
        tr.on_error(FDBError(code)).wait()
        assert tr.get_approximate_size().wait() == 0
        assert tr.get(b"k").present() is False
    for code in (1031, 1025, 2101, 2102, 2103, 1036):
        tr = db.create_transaction()
        assert code_of(lambda tr=tr, code=code: tr.on_error(FDBError(code)).wait()) == code
    with pytest.raises(KeyError):
        db.create_transaction().on_error(KeyError("not an FDBError"))


def test_retry_limit_and_options_survive_on_error_but_not_reset(db: SimDatabase) -> None:
    """[PY] retry_limit bounds on_error's retries; options persist across on_error and
    are cleared by reset()."""
    tr = db.create_transaction()
    tr.options.set_retry_limit(2)
    tr.on_error(FDBError(1020)).wait()
    tr.on_error(FDBError(1020)).wait()
    assert code_of(lambda: tr.on_error(FDBError(1020)).wait()) == 1020
    tr.reset()
    for _ in range(5):
        tr.on_error(FDBError(1020)).wait()


def test_timeout_cancels_and_is_not_retried(db: SimDatabase) -> None:
    """[PY] The timeout option cancels the transaction when it elapses, counted from its
    creation and kept across on_error; transaction_timed_out (1031) is not retryable;
    reset() makes the transaction usable again."""
    tr = db.create_transaction()
    tr.options.set_timeout(20)
    tr.get(b"a").wait()
    time.sleep(0.03)
    assert code_of(lambda: tr.get(b"a")) == 1031
    assert code_of(lambda: tr.set(b"a", b"1")) == 1031
    assert code_of(lambda: tr.on_error(FDBError(1020)).wait()) == 1031
    tr.reset()
    tr.set(b"a", b"1")
    tr.commit().wait()
    assert db.get(b"a") == b"1"


def test_transactional_retries_until_commit(db: SimDatabase) -> None:
    """[PY] @fdb.transactional creates a transaction for a Database argument, retries the
    function on errors on_error accepts, commits, and returns its result; given a
    transaction it just calls the function without committing."""
    calls = []

    @SIM.transactional
    def bump(tr: Any, by: int) -> int:
        calls.append(by)
        if len(calls) == 1:
            raise FDBError(1020)
        value = int(tr.get(b"n").value or b"0") + by
        tr.set(b"n", str(value).encode())
        return value

    assert bump(db, 5) == 5
    assert calls == [5, 5]
    tr = db.create_transaction()
    assert bump(tr, 1) == 6
    assert db.get(b"n") == b"5"  # not committed by the decorator
    tr.commit().wait()
    assert db.get(b"n") == b"6"

    @SIM.transactional
    def gen(tr: Any) -> Any:
        yield 1

    with pytest.raises(ValueError, match="Generators"):
        gen(db)


def test_transactional_may_apply_twice_after_commit_unknown_result() -> None:
    """[DG] "commit_unknown_result... the transaction may or may not have committed":
    the retry loop runs the function again, so a non-idempotent transaction can apply
    twice. This is why every adapter transaction is idempotent."""
    plan = _Scripted(commits=["unknown_applied"])
    db = SIM.open(faults=plan)

    @SIM.transactional
    def incr(tr: Any) -> None:
        tr.add(b"n", struct.pack("<q", 1))

    incr(db)
    assert struct.unpack("<q", db.get(b"n") or b"")[0] == 2


def test_transactions_are_self_conflicting_on_late_landing() -> None:
    """[DG] A transaction that reads what it writes conflicts with its own resend: when a
    commit whose reply was lost lands after the resend committed, it is refused."""
    plan = _Scripted(commits=["unknown_late", None])
    db = SIM.open(faults=plan)

    @SIM.transactional
    def incr(tr: Any) -> None:
        n = int(tr.get(b"n").value or b"0")
        tr.set(b"n", str(n + 1).encode())

    incr(db)
    db.cluster.land_pending()
    assert db.get(b"n") == b"1"
    assert db.cluster.stats["dropped_late"] == 1


def test_a_late_landing_applies_when_nothing_conflicts() -> None:
    """[EC] transaction_timed_out (1031) "may still commit": the simulator lands such a
    commit later if nothing it read changed."""
    plan = _Scripted(commits=["timeout_late"])
    db = SIM.open(faults=plan)
    tr = db.create_transaction()
    tr.options.set_timeout(60_000)
    tr.get(b"x").wait()
    tr.set(b"late", b"1")
    assert code_of(lambda: tr.commit().wait()) == 1031
    assert db.get(b"late") is None
    assert db.cluster.land_pending() == 1
    assert db.get(b"late") == b"1"


def test_commit_unknown_result_variants() -> None:
    """[EC] commit_unknown_result (1021): the commit may have been applied (or not)."""
    db = SIM.open(faults=_Scripted(commits=["unknown_applied", "unknown_dropped"]))
    for key in (b"applied", b"dropped"):
        tr = db.create_transaction()
        tr.set(key, b"1")
        assert code_of(lambda tr=tr: tr.commit().wait()) == 1021
    assert db.get(b"applied") == b"1"
    assert db.get(b"dropped") is None


# --------------------------------------------------------------------------- faults, GC


class _Scripted(FaultPlan):
    """A fault plan that injects a fixed sequence of commit outcomes, then nothing."""

    def __init__(self, commits: list[str | None]) -> None:
        super().__init__(0, FaultRates.none())
        self.script = list(commits)

    def on_commit(self, *, has_timeout: bool) -> str | None:
        outcome = self.script.pop(0) if self.script else None
        if outcome:
            self.injected[outcome] += 1
        return outcome

    def landing_delay(self) -> int:
        return 100


def _workload(seed: int) -> tuple[list[tuple[str, int]], dict[str, int]]:
    plan = FaultPlan(seed, FaultRates().scaled(4))
    db = SIM.open(faults=plan)
    seen: list[tuple[str, int]] = []
    for i in range(200):
        tr = db.create_transaction()
        while True:
            try:
                tr.get(b"k%d" % (i % 7)).wait()
                tr.set(b"k%d" % (i % 7), b"%d" % i)
                tr.commit().wait()
                break
            except FDBError as exc:
                seen.append((f"op{i}", exc.code))
                tr.on_error(exc).wait()
    return seen, dict(plan.injected)


def test_fault_injection_is_reproducible_by_seed() -> None:
    """Seeded faults: the same seed gives the same faults in a single-threaded workload,
    another seed different ones."""
    first, injected = _workload(11)
    assert first == _workload(11)[0]
    assert first != _workload(12)[0]
    assert {code for _, code in first} >= {1020, 1021}
    assert sum(injected.values()) >= 10


def test_recovery_makes_every_transaction_in_flight_too_old(db: SimDatabase) -> None:
    """[DG] After a recovery versions jump ~100 s: transactions started before it get
    transaction_too_old and succeed when retried through on_error."""
    trs = [db.create_transaction() for _ in range(3)]
    for tr in trs:
        tr.get(b"a").wait()
    db.cluster.recover()
    for tr in trs:
        tr.set(b"a", b"1")
        with pytest.raises(FDBError) as info:
            tr.commit().wait()
        assert info.value.code == 1007
        tr.on_error(info.value).wait()
        tr.set(b"a", b"1")
        tr.commit().wait()


def test_garbage_collection_keeps_what_readers_need(db: SimDatabase) -> None:
    """[DG] MVCC: a transaction keeps reading its snapshot while many later commits
    change and delete keys (history it can see is kept)."""
    put(db, a=b"old", b=b"old")
    reader = db.create_transaction()
    assert reader.get(b"a").value == b"old"
    for i in range(300):
        tr = db.create_transaction()
        tr.set(b"a", b"%d" % i)
        tr.clear(b"b")
        tr.set(b"tmp%d" % i, b"x")
        tr.clear(b"tmp%d" % (i - 1))
        tr.commit().wait()
    assert reader.get(b"a").value == b"old"
    assert reader.get(b"b").value == b"old"
    assert [kv.key for kv in reader.get_range(b"", b"\xff")] == [b"a", b"b"]
    del reader
    for _ in range(70):
        put(db, c=b"1")
    assert len(db.cluster.dump()) == 3  # a, c and the last tmp key


def test_shared_clusters_by_name() -> None:
    """Clients that open the same cluster name share one database; others do not."""
    try:
        a, b, other = SIM.open("shared-x"), SIM.open("shared-x"), SIM.open()
        a[b"k"] = b"v"
        assert b[b"k"] == b"v"
        assert other[b"k"] is None
    finally:
        forget_cluster("shared-x")


def test_concurrent_increments_serialize() -> None:
    """[DG] Serializable isolation: concurrent read-modify-write transactions through
    the retry loop never lose an update."""
    db = SIM.open()

    @SIM.transactional
    def incr(tr: Any) -> None:
        n = int(tr.get(b"n").value or b"0")
        tr.set(b"n", str(n + 1).encode())

    def worker() -> None:
        for _ in range(50):
            incr(db)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.get(b"n") == b"200"


def test_api_version_selection() -> None:
    """[PY] api_version may be selected once; selecting another version fails."""
    api = type(SIM)()
    with pytest.raises(RuntimeError):
        api.get_api_version()
    api.api_version(730)
    api.api_version(730)
    assert api.get_api_version() == 730
    with pytest.raises(RuntimeError):
        api.api_version(710)


def _prefix_range(prefix: bytes) -> tuple[bytes, bytes]:
    """The range of the tuple children of a packed tuple (``fdb.tuple.range``)."""
    r = fdbtuple.range(fdbtuple.unpack(prefix))
    return r.start, r.stop
