"""Profile one worker slot draining W1 in-process: ``python -m benchmarks._profile``.

    python -m benchmarks._profile [BACKEND] [RUNS] [Three|Single] [BATCH]

Starts RUNS runs of the W1 (``Three``, default) or W2 (``Single``) workflow, then drains
them in this process under pyinstrument (``pip install pyinstrument``), claiming BATCH at a
time (default 1) and group-committing them as ``Worker(claim_batch=BATCH)`` does, and
prints the profile, so the engine's own cost per step shows next to the time spent waiting
on the backend.
"""

from __future__ import annotations

import sys
import tempfile

from benchmarks._drain import drain
from benchmarks._flows import Single, Three
from benchmarks._targets import TARGETS
from squidie_core import Squidie


def main() -> int:
    from pyinstrument import Profiler

    name = sys.argv[1] if len(sys.argv) > 1 else "postgresql"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    workflow = {"Three": Three, "Single": Single}[sys.argv[3] if len(sys.argv) > 3 else "Three"]
    target = TARGETS[name]
    with tempfile.TemporaryDirectory() as directory:
        url = target.new_url(directory)
        engine = Squidie.from_url(url, workflows=[Three, Single])
        try:
            for _ in range(runs):
                engine.start(workflow, "go", {"n": 0} if workflow is Three else {})
            profiler = Profiler(interval=0.0005)
            profiler.start()
            batch = int(sys.argv[4]) if len(sys.argv) > 4 else 1
            steps = drain(engine, "profile", batch, engine.queues())
            profiler.stop()
            print(f"{steps} steps")
            print(profiler.output_text(unicode=False, color=False, show_all=False))
        finally:
            engine.close()
            target.drop(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
