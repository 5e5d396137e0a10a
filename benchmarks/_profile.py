"""Profile one worker slot draining W1 in-process: ``python -m benchmarks._profile``.

    python -m benchmarks._profile [BACKEND] [RUNS]

Starts RUNS three-step runs, then drains them with ``execute_next`` in this process under
pyinstrument (``pip install pyinstrument``) and prints the profile, so the engine's own
cost per step shows next to the time spent waiting on the backend.
"""

from __future__ import annotations

import sys
import tempfile

from benchmarks._flows import Single, Three
from benchmarks._targets import TARGETS
from squidie_core import Squidie


def main() -> int:
    from pyinstrument import Profiler

    name = sys.argv[1] if len(sys.argv) > 1 else "postgresql"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    target = TARGETS[name]
    with tempfile.TemporaryDirectory() as directory:
        url = target.new_url(directory)
        engine = Squidie.from_url(url, workflows=[Three, Single])
        try:
            for _ in range(runs):
                engine.start(Three, "go", {"n": 0})
            profiler = Profiler(interval=0.0005)
            profiler.start()
            steps = 0
            while engine.execute_next(owner_id="profile", heartbeat_interval=0):
                steps += 1
            profiler.stop()
            print(f"{steps} steps")
            print(profiler.output_text(unicode=False, color=False, show_all=False))
        finally:
            engine.close()
            target.drop(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
