"""``python -m conformance STORE_URL``: run the conformance suite against a store URL."""

import sys

from conformance._runner import main

sys.exit(main())
