"""The ``squidie`` command line.

The store comes from ``--store`` or ``SQUIDIE_STORE`` (default: the embedded SQLite file
``sqlite:///squidie.db``). Workflows are loaded from ``--app MODULE`` (repeatable, or
``SQUIDIE_APP`` comma-separated) and from the ``squidie.workflows`` entry-point group.

Output is a readable table by default and JSON with ``--json``. Exit codes: 0 success,
1 the operation failed (unknown run, wrong state, backend down...), 2 usage errors
(unknown option, malformed JSON). Errors are one line on stderr unless ``--debug``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from squidie_core._runtime import Squidie
from squidie_core._workflow import Workflow
from squidie_core.errors import BackendUnavailable, SquidieError

__all__ = ["cli", "load_workflows", "main"]

DEFAULT_STORE = "sqlite:///squidie.db"
WORKFLOWS_GROUP = "squidie.workflows"

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- helpers


def _workflows_in(module: Any) -> list[type[Workflow]]:
    found = []
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, Workflow)
            and "__squidie__" in value.__dict__
        ):
            found.append(value)
    return found


def load_workflows(modules: Iterable[str] = (), *, entry_points: bool = True) -> list[type]:
    """Import workflow modules and collect their compiled ``Workflow`` classes.

    Args:
        modules: Module names (``package.module``) or ``module:Class`` references.
        entry_points: Also load the ``squidie.workflows`` entry-point group (each entry a
            module or a workflow class).
    """
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    found: list[type] = []
    refs = [m for m in modules if m]
    targets: list[Any] = []
    for ref in refs:
        module_name, _, attr = ref.partition(":")
        try:
            module = importlib.import_module(module_name)
        except SyntaxError as exc:
            raise ImportError(f"cannot import app module {module_name!r}: {exc.msg} "
                              f"({exc.filename}, line {exc.lineno})") from exc
        if attr and not hasattr(module, attr):
            raise ImportError(f"app module {module_name!r} has no attribute {attr!r}")
        targets.append(getattr(module, attr) if attr else module)
    if entry_points:
        for ep in importlib.metadata.entry_points(group=WORKFLOWS_GROUP):
            targets.append(ep.load())
    for target in targets:
        if isinstance(target, type) and issubclass(target, Workflow):
            found.append(target)
        else:
            found.extend(_workflows_in(target))
    unique: dict[int, type] = {id(w): w for w in found}
    return list(unique.values())


@dataclass
class _State:
    store_url: str
    apps: list[str]
    as_json: bool
    debug: bool
    _engine: Squidie | None = None
    workflows: list[type] = field(default_factory=list)

    def engine(self) -> Squidie:
        if self._engine is None:
            self.workflows = load_workflows(self.apps)
            self._engine = Squidie.from_url(self.store_url, workflows=self.workflows)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


def connect_with_retry(connect: Callable[[], Squidie], *, timeout: float,
                       stop_requested: Callable[[], bool] = lambda: False,
                       sleep: Callable[[float], None] = time.sleep) -> Squidie | None:
    """Create the engine, waiting out a backend that is down for up to ``timeout`` seconds.

    Long-running processes (worker, scheduler) are often started by a supervisor at the
    same moment as the database, or while it restarts: they retry with exponential
    backoff (0.2 s doubling to 5 s) and log each failed attempt. Returns ``None`` if a
    stop was requested while waiting; re-raises :class:`BackendUnavailable` once
    ``timeout`` has passed. Any other error (bad URL, schema missing) is not retried.
    """
    from tenacity import (
        Retrying,
        retry_if_exception_type,
        stop_after_delay,
        wait_exponential,
    )
    from tenacity.stop import stop_base

    class _StopRequested(stop_base):
        def __call__(self, retry_state: Any) -> bool:
            return stop_requested()

    log = logging.getLogger("squidie.cli")

    def before_sleep(state: Any) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("backend unavailable (attempt %d, retrying for up to %.0f s): %s",
                    state.attempt_number, timeout, exc)

    retrying = Retrying(retry=retry_if_exception_type(BackendUnavailable),
                        stop=stop_after_delay(timeout) | _StopRequested(),
                        wait=wait_exponential(multiplier=0.2, max=5.0),
                        before_sleep=before_sleep, sleep=sleep, reraise=True)
    try:
        return retrying(connect)
    except BackendUnavailable:
        if stop_requested():
            return None
        raise


def _connect_long_running(command: str, timeout: float) -> tuple[Squidie | None, list[int]]:
    """Engine for a long-running command, waiting for the backend; remember early signals.

    A supervisor may signal while we are still starting: the signals are recorded (never
    fatal) and returned, and a signal during the wait ends it with ``None``.
    """
    import signal

    early: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: early.append(signum))
    engine = connect_with_retry(_state().engine, timeout=timeout,
                                stop_requested=lambda: bool(early))
    if engine is None:
        click.echo(f"{command}: stopped while waiting for the backend", err=True)
    return engine, early


def _state() -> _State:
    ctx = click.get_current_context()
    obj = ctx.find_object(_State)
    assert obj is not None
    return obj


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def _json_option(value: str | None, name: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"malformed JSON ({exc.msg} at char {exc.pos})",
                                 param_hint=name) from None


def _default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    return str(value)


def _emit(data: Any, table: Callable[[Any], str] | None = None) -> None:
    if _state().as_json or table is None:
        click.echo(json.dumps(data, indent=2, default=_default, sort_keys=False))
    else:
        click.echo(table(data))


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[str(r.get(c, "") if r.get(c) is not None else "") for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _pairs(data: Mapping[str, Any]) -> str:
    width = max((len(k) for k in data), default=0)
    out = []
    for key, value in data.items():
        shown = json.dumps(value, default=_default) if isinstance(value, dict | list) else value
        out.append(f"{key.ljust(width)}  {shown}")
    return "\n".join(out)


def _iso(ts: float | None) -> str | None:
    from squidie_core._runtime import iso

    return iso(ts)


def handle_errors(fn: F) -> F:
    """Turn Squidie errors into one line on stderr and exit code 1."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        state = _state()
        try:
            return fn(*args, **kwargs)
        except (SquidieError, ValueError, LookupError, ImportError, ConnectionError,
                OSError) as exc:
            if state.debug:
                raise
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            _fail(f"{type(exc).__name__}: {message}")
        finally:
            state.close()

    return wrapper  # type: ignore[return-value]


