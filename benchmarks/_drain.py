"""Time one thread draining runs in process: ``python -m benchmarks._drain``.

    python -m benchmarks._drain [BACKEND] [RUNS] [Three|Single] [BATCH] [KEY=VALUE...]
                                [--listener] [--profile [--cumulative]]

Starts RUNS runs of W1's ``Three`` or W2's ``Single`` workflow (default ``Single``, 3,000
runs), then drains them in this thread, claiming BATCH at a time (default 16) and
group-committing them as ``Worker(claim_batch=BATCH)`` does. Prints the start rate, the
drain's steps per second and the CPU time this process spent per step (the engine's and
the driver's Python, not the server's), with the heap the starts built frozen as
``Worker(gc_freeze=True)`` freezes it. ``KEY=VALUE`` is an engine option (an integer,
e.g. ``telemetry=0``); ``--listener`` adds the ``run.terminal`` listener the worker
processes of ``python -m benchmarks`` report completions with. With ``--profile`` the
drain runs under cProfile and the top entries by own time (``--cumulative``: by
cumulative time) are printed after the figures.

The worker process of ``python -m benchmarks`` is CPU-bound on one core, so the CPU per
step here is what bounds its drain rate; this is the figure to A/B when the engine's
per-step path changes.
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import sys
import tempfile
import time

from benchmarks._flows import Single, Three
from benchmarks._targets import TARGETS
from squidie_core import Squidie


def drain(engine: Squidie, owner: str, batch: int, queues: list[str]) -> int:
    """Claim ``batch`` at a time and group-commit them until nothing is left; the steps."""
    steps = 0
    while True:
        leases = engine.store.claim(owner, lease_for=300, limit=batch, queues=queues)
        if not leases:
            return steps
        steps += len(engine.run_leases(leases, heartbeat_interval=0))


def main(argv: list[str]) -> int:
    profile = "--profile" in argv
    options = {k: int(v) for k, _, v in (a.partition("=") for a in argv if "=" in a)}
    args = [a for a in argv if not a.startswith("--") and "=" not in a]
    name = args[0] if args else "postgresql"
    runs = int(args[1]) if len(args) > 1 else 3000
    workflow = {"Three": Three, "Single": Single}[args[2] if len(args) > 2 else "Single"]
    batch = int(args[3]) if len(args) > 3 else 16
    target = TARGETS[name]
    with tempfile.TemporaryDirectory() as directory:
        url = target.new_url(directory)
        engine = Squidie.from_url(url, workflows=[Three, Single], **options)
        terminal: list[float] = []
        if "--listener" in argv:
            engine.add_listener(lambda event: event.get("name") == "run.terminal"
                                and terminal.append(time.time()))
        try:
            payload = {"n": 0} if workflow is Three else {}
            t0 = time.perf_counter()
            for _ in range(runs):
                engine.start(workflow, "go", payload)
            start_rate = runs / (time.perf_counter() - t0)
            queues = engine.queues()
            gc.freeze()  # as ``Worker(gc_freeze=True)`` does when it starts
            profiler = cProfile.Profile() if profile else None
            wall0, cpu0 = time.perf_counter(), time.process_time()
            if profiler is not None:
                profiler.enable()
            steps = drain(engine, "drain", batch, queues)
            if profiler is not None:
                profiler.disable()
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            gc.unfreeze()
        finally:
            engine.close()
            target.drop(url)
    print(f"{name}: {workflow.__name__} x{runs}, batch {batch}: start {start_rate:,.0f} runs/s; "
          f"drain {steps / wall:,.0f} steps/s, CPU {cpu / steps * 1e6:,.0f} us/step")
    if profiler is not None:
        out = io.StringIO()
        order = "cumulative" if "--cumulative" in argv else "tottime"
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(30)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
