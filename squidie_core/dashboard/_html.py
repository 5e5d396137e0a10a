"""A tiny escaping HTML builder: every value is escaped unless it is already ``Safe``.

Run ids, workflow names, payloads, error messages and comments are user data, so the
pages are built from ``html(template, **values)``, which escapes each value it
interpolates, and ``Safe`` fragments, which only this module and the SVG renderer make.
There is no way to put a raw string into a page without going through ``escape``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from html import escape as _escape
from typing import Any
from urllib.parse import quote, urlencode

__all__ = ["Safe", "attr_query", "escape", "html", "join", "pretty_json", "url_path"]


class Safe(str):
    """A fragment of HTML that is already escaped (never build one from user data)."""

    __slots__ = ()


def escape(value: Any) -> Safe:
    """Escape ``value`` for an HTML text node or a quoted attribute (``Safe`` passes)."""
    if isinstance(value, Safe):
        return value
    if value is None:
        return Safe("")
    return Safe(_escape(str(value), quote=True))


def html(template: str, **values: Any) -> Safe:
    """Fill ``{name}`` fields of ``template`` (a literal) with escaped ``values``."""
    return Safe(template.format(**{k: escape(v) for k, v in values.items()}))


def join(parts: Iterable[Any], sep: str = "") -> Safe:
    """Concatenate fragments, escaping any that are not ``Safe``."""
    return Safe(sep.join(escape(p) for p in parts))


def pretty_json(value: Any) -> Safe:
    """Indented JSON in a ``<pre>``, escaped."""
    text = json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    return html('<pre class="json">{text}</pre>', text=text)


def url_path(*segments: str) -> str:
    """Join path segments, percent-encoding each one (slashes included)."""
    return "/".join(quote(s, safe="") for s in segments)


def attr_query(params: dict[str, Any]) -> str:
    """A query string of the non-empty ``params`` (``?a=1&b=2``), or ``""``."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return "?" + urlencode(kept) if kept else ""
