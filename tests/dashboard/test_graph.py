"""The server-side SVG graph: layering, loops, escaping, children as links."""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree

from squidie_core.dashboard._graph import layout, render_graph


def graph(nodes: list[str], edges: list[tuple[str, str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "workflow": "W", "status": extra.pop("status", "running"),
        "nodes": [{"id": n, "kind": "task", "status": "waiting", "attempts": 0} for n in nodes],
        "edges": [{"id": f"{a}:{on}:{b}", "from": a, "on": on, "to": b, "status": "pending"}
                  for a, on, b in edges],
        "current": [], "children": [], **extra,
    }


def test_columns_follow_the_longest_path() -> None:
    g = graph(["a", "b", "c", "d"], [("a", "ok", "b"), ("b", "ok", "c"), ("a", "error", "c"),
                                     ("c", "ok", "complete"), ("d", "ok", "complete")])
    placed = layout(g)
    assert placed["a"][0] == 0 and placed["b"][0] == 1 and placed["c"][0] == 2
    assert placed["complete"][0] == 3  # the end sits after every step
    assert placed["d"][0] == 0 and placed["d"] != placed["a"]  # a second entry, own row


def test_a_loop_does_not_hang_and_keeps_forward_order() -> None:
    g = graph(["fetch", "check", "done"], [("fetch", "ok", "check"), ("check", "error", "fetch"),
                                           ("check", "ok", "done")])
    placed = layout(g)
    assert placed["fetch"][0] < placed["check"][0] < placed["done"][0]
    svg = render_graph(g, lambda rid: f"/runs/{rid}")
    ElementTree.fromstring(svg)  # well-formed SVG, the back edge included
    assert 'data-edge="check:error:fetch"' in svg


def test_names_are_escaped_and_children_are_links() -> None:
    evil = '<script>x</script>"&'
    g = graph([evil, "b"], [(evil, "ok", "b")],
              children=[{"run_id": 'c"1<', "workflow": "<Kid>", "step": evil}])
    g["nodes"][0].update(status="completed", attempts=3)
    g["current"] = ["b"]
    svg = render_graph(g, lambda rid: "/runs/" + rid.replace('"', "%22").replace("<", "%3C"))
    root = ElementTree.fromstring(svg)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "↳ <Kid> c\"1<" in texts  # the child run, as text, under its step
    links = [a.get("href") for a in root.iter("{http://www.w3.org/2000/svg}a")]
    assert links == ["/runs/c%221%3C"]
    assert re.search(r'class="node node-waiting current" data-node="b"', svg)
    assert "↻ 3 attempts" in svg


def test_an_empty_graph_says_so() -> None:
    assert "no steps" in render_graph(graph([], []), lambda rid: rid)
