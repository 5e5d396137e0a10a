"""Opening FDB stores from URLs and options.

``fdb://[cluster-file-path][?options]`` opens a real cluster through the official
bindings: ``fdb://`` uses FoundationDB's default cluster file, and
``fdb:///etc/foundationdb/fdb.cluster`` names one. ``fdb+sim://[?options]`` opens the
in-process simulator (a test tool). Options come as keyword arguments or as URL query
parameters (keyword arguments win); an unknown option is an error with a suggestion.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from squidie_backends.fdb._store import FDBStore
from squidie_core.errors import BackendUnavailable, InvalidArgument, MissingDriver

__all__ = ["API_VERSION", "open_store", "parse_options", "real_api"]

#: The FoundationDB API version the adapter selects (7.3); a newer one already
#: selected in the process is accepted.
API_VERSION = 730

_COMMON = ("namespace", "clock", "timeout_ms", "retry_limit")
_SIM_ONLY = ("cluster", "faults", "seed", "backoff_scale")


def _bool_or_scale(value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return 0.0
    if text in ("1", "true", "yes", "on"):
        return 1.0
    try:
        return float(text)
    except ValueError:
        raise InvalidArgument(
            "faults", f"expected 0, 1 or a rate multiplier, not {value!r}"
        ) from None


def _int(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidArgument(name, f"expected an integer, not {value!r}") from None


def parse_options(url: str, options: Mapping[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """Split a store URL into ``(scheme, location, options)`` with the options merged.

    Raises:
        InvalidArgument: an unknown scheme or option, or a malformed value.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("fdb", "fdb+sim"):
        shown = url.split("?", maxsplit=1)[0]
        raise InvalidArgument("url", f"not an fdb:// or fdb+sim:// URL: {shown!r}")
    location, _, query = rest.partition("?")
    merged: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    merged.update(options)
    allowed = _COMMON + (_SIM_ONLY if scheme == "fdb+sim" else ())
    for name in merged:
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            where = "the simulator" if scheme == "fdb+sim" else "fdb://"
            raise InvalidArgument(name, f"unknown option for {where}{hint}; "
                                        f"known: {', '.join(allowed)}")
    if scheme == "fdb+sim" and location:
        raise InvalidArgument("url", "fdb+sim:// takes no path; name a shared cluster "
                                     "with ?cluster=NAME")
    return scheme, location or None, merged


def real_api() -> Any:
    """The ``fdb`` module with API version 7.3 (or newer, if already selected) in force.

    Raises:
        MissingDriver: the ``foundationdb`` package is not installed.
        BackendUnavailable: FoundationDB's client library (``libfdb_c``) cannot be loaded.
    """
    try:
        import fdb
        import fdb.tuple
    except ImportError as exc:
        raise MissingDriver("fdb", "foundationdb", "fdb") from exc
    if fdb.is_api_version_selected():
        selected = int(fdb.get_api_version())
        if selected < API_VERSION:
            raise BackendUnavailable(
                "fdb", f"FoundationDB API version {selected} is selected in this process; "
                f"the adapter needs {API_VERSION} or newer"
            )
        return fdb
    try:
        fdb.api_version(API_VERSION)
    except Exception as exc:  # the binding raises a bare Exception without libfdb_c
        raise BackendUnavailable(
            "fdb", f"FoundationDB's client library cannot be loaded ({exc}); install the "
            "FoundationDB client package (libfdb_c) for your platform, or use fdb+sim:// "
            "for the in-process simulator"
        ) from exc
    return fdb


def open_store(url: str, **options: Any) -> FDBStore:
    """Open the store a ``fdb://`` or ``fdb+sim://`` URL names (see the module docstring)."""
    scheme, location, opts = parse_options(url, options)
    common: dict[str, Any] = {"namespace": str(opts.get("namespace", "default")),
                              "clock": opts.get("clock")}
    if "timeout_ms" in opts:
        common["timeout_ms"] = _int("timeout_ms", opts["timeout_ms"])
    if "retry_limit" in opts:
        common["retry_limit"] = _int("retry_limit", opts["retry_limit"])
    if scheme == "fdb+sim":
        from squidie_backends.fdb._sim import SIM, FaultPlan, FaultRates

        faults = opts.get("faults", 0)
        plan: FaultPlan | None
        if isinstance(faults, FaultPlan):
            plan = faults
        else:
            scale = _bool_or_scale(faults)
            seed = _int("seed", opts.get("seed", 0))
            plan = FaultPlan(seed, FaultRates().scaled(scale)) if scale > 0 else None
        cluster = opts.get("cluster") or None
        db = SIM.open(cluster, faults=plan,
                      backoff_scale=float(opts.get("backoff_scale", 0.05)))
        label = f"sim cluster {cluster!r}" if cluster else "private sim cluster"
        return FDBStore(db, SIM, simulated=True, label=label, **common)
    fdb = real_api()
    try:
        db = fdb.open(location)
    except Exception as exc:
        raise BackendUnavailable("fdb", f"cannot open the cluster file: {exc}") from exc
    return FDBStore(db, fdb, simulated=False,
                    label=f"cluster file {location}" if location else "default cluster file",
                    **common)
