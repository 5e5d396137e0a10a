"""Traces, metrics and events through the OpenTelemetry API (optional).

With ``opentelemetry-api`` installed (``pip install 'squidie[otel]'``) the engine uses the
globally configured tracer and meter providers: nothing is exported until the host app
installs an SDK and exporters, so the default cost is the API's no-op metric instruments
(no span is opened while no tracer provider is installed). Without
the package every call here is a no-op.

Traces: one trace per run. ``start`` opens the run's root span (``squidie.start``) and
stores its W3C trace context in the ``run_started`` fact; every later span of the run —
``squidie.execute_next`` (claim to commit, on whichever worker), its child
``squidie.step`` (the step's code) and ``squidie.command`` (approve, cancel...) — is a
child of that context, so an attempt executed on another machine continues the same
trace. A child run and a replay start new traces linked to the span that caused them.

Metrics (attributes are bounded: workflow, step, outcome, queue, state — never run ids):

- ``squidie.commits`` (counter): committed outcomes by ``outcome``
  (``ok | error | retry | command | start``);
- ``squidie.step.duration`` (histogram, s): step code run time;
- ``squidie.enqueue_to_start`` (histogram, s): visible-to-claimed latency;
- ``squidie.queue.depth`` (observable gauge): dispatches by ``queue`` and ``state``
  (``visible | scheduled | claimed | dead``), read at collection time from every store
  an engine in this process has open (summed per queue and state; a process normally
  has one).

The instruments are created once per process and shared by every engine.

Events: after a successful commit only, a fixed set of named events (``run.started``,
``run.terminal``, ``attempt.scheduled``, ``attempt.claimed``, ``attempt.heartbeat``,
``attempt.completed``, ``attempt.failed``, ``attempt.retry_scheduled``,
``manual.paused``, ``manual.resolved``, ``child.started``) go to the engine's listeners,
to instrumentation plugins (``squidie_register_instrumentation``) and onto the current
span. A conflict, a stale lease or a duplicate command emits nothing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from squidie_core.storage import Fact, Store

__all__ = ["EVENT_NAMES", "Telemetry", "events_for", "serve_prometheus"]

log = logging.getLogger("squidie")

try:  # the API is an optional dependency
    from opentelemetry import metrics as _otel_metrics
    from opentelemetry import trace as _otel_trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _PROPAGATOR: Any = TraceContextTextMapPropagator()
    _NO_PROVIDER: Any = _otel_trace.ProxyTracerProvider
    HAVE_OTEL = True
except ImportError:  # pragma: no cover - exercised when the extra is not installed
    _otel_metrics = _otel_trace = None  # type: ignore[assignment]
    _PROPAGATOR = _NO_PROVIDER = None
    HAVE_OTEL = False


def _tracing() -> bool:
    """Whether a tracer provider is installed. Until the host installs one, the API's
    global provider is a proxy whose spans record nothing and carry no valid context, so
    opening them is skipped (a hot-path saving: several spans and context switches per
    step). Checked on every call: a provider installed later takes effect at once."""
    return not isinstance(_otel_trace.get_tracer_provider(), _NO_PROVIDER)

#: Fact type -> event name (facts not listed raise no event of their own).
_FACT_EVENTS: Mapping[str, str] = {
    "run_started": "run.started",
    "run_completed": "run.terminal",
    "run_failed": "run.terminal",
    "run_cancelled": "run.terminal",
    "dispatch_scheduled": "attempt.scheduled",
    "attempt_succeeded": "attempt.completed",
    "attempt_failed": "attempt.failed",
    "retry_scheduled": "attempt.retry_scheduled",
    "paused": "manual.paused",
    "approval_requested": "manual.paused",
    "approval_granted": "manual.resolved",
    "approval_rejected": "manual.resolved",
    "resumed": "manual.resolved",
    "child_run_started": "child.started",
}
#: Every event name the engine emits.
EVENT_NAMES = (*dict.fromkeys(_FACT_EVENTS.values()), "attempt.claimed", "attempt.heartbeat")

_KEEP = ("step", "attempt", "outcome", "status", "reason", "child_run_id", "key", "delay",
         "actor", "command")


def events_for(
    run_id: str, workflow: str, status: str, facts: Sequence[Fact]
) -> list[dict[str, Any]]:
    """The events a committed list of facts produces, in order."""
    out = []
    for fact in facts:
        name = _FACT_EVENTS.get(fact.type)
        if name is None:
            continue
        event: dict[str, Any] = {"name": name, "fact": fact.type, "run_id": run_id,
                                 "workflow": workflow, "at": fact.at}
        for key in _KEEP:
            if key in fact.body:
                event[key] = fact.body[key]
        if name == "run.terminal":
            event["status"] = {"run_completed": "completed", "run_failed": "failed",
                               "run_cancelled": "cancelled"}[fact.type]
        elif name == "attempt.completed":
            event["outcome"] = "ok"
        elif name == "attempt.failed":
            event["outcome"] = "retry" if fact.body.get("retryable") else "error"
        out.append(event)
    if out:
        out[-1]["run_status"] = status
    return out


class _Instruments:
    """The process-wide instruments (created on first use) and the stores they observe."""

    _lock = threading.Lock()
    _made: _Instruments | None = None

    def __init__(self) -> None:
        from squidie_core import __version__

        self.stores: weakref.WeakSet[Any] = weakref.WeakSet()
        self.tracer = _otel_trace.get_tracer("squidie", __version__)
        meter = _otel_metrics.get_meter("squidie", __version__)
        self.commits = meter.create_counter(
            "squidie.commits", unit="{commit}", description="Committed outcomes")
        self.step_duration = meter.create_histogram(
            "squidie.step.duration", unit="s", description="Run time of step code")
        self.enqueue_to_start = meter.create_histogram(
            "squidie.enqueue_to_start", unit="s",
            description="From a dispatch becoming visible to its claim")
        meter.create_observable_gauge(
            "squidie.queue.depth", callbacks=[self._observe_depth], unit="{dispatch}",
            description="Dispatches by queue and state")

    @classmethod
    def get(cls) -> _Instruments:
        with cls._lock:
            if cls._made is None:
                cls._made = cls()
            return cls._made

    def _observe_depth(self, options: Any) -> Iterator[Any]:
        from opentelemetry.metrics import Observation

        totals: dict[tuple[str, str], int] = {}
        for store in list(self.stores):
            try:
                depth = store.depth()
            except Exception as exc:  # collection must never raise into the exporter
                log.debug("depth gauge skipped a store: %s", exc)
                continue
            for queue, d in depth.items():
                for state, value in (("visible", d.visible), ("scheduled", d.scheduled),
                                     ("claimed", d.claimed), ("dead", d.dead)):
                    totals[(queue, state)] = totals.get((queue, state), 0) + value
        for (queue, state), value in totals.items():
            yield Observation(value, {"queue": queue, "state": state})


class Telemetry:
    """The engine's tracer, meter and event fan-out (all no-ops without OpenTelemetry).

    Args:
        store: The store whose queue depths the depth gauge observes.
        enabled: ``False`` turns spans and metrics off (events to listeners still flow).
    """

    def __init__(self, store: Store, *, enabled: bool = True) -> None:
        self.enabled = enabled and HAVE_OTEL
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        if not self.enabled:
            return
        instruments = _Instruments.get()
        try:
            instruments.stores.add(store)
        except TypeError:  # a store that cannot be weakly referenced is not observed
            log.debug("queue depth gauge cannot observe %r", store)
        self.tracer = instruments.tracer
        self.commits = instruments.commits
        self.step_duration = instruments.step_duration
        self.enqueue_to_start = instruments.enqueue_to_start

    # ------------------------------------------------------------------ metrics

    def count_commit(self, workflow: str, outcome: str) -> None:
        """Count one committed outcome."""
        if self.enabled:
            self.commits.add(1, {"workflow": workflow, "outcome": outcome})

    def record_step(self, workflow: str, step: str, outcome: str, seconds: float,
                    waited: float | None) -> None:
        """Record a step's run time and its visible-to-claim latency."""
        if not self.enabled:
            return
        attrs = {"workflow": workflow, "step": step, "outcome": outcome}
        self.step_duration.record(seconds, attrs)
        if waited is not None:
            self.enqueue_to_start.record(max(waited, 0.0), {"workflow": workflow, "step": step})

    # ------------------------------------------------------------------ traces

    def new_trace_context(self, name: str, attributes: Mapping[str, Any],
                          link_from: Mapping[str, str] | None = None) -> Any:
        """Open a run's root span; use as a context manager yielding the carrier dict."""
        return self._root(name, attributes, link_from)

    @contextlib.contextmanager
    def _root(self, name: str, attributes: Mapping[str, Any],
              link_from: Mapping[str, str] | None) -> Iterator[dict[str, str]]:
        carrier: dict[str, str] = {}
        if not self.enabled or not _tracing():
            yield carrier
            return
        links = []
        if link_from:
            ctx = _otel_trace.get_current_span(_PROPAGATOR.extract(link_from)).get_span_context()
            if ctx.is_valid:
                links.append(_otel_trace.Link(ctx))
        current = _otel_trace.get_current_span().get_span_context()
        if current.is_valid:
            links.append(_otel_trace.Link(current))
        from opentelemetry.context import Context

        with self.tracer.start_as_current_span(name, context=Context(), links=links,
                                               attributes=dict(attributes)) as span:
            if span.get_span_context().is_valid:
                _PROPAGATOR.inject(carrier)
            yield carrier

    @contextlib.contextmanager
    def span(self, name: str, carrier: Mapping[str, str] | None,
             attributes: Mapping[str, Any]) -> Iterator[Any]:
        """A span in the run's trace (child of the context stored in its facts)."""
        if not self.enabled or not _tracing():
            yield None
            return
        parent = _PROPAGATOR.extract(dict(carrier)) if carrier else None
        with self.tracer.start_as_current_span(name, context=parent,
                                               attributes=dict(attributes)) as span:
            yield span

    def open_span(self, name: str, carrier: Mapping[str, str] | None,
                  attributes: Mapping[str, Any]) -> Any:
        """``span``, started but not made current; ``within`` enters it (``None`` if off).

        For work whose span must outlive one ``with`` block: a step run now and its
        outcome committed later with others (the worker's group commit).
        """
        if not self.enabled or not _tracing():
            return None
        parent = _PROPAGATOR.extract(dict(carrier)) if carrier else None
        return self.tracer.start_span(name, context=parent, attributes=dict(attributes))

    @contextlib.contextmanager
    def within(self, span: Any, *, end: bool = False) -> Iterator[None]:
        """Make an ``open_span`` span current for the block (and end it after, if asked)."""
        if span is None:
            yield
            return
        with _otel_trace.use_span(span, end_on_exit=end):
            yield

    @staticmethod
    def end_failed(span: Any, exc: BaseException) -> None:
        """End an ``open_span`` span with ``exc`` recorded as its error."""
        if span is None:
            return
        span.record_exception(exc)
        span.set_status(_otel_trace.Status(_otel_trace.StatusCode.ERROR, str(exc)))
        span.end()

    @contextlib.contextmanager
    def child_span(self, name: str, attributes: Mapping[str, Any]) -> Iterator[Any]:
        """A span under the current one (the step's code inside ``execute_next``)."""
        if not self.enabled or not _tracing():
            yield None
            return
        with self.tracer.start_as_current_span(name, attributes=dict(attributes)) as span:
            yield span

    # ------------------------------------------------------------------ events

    def wants_events(self) -> bool:
        """Whether anyone would receive events now (skip building them otherwise)."""
        return bool(self.listeners) or (
            self.enabled and _otel_trace.get_current_span().is_recording()
        )

    def emit(self, events: Sequence[dict[str, Any]]) -> None:
        """Deliver events (already committed) to listeners and the current span."""
        if not events:
            return
        for event in events:
            for listener in self.listeners:
                try:
                    listener(event)
                except Exception:  # instrumentation must never break the engine
                    log.exception("event listener failed")
        if self.enabled:
            span = _otel_trace.get_current_span()
            if span.is_recording():
                for event in events:
                    span.add_event(event["name"], {
                        k: v for k, v in event.items()
                        if k != "name" and isinstance(v, str | int | float | bool)})


def serve_prometheus(port: int, host: str = "127.0.0.1") -> tuple[str, int]:
    """Install an OpenTelemetry SDK meter provider that serves Prometheus on ``port``.

    For processes that own their telemetry (``squidie worker --metrics-port``). Needs
    ``pip install 'squidie[prometheus]'``.

    Returns:
        The ``(host, port)`` actually bound.

    Raises:
        ImportError: the ``prometheus`` extra is not installed.
        RuntimeError: an SDK meter provider is already installed in this process.
    """
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import start_http_server
    except ImportError as exc:
        raise ImportError(
            f"the Prometheus endpoint needs pip install 'squidie[prometheus]' ({exc})"
        ) from exc
    current = _otel_metrics.get_meter_provider()
    if isinstance(current, MeterProvider):
        raise RuntimeError("an OpenTelemetry SDK meter provider is already installed")
    _otel_metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
    server, _thread = start_http_server(port, addr=host)
    bound = server.server_address
    return str(bound[0]), int(bound[1])
