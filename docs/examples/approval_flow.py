"""An expense approval: a human decides, and both answers are routes of the workflow.

``approve`` follows ``ok`` (the decision is stored under ``decision``), ``reject``
follows ``error``; either way the requester is notified and the run completes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from squidie_core import (
    COMPLETE,
    StepContext,
    Workflow,
    approval_step,
    field,
    greater_than,
    manual,
    step,
    transition,
)


def check_policy(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"needs_approval": input["amount"] > 100}


def pay_out(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    # A real step would call the payment API with ctx.idempotency_key.
    return {"paid": input["amount"], "payment_ref": ctx.idempotency_key}


def notify(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    decision = input.get("decision") or {}
    return {"notified": input["requester"], "approved": bool(decision.get("approved", True))}


class ExpenseApproval(Workflow):
    """Pay small expenses at once; ask a manager about large ones."""

    submit = manual(requester=field(str), amount=field(int))

    check = step(check_policy)
    manager = approval_step(output="decision")
    pay = step(pay_out, irreversible=True)
    tell = step(notify)

    transitions = [
        transition(check, on="ok", to=manager, condition=greater_than("amount", 100)),
        transition(check, on="ok", to=pay),
        transition(manager, on="ok", to=pay),
        transition(manager, on="error", to=tell),
        transition(pay, on="ok", to=tell),
        transition(tell, on="ok", to=COMPLETE),
    ]