# --------------------------------------------------------------------------- the group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", envvar="SQUIDIE_STORE", default=DEFAULT_STORE, show_default=True,
              help="Store URL (env SQUIDIE_STORE).")
@click.option("--app", "apps", multiple=True, envvar="SQUIDIE_APP",
              help="Module with workflow classes (repeatable; env SQUIDIE_APP, comma-separated).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="squidie", prog_name="squidie")
@click.pass_context
def cli(ctx: click.Context, store: str, apps: tuple[str, ...], as_json: bool,
        debug: bool) -> None:
    """Squidie: durable workflows on the database you already have."""
    modules = [m.strip() for a in apps for m in a.split(",") if m.strip()]
    ctx.obj = _State(store_url=store, apps=modules, as_json=as_json, debug=debug)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# --------------------------------------------------------------------------- backends


@cli.command()
@handle_errors
def backends() -> None:
    """List the storage backends discovered, with their schemes and capabilities."""
    from squidie_core._discovery import registry

    reg = registry()
    rows = []
    for b in reg.backends():
        missing = b.driver_missing()
        caps = b.info.capabilities.to_dict() if b.info.capabilities else {}
        rows.append({
            "name": b.info.name,
            "schemes": ", ".join(b.info.schemes),
            "from": b.distribution or "(in-process)",
            "plugin": b.plugin,
            "driver": f"missing: pip install 'squidie[{b.info.extra}]'" if missing else "ok",
            "capabilities": ", ".join(k for k, v in caps.items() if v is True) or "-",
            "description": b.info.description,
        })
    skipped = [{"plugin": k, "reason": v} for k, v in reg.skipped.items()]
    if _state().as_json:
        _emit({"backends": rows, "skipped": skipped})
        return
    click.echo(_table(rows, ["name", "schemes", "from", "driver", "capabilities"]))
    for row in skipped:
        click.echo(f"skipped plugin {row['plugin']}: {row['reason']}")


# --------------------------------------------------------------------------- schema


@cli.command()
@handle_errors
def install() -> None:
    """Create or upgrade the store's schema (idempotent)."""
    from squidie_core._discovery import registry, scheme_of

    url = _state().store_url
    action = registry().admin(url, "install")
    result = "nothing to install" if action is None else str(action(url))
    _emit({"store": scheme_of(url), "result": result},
          lambda d: f"{d['store']}: {d['result']}")


@cli.command()
@handle_errors
def doctor() -> None:
    """Check the store (reachability, schema drift, durability) and the loaded workflows."""
    from squidie_core._discovery import registry

    state = _state()
    findings: list[dict[str, Any]] = []
    check = registry().admin(state.store_url, "doctor")
    if check is not None:
        findings.extend(check(state.store_url))
    if any(f["level"] == "error" for f in findings):
        _emit(findings, lambda rows: _table(rows, ["level", "check", "detail"]))
        raise SystemExit(1)
    engine = state.engine()
    engine.store.head("squidie-doctor-probe")
    findings.insert(0, {"level": "ok", "check": "reachable", "detail": engine.store.name})
    if not engine.workflows:
        findings.append({"level": "warning", "check": "workflows",
                         "detail": "no workflows loaded (use --app or SQUIDIE_APP)"})
    else:
        findings.append({"level": "ok", "check": "workflows",
                         "detail": ", ".join(sorted(engine.workflows))})
    _emit(findings, lambda rows: _table(rows, ["level", "check", "detail"]))
    if any(f["level"] == "error" for f in findings):
        raise SystemExit(1)


# --------------------------------------------------------------------------- host


_CONNECT_TIMEOUT = click.option(
    "--connect-timeout", default=60.0, show_default=True, type=click.FloatRange(0),
    help="Seconds to keep retrying at startup while the backend is unavailable.")


@cli.command()
@click.option("--concurrency", "-c", default=4, show_default=True, type=click.IntRange(1))
@click.option("--queue", "-q", "queues", multiple=True, help="Queue to serve (repeatable).")
@click.option("--lease-for", default=300.0, show_default=True, type=click.FloatRange(0.1))
@click.option("--heartbeat", "heartbeat", default=None, type=click.FloatRange(0.05),
              help="Seconds between heartbeats (default lease/3).")
@click.option("--grace", default=30.0, show_default=True, type=click.FloatRange(0))
@click.option("--poll", default=0.05, show_default=True, type=click.FloatRange(0.001))
@click.option("--max-poll", default=2.0, show_default=True, type=click.FloatRange(0.001))
@click.option("--claim-batch", default=64, show_default=True, type=click.IntRange(1),
              help="The most dispatches a slot claims at once, runs in turn and commits "
                   "together (adapts to step duration; 1: one at a time).")
@click.option("--name", default=None, help="Owner id prefix (default host:pid).")
@click.option("--health-file", default=None, type=click.Path(dir_okay=False))
@click.option("--health-port", default=None, type=click.IntRange(0, 65535))
@click.option("--metrics-port", default=None, type=click.IntRange(0, 65535),
              help="Serve Prometheus metrics (needs squidie[prometheus]).")
@click.option("--log-level", default="INFO", show_default=True)
@_CONNECT_TIMEOUT
@handle_errors
def worker(concurrency: int, queues: tuple[str, ...], lease_for: float,
           heartbeat: float | None, grace: float, poll: float, max_poll: float,
           claim_batch: int, name: str | None, health_file: str | None,
           health_port: int | None, metrics_port: int | None, log_level: str,
           connect_timeout: float) -> None:
    """Run a worker: claim, run and commit step attempts until SIGTERM/SIGINT."""
    import signal

    from squidie_core._worker import Worker

    logging.getLogger("squidie").setLevel(log_level.upper())
    engine, early = _connect_long_running("worker", connect_timeout)
    if engine is None:
        return
    if not engine.workflows:
        _fail("no workflows loaded: pass --app MODULE (or set SQUIDIE_APP)")
    w = Worker(engine, concurrency=concurrency, queues=queues or None, lease_for=lease_for,
               heartbeat_interval=heartbeat, grace_period=grace, poll_interval=poll,
               max_poll_interval=max_poll, name=name, health_file=health_file,
               health_port=health_port, metrics_port=metrics_port,
               claim_batch=claim_batch)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, w.handle_signal)
    for signum in early:
        w.handle_signal(signum, None)
    click.echo(f"worker {w.name}: {concurrency} slot(s) on {', '.join(w.queues)}; "
               f"workflows: {', '.join(sorted(engine.workflows))}", err=True)
    w.run()


