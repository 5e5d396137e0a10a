"""Telemetry overhead on the runtime's hot path (memory store, so the runtime dominates).

Runs W1's 3-step workflow three ways in fresh processes and prints steps/s:
off (``telemetry=False``), API only (OpenTelemetry installed, no SDK: the default for
users who have not configured one), and SDK (spans and metrics recorded into in-memory
exporters). Usage: ``python -m benchmarks.telemetry_overhead``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r'''
import sys, time, json
sys.path.insert(0, "tests/core")
mode = sys.argv[1]
if mode == "sdk":
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
import _flows as f
from squidie_core import Squidie
from squidie_backends.memory import MemoryStore
engine = Squidie(MemoryStore(), workflows=[f.Three], telemetry=(mode != "off"))
for _ in range(1500):
    engine.start(f.Three)
t = time.perf_counter()
n = 0
while engine.execute_next(owner_id="w", heartbeat_interval=0):
    n += 1
print(json.dumps(n / (time.perf_counter() - t)))
'''


def measure(mode: str, repeats: int = 3) -> float:
    rates = [
        float(subprocess.run([sys.executable, "-c", CHILD, mode], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout)
        for _ in range(repeats)
    ]
    return statistics.median(rates)


def main() -> None:
    results = {mode: measure(mode) for mode in ("off", "api", "sdk")}
    base = results["off"]
    for mode, rate in results.items():
        print(f"{mode:>4}: {rate:8.0f} steps/s  ({(base / rate - 1) * 100:+.0f}% time per step)")


if __name__ == "__main__":
    main()
