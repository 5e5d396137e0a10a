"""The run graph drawn as SVG on the server (no script, no external assets).

Input is ``Squidie.inspect_run_graph(run_id)``: nodes with a status, edges
``from:outcome:to`` with a status, the current node(s) and the child runs. Layout is a
left-to-right layering: each step's column is its longest distance from an entry step
over the edges that are not back edges (found by a depth-first search, so loops in a
workflow cannot hang the layout); ``complete`` sits in the last column. Styling is by
CSS classes (``node-<status>``, ``edge-<status>``, ``current``) from the dashboard's
stylesheet, so the page's Content-Security-Policy needs no inline styles.

Everything drawn from the graph (step ids, workflow names, run ids) is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from squidie_core.dashboard._html import Safe, html, join

__all__ = ["layout", "render_graph"]

NODE_W = 180
NODE_H = 50
COL_GAP = 84
ROW_GAP = 34
PAD = 20
TOP = 52  # room for edges arcing over a row
ARC = 46
CHILD_H = 18
MAX_CHILDREN_SHOWN = 3
COMPLETE = "complete"


def _short(text: str, width: int = 22) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _back_edges(names: Sequence[str], succ: Mapping[str, list[str]],
                roots: Sequence[str]) -> set[tuple[str, str]]:
    """Edges closing a cycle in a DFS from ``roots`` (then from any unvisited node)."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    back: set[tuple[str, str]] = set()
    for root in [*roots, *names]:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, i = stack[-1]
            children = succ.get(node, [])
            if i < len(children):
                stack[-1] = (node, i + 1)
                child = children[i]
                if state.get(child) == 1:
                    back.add((node, child))
                elif child not in state:
                    state[child] = 1
                    stack.append((child, 0))
            else:
                state[node] = 2
                stack.pop()
    return back


