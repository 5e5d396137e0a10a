"""The dispatch record as the FDB store keeps it (JSON under ``("d", dispatch_key)``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from squidie_backends.fdb._layout import decode_json, encode_json
from squidie_core.errors import CorruptDataError
from squidie_core.storage import Dispatch, DispatchRecord

__all__ = ["HISTORY_LIMIT", "Record"]

HISTORY_LIMIT = 50


@dataclass
class Record:
    """One dispatch and its delivery state.

    Attributes:
        dispatch: The dispatch as enqueued.
        state: ``pending`` | ``claimed`` | ``completed`` | ``failed`` | ``dead_lettered``.
        visible_at: When it is (or was) visible.
        deliveries: Deliveries since enqueue or the last re-drive.
        fence: The last fence handed out.
        owner_id: The current or last holder.
        token_hash: The hash of the current (or last) lease's token.
        lease_expires_at: When the current lease lapses (``claimed`` only).
        reason: Why it was dead-lettered or failed.
        settled: ``[token_hash, event]`` of the last settlement by a lease holder, kept
            so that a resend of that settlement (after ``commit_unknown_result``) is
            recognised instead of being refused as a lost lease.
        history: Delivery and settlement events, oldest first, at most ``HISTORY_LIMIT``.
    """

    dispatch: Dispatch
    visible_at: float
    state: str = "pending"
    deliveries: int = 0
    fence: int = 0
    owner_id: str | None = None
    token_hash: str | None = None
    lease_expires_at: float | None = None
    reason: str | None = None
    settled: list[str] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def vest(self) -> float | None:
        """When the record becomes claimable: visibility, or lease expiry (QuiCK's vesting)."""
        if self.state == "pending":
            return self.visible_at
        if self.state == "claimed":
            return self.lease_expires_at
        return None

    def remember(self, entry: dict[str, Any]) -> None:
        """Append a history entry, dropping the oldest beyond ``HISTORY_LIMIT``."""
        self.history.append(entry)
        if len(self.history) > HISTORY_LIMIT:
            del self.history[0]

    def to_bytes(self) -> bytes:
        """Encode as JSON."""
        return encode_json({
            "dispatch": self.dispatch.to_dict(),
            "state": self.state,
            "visible_at": self.visible_at,
            "deliveries": self.deliveries,
            "fence": self.fence,
            "owner_id": self.owner_id,
            "token_hash": self.token_hash,
            "lease_expires_at": self.lease_expires_at,
            "reason": self.reason,
            "settled": self.settled,
            "history": self.history,
        })

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Record:
        """Decode ``to_bytes`` output; ``CorruptDataError`` naming ``where`` otherwise."""
        raw = decode_json(data, where)
        try:
            return cls(
                dispatch=Dispatch.from_dict(raw["dispatch"]),
                visible_at=float(raw["visible_at"]),
                state=str(raw["state"]),
                deliveries=int(raw["deliveries"]),
                fence=int(raw["fence"]),
                owner_id=raw["owner_id"],
                token_hash=raw["token_hash"],
                lease_expires_at=raw["lease_expires_at"],
                reason=raw["reason"],
                settled=raw["settled"],
                history=list(raw["history"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptDataError(where, f"undecodable dispatch record: {exc}") from exc

    def to_record(self, now: float) -> DispatchRecord:
        """The contract's view (``available``/``scheduled`` computed against ``now``)."""
        state = self.state
        if state == "pending":
            state = "available" if self.visible_at <= now else "scheduled"
        return DispatchRecord(
            dispatch=self.dispatch,
            state=state,
            visible_at=self.visible_at,
            deliveries=self.deliveries,
            fence=self.fence,
            owner_id=self.owner_id,
            lease_expires_at=self.lease_expires_at if self.state == "claimed" else None,
            reason=self.reason,
            history=tuple(dict(h) for h in self.history),
        )
