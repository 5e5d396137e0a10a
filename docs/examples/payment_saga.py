"""A payment saga: each step that changes the world has an undo step.

If shipping fails for good, the charge is refunded and the stock released — in reverse
order of completion — and the run fails with the compensations recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from squidie_core import (
    COMPLETE,
    Backoff,
    Error,
    RetryPolicy,
    StepContext,
    Workflow,
    field,
    manual,
    step,
    transition,
)

LEDGER: list[str] = []  # what the example's fake services did, for the reader (and tests)


def reserve_stock(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    LEDGER.append(f"reserve {input['sku']}")
    return {"reservation": f"res-{input['order_id']}"}


def release_stock(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    LEDGER.append(f"release {input['reservation']}")
    return {}


def charge_card(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    LEDGER.append(f"charge {input['amount']}")
    return {"charge": f"ch-{ctx.idempotency_key}"}


def refund_card(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    LEDGER.append(f"refund {input['charge']}")
    return {}


def ship(input: Mapping[str, Any], ctx: StepContext) -> Any:
    if input["address"] == "nowhere":
        return Error("no courier delivers there")  # terminal: no retry helps
    LEDGER.append(f"ship to {input['address']}")
    return {"tracking": "TRK-1"}


class PaymentSaga(Workflow):
    """Reserve, charge, ship — or undo what was done."""

    place = manual(order_id=field(str), sku=field(str), amount=field(int),
                   address=field(str))

    reserve = step(reserve_stock, compensate=release_stock)
    charge = step(charge_card, compensate=refund_card,
                  retry=RetryPolicy(max_attempts=3, backoff=Backoff.exponential(min=1, max=10)))
    deliver = step(ship)

    transitions = [
        transition(reserve, on="ok", to=charge),
        transition(charge, on="ok", to=deliver),
        transition(deliver, on="ok", to=COMPLETE),
    ]
