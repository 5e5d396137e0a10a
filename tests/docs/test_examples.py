"""The documentation's examples run as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from party_invites import DeliverInvite, SendPartyInvites
from ring_errand import RingErrand

from squidie_core.testing import Harness

ROOT = Path(__file__).resolve().parents[2]


def test_runtime_doc_harness_example() -> None:
    h = Harness(RingErrand)
    run = h.start(RingErrand, "leave_shire", {"ring_id": "one-ring"})
    h.drain()
    h.advance_time(1)
    h.drain()
    h.approve(run.run_id, actor="elrond")
    h.drain()                    # cross_moria fails once; its retry waits for its backoff
    h.advance_time(1)
    h.drain()
    view = h.inspect(run.run_id)
    assert view["status"] == "completed"
    assert view["context"]["destroyed"] == "one-ring"
    assert view["attempts"]["cross_moria"]["attempts"] == 2


def test_ring_errand_rejected_takes_the_recovery_route() -> None:
    h = Harness(RingErrand)
    run = h.start(RingErrand, "leave_shire", {"ring_id": "one-ring", "bearer": "Sam"})
    h.drain()
    h.advance_time(1)
    h.drain()
    h.reject(run.run_id, actor="elrond", comment="too dangerous")
    h.drain()
    view = h.inspect(run.run_id)
    assert view["status"] == "completed" and view["context"]["went_home"] is True
    assert view["recovery"][0]["marker"] == "compensation"


def test_party_invites_start_children() -> None:
    h = Harness(SendPartyInvites, DeliverInvite)
    run = h.start(SendPartyInvites, "plan_party",
                  {"party_id": "p1", "guests": [{"id": "sam"}, {"id": "merry"}]})
    h.drain()
    view = h.inspect(run.run_id)
    assert view["status"] == "completed" and len(view["children"]) == 2
    for child in view["children"]:
        assert h.inspect(child["run_id"])["status"] == "completed"


def test_demo_script_runs_end_to_end() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / "ring_errand.py"), "memory://"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "run completed" in out.stdout
    assert "cross_moria attempt 1: retry" in out.stdout


def test_approval_flow_both_answers() -> None:
    from approval_flow import ExpenseApproval

    h = Harness(ExpenseApproval)
    small = h.start(ExpenseApproval, "submit", {"requester": "sam", "amount": 40})
    big = h.start(ExpenseApproval, "submit", {"requester": "frodo", "amount": 500})
    denied = h.start(ExpenseApproval, "submit", {"requester": "pippin", "amount": 900})
    h.drain()
    assert h.inspect(small.run_id)["context"]["paid"] == 40
    assert h.explain(big.run_id)["reason"] == "manual_intervention_required"
    h.approve(big.run_id, actor="manager")
    h.reject(denied.run_id, actor="manager", comment="second breakfast is not a business expense")
    h.drain()
    assert h.inspect(big.run_id)["context"]["paid"] == 500
    denied_view = h.inspect(denied.run_id)
    assert denied_view["status"] == "completed" and "paid" not in denied_view["context"]
    assert denied_view["context"]["approved"] is False


def test_payment_saga_compensates_in_reverse() -> None:
    import payment_saga
    from payment_saga import PaymentSaga

    payment_saga.LEDGER.clear()
    h = Harness(PaymentSaga)
    ok = h.start(PaymentSaga, "place", {"order_id": "o1", "sku": "ring", "amount": 5,
                                        "address": "Bag End"})
    h.drain()
    assert h.inspect(ok.run_id)["status"] == "completed"
    payment_saga.LEDGER.clear()
    bad = h.start(PaymentSaga, "place", {"order_id": "o2", "sku": "ring", "amount": 5,
                                         "address": "nowhere"})
    h.drain()
    view = h.inspect(bad.run_id)
    assert view["status"] == "failed" and view["reason"]["compensated"] == ["charge", "reserve"]
    assert payment_saga.LEDGER[:2] == ["reserve ring", "charge 5"]
    assert payment_saga.LEDGER[2].startswith("refund ch-")
    assert payment_saga.LEDGER[3] == "release res-o2"


def test_fan_out_fan_in() -> None:
    from fan_out_fan_in import WordCount

    h = Harness(WordCount)
    run = h.start(WordCount, "count", {"text": "one does not simply walk into mordor"})
    h.drain()
    view = h.inspect(run.run_id)
    assert view["status"] == "completed" and view["context"]["total"] == 7
    graph = h.graph(run.run_id)
    assert {e["id"] for e in graph["edges"] if e["status"] == "selected"} == {
        "split:ok:left", "split:ok:right", "left:ok:total", "right:ok:total"}


def test_daily_digest_on_cron() -> None:
    from datetime import UTC, datetime

    from daily_digest import DailyDigest

    from squidie_core import Payload, Runner

    h = Harness(DailyDigest)
    window = (datetime(2026, 11, 23, 9, tzinfo=UTC), datetime(2026, 11, 24, 9, tzinfo=UTC))
    run = Runner(h.engine).perform(Payload.cron(DailyDigest, "daily_digest",
                                                intended_window=window))
    assert run is not None
    h.drain()
    digest = h.inspect(run.run_id)["context"]["digest"]
    assert digest["audience"] == "everyone"
    assert digest["digest_for"] == [w.isoformat() for w in window]
