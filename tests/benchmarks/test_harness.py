"""``python -m benchmarks --quick`` on SQLite: the table's shape, never its timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks._cli import WORKLOADS, main, render
from benchmarks._cli import Row as BenchRow


def test_quick_run_on_sqlite_prints_one_table(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rows.json"
    assert main(["--quick", "--backends", "sqlite", "--no-peers", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    table = [line for line in printed.splitlines() if line.startswith("|")]
    assert table[0].startswith("| backend (settings) | figure | squidie | of ceiling |")
    rows = json.loads(out.read_text())["rows"]
    figures = [row["figure"] for row in rows]
    # Every workload produced its figures, each a measured positive number.
    for expected in ["W1 runs/s e2e, 1 worker process", "W1 start", "W1 drain, 1 worker",
                     "W1 runs/s e2e, 2 workers", "W2 start", "W2 drain, 1 worker",
                     "W3 p50", "W3 p99", "claim p50 at 100 pending",
                     "claim p50 at 1,000 pending", "ceiling insert+claim+complete"]:
        assert expected in figures, (expected, figures)
    assert all(row["squidie"] and row["squidie"] > 0 for row in rows), rows
    assert {row["backend"] for row in rows} == {"sqlite"}
    assert all(row["settings"] == "WAL, synchronous=FULL" for row in rows)
    # The header plus its rule plus one line per row: one table, nothing else in it.
    assert len(table) == len(rows) + 2
    # Throughput figures carry their ratio to the ceiling.
    drain = next(row for row in rows if row["figure"] == "W2 drain, 1 worker")
    assert drain["ceiling"] and drain["ceiling"] > 0
    assert WORKLOADS == ["w1", "w1x2", "w2", "w3", "backlog", "ceiling"]


def test_peer_columns_show_ours_divided_by_theirs() -> None:
    rows = [BenchRow("redis", "no AOF", "W2 drain", "runs/s", 400.0, ceiling=800.0,
                     peers={"SAQ": 200.0}),
            BenchRow("redis", "no AOF", "W3 p50", "ms", 2.0, peers={"SAQ": 4.0},
                     lower_is_better=True),
            BenchRow("redis", "no AOF", "W3 p99", "ms", None, peers={"SAQ": None})]
    lines = render(rows, ["SAQ"]).splitlines()
    assert lines[2] == "| redis (no AOF) | W2 drain [runs/s] | 400 | 50% | 200 (×2.00) |"
    assert lines[3] == "| redis (no AOF) | W3 p50 [ms] | 2.00 | — | 4.00 (×2.00) |"
    assert lines[4] == "| redis (no AOF) | W3 p99 [ms] | — | — | — |"
