"""The conformance suite's version.

``SUITE_VERSION`` names the set of cases a store was checked against. It follows
``MAJOR.MINOR``: a new case that a correct store already passes bumps ``MINOR``; a case
that tightens the contract (a correct store of the previous version may fail it) bumps
``MAJOR``. Every case records the version that introduced it with ``@since(...)`` (or its
class's ``pytestmark``), and the runner's ``--json`` output lists it per case.
"""

from __future__ import annotations

__all__ = ["SUITE_VERSION"]

SUITE_VERSION = "1.2"
