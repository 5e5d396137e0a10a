"""HTML pages, rendered on the server from the same data the JSON API returns.

Every value goes through ``_html.escape`` (via ``html``/``join``); links are built with
``url_path`` so a run id can hold any character. Forms post to the write endpoints only
when the viewer is an operator (``View.operator``); they carry the CSRF value, never the
token itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from squidie_core.dashboard._data import HIDDEN
from squidie_core.dashboard._graph import render_graph
from squidie_core.dashboard._html import Safe, attr_query, html, join, pretty_json, url_path
from squidie_core.storage import RUN_STATUSES

__all__ = ["View", "dead_letters_page", "error_page", "login_page", "run_page", "runs_page",
           "stats_page"]


@dataclass(frozen=True)
class View:
    """Who is looking, from where, and what the page may offer."""

    base: str  # the mount path, "" at the root
    operator: bool
    writable: bool  # a token is configured
    csrf: str | None
    actor: str
    title: str
    refresh: float

    def href(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        return f"{self.base}{path}{attr_query(dict(params or {}))}"

    def run_href(self, run_id: str) -> str:
        return f"{self.base}/runs/{url_path(run_id)}"


def _status(status: Any) -> Safe:
    return html('<span class="status status-{s}" data-status="{s}">{s}</span>', s=status)


def _layout(view: View, title: str, body: Safe, *, live: bool = True) -> Safe:
    nav = join(
        html('<a href="{href}">{label}</a>', href=view.href(path), label=label)
        for path, label in (("/", "Runs"), ("/dead-letters", "Dead letters"),
                            ("/stats", "Stats"))
    )
    if view.operator:
        who = html(
            '<form method="post" action="{action}" class="inline">'
            '<input type="hidden" name="csrf" value="{csrf}">'
            '<span class="operator-badge">operator: {actor}</span> '
            '<button type="submit" class="link">log out</button></form>',
            action=view.href("/logout"), csrf=view.csrf, actor=view.actor or "operator")
    elif view.writable:
        who = html('<a id="login-link" href="{href}">Operator login</a>',
                   href=view.href("/login"))
    else:
        who = Safe('<span class="muted">read-only (no operator token configured)</span>')
    toggle = Safe(
        '<label class="live"><input type="checkbox" id="live" checked> live</label>'
        if live else "")
    return html(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>{title} · {app}</title>'
        '<link rel="stylesheet" href="{css}"><script src="{js}" defer></script></head>'
        '<body data-refresh="{refresh}">'
        '<header><a class="brand" href="{home}">{app}</a><nav>{nav}</nav>'
        '<div class="who">{toggle}{who}</div></header>'
        '<main id="content">{body}</main></body></html>',
        title=title, app=view.title, css=view.href("/static/dashboard.css"),
        js=view.href("/static/dashboard.js"), refresh=view.refresh if live else 0,
        home=view.href("/"), nav=nav, toggle=toggle, who=who, body=body)


def error_page(view: View, status: int, message: str) -> Safe:
    body = html('<h1>Error {status}</h1><p class="error" id="error">{message}</p>'
                '<p><a href="{home}">Back to runs</a></p>',
                status=status, message=message, home=view.href("/"))
    return _layout(view, f"Error {status}", body, live=False)


# --------------------------------------------------------------------------- runs list


def runs_page(view: View, data: Mapping[str, Any], workflows: Sequence[str]) -> Safe:
    f = data["filters"]
    wf_options = join(
        html('<option value="{v}"{sel}>{label}</option>', v=v, label=v or "all workflows",
             sel=Safe(" selected") if (f.get("workflow") or "") == v else Safe(""))
        for v in ["", *workflows])
    st_options = join(
        html('<option value="{v}"{sel}>{label}</option>', v=v, label=v or "all statuses",
             sel=Safe(" selected") if (f.get("status") or "") == v else Safe(""))
        for v in ["", *RUN_STATUSES])
    form = html(
        '<form method="get" action="{action}" class="filters" id="filters">'
        '<select name="workflow" id="filter-workflow">{wf}</select>'
        '<select name="status" id="filter-status">{st}</select>'
        '<input type="search" name="q" id="search" placeholder="run id" value="{q}">'
        '<select name="limit" id="filter-limit">{limits}</select>'
        '<button type="submit" id="apply">Filter</button> <a href="{clear}">clear</a></form>',
        action=view.href("/"), wf=wf_options, st=st_options, q=f.get("q") or "",
        clear=view.href("/"),
        limits=join(html('<option value="{n}"{sel}>{n} per page</option>', n=n,
                         sel=Safe(" selected") if n == data["limit"] else Safe(""))
                    for n in (25, 50, 100, 200)))
    rows = join(
        html('<tr class="run-row" data-run-id="{rid}"><td><a class="run-link" href="{href}">'
             '{rid}</a>{parent}</td><td>{wf}</td><td>{trigger}</td><td>{status}</td>'
             '<td>{queue}</td><td>{created}</td><td>{updated}</td></tr>',
             rid=r["run_id"], href=view.run_href(r["run_id"]), wf=r["workflow"],
             trigger=r["trigger"], status=_status(r["status"]), queue=r["queue"],
             created=r["created_at"], updated=r["updated_at"],
             parent=html(' <a class="parent-run" href="{h}" title="parent run {p}">↰ parent'
                         '</a>', h=view.run_href(r["parent_run_id"]), p=r["parent_run_id"])
             if r.get("parent_run_id") else Safe(""))
        for r in data["runs"])
    if not data["runs"]:
        note = "No run with that id." if f.get("q") else "No runs match these filters."
        rows = html('<tr><td colspan="7" class="muted" id="no-runs">{n}</td></tr>', n=note)
    pager = Safe("")
    base_params = {"workflow": f.get("workflow"), "status": f.get("status"),
                   "limit": data["limit"] if data["limit"] != 50 else None}
    links = []
    if data.get("cursor"):
        links.append(html('<a href="{h}" id="first-page">« newest</a>',
                          h=view.href("/", base_params)))
    if data.get("next_cursor"):
        links.append(html('<a href="{h}" id="next-page">older »</a>',
                          h=view.href("/", {**base_params, "cursor": data["next_cursor"]})))
    if links:
        pager = html('<nav class="pager">{links}</nav>', links=join(links, " "))
    body = html(
        '<h1>Runs</h1>{form}<table class="runs" id="runs"><thead><tr><th>run</th>'
        '<th>workflow</th><th>trigger</th><th>status</th><th>queue</th><th>created</th>'
        '<th>updated</th></tr></thead><tbody>{rows}</tbody></table>{pager}',
        form=form, rows=rows, pager=pager)
    return _layout(view, "Runs", body)


# --------------------------------------------------------------------------- run detail


def _value(value: Any, view: View) -> Safe:
    if value == HIDDEN:
        return html('<p class="hidden-data">{h}</p>', h=HIDDEN)
    return pretty_json(value)


def _actions(view: View, run: Mapping[str, Any], explain: Mapping[str, Any]) -> Safe:
    if not view.operator:
        if view.writable:
            return html('<p class="muted"><a href="{h}">Log in as operator</a> to approve, '
                        'reject, resume, cancel or replay.</p>', h=view.href("/login"))
        return Safe("")
    status = run["status"]
    terminal = status in ("completed", "failed", "cancelled")
    parked = run.get("parked") or {}
    available: list[tuple[str, str]] = []
    if parked.get("kind") == "approval":
        available += [("approve", "Approve"), ("reject", "Reject")]
    if parked.get("kind") == "pause":
        available.append(("resume", "Resume"))
    if not terminal:
        available.append(("cancel", "Cancel"))
    else:
        available.append(("replay", "Replay"))
    buttons = join(
        html('<button type="submit" name="action" value="{a}" id="action-{a}" '
             'class="action action-{a}" formaction="{fa}">{label}</button>',
             a=a, label=label, fa=view.href(f"/actions/{a}"))
        for a, label in available)
    irreversible = Safe("")
    if terminal and run.get("irreversible_completed"):
        irreversible = Safe('<label><input type="checkbox" name="allow_irreversible" '
                            'value="1"> allow replay after irreversible steps</label>')
    return html(
        '<form method="post" action="{action}" class="actions" id="actions">'
        '<input type="hidden" name="csrf" value="{csrf}">'
        '<input type="hidden" name="run_id" value="{rid}">'
        '<label>actor <input name="actor" id="actor" required value="{actor}"></label> '
        '<label>comment <input name="comment" id="comment"></label> {irr}{buttons}</form>',
        action=view.href("/actions/cancel"), csrf=view.csrf, rid=run["run_id"],
        actor=view.actor, irr=irreversible, buttons=buttons)


def _links(view: View, run: Mapping[str, Any]) -> Safe:
    items = []
    parent = run.get("parent")
    if parent and parent.get("run_id"):
        items.append(html('<li>parent: <a class="parent-link" href="{h}">{rid}</a> '
                          '(step {step})</li>', h=view.run_href(parent["run_id"]),
                          rid=parent["run_id"], step=parent.get("step", "?")))
    if run.get("replayed_from_run_id"):
        rid = run["replayed_from_run_id"]
        items.append(html('<li>replay of <a href="{h}">{rid}</a></li>',
                          h=view.run_href(rid), rid=rid))
    for rid in run.get("replays") or []:
        items.append(html('<li>replayed as <a class="replay-link" href="{h}">{rid}</a></li>',
                          h=view.run_href(rid), rid=rid))
    for child in run.get("children") or []:
        items.append(html('<li>child: <a class="child-run" href="{h}">{rid}</a> '
                          '({wf}, from step {step})</li>', h=view.run_href(child["run_id"]),
                          rid=child["run_id"], wf=child.get("workflow", "?"),
                          step=child.get("step", "?")))
    if not items:
        return Safe("")
    return html('<section><h2>Links</h2><ul class="links">{items}</ul></section>',
                items=join(items))


def _attempts(run: Mapping[str, Any]) -> Safe:
    rows = []
    for step, record in (run.get("attempts") or {}).items():
        error = record.get("last_error") or {}
        message = f"{error.get('type', '')}: {error.get('message', '')}" if error else ""
        rows.append(html('<tr><td>{step}</td><td>{status}</td><td>{n}</td><td>{err}</td>'
                         '<td>{done}</td></tr>', step=step, status=record.get("status"),
                         n=record.get("attempts"), err=message,
                         done=record.get("completed_at") or ""))
    pending = [html('<tr><td>{key}</td><td>{state}</td><td>{vis}</td><td>{owner}</td>'
                    '<td>{deliveries}</td></tr>', key=p["key"], state=p["state"],
                    vis=p["visible_at"], owner=p.get("owner_id") or "",
                    deliveries=p["deliveries"]) for p in run.get("pending") or []]
    out = html('<section><h2>Attempts</h2><table id="attempts"><thead><tr><th>step</th>'
               '<th>status</th><th>attempts</th><th>last error</th><th>completed</th></tr>'
               '</thead><tbody>{rows}</tbody></table></section>', rows=join(rows))
    if pending:
        out = html('{out}<section><h2>Pending dispatches</h2><table id="pending"><thead><tr>'
                   '<th>dispatch</th><th>state</th><th>visible at</th><th>owner</th>'
                   '<th>deliveries</th></tr></thead><tbody>{rows}</tbody></table></section>',
                   out=out, rows=join(pending))
    return out


def _fact_summary(fact: Mapping[str, Any]) -> str:
    body = {k: v for k, v in fact.items() if k not in ("seq", "type", "at")}
    parts = []
    for key, value in body.items():
        if isinstance(value, dict | list):
            text = "{…}" if isinstance(value, dict) else "[…]"
        else:
            text = str(value)
        parts.append(f"{key}={text[:120]}")
    return ", ".join(parts)


def _timeline(history: Sequence[Mapping[str, Any]], commands: Sequence[Mapping[str, Any]],
              view: View) -> Safe:
    cmd_rows = join(
        html('<tr class="command"><td>{at}</td><td>{command}</td><td class="actor">{actor}'
             '</td><td>{comment}</td></tr>', at=c.get("at"), command=c.get("command"),
             actor=c.get("actor") or "", comment=c.get("comment") or c.get("reason") or "")
        for c in commands)
    fact_rows = join(
        html('<li class="fact fact-{type}"><span class="seq">#{seq}</span> '
             '<time>{at}</time> <b>{type}</b> <span class="body">{summary}</span>'
             '<details><summary>data</summary>{json}</details></li>',
             seq=f["seq"], at=f["at"], type=f["type"], summary=_fact_summary(f),
             json=pretty_json({k: v for k, v in f.items() if k not in ("seq", "type", "at")}))
        for f in history)
    return html(
        '<section><h2>Command history</h2><table id="commands"><thead><tr><th>at</th>'
        '<th>command</th><th>actor</th><th>comment</th></tr></thead><tbody>{cmds}</tbody>'
        '</table></section><section><h2>History</h2><ol class="timeline" id="timeline">'
        '{facts}</ol></section>', cmds=cmd_rows, facts=fact_rows)


def run_page(view: View, data: Mapping[str, Any], flash: str | None = None) -> Safe:
    run, explain, graph = data["run"], data["explain"], data["graph"]
    details = explain.get("details") or {}
    facts = [("workflow", run["workflow"]), ("trigger", run["trigger"]),
             ("queue", run["queue"]), ("created", run["created_at"]),
             ("updated", run["updated_at"]), ("version", run["version"])]
    if run.get("definition_changed"):
        facts.append(("note", "the workflow definition changed since this run started"))
    meta = join(html('<dt>{k}</dt><dd>{v}</dd>', k=k, v=v) for k, v in facts)
    flash_html = html('<p class="flash" id="flash">{m}</p>', m=flash) if flash else Safe("")
    body = html(
        '{flash}<h1>Run <code id="run-id">{rid}</code> {status}</h1>'
        '<dl class="meta">{meta}</dl>'
        '<section class="explain" id="explain"><h2>Why it is here</h2>'
        '<p class="summary" id="summary">{summary}</p>'
        '<p>reason: <code id="reason">{reason}</code>{step}</p>'
        '<p>next actions: <span id="next-actions">{actions}</span></p>{detail}</section>'
        '{forms}'
        '<section><h2>Graph</h2><div class="graph-wrap" id="graph">{svg}</div></section>'
        '{links}{attempts}'
        '<section><h2>Payload</h2><div id="payload">{payload}</div>'
        '<h2>Context (payload and outputs)</h2><div id="context">{context}</div></section>'
        '{timeline}',
        flash=flash_html, rid=run["run_id"], status=_status(run["status"]), meta=meta,
        summary=explain.get("summary"), reason=explain.get("reason"),
        step=html(", step <code>{s}</code>", s=explain["step"]) if explain.get("step")
        else Safe(""),
        actions=", ".join(explain.get("next_actions") or []),
        detail=html('<details><summary>details</summary>{v}</details>',
                    v=_value(details, view)) if details else Safe(""),
        forms=_actions(view, run, explain),
        svg=render_graph(graph, view.run_href), links=_links(view, run),
        attempts=_attempts(run), payload=_value(run.get("payload"), view),
        context=_value(run.get("context"), view),
        timeline=_timeline(data["history"], run.get("commands") or [], view))
    return _layout(view, f"Run {run['run_id']}", body)


# --------------------------------------------------------------------------- dead letters


def dead_letters_page(view: View, data: Mapping[str, Any], flash: str | None = None) -> Safe:
    rows = []
    for r in data["dead_letters"]:
        button = Safe("")
        if view.operator:
            button = html(
                '<form method="post" action="{action}" class="inline">'
                '<input type="hidden" name="csrf" value="{csrf}">'
                '<input type="hidden" name="key" value="{key}">'
                '<button type="submit" class="action redrive">Re-drive</button></form>',
                action=view.href("/dead-letters/redrive"), csrf=view.csrf, key=r["key"])
        rows.append(html(
            '<tr class="dead-letter"><td>{key}</td><td><a href="{h}">{rid}</a></td>'
            '<td>{step}</td><td>{queue}</td><td>{deliveries}</td><td>{reason}</td>'
            '<td>{button}</td></tr>', key=r["key"], h=view.run_href(r["run_id"]),
            rid=r["run_id"], step=r["step"], queue=r["queue"], deliveries=r["deliveries"],
            reason=r["reason"], button=button))
    if not rows:
        rows.append(Safe('<tr><td colspan="7" class="muted">No dead letters.</td></tr>'))
    pager = Safe("")
    if data.get("next_cursor"):
        pager = html('<nav class="pager"><a href="{h}">more »</a></nav>',
                     h=view.href("/dead-letters", {"queue": data.get("queue"),
                                                   "cursor": data["next_cursor"]}))
    flash_html = html('<p class="flash" id="flash">{m}</p>', m=flash) if flash else Safe("")
    body = html(
        '{flash}<h1>Dead letters</h1><form method="get" class="filters">'
        '<input name="queue" placeholder="queue" value="{queue}"><button>Filter</button>'
        '</form><table id="dead-letters"><thead><tr><th>dispatch</th><th>run</th>'
        '<th>step</th><th>queue</th><th>deliveries</th><th>reason</th><th></th></tr></thead>'
        '<tbody>{rows}</tbody></table>{pager}',
        flash=flash_html, queue=data.get("queue") or "", rows=join(rows), pager=pager)
    return _layout(view, "Dead letters", body)


# --------------------------------------------------------------------------- stats


_SERIES = ("visible", "scheduled", "claimed", "dead")


def _chart(samples: Sequence[Mapping[str, Any]]) -> Safe:
    """Total depth per state across queues over time, one polyline per state."""
    if len(samples) < 2:
        return Safe('<p class="muted" id="depth-chart">The series fills in as samples are '
                    'taken (one every few seconds while the dashboard runs).</p>')
    w, h, pad = 640, 180, 30
    totals = [{s: sum(q.get(s, 0) for q in sample["queues"].values()) for s in _SERIES}
              for sample in samples]
    top = max(1, *(t[s] for t in totals for s in _SERIES))
    step = (w - 2 * pad) / (len(totals) - 1)
    lines = []
    for series in _SERIES:
        points = " ".join(
            f"{pad + i * step:.1f},{h - pad - (t[series] / top) * (h - 2 * pad):.1f}"
            for i, t in enumerate(totals))
        lines.append(html('<polyline class="series series-{s}" points="{p}"><title>{s}'
                          '</title></polyline>', s=series, p=points))
    legend = join(html('<text x="{x}" y="14" class="legend-text series-label-{s}">■ {s}'
                       '</text>', x=pad + i * 110, s=s) for i, s in enumerate(_SERIES))
    return html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="depth-chart" '
        'width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        'aria-label="queue depth over time">{legend}'
        '<line x1="{pad}" y1="{base}" x2="{right}" y2="{base}" class="axis"/>'
        '<text x="2" y="{ty}" class="legend-text">{top}</text>'
        '<text x="2" y="{base}" class="legend-text">0</text>{lines}'
        '<text x="{pad}" y="{h2}" class="legend-text">{first}</text>'
        '<text x="{right}" y="{h2}" text-anchor="end" class="legend-text">{last}</text></svg>',
        w=w, h=h, pad=pad, base=h - pad, right=w - pad, ty=pad + 4, top=top,
        lines=join(lines), legend=legend, h2=h - 8, first=samples[0]["at"],
        last=samples[-1]["at"])


def stats_page(view: View, data: Mapping[str, Any]) -> Safe:
    counts = data.get("counts")
    if counts is None:
        count_html = Safe('<p class="muted">This store does not offer run counts '
                          '(<code>run_counts</code>); see the runs list per status.</p>')
    else:
        cells = join(
            html('<div class="count"><a href="{h}"><span class="n" id="count-{s}">{n}</span>'
                 '<span>{s}</span></a></div>', h=view.href("/", {"status": s}), s=s, n=n)
            for s, n in counts["by_status"].items())
        wf_rows = join(
            html('<tr><td><a href="{h}">{wf}</a></td>{cells}</tr>', h=view.href(
                "/", {"workflow": wf}), wf=wf, cells=join(
                    html("<td>{n}</td>", n=per.get(s, 0)) for s in RUN_STATUSES))
            for wf, per in counts["by_workflow"].items())
        heads = join(html("<th>{s}</th>", s=s) for s in RUN_STATUSES)
        count_html = html(
            '<div class="counts" id="counts">{cells}</div><p>total runs: '
            '<b id="count-total">{total}</b></p><table id="by-workflow"><thead><tr>'
            '<th>workflow</th>{heads}</tr></thead><tbody>{rows}</tbody></table>',
            cells=cells, total=counts["total"], heads=heads, rows=wf_rows)
    queue_rows = join(
        html('<tr><td>{q}</td><td>{visible}</td><td>{scheduled}</td><td>{claimed}</td>'
             '<td>{dead}</td><td>{age}</td></tr>', q=q["queue"], visible=q["visible"],
             scheduled=q["scheduled"], claimed=q["claimed"], dead=q["dead"],
             age="" if q["oldest_visible_age"] is None else f"{q['oldest_visible_age']} s")
        for q in data["queues"])
    body = html(
        '<h1>Stats</h1><section><h2>Runs per status</h2>{counts}</section>'
        '<section><h2>Queue depth</h2><table id="queues"><thead><tr><th>queue</th>'
        '<th>visible</th><th>scheduled</th><th>claimed</th><th>dead</th>'
        '<th>oldest visible</th></tr></thead><tbody>{queues}</tbody></table>'
        '<h3>Over time (this dashboard process)</h3>{chart}</section>',
        counts=count_html, queues=queue_rows, chart=_chart(data["samples"]))
    return _layout(view, "Stats", body)


def login_page(view: View, error: str | None = None) -> Safe:
    if not view.writable:
        body = Safe('<h1>Read-only</h1><p>No operator token is configured '
                    '(<code>--token</code> or <code>SQUIDIE_DASHBOARD_TOKEN</code>), so the '
                    'dashboard is read-only and shows no payloads.</p>')
        return _layout(view, "Read-only", body, live=False)
    err = html('<p class="error" id="login-error">{e}</p>', e=error) if error else Safe("")
    body = html(
        '<h1>Operator login</h1>{err}<form method="post" action="{action}" id="login">'
        '<label>your name (recorded as the actor) <input name="actor" id="login-actor" '
        'required value="{actor}"></label><br>'
        '<label>operator token <input type="password" name="token" id="token" required>'
        '</label> <button type="submit" id="login-submit">Log in</button></form>',
        err=err, action=view.href("/login"), actor=view.actor)
    return _layout(view, "Operator login", body, live=False)

