"""Dashboard test fixtures: an engine on a SQLite file store with a manual clock."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import dash_flows  # noqa: E402

from squidie_core import ManualClock, Squidie  # noqa: E402


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def engine(tmp_path: Path, clock: ManualClock) -> Iterator[Squidie]:
    eng = Squidie.from_url(f"sqlite:///{tmp_path / 'dash.db'}", workflows=dash_flows.WORKFLOWS,
                           store_options={"clock": clock}, telemetry=False,
                           max_deliveries=1)
    try:
        yield eng
    finally:
        eng.close()