@cli.command()
@click.option("--tick", default=1.0, show_default=True, type=click.FloatRange(0.01))
@click.option("--misfire", type=click.Choice(["catch_up", "skip"]), default="catch_up",
              show_default=True)
@click.option("--catch-up-window", default=3600.0, show_default=True,
              type=click.FloatRange(0))
@click.option("--max-catch-up", default=10, show_default=True, type=click.IntRange(0))
@click.option("--log-level", default="INFO", show_default=True)
@_CONNECT_TIMEOUT
@handle_errors
def scheduler(tick: float, misfire: str, catch_up_window: float, max_catch_up: int,
              log_level: str, connect_timeout: float) -> None:
    """Run the cron scheduler: start one run per due window of every cron trigger."""
    import signal

    from squidie_core._scheduler import Scheduler

    logging.getLogger("squidie").setLevel(log_level.upper())
    engine, early = _connect_long_running("scheduler", connect_timeout)
    if engine is None:
        return
    s = Scheduler(engine, tick=tick, misfire=misfire,  # type: ignore[arg-type]
                  catch_up_window=catch_up_window, max_catch_up=max_catch_up)
    if not s.triggers():
        _fail("no cron triggers in the loaded workflows (use --app MODULE)")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: s.stop())
    if early:
        s.stop()
    click.echo(f"scheduler: {', '.join(c.label for c in s.triggers())}", err=True)
    s.run()


