"""The dashboard's pages and JSON API through Starlette's TestClient, on a SQLite file store.

Covers the runs list (filters, search, keyset pagination, bad input), run detail (graph,
explanation, history), redaction for non-operators, the operator token (header, form,
login cookie + CSRF, read-only mode), every action landing in the command history with
its actor, dead letters and re-drive, stats, escaping of user data, and mounting the app
inside a host app.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import dash_flows
import pytest
from dash_support import TOKEN, drain
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from squidie_core import ManualClock, Squidie
from squidie_core.dashboard import ACTIONS, DashboardConfig, create_app
from squidie_core.dashboard._data import HIDDEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def client_for(engine: Squidie, **config: Any) -> TestClient:
    cfg = DashboardConfig(**{"token": TOKEN, "background_sampling": False, **config})
    return TestClient(create_app(engine, cfg), follow_redirects=False)


@pytest.fixture
def client(engine: Squidie) -> Iterator[TestClient]:
    with client_for(engine) as c:
        yield c


def waiting_review(engine: Squidie, clock: ManualClock, title: str = "quarterly") -> str:
    run_id = engine.start(dash_flows.Review, "submit", {"title": title, "note": "pssst"}).run_id
    drain(engine, clock)
    assert engine.inspect_run(run_id)["status"] == "paused"
    return run_id


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "no CSRF field on an operator page"
    return found.group(1)


def login(client: TestClient, actor: str = "alice") -> str:
    resp = client.post("/login", data={"token": TOKEN, "actor": actor})
    assert resp.status_code == 303
    return csrf_of(client.get("/").text)


# --------------------------------------------------------------------------- runs list


def test_runs_list_filters_by_workflow_and_status(engine: Squidie, clock: ManualClock,
                                                  client: TestClient) -> None:
    review = waiting_review(engine, clock)
    hold = engine.start(dash_flows.Hold, "go", {}).run_id
    drain(engine, clock)
    leaf = engine.inspect_run(review)["children"][0]["run_id"]

    every = {r["run_id"] for r in client.get("/api/runs").json()["runs"]}
    assert every == {review, hold, leaf}
    reviews = client.get("/api/runs", params={"workflow": "Review"}).json()["runs"]
    assert [r["run_id"] for r in reviews] == [review]
    completed = client.get("/api/runs", params={"status": "completed"}).json()["runs"]
    assert [r["run_id"] for r in completed] == [leaf]
    paused_holds = client.get("/api/runs", params={"workflow": "Hold", "status": "paused"})
    assert [r["run_id"] for r in paused_holds.json()["runs"]] == [hold]
    none = client.get("/api/runs", params={"workflow": "Hold", "status": "completed"})
    assert none.json()["runs"] == []

    page = client.get("/", params={"workflow": "Review"}).text
    assert review in page and hold not in page and leaf not in page
    leaves = client.get("/", params={"workflow": "Leaf"}).text
    assert f'class="parent-run" href="/runs/{review}"' in leaves  # a child links its parent
    assert 'data-run-id="' + review + '"' in page


def test_search_by_run_id(engine: Squidie, clock: ManualClock, client: TestClient) -> None:
    review = waiting_review(engine, clock)
    hold = engine.start(dash_flows.Hold, "go", {}).run_id
    found = client.get("/api/runs", params={"q": hold}).json()["runs"]
    assert [r["run_id"] for r in found] == [hold]
    assert client.get("/api/runs", params={"q": "no-such-run"}).json()["runs"] == []
    # The search honours the other filters.
    assert client.get("/api/runs", params={"q": hold, "workflow": "Review"}).json()["runs"] == []
    page = client.get("/", params={"q": review}).text
    assert review in page and hold not in page
    assert "No run with that id." in client.get("/", params={"q": "nope"}).text


def test_keyset_pagination_walks_every_run_once(engine: Squidie, clock: ManualClock,
                                                client: TestClient) -> None:
    started = []
    for i in range(23):
        clock.advance(0.001)
        started.append(engine.start(dash_flows.Hold, "go", {"label": f"h{i}"}).run_id)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "10", **({"cursor": cursor} if cursor else {})}
        data = client.get("/api/runs", params=params).json()
        seen += [r["run_id"] for r in data["runs"]]
        pages += 1
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(started))  # newest first, no gaps, no repeats
    first = client.get("/", params={"limit": "10"}).text
    assert 'id="next-page"' in first and 'id="first-page"' not in first
    nxt = re.search(r'id="next-page" href="([^"]+)"|href="([^"]+)" id="next-page"', first)
    assert nxt is not None
    second = client.get(nxt.group(1 if nxt.group(1) else 2).replace("&amp;", "&")).text
    assert started[12] in second and started[22] not in second
    assert 'id="first-page"' in second


@pytest.mark.parametrize(("params", "code"), [
    ({"status": "sleeping"}, "invalid_argument"),
    ({"limit": "0"}, "invalid_argument"),
    ({"limit": "1001"}, "invalid_argument"),
    ({"limit": "ten"}, "invalid_argument"),
    ({"cursor": "garbage!"}, "invalid_argument"),
    ({"q": "x" * 600}, "invalid_argument"),
    ({"q": "abc", "status": "sleeping"}, "invalid_argument"),
    ({"q": "abc", "limit": "0"}, "invalid_argument"),
])
def test_bad_list_input_is_a_400(client: TestClient, params: dict[str, str],
                                 code: str) -> None:
    resp = client.get("/api/runs", params=params)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == code
    page = client.get("/", params=params)
    assert page.status_code == 400
    assert 'id="error"' in page.text


def test_unknown_run_is_a_404(client: TestClient) -> None:
    resp = client.get("/api/runs/not-a-run")
    assert resp.status_code == 404 and resp.json()["error"] == "run_not_found"
    assert client.get("/runs/not-a-run").status_code == 404


# --------------------------------------------------------------------------- run detail


def test_run_detail_has_graph_explanation_and_history(engine: Squidie, clock: ManualClock,
                                                      client: TestClient) -> None:
    run_id = waiting_review(engine, clock)
    data = client.get(f"/api/runs/{run_id}", headers=AUTH).json()
    nodes = {n["id"]: n for n in data["graph"]["nodes"]}
    assert nodes["prepare"]["status"] == "completed" and nodes["prepare"]["attempts"] == 2
    assert nodes["review"]["status"] == "paused"
    assert data["graph"]["current"] == ["review"]
    edges = {e["id"]: e["status"] for e in data["graph"]["edges"]}
    assert edges["prepare:ok:spawn"] == "selected"
    assert edges["review:ok:publish"] == "pending"
    assert data["explain"]["reason"] == "manual_intervention_required"
    assert data["explain"]["next_actions"] == ["resolve_manual_step"]
    assert data["history"][0]["type"] == "run_started"

    page = client.get(f"/runs/{run_id}").text
    svg = re.search(r"<svg[^>]*class=\"graph\".*?</svg>", page, re.S)
    assert svg is not None
    drawn = svg.group(0)
    assert 'data-node="review" data-status="paused"' in drawn
    assert re.search(r'class="node node-paused current" data-node="review"', drawn)
    assert 'data-edge="prepare:ok:spawn"' in drawn and "edge-selected" in drawn
    assert "↻ 2 attempts" in drawn  # the retry shows on the node
    child = data["run"]["children"][0]["run_id"]
    assert f'href="/runs/{child}"' in drawn  # the child run is a link in the graph
    assert "manual_intervention_required" in page and "resolve_manual_step" in page
    assert 'id="timeline"' in page and "attempt_failed" in page


def test_payloads_and_outputs_are_hidden_from_viewers(engine: Squidie, clock: ManualClock,
                                                      client: TestClient) -> None:
    run_id = waiting_review(engine, clock, title="top-secret-title")
    viewer = client.get(f"/api/runs/{run_id}")
    assert viewer.status_code == 200
    assert "top-secret-title" not in viewer.text and "pssst" not in viewer.text
    data = viewer.json()
    assert data["run"]["payload"] == HIDDEN and data["run"]["context"] == HIDDEN
    started = data["history"][0]
    assert started["type"] == "run_started" and started["payload"] == HIDDEN
    outputs = [f["output"] for f in data["history"] if f["type"] == "attempt_succeeded"]
    assert outputs and all(o == HIDDEN for o in outputs)
    page = client.get(f"/runs/{run_id}").text
    assert "top-secret-title" not in page and "pssst" not in page
    assert HIDDEN in page

    operator = client.get(f"/api/runs/{run_id}", headers=AUTH).json()
    assert operator["run"]["payload"] == {"title": "top-secret-title", "note": "pssst"}
    assert operator["run"]["context"]["prepared"] == "top-secret-title"
    wrong = client.get(f"/api/runs/{run_id}", headers={"Authorization": "Bearer nope"})
    assert "top-secret-title" not in wrong.text


# --------------------------------------------------------------------------- auth + actions


def test_actions_need_the_token(engine: Squidie, clock: ManualClock,
                                client: TestClient) -> None:
    run_id = waiting_review(engine, clock)
    body = {"run_id": run_id, "actor": "mallory"}
    assert client.post("/api/actions/approve", json=body).status_code == 403
    bad = client.post("/api/actions/approve", json=body, headers={"X-Squidie-Token": "guess"})
    assert bad.status_code == 403 and bad.json()["error"] == "forbidden"
    assert client.post("/actions/approve", data=body).status_code == 403
    assert client.post("/actions/approve", data={**body, "token": "guess"}).status_code == 403
    assert client.post("/actions/approve", data={**body, "csrf": "0" * 64}).status_code == 403
    assert engine.inspect_run(run_id)["status"] == "paused"  # nothing happened
    assert [c["command"] for c in engine.inspect_run(run_id)["commands"]] == ["start"]


def test_read_only_without_a_token(engine: Squidie, clock: ManualClock) -> None:
    run_id = waiting_review(engine, clock)
    with client_for(engine, token=None) as c:
        for headers in ({}, {"Authorization": "Bearer "}, {"X-Squidie-Token": ""}):
            resp = c.post("/api/actions/approve", json={"run_id": run_id, "actor": "a"},
                          headers=headers)
            assert resp.status_code == 403 and resp.json()["error"] == "read_only"
        assert c.post("/login", data={"token": "", "actor": "a"}).status_code == 403
        page = c.get(f"/runs/{run_id}").text
        assert "read-only" in page and 'id="actions"' not in page
        assert c.get(f"/api/runs/{run_id}").json()["run"]["payload"] == HIDDEN
        assert c.get("/api/me").json() == {"operator": False, "writable": False,
                                          "workflows": ["Hold", "Leaf", "Review"],
                                          "actions": list(ACTIONS)}
    assert engine.inspect_run(run_id)["status"] == "paused"


def test_approve_through_the_api_records_the_actor(engine: Squidie, clock: ManualClock,
                                                   client: TestClient) -> None:
    run_id = waiting_review(engine, clock)
    resp = client.post("/api/actions/approve", headers=AUTH,
                       json={"run_id": run_id, "actor": "carol", "comment": "ship it"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["actor"] == "carol"
    drain(engine, clock)
    run = engine.inspect_run(run_id)
    assert run["status"] == "completed"
    approve = [c for c in run["commands"] if c["command"] == "approve"]
    assert len(approve) == 1
    assert approve[0]["actor"] == "carol" and approve[0]["comment"] == "ship it"
    assert approve[0]["metadata"] == {"via": "dashboard"}
    page = client.get(f"/runs/{run_id}").text
    assert '<td class="actor">carol</td>' in page


def test_login_cookie_and_csrf_drive_the_forms(engine: Squidie, clock: ManualClock,
                                               client: TestClient) -> None:
    run_id = waiting_review(engine, clock)
    wrong = client.post("/login", data={"token": "nope", "actor": "x"})
    assert wrong.status_code == 403 and "not the operator token" in wrong.text
    csrf = login(client, actor="dora")
    cookie = client.cookies.get("squidie_operator")
    assert cookie and TOKEN not in cookie and csrf != cookie
    page = client.get(f"/runs/{run_id}").text
    assert 'id="action-approve"' in page and 'id="action-reject"' in page
    assert TOKEN not in page
    # The cookie alone is not enough to write: the form must carry the CSRF value.
    no_csrf = client.post("/actions/reject", data={"run_id": run_id, "actor": "dora"})
    assert no_csrf.status_code == 403
    resp = client.post("/actions/reject",
                       data={"run_id": run_id, "actor": "dora", "comment": "no", "csrf": csrf})
    assert resp.status_code == 303
    assert resp.headers["location"].endswith(f"/runs/{run_id}?done=reject")
    drain(engine, clock)
    run = engine.inspect_run(run_id)
    assert run["status"] == "completed"
    assert run["context"]["decision"]["approved"] is False
    assert [(c["command"], c.get("actor")) for c in run["commands"]][-1] == ("reject", "dora")
    # Logging out drops the operator view.
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    assert client.get("/api/me").json()["operator"] is False


def test_form_post_with_the_token_field(engine: Squidie, clock: ManualClock,
                                        client: TestClient) -> None:
    hold = engine.start(dash_flows.Hold, "go", {}).run_id
    drain(engine, clock)
    resp = client.post("/actions/resume", data={"run_id": hold, "actor": "erin",
                                                "token": TOKEN})
    assert resp.status_code == 303
    drain(engine, clock)
    run = engine.inspect_run(hold)
    assert run["status"] == "completed"
    assert run["commands"][-1]["command"] == "resume" and run["commands"][-1]["actor"] == "erin"


def test_cancel_and_replay_record_the_actor(engine: Squidie, clock: ManualClock,
                                            client: TestClient) -> None:
    run_id = waiting_review(engine, clock)
    resp = client.post("/api/actions/cancel", headers=AUTH,
                       json={"run_id": run_id, "actor": "frank", "comment": "obsolete"})
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    replay = client.post("/api/actions/replay", headers=AUTH,
                         json={"run_id": run_id, "actor": "grace"})
    assert replay.status_code == 200, replay.text
    new_id = replay.json()["new_run_id"]
    assert new_id != run_id
    run = engine.inspect_run(run_id)
    commands = [(c["command"], c.get("actor")) for c in run["commands"]]
    assert ("cancel", "frank") in commands and ("replay", "grace") in commands
    assert engine.inspect_run(new_id)["replayed_from_run_id"] == run_id
    page = client.get(f"/runs/{run_id}").text
    assert f'href="/runs/{new_id}"' in page  # the replay is linked from the source


@pytest.mark.parametrize(("action", "body", "status", "code"), [
    ("resume", {"actor": "a"}, 409, "invalid_transition"),  # a review waits for approval
    ("replay", {"actor": "a"}, 409, "invalid_transition"),  # the run has not finished
    ("approve", {}, 400, "invalid_argument"),  # no actor
    ("approve", {"actor": 7}, 400, "invalid_argument"),
    ("approve", {"actor": "a", "allow_irreversible": "yes"}, 400, "invalid_argument"),
    ("launch", {"actor": "a"}, 404, "unknown_action"),
])
def test_wrong_actions_are_refused(engine: Squidie, clock: ManualClock, client: TestClient,
                                   action: str, body: dict[str, Any], status: int,
                                   code: str) -> None:
    run_id = waiting_review(engine, clock)
    resp = client.post(f"/api/actions/{action}", headers=AUTH, json={"run_id": run_id, **body})
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == code
    assert engine.inspect_run(run_id)["status"] == "paused"


def test_malformed_bodies_are_a_400(client: TestClient) -> None:
    for content in (b"not json", b"[1, 2]"):
        resp = client.post("/api/actions/approve", headers={**AUTH, "content-type":
                                                            "application/json"},
                           content=content)
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_argument"
    missing = client.post("/api/actions/approve", headers=AUTH,
                          json={"run_id": "nope", "actor": "a"})
    assert missing.status_code == 404 and missing.json()["error"] == "run_not_found"


# --------------------------------------------------------------------------- dead letters


def test_dead_letters_are_listed_and_redriven(engine: Squidie, clock: ManualClock,
                                              client: TestClient) -> None:
    run_id = engine.start(dash_flows.Leaf, "go", {"n": 2}).run_id
    leaf = engine.start(dash_flows.Leaf, "go", {"n": 1}).run_id
    leases = engine.store.claim("vanished-worker", lease_for=5.0, limit=10,
                                queues=["default"])
    assert {lease.dispatch.run_id for lease in leases} == {run_id, leaf}
    clock.advance(10)  # the leases expire; with max_deliveries=1 the next claim dead-letters
    while engine.execute_next(owner_id="w") is not None:
        pass
    listed = client.get("/api/dead-letters").json()["dead_letters"]
    assert {d["run_id"] for d in listed} == {run_id, leaf}
    key = next(d["key"] for d in listed if d["run_id"] == leaf)
    page = client.get("/dead-letters").text
    assert key in page and "Re-drive" not in page  # viewers cannot re-drive

    assert client.post("/api/dead-letters/redrive", json={"key": key}).status_code == 403
    resp = client.post("/api/dead-letters/redrive", headers=AUTH, json={"key": key})
    assert resp.status_code == 200
    again = client.post("/api/dead-letters/redrive", headers=AUTH, json={"key": key})
    assert again.status_code == 404 and again.json()["error"] == "dispatch_not_found"
    drain(engine, clock)
    assert engine.inspect_run(leaf)["status"] == "completed"
    # The form route works for a logged-in operator too.
    csrf = login(client)
    other = next(d["key"] for d in listed if d["run_id"] == run_id)
    assert "Re-drive" in client.get("/dead-letters").text
    form = client.post("/dead-letters/redrive", data={"key": other, "csrf": csrf})
    assert form.status_code == 303
    assert client.get("/api/dead-letters").json()["dead_letters"] == []


# --------------------------------------------------------------------------- stats


def test_stats_count_runs_per_status_and_sample_depth(engine: Squidie, clock: ManualClock
                                                      ) -> None:
    waiting_review(engine, clock)
    engine.start(dash_flows.Leaf, "go", {"n": 3})  # visible, not yet run
    with client_for(engine, sample_every=0.0) as c:
        first = c.get("/api/stats").json()
        assert first["counts"]["by_status"]["paused"] == 1
        assert first["counts"]["by_status"]["completed"] == 1  # the child
        assert first["counts"]["by_status"]["started"] == 1  # the new leaf
        assert first["counts"]["total"] == 3
        assert first["counts"]["by_workflow"]["Review"] == {"paused": 1}
        depth = {q["queue"]: q for q in first["queues"]}
        assert depth["default"]["visible"] == 1
        drain(engine, clock)
        second = c.get("/api/stats").json()
        assert len(second["samples"]) == 2
        assert second["samples"][0]["queues"]["default"]["visible"] == 1
        assert second["samples"][1]["queues"]["default"]["visible"] == 0
        page = c.get("/stats").text
        assert 'id="depth-chart"' in page and "<polyline" in page
        assert '<span class="n" id="count-paused">1</span>' in page
        assert '<span class="n" id="count-completed">2</span>' in page


def test_stats_without_run_counts(engine: Squidie) -> None:
    class NoCounts:
        def __init__(self, store: Any) -> None:
            self._store = store

        def __getattr__(self, name: str) -> Any:
            if name == "run_counts":
                raise AttributeError(name)
            return getattr(self._store, name)

    engine.store = NoCounts(engine.store)  # type: ignore[assignment]
    with client_for(engine) as c:
        assert c.get("/api/stats").json()["counts"] is None
        assert "does not offer run counts" in c.get("/stats").text


# --------------------------------------------------------------------------- escaping


def test_user_data_is_escaped_everywhere(engine: Squidie, clock: ManualClock,
                                         client: TestClient) -> None:
    run_id = waiting_review(engine, clock, title=XSS)
    client.post("/api/actions/reject", headers=AUTH,
                json={"run_id": run_id, "actor": XSS, "comment": XSS})
    drain(engine, clock)
    pages = [
        client.get(f"/runs/{run_id}", headers=AUTH).text,  # operator: sees the payload
        client.get("/", params={"q": XSS, "workflow": XSS}).text,  # reflected filters
        client.get("/runs/" + XSS).text,  # an unknown "run id" in an error page
        client.get("/", params={"status": XSS}).text,
    ]
    for page in pages:
        assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in pages[0]
    # JSON answers are JSON (and nosniff), so the browser never renders them as HTML.
    api = client.get(f"/api/runs/{run_id}", headers=AUTH)
    assert api.headers["content-type"].startswith("application/json")
    assert api.headers["x-content-type-options"] == "nosniff"
    csp = client.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_odd_run_ids_round_trip(engine: Squidie, clock: ManualClock,
                                client: TestClient) -> None:
    # Idempotency keys derive run ids; a store written by hand may hold any id, so links
    # percent-encode every character and the route takes the rest of the path.
    from squidie_core.storage import Fact

    odd = "weird/id?&<b>#1"
    engine.store.append(odd, [Fact(1, "run_started", clock.now(), {
        "workflow": "Hold", "version": "v", "trigger": "go", "payload": {},
        "queue": "default"})], 0)
    data = client.get("/api/runs/weird/id%3F&%3Cb%3E%231").json()
    assert data["run"]["run_id"] == odd
    page = client.get("/runs/weird%2Fid%3F%26%3Cb%3E%231")
    assert page.status_code == 200 and "weird/id?&amp;&lt;b&gt;#1" in page.text


# --------------------------------------------------------------------------- mounting


def test_mounted_inside_a_host_app(engine: Squidie, clock: ManualClock) -> None:
    run_id = waiting_review(engine, clock)
    dashboard = create_app(engine, DashboardConfig(token=TOKEN, background_sampling=False))
    host = Starlette(routes=[Mount("/ops/squidie", app=dashboard)])
    with TestClient(host, follow_redirects=False) as c:
        page = c.get("/ops/squidie/").text
        assert f'href="/ops/squidie/runs/{run_id}"' in page
        assert 'href="/ops/squidie/static/dashboard.css"' in page
        assert c.get("/ops/squidie/static/dashboard.js").status_code == 200
        assert c.get(f"/ops/squidie/runs/{run_id}").status_code == 200
        resp = c.post("/ops/squidie/login", data={"token": TOKEN, "actor": "hal"})
        assert resp.status_code == 303 and resp.headers["location"] == "/ops/squidie/"
        assert "Path=/ops/squidie" in resp.headers["set-cookie"]
        csrf = csrf_of(c.get("/ops/squidie/").text)
        done = c.post("/ops/squidie/actions/approve",
                      data={"run_id": run_id, "actor": "hal", "csrf": csrf})
        assert done.status_code == 303
        assert done.headers["location"] == f"/ops/squidie/runs/{run_id}?done=approve"
    assert engine.inspect_run(run_id)["commands"][-1]["actor"] == "hal"


def test_config_is_checked(engine: Squidie) -> None:
    with pytest.raises(ValueError, match="token"):
        create_app(engine, DashboardConfig(token="  "))
    with pytest.raises(ValueError, match="page_size"):
        create_app(engine, DashboardConfig(page_size=0))
    with pytest.raises(ValueError, match="not both"):
        create_app(engine, DashboardConfig(), token="x")
