"""An ``--app`` module that turns on the OpenTelemetry SDK in a squidie subprocess.

Every finished span is written as one JSON line to ``$SQUIDIE_TEST_SPANS`` (one file per
process, suffixed with the pid), so a test can read the spans of several processes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from app_flows import Chain, Flaky, Gate  # noqa: F401  (the workflows this app serves)
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class FileExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a", encoding="utf-8") as out:
            for span in spans:
                ctx = span.get_span_context()
                out.write(json.dumps({
                    "name": span.name,
                    "trace_id": f"{ctx.trace_id:032x}",
                    "span_id": f"{ctx.span_id:016x}",
                    "parent_span_id": f"{span.parent.span_id:016x}" if span.parent else None,
                    "links": [f"{link.context.span_id:016x}" for link in span.links],
                    "attributes": dict(span.attributes or {}),
                    "pid": os.getpid(),
                }) + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(
    FileExporter(f"{os.environ['SQUIDIE_TEST_SPANS']}.{os.getpid()}")))
trace.set_tracer_provider(_provider)