# --------------------------------------------------------------------------- runs


@cli.command()
@click.argument("workflow")
@click.argument("trigger", required=False)
@click.option("--payload", "-p", default=None, help="JSON object.")
@click.option("--idempotency-key", default=None)
@click.option("--queue", default=None)
@click.option("--actor", default=None)
@handle_errors
def start(workflow: str, trigger: str | None, payload: str | None,
          idempotency_key: str | None, queue: str | None, actor: str | None) -> None:
    """Start a run of WORKFLOW through its manual TRIGGER."""
    data = _json_option(payload, "--payload")
    result = _state().engine().start(workflow, trigger, data, idempotency_key=idempotency_key,
                                     queue=queue, actor=actor)
    _emit(result, lambda r: f"{'started' if r.created else 'existing'} run {r.run_id} "
                            f"({r.workflow}.{r.trigger}, {r.status})")


@cli.group()
def runs() -> None:
    """List and inspect runs."""


@runs.command("list")
@click.option("--workflow", default=None)
@click.option("--status", default=None)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--cursor", default=None)
@handle_errors
def runs_list(workflow: str | None, status: str | None, limit: int,
              cursor: str | None) -> None:
    """List runs, newest first."""
    page = _state().engine().list_runs(workflow=workflow, status=status, limit=limit,
                                       cursor=cursor)
    rows = [{**e.to_dict(), "created": _iso(e.created_at), "updated": _iso(e.updated_at)}
            for e in page.items]
    if _state().as_json:
        _emit({"runs": rows, "next_cursor": page.next_cursor})
        return
    click.echo(_table(rows, ["run_id", "workflow", "trigger", "status", "queue",
                             "created", "updated"]))
    if page.next_cursor:
        click.echo(f"next page: --cursor {page.next_cursor}")


@runs.command("show")
@click.argument("run_id")
@click.option("--history", is_flag=True, help="Include every fact.")
@handle_errors
def runs_show(run_id: str, history: bool) -> None:
    """Show a run: status, data, attempts, links, commands."""
    _emit(_state().engine().inspect_run(run_id, include_history=history), _pairs)


@runs.command("explain")
@click.argument("run_id")
@handle_errors
def runs_explain(run_id: str) -> None:
    """Explain why a run is where it is and what moves it on."""
    data = _state().engine().explain_run(run_id)
    _emit(data, lambda d: f"{d['status']}: {d['summary']}\nreason: {d['reason']}\n"
                          f"next actions: {', '.join(d['next_actions'])}")


@runs.command("graph")
@click.argument("run_id")
@handle_errors
def runs_graph(run_id: str) -> None:
    """Show the run's workflow graph with node and edge statuses."""
    data = _state().engine().inspect_run_graph(run_id)

    def render(d: dict[str, Any]) -> str:
        nodes = _table(d["nodes"], ["id", "kind", "status", "attempts"])
        edges = _table(d["edges"], ["id", "status"])
        return f"{nodes}\n\n{edges}\ncurrent: {', '.join(d['current']) or '-'}"

    _emit(data, render)


