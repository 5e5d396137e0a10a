"""Helpers shared by the dashboard tests (a uniquely named module on ``sys.path``)."""

from __future__ import annotations

from squidie_core import ManualClock, Squidie

#: The operator token of the tests (characters that need escaping in HTML and forms).
TOKEN = "s3cret-op&token<x>"


def drain(engine: Squidie, clock: ManualClock) -> None:
    """Run every visible attempt, advancing the clock past retry backoffs."""
    for _ in range(200):
        if engine.execute_next(owner_id="test-worker") is None:
            clock.advance(1.0)
            if engine.execute_next(owner_id="test-worker") is None:
                return
