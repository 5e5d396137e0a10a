"""Turn the campaigns' figures (``SQUIDIE_RELIABILITY_OUT`` JSON lines) into the
Markdown tables of ``docs/reliability.md``.

Usage::

    SQUIDIE_RELIABILITY_OUT=build/rel.jsonl .venv/bin/pytest tests/reliability
    SQUIDIE_RELIABILITY_OUT=build/rel.jsonl make soak
    .venv/bin/python tests/reliability/report.py build/rel.jsonl
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any

NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB",
         "redis": "Redis", "fdb": "FoundationDB (simulator)"}
TITLES = {
    "worker_crashes": "worker SIGKILL / SIGSTOP past the lease",
    "pg_terminate_backend": "sessions terminated (pg_terminate_backend)",
    "postgres_restart": "own server crashed (immediate stop) and restarted",
    "mariadb_kill": "connections KILLed",
    "redis_restart": "own server SIGKILLed, restarted from AOF (everysec)",
    "fdb_sim_faults": "simulated cluster faults + crashing/stalling workers",
    "load": "load, one worker with 8 slots",
}


def _faults(row: dict[str, Any]) -> str:
    f = row.get("faults")
    if isinstance(f, dict):
        return ", ".join(f"{v} {k}" for k, v in f.items())
    if row["campaign"] == "fdb_sim_faults":
        cluster = sum(row["cluster_faults"].values())
        workers = sum(row["worker_faults"].values())
        return f"{cluster} cluster, {workers} worker"
    return str(f) if f is not None else "—"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def main(path: str) -> None:
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    by_backend: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["campaign"] != "backlog":
            by_backend[row["backend"]].append(row)
    for backend, title in NAMES.items():
        if backend not in by_backend:
            continue
        print(f"\n### {title}\n")
        print("| campaign | suite | faults injected | runs | committed twice | runs lost "
              "| recovery p50 / p99 |")
        print("| --- | --- | --- | ---: | ---: | ---: | --- |")
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for row in by_backend[backend]:
            key = (row["campaign"], row["suite"])
            m = merged.setdefault(key, {**row, "runs": 0, "double_commits": 0, "lost": 0,
                                        "_faults": []})
            m["runs"] += row["runs"]
            m["double_commits"] += row["double_commits"]
            m["lost"] += row["lost"]
            m["_faults"].append(_faults(row))
        for (campaign, suite), m in merged.items():
            faults = m["_faults"][0] if len(m["_faults"]) == 1 else \
                f"{len(m['_faults'])} seeds"
            if "recovery_p50_s" in m:
                rec = f"{_ms(m['recovery_p50_s'])} / {_ms(m['recovery_p99_s'])}"
            elif "resume_p50_s" in m:
                rec = f"({_ms(m['resume_p50_s'])} / {_ms(m['resume_p99_s'])})"
            elif campaign == "load":
                rec = (f"RSS {m['rss_warm_kib'] // 1024}→{m['rss_peak_kib'] // 1024} MiB, "
                       f"{m['runs_per_s']} runs/s")
            else:
                rec = "—"
            print(f"| {TITLES.get(campaign, campaign)} | {suite} | {faults} | {m['runs']} "
                  f"| {m['double_commits']} | {m['lost']} | {rec} |")
    backlog = [r for r in rows if r["campaign"] == "backlog"]
    if backlog:
        print("\n| backend | pending | claim p50 nearly empty | claim p50 at backlog | ratio "
              "| p99 empty / backlog | fill time |")
        print("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
        for r in backlog:
            print(f"| {NAMES[r['backend']]} | {r['pending']:,} | {r['claim_p50_empty_ms']} ms "
                  f"| {r['claim_p50_full_ms']} ms | {r['ratio_p50']}× "
                  f"| {r['claim_p99_empty_ms']} / {r['claim_p99_full_ms']} ms "
                  f"| {r['fill_s']} s |")


if __name__ == "__main__":
    main(sys.argv[1])