@runs.command("history")
@click.argument("run_id")
@handle_errors
def runs_history(run_id: str) -> None:
    """Print every fact of a run, in order."""
    facts = _state().engine().history(run_id)

    def render(rows: list[dict[str, Any]]) -> str:
        lines = []
        for r in rows:
            body = {k: v for k, v in r.items() if k not in ("seq", "type", "at")}
            lines.append(f"{r['seq']:>4}  {r['at']}  {r['type']:<20} "
                         f"{json.dumps(body, default=_default)}")
        return "\n".join(lines)

    _emit(facts, render)


# --------------------------------------------------------------------------- commands


def _command_result(result: Any) -> None:
    _emit(result, lambda r: f"{r.command} {r.run_id}: {r.status}"
                            f"{' (duplicate: already applied)' if r.duplicate else ''}")


def _manual(name: str, doc: str) -> None:
    @cli.command(name, help=doc)
    @click.argument("run_id")
    @click.option("--actor", required=True, help="Who decides (recorded in the history).")
    @click.option("--comment", default=None)
    @click.option("--metadata", default=None, help="JSON object (secrets are redacted).")
    @click.option("--idempotency-key", default=None)
    @handle_errors
    def command(run_id: str, actor: str, comment: str | None, metadata: str | None,
                idempotency_key: str | None) -> None:
        meta = _json_option(metadata, "--metadata")
        method = getattr(_state().engine(), name)
        _command_result(method(run_id, actor=actor, comment=comment, metadata=meta,
                               idempotency_key=idempotency_key))


_manual("approve", "Approve the approval step RUN_ID waits at (follows its ok route).")
_manual("reject", "Reject the approval step RUN_ID waits at (follows its error route).")
_manual("resume", "Resume RUN_ID from its pause step.")


@cli.command()
@click.argument("run_id")
@click.option("--actor", default=None)
@click.option("--reason", default=None)
@click.option("--idempotency-key", default=None)
@handle_errors
def cancel(run_id: str, actor: str | None, reason: str | None,
           idempotency_key: str | None) -> None:
    """Cancel RUN_ID; a step still running cannot commit afterwards."""
    _command_result(_state().engine().cancel(run_id, actor=actor, reason=reason,
                                             idempotency_key=idempotency_key))


@cli.command()
@click.argument("run_id")
@click.option("--allow-irreversible", is_flag=True)
@click.option("--actor", default=None)
@click.option("--idempotency-key", default=None)
@handle_errors
def replay(run_id: str, allow_irreversible: bool, actor: str | None,
           idempotency_key: str | None) -> None:
    """Start a new run from finished RUN_ID's trigger and payload."""
    result = _state().engine().replay(run_id, allow_irreversible=allow_irreversible,
                                      actor=actor, idempotency_key=idempotency_key)
    _emit(result, lambda r: f"replayed {run_id} as run {r.run_id} ({r.status})")


@cli.group("dead-letters")
def dead_letters() -> None:
    """List and re-drive dead-lettered dispatches."""


@dead_letters.command("list")
@click.option("--queue", default=None)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--cursor", default=None)
@handle_errors
def dead_letters_list(queue: str | None, limit: int, cursor: str | None) -> None:
    """List dead letters, oldest first, with their reasons."""
    page = _state().engine().dead_letters(queue=queue, limit=limit, cursor=cursor)
    rows = [{"key": r.dispatch.key, "run_id": r.dispatch.run_id, "step": r.dispatch.step,
             "queue": r.dispatch.queue, "deliveries": r.deliveries, "reason": r.reason}
            for r in page.items]
    if _state().as_json:
        _emit({"dead_letters": [r.to_dict() for r in page.items],
               "next_cursor": page.next_cursor})
        return
    click.echo(_table(rows, ["key", "queue", "deliveries", "reason"]))


@dead_letters.command("redrive")
@click.argument("dispatch_key")
@click.option("--delay", default=0.0, type=click.FloatRange(0))
@handle_errors
def dead_letters_redrive(dispatch_key: str, delay: float) -> None:
    """Make DISPATCH_KEY deliverable again with a fresh delivery count."""
    _state().engine().redrive(dispatch_key, delay=delay)
    _emit({"redriven": dispatch_key}, lambda d: f"re-drove {d['redriven']}")


