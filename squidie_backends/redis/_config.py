"""Options of the Redis store: from keyword arguments and URL query parameters.

A URL alone reopens the same store in another process
(``redis://host:6379/0?namespace=myapp&socket_timeout=2``). A keyword argument wins over
the same query parameter. Query parameters that are not Squidie options but redis-py
connection settings (``ssl_*``, ``client_name``...) are passed to redis-py; anything else
is refused with a "did you mean".
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from squidie_core.errors import InvalidArgument

__all__ = ["PASSTHROUGH", "RedisConfig"]

#: redis-py URL query parameters accepted and handed to redis-py unchanged.
PASSTHROUGH = frozenset({
    "db", "client_name", "socket_keepalive", "socket_read_size",
    "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_path",
    "ssl_ca_data", "ssl_check_hostname", "ssl_password", "ssl_min_version", "ssl_ciphers",
})


@dataclass(frozen=True)
class RedisConfig:
    """The store's settings (see ``docs/backends/redis.md`` for what each one trades).

    Attributes:
        url: The URL given to redis-py (Squidie's options removed).
        namespace: Prefix of every key; stores with different namespaces never meet.
        socket_timeout: Seconds to wait for a reply (scripts and plain commands).
        socket_connect_timeout: Seconds to wait for a connection.
        retries: How often redis-py resends after a connection error or timeout (every
            script is idempotent under a resend); then ``BackendUnavailable``.
        retry_backoff_cap: Longest pause between two resends, in seconds.
        max_connections: Size of the connection pool (a caller waits for a free one).
        pool_timeout: Seconds to wait for a free connection before giving up.
        block_timeout: Longest single blocking read of ``wait_for_work``; its connection's
            socket timeout is this plus 5 seconds.
        clock_sync: Seconds between two ``TIME`` round trips of ``clock.now()``.
        health_check_interval: Seconds of idleness after which a connection is pinged
            before use.
    """

    url: str
    namespace: str = "squidie"
    socket_timeout: float = 5.0
    socket_connect_timeout: float = 2.0
    retries: int = 3
    retry_backoff_cap: float = 0.5
    max_connections: int = 64
    pool_timeout: float = 10.0
    block_timeout: float = 30.0
    clock_sync: float = 1.0
    health_check_interval: int = 30

    @classmethod
    def option_names(cls) -> list[str]:
        """Every Squidie option (everything but ``url``)."""
        return [f.name for f in fields(cls) if f.name != "url"]

    @classmethod
    def parse(cls, url: str, options: dict[str, Any]) -> RedisConfig:
        """Build the settings from a store URL and keyword options.

        Raises:
            InvalidArgument: an unknown option, or a value of the wrong type or range.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise InvalidArgument("url", "a Redis store URL starts with redis:// or rediss://")
        known = cls.option_names()
        ours: dict[str, Any] = {}
        passthrough: list[tuple[str, str]] = []
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name in known:
                ours[name] = value
            elif name in PASSTHROUGH:
                passthrough.append((name, value))
            else:
                raise _unknown(name, [*known, *sorted(PASSTHROUGH)])
        for name, value in options.items():
            if name not in known:
                raise _unknown(name, known)
            ours[name] = value
        clean = urlunsplit(parts._replace(query=urlencode(passthrough), fragment=""))
        config = cls(url=clean)
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in ours.items():
            values[name] = _cast(name, value, str(types[name]))
        return replace(config, **values)._validated()

    def _validated(self) -> RedisConfig:
        for name in ("socket_timeout", "socket_connect_timeout", "pool_timeout",
                     "block_timeout"):
            if getattr(self, name) <= 0:
                raise InvalidArgument(name, "must be positive")
        for name in ("retries", "health_check_interval", "retry_backoff_cap", "clock_sync"):
            if getattr(self, name) < 0:
                raise InvalidArgument(name, "must not be negative")
        if self.max_connections < 1:
            raise InvalidArgument("max_connections", "must be at least 1")
        return self

    @property
    def username(self) -> str | None:
        """The URL's user name, if any."""
        name = urlsplit(self.url).username
        return unquote(name) if name else None

    @property
    def password(self) -> str | None:
        """The URL's password, if any (never shown)."""
        secret = urlsplit(self.url).password
        return unquote(secret) if secret else None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings to scrub from messages."""
        found = [self.password or ""]
        if self.username and self.username != "default":
            found.append(self.username)
        return tuple(s for s in found if s)

    def redacted_url(self) -> str:
        """The URL without credentials or query (for reprs and logs)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _unknown(name: str, known: list[str]) -> InvalidArgument:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return InvalidArgument(name, f"not an option of the Redis store{hint}")


def _cast(name: str, value: Any, kind: str) -> Any:
    try:
        if kind == "str":
            if not isinstance(value, str):
                raise TypeError
            return value
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise TypeError
            return float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(name, f"expected {kind}, got {value!r}") from exc
    raise AssertionError(kind)  # pragma: no cover
