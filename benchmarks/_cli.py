"""``python -m benchmarks``: W1-W3, backlog and ceiling on every reachable backend.

Prints one table: for each backend (and the durability setting that produced its
figures), each workload's figure, the fraction of the backend's raw ceiling it reaches,
and, for peers installed through the ``bench-peers`` extra, the peer's figure on the same
workload with ours divided by theirs. Figures are measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks import _ceiling, _ours, _peers
from benchmarks._targets import TARGETS, Target

__all__ = ["main"]

WORKLOADS = ["w1", "w1x2", "w2", "w3", "backlog", "ceiling"]


@dataclass
class Sizes:
    """How much work each workload does (the issue's figures, or ``--quick``'s)."""

    w1: int = 500
    w2: int = 3000
    w3: int = 200
    backlog: tuple[int, int] = (1_000, 1_000_000)
    claims: int = 200
    ceiling: int = 2000

    @classmethod
    def quick(cls) -> Sizes:
        return cls(w1=20, w2=40, w3=10, backlog=(100, 1_000), claims=10, ceiling=100)


@dataclass
class Row:
    """One line of the table: a figure of one backend, with its ceiling and peers."""

    backend: str
    settings: str
    figure: str
    unit: str
    ours: float | None
    ceiling: float | None = None
    peers: dict[str, float | None] = field(default_factory=dict)
    note: str = ""
    lower_is_better: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "settings": self.settings, "figure": self.figure,
                "unit": self.unit, "squidie": self.ours, "ceiling": self.ceiling,
                "peers": self.peers, "note": self.note}


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render(rows: list[Row], peer_names: list[str]) -> str:
    """The table as Markdown (also readable as plain text)."""
    head = ["backend (settings)", "figure", "squidie", "of ceiling", *peer_names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        ratio = (f"{row.ours / row.ceiling:.0%}" if row.ours and row.ceiling else "—")
        cells = [f"{row.backend} ({row.settings})", f"{row.figure} [{row.unit}]",
                 _fmt(row.ours) + (f" {row.note}" if row.note else ""), ratio]
        for name in peer_names:
            theirs = row.peers.get(name)
            if theirs is None or row.ours is None:
                cells.append(_fmt(theirs))
            else:
                mine = theirs / row.ours if row.lower_is_better else row.ours / theirs
                cells.append(f"{_fmt(theirs)} (×{mine:.2f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _run(label: str, fn: Callable[[], Any], verbose: bool) -> Any:
    t = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:
        print(f"  {label}: failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        if verbose:
            traceback.print_exc()
        return None
    print(f"  {label}: {_short(result)} ({time.perf_counter() - t:.1f} s)", file=sys.stderr,
          flush=True)
    return result


def _short(result: Any) -> str:
    if isinstance(result, dict):
        return ", ".join(f"{k}={_fmt(v) if isinstance(v, float) else v}"
                         for k, v in result.items())
    return str(result)


def measure(target: Target, workloads: list[str], sizes: Sizes, directory: str,
            concurrency: int, verbose: bool) -> list[Row]:
    """Every selected workload on one backend; the rows it adds to the table."""
    settings = target.settings()
    rows: list[Row] = []

    def row(figure: str, unit: str, value: float | None, **kw: Any) -> Row:
        made = Row(target.name, settings, figure, unit, value, **kw)
        rows.append(made)
        return made

    def with_store(fn: Callable[[str], Any]) -> Callable[[], Any]:
        def go() -> Any:
            url = target.new_url(directory)
            try:
                return fn(url)
            finally:
                target.drop(url)
        return go

    print(f"{target.name} ({settings})", file=sys.stderr, flush=True)
    ceiling = None
    if "ceiling" in workloads:
        ceiling = _run("ceiling", lambda: _ceiling.ceiling(target, directory, sizes.ceiling),
                       verbose)
    raw = ceiling["jobs_per_s"] if ceiling else None
    procs = "threads" if target.in_process else "process"
    if "w1" in workloads:
        got = _run("W1 ×1", with_store(lambda url: _ours.drain(
            target, url, "Three", sizes.w1, workers=1, concurrency=concurrency)), verbose)
        row("W1 runs/s e2e, 1 worker " + procs, "runs/s", got and got["e2e"],
            ceiling=raw and raw / 3)
        row("W1 start", "runs/s", got and got["start"])
        row("W1 drain, 1 worker", "runs/s", got and got["drain"], ceiling=raw and raw / 3)
    if "w1x2" in workloads and not target.in_process:
        got = _run("W1 ×2", with_store(lambda url: _ours.drain(
            target, url, "Three", sizes.w1, workers=2, concurrency=concurrency)), verbose)
        row("W1 runs/s e2e, 2 workers", "runs/s", got and got["e2e"], ceiling=raw and raw / 3)
        row("W1 drain, 2 workers", "runs/s", got and got["drain"], ceiling=raw and raw / 3)
    if "w2" in workloads:
        got = _run("W2", with_store(lambda url: _ours.drain(
            target, url, "Single", sizes.w2, workers=1, concurrency=concurrency)), verbose)
        row("W2 start", "runs/s", got and got["start"])
        row("W2 drain, 1 worker", "runs/s", got and got["drain"], ceiling=raw)
    if "w3" in workloads:
        got = _run("W3", with_store(lambda url: _ours.latency(
            target, url, sizes.w3, concurrency=concurrency)), verbose)
        row("W3 p50", "ms", got and got["p50_ms"], lower_is_better=True)
        row("W3 p99", "ms", got and got["p99_ms"], lower_is_better=True)
    if "backlog" in workloads:
        small, large = sizes.backlog
        if target.in_process:  # the simulator holds everything in this process's memory
            large = min(large, 100_000)
        got = _run("backlog", lambda: _ours.backlog(target, directory, [small, large],
                                                    sizes.claims), verbose)
        row(f"claim p50 at {small:,} pending", "ms", got and got[small], lower_is_better=True)
        row(f"claim p50 at {large:,} pending", "ms", got and got[large], lower_is_better=True,
            note=f"({got[large] / got[small]:.2f}× the {small:,})" if got else "")
    if ceiling:
        row("ceiling insert+claim+complete", "jobs/s", raw)
        if "pipelined_jobs_per_s" in ceiling:
            row("ceiling pipelined ×100", "jobs/s", ceiling["pipelined_jobs_per_s"])
    return rows


def main(argv: list[str] | None = None) -> int:
    """Parse the options, measure, print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backends", nargs="+", choices=list(TARGETS), default=list(TARGETS),
                        help="backends to measure (default: every reachable one)")
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=WORKLOADS)
    parser.add_argument("--quick", action="store_true",
                        help="small N everywhere (a smoke run; figures mean little)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="slots (threads) of each worker process (default 4, the "
                             "Worker default)")
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the installed peers (bench-peers extra)")
    parser.add_argument("--engine", action="append", default=[], metavar="KEY=VALUE",
                        help="an engine option of every Squidie engine (an integer), e.g. "
                             "--engine state_cache=0 to measure without the state cache")
    parser.add_argument("--worker", action="append", default=[], metavar="KEY=VALUE",
                        help="a Worker option of every worker process (an integer), e.g. "
                             "--worker claim_batch=1")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--verbose", action="store_true", help="tracebacks of failures")
    args = parser.parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes()
    for option in args.engine:
        key, _, value = option.partition("=")
        _ours.ENGINE_OPTIONS[key] = int(value)
    for option in args.worker:
        key, _, value = option.partition("=")
        _ours.WORKER_OPTIONS[key] = int(value)
    rows: list[Row] = []
    skipped: list[str] = []
    peer_names: list[str] = []
    with tempfile.TemporaryDirectory(prefix="squidie-bench-") as directory:
        for name in args.backends:
            target = TARGETS[name]
            why = target.reachable()
            if why is not None:
                skipped.append(f"{name}: {why}")
                continue
            found = measure(target, args.workloads, sizes, directory, args.concurrency,
                            args.verbose)
            if args.peers:
                peer_names = _peers.attach(target, found, args.workloads, sizes, directory,
                                           peer_names)
            rows.extend(found)
    print()
    print(f"machine: {os.cpu_count()} cores; sizes: W1 {sizes.w1} runs, W2 {sizes.w2} "
          f"runs, W3 {sizes.w3} runs, backlog {sizes.backlog[0]:,}/{sizes.backlog[1]:,}, "
          f"worker slots {args.concurrency}")
    print(render(rows, peer_names))
    for line in skipped:
        print(f"not measured: {line}")
    for line in _peers.missing() if args.peers else []:
        print(f"peer not run: {line}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"sizes": sizes.__dict__, "rows": [r.to_dict() for r in rows]}, out,
                      indent=2, default=str)
    return 0
