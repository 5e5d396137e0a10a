"""How fast the dashboard's pages answer with 100,000 runs in the store (SQLite, PostgreSQL).

Run it (never part of ``make test``)::

    python -m benchmarks.dashboard_list                         # sqlite and postgresql
    python -m benchmarks.dashboard_list --dialects sqlite --runs 100000 --requests 40

For each dialect: a fresh store (unique table prefix) gets ``--runs`` rows in its run
index through one ``INSERT ... SELECT`` (three workflows, statuses mixed 80 % completed,
10 % failed, 10 % paused, one created every millisecond), plus a few dozen real runs
started and driven through the engine so the run page has a journal to read. Then each
page is requested ``--requests`` times through the ASGI app in-process (Starlette's
TestClient: routing, the store query, rendering and the response, without a network
hop), after two warm-up requests, and the median and 95th percentile are reported:

- ``/`` (newest 50), ``/?status=paused``, ``/?workflow=...&status=completed``, a page
  deep in the middle (keyset cursor), ``/api/runs``, the search by run id;
- ``/runs/<id>`` (a real run: inspect, explain, graph, history);
- ``/stats`` (``run_counts``: an aggregate over the whole run index);
- ``/`` and ``/?status=paused`` again over a real keep-alive HTTP connection to uvicorn
  serving the app in a thread (adds the HTTP parsing and the loopback round trip).

Results are printed as a Markdown table, and as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "dashboard"))

import dash_flows  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from benchmarks.sql._common import settle_after_bulk_load, store_url  # noqa: E402
from squidie_backends.sql import SQLStore, uninstall  # noqa: E402
from squidie_core import Squidie  # noqa: E402
from squidie_core.dashboard import DashboardConfig, create_app  # noqa: E402
from squidie_core.storage import encode_cursor  # noqa: E402

BASE_TIME = 1_700_000_000.0
WORKFLOWS = ("Review", "Leaf", "Hold")


def load_runs(store: SQLStore, count: int) -> None:
    """Insert ``count`` run-index rows with one ``INSERT ... SELECT`` (a recursive CTE)."""
    r = store.tables.runs
    numbers = sa.select(sa.literal(1).label("x")).cte("numbers", recursive=True)
    numbers = numbers.union_all(sa.select(numbers.c.x + 1).where(numbers.c.x < count))
    x = numbers.c.x
    status = sa.case((x % 10 == 0, "failed"), (x % 10 == 1, "paused"), else_="completed")
    workflow = sa.case((x % 3 == 0, WORKFLOWS[0]), (x % 3 == 1, WORKFLOWS[1]),
                       else_=WORKFLOWS[2])
    created = sa.literal(BASE_TIME) + x * 0.001
    rows = sa.select(
        sa.literal("bulk-") + sa.cast(x, sa.String), workflow, sa.literal("go"), status,
        sa.literal("default"), created, created + 1.0, sa.literal(5),
    )
    columns = ["run_id", "workflow", "trigger", "status", "queue", "created_at",
               "updated_at", "last_seq"]
    with store._engine.begin() as conn:
        if store.name == "mysql":
            conn.exec_driver_sql(f"SET SESSION max_recursive_iterations = {count + 1}")
        conn.execute(sa.insert(r).from_select(columns, rows))
    settle_after_bulk_load(store, r.name)


def real_runs(engine: Squidie, count: int) -> str:
    """Start and drive ``count`` review runs to their approval; return one run id."""
    ids = [engine.start(dash_flows.Review, "submit", {"title": f"t{i}"}).run_id
           for i in range(count)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if engine.execute_next(owner_id="bench") is None:
            if all(engine.load(i).status == "paused" for i in ids):
                break
            time.sleep(0.06)  # a retry backoff (50 ms) is pending
    return ids[0]


def timed(client: TestClient, path: str, requests: int) -> dict[str, float]:
    for _ in range(2):
        assert client.get(path).status_code == 200, path
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        resp = client.get(path)
        samples.append((time.perf_counter() - start) * 1000)
        assert resp.status_code == 200, (path, resp.status_code)
    samples.sort()
    return {"median_ms": round(statistics.median(samples), 2),
            "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 2),
            "max_ms": round(samples[-1], 2)}


class HTTPServer:
    """The app under uvicorn in a thread on an ephemeral loopback port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> int:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def timed_http(port: int, path: str, requests: int) -> dict[str, float]:
    """Like ``timed``, over a real keep-alive HTTP connection to uvicorn."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    samples = []
    try:
        for i in range(requests + 2):
            start = time.perf_counter()
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            elapsed = (time.perf_counter() - start) * 1000
            assert resp.status == 200, (path, resp.status)
            if i >= 2:
                samples.append(elapsed)
    finally:
        conn.close()
    samples.sort()
    return {"median_ms": round(statistics.median(samples), 2),
            "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 2),
            "max_ms": round(samples[-1], 2)}


def bench(dialect: str, runs: int, requests: int, directory: str) -> list[dict[str, Any]]:
    url = store_url(dialect, directory)
    engine = Squidie.from_url(url, workflows=dash_flows.WORKFLOWS, telemetry=False)
    try:
        assert isinstance(engine.store, SQLStore)
        started = time.perf_counter()
        load_runs(engine.store, runs)
        load_s = time.perf_counter() - started
        run_id = real_runs(engine, 20)
        total = runs + 40  # 20 reviews and their 20 children
        middle = encode_cursor(BASE_TIME + (runs // 2) * 0.001, f"bulk-{runs // 2}")
        pages = {
            "/ (newest 50)": "/",
            "/?status=paused": "/?status=paused",
            "/?workflow=Leaf&status=completed": "/?workflow=Leaf&status=completed",
            "/?cursor=<middle>": f"/?cursor={middle}",
            "/?limit=200": "/?limit=200",
            "/api/runs": "/api/runs",
            "/?q=<run id>": f"/?q=bulk-{runs // 3}",
            "/runs/<id>": f"/runs/{run_id}",
            "/stats": "/stats",
        }
        results = []
        config = DashboardConfig(token="bench", background_sampling=False, sample_every=0.0)
        with TestClient(create_app(engine, config)) as client:
            for label, path in pages.items():
                row = {"dialect": dialect, "runs": total, "page": label,
                       **timed(client, path, requests)}
                results.append(row)
        with HTTPServer(create_app(engine, config)) as port:
            for label, path in (("/ over HTTP", "/"), ("/?status=paused over HTTP",
                                                       "/?status=paused")):
                results.append({"dialect": dialect, "runs": total, "page": label,
                                **timed_http(port, path, requests)})
        results.append({"dialect": dialect, "runs": total, "page": "(bulk load)",
                        "median_ms": round(load_s * 1000, 1), "p95_ms": None,
                        "max_ms": None})
        return results
    finally:
        engine.close()
        if dialect != "sqlite":
            uninstall(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialects", nargs="+", default=["sqlite", "postgresql"],
                        choices=["sqlite", "postgresql", "mysql"])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as directory:
        for dialect in args.dialects:
            results += bench(dialect, args.runs, args.requests, directory)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print("| dialect | runs | page | median ms | p95 ms | max ms |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['dialect']} | {r['runs']:,} | {r['page']} | {r['median_ms']} | "
              f"{r['p95_ms'] if r['p95_ms'] is not None else ''} | "
              f"{r['max_ms'] if r['max_ms'] is not None else ''} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
