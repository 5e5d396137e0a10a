"""Makes ``tests.backends.fdb.fixtures`` importable however pytest is started.

(``--import-mode=importlib`` does not put test directories on ``sys.path``; the
repository root is added here so the fixtures module has one stable import name.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave this directory's ``soak`` campaigns out unless ``-m`` asks for them.

    ``make test`` runs plain ``pytest``; ``make soak`` runs ``pytest -m soak``. The
    campaigns are deselected (not skipped) from the former.
    """
    if "soak" in (config.getoption("markexpr") or ""):
        return
    here = Path(__file__).resolve().parent
    keep, drop = [], []
    for item in items:
        soak = item.get_closest_marker("soak") is not None
        (drop if soak and here in Path(str(item.fspath)).resolve().parents else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
