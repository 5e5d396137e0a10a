"""``python -m benchmarks`` (see ``benchmarks._cli``)."""

import sys

from benchmarks._cli import main

sys.exit(main())
