"""Store URLs and options: parsing, validation, and building the engine.

Options are accepted both as keyword arguments and as URL query parameters, so a URL
alone reopens the same store in another process; a keyword argument wins over the same
query parameter. Query parameters the store does not know are left in the URL for the
driver (``sslmode=require``, ``connect_timeout=5``...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from squidie_backends.sql._dialects import (
    Dialect,
    PostgresDialect,
    SQLiteDialect,
    dialect_for,
)
from squidie_backends.sql._schema import check_prefix
from squidie_core.errors import InvalidArgument

__all__ = ["OPTIONS", "Config", "make_engine", "parse_config"]

#: Every store option, with its default (``None``: per dialect or unset).
OPTIONS: dict[str, Any] = {
    "prefix": "squidie_",
    "schema": None,
    "synchronous": "full",
    "synchronous_commit": None,
    "notify": None,
    "auto_install": True,
    "busy_timeout": 10.0,
    "pool_size": 5,
    "retry_attempts": 6,
}

_BOOL = {"1": True, "true": True, "yes": True, "on": True,
         "0": False, "false": False, "no": False, "off": False}


@dataclass(frozen=True)
class Config:
    """A parsed store URL.

    Attributes:
        dialect: The dialect hooks.
        url: The engine URL (driver set, store options removed). Holds the password:
            never print it; use ``public_url``.
        public_url: The URL with its password replaced by ``***``.
        options: Every option in ``OPTIONS``, resolved.
    """

    dialect: Dialect
    url: URL
    public_url: str
    options: Mapping[str, Any]

    @property
    def prefix(self) -> str:
        """The table-name prefix."""
        return str(self.options["prefix"])

    @property
    def schema(self) -> str | None:
        """The database schema holding the tables (``None``: the default one)."""
        value = self.options["schema"]
        return None if value is None else str(value)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in a message."""
        return (self.url.password,) if self.url.password else ()


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    parsed = _BOOL.get(str(value).strip().lower())
    if parsed is None:
        raise InvalidArgument(name, f"expected true or false, not {value!r}")
    return parsed


def _number(name: str, value: Any, kind: type[int] | type[float], minimum: float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise InvalidArgument(name, f"expected a number, not {value!r}") from None
    if number < minimum:
        raise InvalidArgument(name, f"must be at least {minimum}")
    return number


def parse_config(url: str | URL, options: Mapping[str, Any] | None = None) -> Config:
    """Parse a store URL and keyword options into a ``Config``.

    Raises:
        InvalidArgument: an unknown keyword option, a bad option value, an in-memory
            SQLite URL, or ``schema`` with SQLite.
    """
    import difflib

    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except sa.exc.ArgumentError as exc:
        raise InvalidArgument("url", "not a database URL (scheme://...)") from exc
    try:
        dialect = dialect_for(parsed.drivername)
    except ValueError as exc:
        raise InvalidArgument("url", str(exc)) from None

    given = dict(options or {})
    unknown = [k for k in given if k not in OPTIONS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(OPTIONS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InvalidArgument(
            unknown[0], f"not an option of the SQL store{hint}; known: {', '.join(OPTIONS)}"
        )
    query = dict(parsed.query)
    resolved: dict[str, Any] = dict(OPTIONS)
    for name in OPTIONS:
        if name in query:
            raw = query.pop(name)
            resolved[name] = raw[-1] if isinstance(raw, tuple) else raw
        if name in given:
            resolved[name] = given[name]

    try:
        resolved["prefix"] = check_prefix(str(resolved["prefix"]))
    except ValueError as exc:
        raise InvalidArgument("prefix", str(exc)) from None
    if resolved["schema"] in ("", None):
        resolved["schema"] = None
    synchronous = str(resolved["synchronous"]).strip().lower()
    if synchronous not in ("full", "normal", "extra"):
        raise InvalidArgument("synchronous", "must be full, normal or extra")
    resolved["synchronous"] = synchronous
    if resolved["synchronous_commit"] is not None:
        commit_mode = str(resolved["synchronous_commit"]).strip().lower()
        if commit_mode not in ("on", "off", "local", "remote_write", "remote_apply"):
            raise InvalidArgument(
                "synchronous_commit", "must be on, off, local, remote_write or remote_apply"
            )
        if not isinstance(dialect, PostgresDialect):
            raise InvalidArgument("synchronous_commit", "is a PostgreSQL option")
        resolved["synchronous_commit"] = commit_mode
    wakes = isinstance(dialect, PostgresDialect | SQLiteDialect)
    if resolved["notify"] is None:
        resolved["notify"] = wakes
    else:
        resolved["notify"] = _bool("notify", resolved["notify"])
        if resolved["notify"] and not wakes:
            raise InvalidArgument(
                "notify", "is a PostgreSQL (LISTEN/NOTIFY) and SQLite (data_version) option")
    resolved["auto_install"] = _bool("auto_install", resolved["auto_install"])
    resolved["busy_timeout"] = _number("busy_timeout", resolved["busy_timeout"], float, 0.0)
    resolved["pool_size"] = _number("pool_size", resolved["pool_size"], int, 1)
    resolved["retry_attempts"] = _number("retry_attempts", resolved["retry_attempts"], int, 1)

    if isinstance(dialect, SQLiteDialect):
        database = parsed.database or ""
        if (
            database in ("", ":memory:")
            or database.startswith("file::memory:")
            or "mode=memory" in database
            or str(query.get("mode", "")) == "memory"
        ):
            raise InvalidArgument(
                "url",
                "in-memory SQLite is not supported by the SQL store (each connection would "
                "see its own empty database, and no other process could open it); use a "
                "file such as sqlite:///squidie.db, or memory:// for a throwaway store",
            )
        if resolved["schema"] is not None:
            raise InvalidArgument("schema", "SQLite has no schemas; use prefix= instead")

    engine_url = dialect.engine_url(parsed.set(query=query))
    public = engine_url.render_as_string(hide_password=True)
    return Config(dialect=dialect, url=engine_url, public_url=public, options=resolved)


def make_engine(config: Config) -> sa.Engine:
    """Create the engine for a ``Config`` (no connection is opened yet)."""
    engine = sa.create_engine(
        config.url, hide_parameters=True, **config.dialect.engine_kwargs(config.options)
    )
    config.dialect.prepare_engine(engine, config.options)
    return engine
