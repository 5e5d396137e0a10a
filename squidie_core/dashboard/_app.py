"""The dashboard's ASGI application (Starlette): pages, the JSON API, auth and actions.

Reads use the engine's public inspection API; writes (approve, reject, resume, cancel,
replay, re-drive) call the engine's public commands with the operator's name as the
``actor``, so each lands in the run's command history.

Who may do what::

    no token configured   read-only; payloads and outputs hidden; every POST is 403
    viewer                reads; payloads and outputs hidden
    operator              reads everything; may POST actions. An operator is a request
                          carrying the token (``Authorization: Bearer``, ``X-Squidie-Token``
                          or a form field ``token``), or a browser that logged in at
                          /login: its cookie holds an HMAC of the token (never the token),
                          and its forms carry a CSRF value (another HMAC of the token).

Every comparison with a secret uses ``hmac.compare_digest``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import quote, unquote

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from squidie_core._runtime import Squidie
from squidie_core.dashboard import _pages as pages
from squidie_core.dashboard._data import (
    Sampler,
    dead_letter_row,
    hide_data,
    queue_depths,
    run_row,
    status_counts,
)
from squidie_core.dashboard._html import Safe
from squidie_core.errors import (
    ConflictError,
    InvalidArgument,
    InvalidTransitionError,
    NotFoundError,
    SquidieError,
)

__all__ = ["ACTIONS", "DashboardConfig", "create_app"]

log = logging.getLogger("squidie.dashboard")

#: The run commands the dashboard offers (each an engine method of the same name).
ACTIONS = ("approve", "reject", "resume", "cancel", "replay")

SESSION_COOKIE = "squidie_operator"
ACTOR_COOKIE = "squidie_actor"
MAX_TEXT = 500  # longest actor / comment / search accepted
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


@dataclass(frozen=True)
class DashboardConfig:
    """Dashboard options.

    Attributes:
        token: The operator token; ``None`` makes the dashboard read-only.
        title: Shown in the header and page titles.
        refresh: Seconds between live refreshes of a page (0 turns live refresh off).
        page_size: Default rows per page of the runs list (at most 1000).
        sample_every: Seconds between queue-depth samples for the stats chart.
        sample_keep: How many samples the chart keeps.
        background_sampling: Sample in a thread while the app's lifespan runs (when it
            is mounted inside another app, samples are taken when the stats are viewed).
        secure_cookies: Mark the login cookie ``Secure`` (serve over HTTPS).
    """

    token: str | None = None
    title: str = "SquidSonar"
    refresh: float = 3.0
    page_size: int = 50
    sample_every: float = 5.0
    sample_keep: int = 720
    background_sampling: bool = True
    secure_cookies: bool = False


class _HTTPError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _status_for(exc: SquidieError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, InvalidArgument | ValueError):
        return 400
    if isinstance(exc, InvalidTransitionError | ConflictError):
        return 409
    return 500


def _mac(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), f"squidie-dashboard:{purpose}".encode(),
                    hashlib.sha256).hexdigest()


def _same(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    return hmac.compare_digest(a.encode(), b.encode())


def _text(value: Any, name: str, *, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _HTTPError(400, "invalid_argument", f"{name} is required")
        return None
    if not isinstance(value, str):
        raise _HTTPError(400, "invalid_argument", f"{name} must be a string")
    if len(value) > MAX_TEXT:
        raise _HTTPError(400, "invalid_argument", f"{name} is longer than {MAX_TEXT}")
    return value.strip()


class _Dashboard:
    def __init__(self, engine: Squidie, config: DashboardConfig) -> None:
        if config.token is not None and not config.token.strip():
            raise ValueError("the operator token must not be empty (pass None for read-only)")
        if not 1 <= config.page_size <= 1000:
            raise ValueError("page_size must be from 1 to 1000")
        self.engine = engine
        self.config = config
        self.token = config.token
        self.session = _mac(config.token, "session") if config.token else None
        self.csrf = _mac(config.token, "csrf") if config.token else None
        self.sampler = Sampler(engine, every=config.sample_every, keep=config.sample_keep)

    # ------------------------------------------------------------------ auth

    def header_token(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return request.headers.get("x-squidie-token")

    def is_operator(self, request: Request) -> bool:
        if self.token is None:
            return False
        if _same(self.header_token(request), self.token):
            return True
        return _same(request.cookies.get(SESSION_COOKIE), self.session)

    def check_write(self, request: Request, form: Mapping[str, Any] | None) -> None:
        """Raise 403 unless the request may write (see the module docstring)."""
        if self.token is None:
            raise _HTTPError(403, "read_only",
                             "the dashboard is read-only: no operator token is configured")
        if _same(self.header_token(request), self.token):
            return
        if form is not None:
            token = form.get("token")
            if isinstance(token, str) and _same(token, self.token):
                return
            csrf = form.get("csrf")
            if (isinstance(csrf, str) and _same(csrf, self.csrf)
                    and _same(request.cookies.get(SESSION_COOKIE), self.session)):
                return
        raise _HTTPError(403, "forbidden", "this action needs the operator token")

    def view(self, request: Request) -> pages.View:
        operator = self.is_operator(request)
        actor = unquote(request.cookies.get(ACTOR_COOKIE) or "")
        return pages.View(
            base=request.scope.get("root_path", "").rstrip("/"), operator=operator,
            writable=self.token is not None, csrf=self.csrf if operator else None,
            actor=actor[:MAX_TEXT], title=self.config.title, refresh=self.config.refresh)

    # ------------------------------------------------------------------ data

    def runs_data(self, params: Mapping[str, str]) -> dict[str, Any]:
        workflow = _text(params.get("workflow"), "workflow")
        status = _text(params.get("status"), "status")
        q = _text(params.get("q"), "q")
        cursor = _text(params.get("cursor"), "cursor")
        raw_limit = params.get("limit") or str(self.config.page_size)
        try:
            limit = int(raw_limit)
        except ValueError:
            raise _HTTPError(400, "invalid_argument", "limit must be an integer") from None
        if not 1 <= limit <= 1000:
            raise _HTTPError(400, "invalid_argument", "limit must be from 1 to 1000")
        filters = {"workflow": workflow, "status": status, "q": q}
        if q is not None:
            # Search by run id: an exact lookup through the index (still honouring filters).
            entry = self.engine.store.get_run(q)
            if status is not None:  # validate the filter as list_runs would
                self.engine.list_runs(status=status, limit=1)
            rows = [] if entry is None else [run_row(entry)]
            rows = [r for r in rows if (workflow is None or r["workflow"] == workflow)
                    and (status is None or r["status"] == status)]
            return {"runs": rows, "next_cursor": None, "cursor": None, "limit": limit,
                    "filters": filters}
        page = self.engine.list_runs(workflow=workflow, status=status, limit=limit,
                                     cursor=cursor)
        return {"runs": [run_row(e) for e in page.items], "next_cursor": page.next_cursor,
                "cursor": cursor, "limit": limit, "filters": filters}

    def run_data(self, run_id: str, operator: bool) -> dict[str, Any]:
        engine = self.engine
        data = {
            "run": engine.inspect_run(run_id),
            "explain": engine.explain_run(run_id),
            "graph": engine.inspect_run_graph(run_id),
            "history": engine.history(run_id),
        }
        return data if operator else hide_data(data)

    def dead_letters_data(self, params: Mapping[str, str]) -> dict[str, Any]:
        queue = _text(params.get("queue"), "queue")
        cursor = _text(params.get("cursor"), "cursor")
        page = self.engine.dead_letters(queue=queue, limit=50, cursor=cursor)
        return {"dead_letters": [dead_letter_row(r) for r in page.items],
                "next_cursor": page.next_cursor, "queue": queue}

    def stats_data(self) -> dict[str, Any]:
        engine = self.engine
        samples = self.sampler.maybe_sample()
        now = engine.clock.now()
        depth = queue_depths(engine)
        queues = [{"queue": q, **{k: v for k, v in d.to_dict().items()
                                  if k != "oldest_visible_at"},
                   "oldest_visible_age": None if d.oldest_visible_at is None
                   else round(now - d.oldest_visible_at, 3)}
                  for q, d in sorted(depth.items())]
        return {"counts": status_counts(engine), "queues": queues, "samples": samples}

    # ------------------------------------------------------------------ commands

    def act(self, action: str, run_id: str, actor: str, comment: str | None,
            allow_irreversible: bool) -> dict[str, Any]:
        """Apply ``action`` through the engine's public API; return what it did."""
        engine = self.engine
        if action in ("approve", "reject", "resume"):
            result = getattr(engine, action)(run_id, actor=actor, comment=comment,
                                             metadata={"via": "dashboard"})
            return {"action": action, "run_id": run_id, "status": result.status,
                    "seq": result.seq, "actor": actor}
        if action == "cancel":
            result = engine.cancel(run_id, actor=actor, reason=comment)
            return {"action": action, "run_id": run_id, "status": result.status,
                    "seq": result.seq, "actor": actor}
        if action == "replay":
            started = engine.replay(run_id, actor=actor, allow_irreversible=allow_irreversible)
            return {"action": action, "run_id": run_id, "new_run_id": started.run_id,
                    "status": started.status, "actor": actor}
        raise _HTTPError(404, "unknown_action",
                         f"unknown action {action!r}; one of {', '.join(ACTIONS)}")


