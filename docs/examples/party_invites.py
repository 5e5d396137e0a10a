"""The seed's party invites: a step that fans out into child runs.

``SendPartyInvites`` starts one ``DeliverInvite`` child per guest. The ``child_key``
makes each start idempotent for this run and step, so a retried step gets the same
children back instead of inviting everyone twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from squidie_core import COMPLETE, Step, StepContext, Workflow, field, manual, step, transition


class DeliverInviteStep(Step):
    """Deliver one invitation (a real one would call a mail API with ctx.idempotency_key)."""

    def run(self, input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
        return {"delivered_to": input["guest_id"], "delivery_key": ctx.idempotency_key}


class DeliverInvite(Workflow):
    """One invitation, as its own durable run."""

    deliver = manual(party_id=field(str), guest_id=field(str))
    send = step(DeliverInviteStep)
    transitions = [transition(send, on="ok", to=COMPLETE)]


class SendPartyInvitesStep(Step):
    """Start a child run per guest and return their run ids."""

    def run(self, input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
        children = []
        for guest in input["guests"]:
            child = ctx.start_child_run(
                DeliverInvite,
                {"party_id": input["party_id"], "guest_id": guest["id"]},
                child_key=f"invite_{guest['id']}",
                metadata={"guest_id": guest["id"]},
            )
            children.append(child.run_id)
        return {"invite_run_ids": children}


class SendPartyInvites(Workflow):
    """Invite every guest of a party."""

    plan_party = manual(party_id=field(str), guests=field(list))
    send_party_invites = step(SendPartyInvitesStep)
    transitions = [transition(send_party_invites, on="ok", to=COMPLETE)]
