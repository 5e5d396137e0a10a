"""The FoundationDB store runs the public conformance suite on the simulator, with and
without fault injection, imported as a user would (and on a real cluster when
``SQUIDIE_FDB_CLUSTER_FILE`` is set)."""

from __future__ import annotations

from conformance import StoreSuite
from tests.backends.fdb.fixtures import (
    CLUSTER_FILE,
    FDBClusterFixtures,
    FDBSimFaultyFixtures,
    FDBSimFixtures,
)


class TestFDBSimConformance(StoreSuite, FDBSimFixtures):
    """The simulator, no faults."""


class TestFDBSimFaultyConformance(StoreSuite, FDBSimFaultyFixtures):
    """The simulator with seeded fault injection (seed 7; SQUIDIE_FDB_SEEDS for more)."""


if CLUSTER_FILE:  # defined only with a real cluster: nothing is collected, nothing skipped

    class TestFDBClusterConformance(StoreSuite, FDBClusterFixtures):
        """A real FoundationDB cluster named by SQUIDIE_FDB_CLUSTER_FILE."""