class _SecurityHeaders:
    """Pure ASGI middleware adding the security headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = "/static/" in scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("content-security-policy", CSP)
                headers.setdefault("x-content-type-options", "nosniff")
                headers.setdefault("referrer-policy", "same-origin")
                headers.setdefault("x-frame-options", "DENY")
                if not static:
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _static(name: str) -> bytes:
    return resources.files("squidie_core.dashboard").joinpath("static", name).read_bytes()


_STATIC_TYPES = {"dashboard.css": "text/css; charset=utf-8",
                 "dashboard.js": "text/javascript; charset=utf-8"}


def create_app(engine: Squidie, config: DashboardConfig | None = None, *,
               token: str | None = None) -> Starlette:
    """Return the dashboard as an ASGI app serving ``engine``'s store.

    Args:
        engine: The engine whose runs to show (register the workflows to draw their
            graphs; runs of unknown workflows show their steps without edges).
        config: Options (``DashboardConfig``).
        token: Shortcut for ``DashboardConfig(token=...)``.

    The app can be served alone (``uvicorn``) or mounted inside another Starlette or
    FastAPI app, e.g. ``host.mount("/squidie", create_app(engine, token=...))``.
    """
    if config is None:
        config = DashboardConfig(token=token)
    elif token is not None:
        raise ValueError("pass the token in the config or as token=, not both")
    dash = _Dashboard(engine, config)

    def html_response(content: Safe, status: int = 200) -> HTMLResponse:
        return HTMLResponse(str(content), status_code=status)

    def guard(fn: Callable[[Request], Response], *, api: bool) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                return fn(request)
            except _HTTPError as exc:
                status, code, message = exc.status, exc.code, exc.message
            except SquidieError as exc:
                status, code, message = _status_for(exc), exc.code, str(exc)
            if status >= 500:
                log.error("dashboard: %s: %s", code, message)
            if api:
                return JSONResponse({"error": code, "message": message}, status_code=status)
            return html_response(pages.error_page(dash.view(request), status, message),
                                 status)

        return endpoint

    # ------------------------------------------------------------------ pages

    def runs_page(request: Request) -> Response:
        data = dash.runs_data(request.query_params)
        names = sorted(set(engine.workflows) | ({data["filters"]["workflow"]} - {None}))
        return html_response(pages.runs_page(dash.view(request), data, names))

    def run_page(request: Request) -> Response:
        view = dash.view(request)
        data = dash.run_data(request.path_params["run_id"], view.operator)
        done = request.query_params.get("done")
        flash = None
        if done in ACTIONS or done == "redrive":
            flash = f"{done} recorded"
        return html_response(pages.run_page(view, data, flash))

    def dead_letters_page(request: Request) -> Response:
        data = dash.dead_letters_data(request.query_params)
        flash = "re-driven" if request.query_params.get("done") == "redrive" else None
        return html_response(pages.dead_letters_page(dash.view(request), data, flash))

    def stats_page(request: Request) -> Response:
        return html_response(pages.stats_page(dash.view(request), dash.stats_data()))

    def login_get(request: Request) -> Response:
        return html_response(pages.login_page(dash.view(request)))

    async def login_post(request: Request) -> Response:
        view = dash.view(request)
        form = await request.form()
        token, actor = form.get("token"), form.get("actor")
        if dash.token is None:
            return html_response(pages.login_page(view), 403)
        if not isinstance(token, str) or not _same(token, dash.token):
            return html_response(pages.login_page(view, "That is not the operator token."),
                                 403)
        name = actor.strip()[:MAX_TEXT] if isinstance(actor, str) and actor.strip() \
            else "operator"
        response = RedirectResponse(view.href("/"), status_code=303)
        path = view.base or "/"
        assert dash.session is not None
        response.set_cookie(SESSION_COOKIE, dash.session, httponly=True, samesite="strict",
                            secure=config.secure_cookies, path=path)
        response.set_cookie(ACTOR_COOKIE, quote(name, safe=" "), httponly=True,
                            samesite="strict", secure=config.secure_cookies, path=path)
        return response

    async def logout(request: Request) -> Response:
        view = dash.view(request)
        form = await request.form()
        dash.check_write(request, dict(form))
        response = RedirectResponse(view.href("/"), status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=view.base or "/")
        response.delete_cookie(ACTOR_COOKIE, path=view.base or "/")
        return response

    async def action_post(request: Request) -> Response:
        view = dash.view(request)
        form = dict(await request.form())
        action = request.path_params["action"]

        def apply(_: Request) -> Response:
            dash.check_write(request, form)
            if action not in ACTIONS:
                raise _HTTPError(404, "unknown_action", f"unknown action {action!r}")
            run_id = _text(form.get("run_id"), "run_id", required=True)
            actor = _text(form.get("actor"), "actor", required=True)
            assert run_id is not None and actor is not None
            done = dash.act(action, run_id, actor, _text(form.get("comment"), "comment"),
                            bool(form.get("allow_irreversible")))
            target = done.get("new_run_id") or run_id
            return RedirectResponse(f"{view.run_href(target)}?done={action}", status_code=303)

        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(guard(apply, api=False), request)

    async def redrive_post(request: Request) -> Response:
        view = dash.view(request)
        form = dict(await request.form())

        def apply(_: Request) -> Response:
            dash.check_write(request, form)
            key = _text(form.get("key"), "key", required=True)
            assert key is not None
            engine.redrive(key)
            return RedirectResponse(view.href("/dead-letters", {"done": "redrive"}),
                                    status_code=303)

        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(guard(apply, api=False), request)

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC_TYPES:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(_static(name), media_type=_STATIC_TYPES[name],
                        headers={"cache-control": "max-age=300"})

    # ------------------------------------------------------------------ JSON API

    def api_runs(request: Request) -> Response:
        return JSONResponse(dash.runs_data(request.query_params))

    def api_run(request: Request) -> Response:
        data = dash.run_data(request.path_params["run_id"], dash.is_operator(request))
        return JSONResponse(data)

    def api_dead_letters(request: Request) -> Response:
        return JSONResponse(dash.dead_letters_data(request.query_params))

    def api_stats(request: Request) -> Response:
        return JSONResponse(dash.stats_data())

    def api_me(request: Request) -> Response:
        return JSONResponse({"operator": dash.is_operator(request),
                             "writable": dash.token is not None,
                             "workflows": sorted(engine.workflows), "actions": list(ACTIONS)})

    async def api_action(request: Request) -> Response:
        action = request.path_params["action"]
        try:
            body = await request.json()
        except ValueError:
            body = None

        def apply(_: Request) -> Response:
            dash.check_write(request, None)
            if action not in ACTIONS:
                raise _HTTPError(404, "unknown_action", f"unknown action {action!r}")
            if not isinstance(body, dict):
                raise _HTTPError(400, "invalid_argument", "the body must be a JSON object")
            run_id = _text(body.get("run_id"), "run_id", required=True)
            actor = _text(body.get("actor"), "actor", required=True)
            allow = body.get("allow_irreversible", False)
            if not isinstance(allow, bool):
                raise _HTTPError(400, "invalid_argument", "allow_irreversible must be a bool")
            assert run_id is not None and actor is not None
            return JSONResponse(dash.act(action, run_id, actor,
                                         _text(body.get("comment"), "comment"), allow))

        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(guard(apply, api=True), request)

    async def api_redrive(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None

        def apply(_: Request) -> Response:
            dash.check_write(request, None)
            if not isinstance(body, dict):
                raise _HTTPError(400, "invalid_argument", "the body must be a JSON object")
            key = _text(body.get("key"), "key", required=True)
            assert key is not None
            engine.redrive(key)
            return JSONResponse({"redriven": key})

        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(guard(apply, api=True), request)

    routes = [
        Route("/", guard(runs_page, api=False), methods=["GET"]),
        Route("/runs/{run_id:path}", guard(run_page, api=False), methods=["GET"]),
        Route("/dead-letters", guard(dead_letters_page, api=False), methods=["GET"]),
        Route("/dead-letters/redrive", redrive_post, methods=["POST"]),
        Route("/stats", guard(stats_page, api=False), methods=["GET"]),
        Route("/login", login_get, methods=["GET"]),
        Route("/login", login_post, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/actions/{action}", action_post, methods=["POST"]),
        Route("/static/{name}", static, methods=["GET"]),
        Route("/api/me", api_me, methods=["GET"]),
        Route("/api/runs", guard(api_runs, api=True), methods=["GET"]),
        Route("/api/runs/{run_id:path}", guard(api_run, api=True), methods=["GET"]),
        Route("/api/dead-letters", guard(api_dead_letters, api=True), methods=["GET"]),
        Route("/api/dead-letters/redrive", api_redrive, methods=["POST"]),
        Route("/api/stats", guard(api_stats, api=True), methods=["GET"]),
        Route("/api/actions/{action}", api_action, methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if config.background_sampling:
            dash.sampler.start()
        try:
            yield
        finally:
            dash.sampler.stop()

    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(_SecurityHeaders)])
    app.state.dashboard = dash
    return app