# --------------------------------------------------------------------------- status


@cli.command()
@handle_errors
def status() -> None:
    """Counts by workflow and status, queue depths and the oldest visible age."""
    engine = _state().engine()
    store = engine.store
    counts_fn = getattr(store, "run_counts", None)
    if counts_fn is not None:
        counts: dict[tuple[str, str], int] = dict(counts_fn())
    else:
        counts = {}
        cursor = None
        while True:
            page = store.list_runs(limit=1000, cursor=cursor)
            for e in page.items:
                counts[(e.workflow, e.status)] = counts.get((e.workflow, e.status), 0) + 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    now = engine.clock.now()
    depth = store.depth()
    data = {
        "runs": [{"workflow": w, "status": s, "count": n}
                 for (w, s), n in sorted(counts.items())],
        "queues": [{"queue": q, **d.to_dict(),
                    "oldest_visible_age": None if d.oldest_visible_at is None
                    else round(now - d.oldest_visible_at, 3)}
                   for q, d in sorted(depth.items())],
    }

    def render(d: dict[str, Any]) -> str:
        return (_table(d["runs"], ["workflow", "status", "count"]) + "\n\n"
                + _table(d["queues"], ["queue", "visible", "scheduled", "claimed", "dead",
                                       "oldest_visible_age"]))

    _emit(data, render)


# --------------------------------------------------------------------------- dashboard


@cli.command()
@click.option("--store", "dashboard_store", default=None,
              help="Store URL (overrides the group's --store / SQUIDIE_STORE).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", envvar="SQUIDIE_DASHBOARD_TOKEN", default=None,
              help="Operator token (env SQUIDIE_DASHBOARD_TOKEN); without one the "
                   "dashboard is read-only and hides payloads.")
@click.option("--refresh", default=3.0, show_default=True, type=click.FloatRange(0),
              help="Seconds between live refreshes (0: off).")
@click.option("--log-level", default="warning", show_default=True)
@handle_errors
def dashboard(dashboard_store: str | None, host: str, port: int, token: str | None,
              refresh: float, log_level: str) -> None:
    """Serve SquidSonar, the web dashboard (needs squidie[dashboard])."""
    try:
        from squidie_core.dashboard import DashboardConfig, serve
    except ImportError as exc:
        _fail(f"the dashboard needs its extra: pip install 'squidie[dashboard]' ({exc})")
    state = _state()
    if dashboard_store is not None:
        state.store_url = dashboard_store
    engine = state.engine()
    config = DashboardConfig(token=token or None, refresh=refresh)
    mode = "operator token set" if config.token else "read-only (no token)"
    click.echo(f"SquidSonar on http://{host}:{port}/ ({engine.store.name}; {mode}; "
               f"workflows: {', '.join(sorted(engine.workflows)) or 'none'})", err=True)
    serve(engine, config, host=host, port=port, log_level=log_level.lower())


# --------------------------------------------------------------------------- tools


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("store_url")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def conformance(store_url: str, pytest_args: tuple[str, ...]) -> None:
    """Run the storage conformance suite against STORE_URL and print a summary.

    Options after the URL: ``-k KEYWORD`` (select cases), ``-x`` (stop at the first
    failure), ``-v``.
    """
    try:
        runner = importlib.import_module("conformance._runner")
    except ImportError as exc:
        _fail(f"the conformance suite is not available: {exc}")
    args = [store_url, *pytest_args]
    if _state().as_json:
        args.append("--json")
    raise SystemExit(runner.main(args))


@cli.command()
@click.option("--store", "demo_store", default=None,
              help="Store URL for the demo (default: embedded SQLite).")
def demo(demo_store: str | None) -> None:
    """Run the RingErrand example end to end (needs a source checkout)."""
    import runpy

    script = Path(__file__).resolve().parent.parent / "docs" / "examples" / "ring_errand.py"
    if not script.exists():
        _fail("the demo needs a source checkout (docs/examples/ring_errand.py); "
              "see the README's quick start")
    sys.argv = [str(script), *([demo_store] if demo_store else [])]
    runpy.run_path(str(script), run_name="__main__")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``squidie`` script; returns the exit code."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="squidie",
                 standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "squidie"
        click.echo(f"error: {exc.format_message()} (see '{command} --help')", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