def layout(graph: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """Return ``{node id: (column, row)}`` for the graph's nodes (and ``complete``)."""
    names = [str(n["id"]) for n in graph.get("nodes", [])]
    edges = [(str(e["from"]), str(e["to"])) for e in graph.get("edges", [])]
    ends = any(to == COMPLETE for _, to in edges) or graph.get("status") == "completed"
    if ends and COMPLETE not in names:
        names.append(COMPLETE)
    known = set(names)
    succ: dict[str, list[str]] = {n: [] for n in names}
    indegree = dict.fromkeys(names, 0)
    for src, to in edges:
        if src in known and to in known:
            succ[src].append(to)
            indegree[to] += 1
    roots = [n for n in names if indegree[n] == 0 and n != COMPLETE] or names[:1]
    back = _back_edges(names, succ, roots)
    forward = [(s, t) for s, t in edges if s in known and t in known and (s, t) not in back]
    rank = dict.fromkeys(names, 0)
    # Longest path over a DAG: relax |V| times at most (no cycles remain).
    for _ in range(len(names)):
        changed = False
        for src, to in forward:
            if rank[to] < rank[src] + 1:
                rank[to] = rank[src] + 1
                changed = True
        if not changed:
            break
    if COMPLETE in rank:
        rank[COMPLETE] = max([rank[n] for n in names if n != COMPLETE] or [-1]) + 1
    rows: dict[int, int] = {}
    placed: dict[str, tuple[int, int]] = {}
    for name in names:
        col = rank[name]
        placed[name] = (col, rows.get(col, 0))
        rows[col] = rows.get(col, 0) + 1
    return placed


def render_graph(graph: Mapping[str, Any], run_href: Callable[[str], str]) -> Safe:
    """Return an ``<svg>`` drawing of ``graph``; child runs link through ``run_href``."""
    placed = layout(graph)
    if not placed:
        return Safe('<p class="muted">This run has no steps to draw.</p>')
    nodes = {str(n["id"]): n for n in graph.get("nodes", [])}
    current = {str(c) for c in graph.get("current", [])}
    children_of: dict[str, list[Mapping[str, Any]]] = {}
    for child in graph.get("children", []):
        children_of.setdefault(str(child.get("step", "")), []).append(child)
    extra = max((min(len(c), MAX_CHILDREN_SHOWN + 1) for c in children_of.values()),
                default=0)
    row_h = NODE_H + ROW_GAP + extra * CHILD_H
    cols = max(c for c, _ in placed.values()) + 1
    rows = max(r for _, r in placed.values()) + 1
    width = PAD * 2 + cols * NODE_W + (cols - 1) * COL_GAP
    height = TOP + PAD + rows * row_h - ROW_GAP + 24

    def box(name: str) -> tuple[int, int]:
        col, row = placed[name]
        return PAD + col * (NODE_W + COL_GAP), TOP + row * row_h

    parts: list[Safe] = [html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="graph" role="img" '
        'width="{w}" height="{h}" viewBox="0 0 {w} {h}" aria-label="workflow graph of {wf}">'
        '<defs>'
        '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" '
        'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker>'
        '<marker id="arrow-selected" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" '
        'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead-selected"/></marker>'
        '</defs>', w=width, h=height, wf=graph.get("workflow", ""))]

    for edge in graph.get("edges", []):
        src, to = str(edge["from"]), str(edge["to"])
        if src not in placed or to not in placed:
            continue
        sx, sy = box(src)
        tx, ty = box(to)
        status = str(edge.get("status", "pending"))
        on = str(edge.get("on", "ok"))
        span = placed[to][0] - placed[src][0]
        if span == 1 or (span > 1 and placed[to][1] != placed[src][1]):
            x1, y1 = sx + NODE_W, sy + NODE_H // 2
            x2, y2 = tx, ty + NODE_H // 2
            mid = (x1 + x2) // 2
            d = f"M {x1} {y1} C {mid} {y1}, {mid} {y2}, {x2} {y2}"
            lx, ly = mid, (y1 + y2) // 2 - 6
        elif span > 1:  # skips columns on the same row: arc over the boxes between
            x1, y1 = sx + NODE_W // 2 + 12, sy
            x2, y2 = tx + NODE_W // 2 - 12, ty
            top = min(y1, y2) - ARC
            d = f"M {x1} {y1} C {x1} {top}, {x2} {top}, {x2} {y2}"
            lx, ly = (x1 + x2) // 2, top + ARC // 4 + 2
        else:  # a back (or same-column) edge loops under the boxes
            x1, y1 = sx + NODE_W // 2 + 10, sy + NODE_H
            x2, y2 = tx + NODE_W // 2 - 10, ty + NODE_H
            dip = max(y1, y2) + ROW_GAP - 6
            d = f"M {x1} {y1} C {x1} {dip}, {x2} {dip}, {x2} {y2}"
            lx, ly = (x1 + x2) // 2, dip - 4
        marker = "arrow-selected" if status == "selected" else "arrow"
        label = on + (f" [{edge['recovery']}]" if edge.get("recovery") else "")
        if edge.get("condition"):
            label += " if"
        parts.append(html(
            '<g class="edge edge-{status} on-{on}" data-edge="{eid}">'
            '<title>{eid} ({status}){cond}</title>'
            '<path d="{d}" marker-end="url(#{marker})"/>'
            '<text x="{lx}" y="{ly}" class="edge-label">{label}</text></g>',
            status=status, on=on, eid=edge.get("id", f"{src}:{on}:{to}"), d=d,
            marker=marker, lx=lx, ly=ly, label=label,
            cond=f": {edge['condition']}" if edge.get("condition") else ""))

    for name, (_col, _row) in placed.items():
        x, y = box(name)
        node = nodes.get(name)
        if node is None:  # the terminal "complete"
            status = "completed" if graph.get("status") == "completed" else "waiting"
            parts.append(html(
                '<g class="node node-end node-{status}" data-node="{name}">'
                '<title>{name}</title>'
                '<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="25"/>'
                '<text x="{tx}" y="{ty}" class="node-name">{name}</text></g>',
                status=status, name=name, x=x, y=y, w=NODE_W, h=NODE_H,
                tx=x + NODE_W // 2, ty=y + NODE_H // 2 + 5))
            continue
        status = str(node.get("status", "waiting"))
        attempts = int(node.get("attempts") or 0)
        kind = str(node.get("kind", ""))
        classes = f"node node-{status}" + (" current" if name in current else "")
        sub = kind if kind and kind not in ("step", "task") else ""
        if attempts > 1:
            sub = (sub + " · " if sub else "") + f"↻ {attempts} attempts"
        elif attempts == 1 and status not in ("waiting",):
            sub = (sub + " · " if sub else "") + "1 attempt"
        parts.append(html(
            '<g class="{classes}" data-node="{name}" data-status="{status}">'
            '<title>{name}: {status}, {attempts} attempt(s){cur}</title>'
            '<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6"/>'
            '<text x="{tx}" y="{ty1}" class="node-name">{short}</text>'
            '<text x="{tx}" y="{ty2}" class="node-sub">{status}{sub}</text></g>',
            classes=classes, name=name, status=status, attempts=attempts,
            cur=" (current)" if name in current else "", x=x, y=y, w=NODE_W, h=NODE_H,
            tx=x + NODE_W // 2, ty1=y + 20, ty2=y + 38, short=_short(name),
            sub=(" · " + sub) if sub else ""))
        kids = children_of.get(name, [])
        for i, child in enumerate(kids[:MAX_CHILDREN_SHOWN]):
            run_id = str(child.get("run_id") or child.get("child_run_id") or "")
            label = f"↳ {child.get('workflow', 'child')} {run_id[:8]}"
            parts.append(html(
                '<a href="{href}" class="child-link"><title>child run {rid}</title>'
                '<text x="{x}" y="{y}">{label}</text></a>',
                href=run_href(run_id), rid=run_id, x=x + 6,
                y=y + NODE_H + 14 + i * CHILD_H, label=_short(label, 26)))
        if len(kids) > MAX_CHILDREN_SHOWN:
            parts.append(html('<text x="{x}" y="{y}" class="node-sub">+{n} more</text>',
                              x=x + 6, y=y + NODE_H + 14 + MAX_CHILDREN_SHOWN * CHILD_H,
                              n=len(kids) - MAX_CHILDREN_SHOWN))

    legend_y = height - 8
    legend = [("selected", "path taken"), ("pending", "possible"), ("skipped", "not taken")]
    for i, (cls, text) in enumerate(legend):
        lx = PAD + i * 130
        parts.append(html(
            '<g class="edge edge-{cls} legend"><path d="M {x1} {y} L {x2} {y}"/>'
            '<text x="{tx}" y="{ty}" class="edge-label legend-text">{text}</text></g>',
            cls=cls, x1=lx, x2=lx + 30, y=legend_y - 4, tx=lx + 36, ty=legend_y, text=text))
    parts.append(Safe("</svg>"))
    return join(parts)

