"""The one place redis-py exceptions become Squidie errors.

``map_errors`` wraps every call into redis-py. Each known redis-py exception class has an
explicit entry in ``MAPPING`` (a test fails if redis-py grows a class that has none); an
exception is translated by the first class of its MRO that has an entry, so a subclass
gets its own treatment before its parent's::

    redis-py                                     Squidie
    ConnectionError, TimeoutError, Busy...  ->   BackendUnavailable  (after redis-py's
    ReadOnlyError, MasterDown, ClusterDown        own bounded retries)
    ResponseError "SQUIDIE_CORRUPT", WRONGTYPE,
      NOGROUP                               ->   CorruptDataError
    OutOfMemoryError, NoPermissionError,
      CROSSSLOT, MOVED, other errors        ->   StoreError (with what to check)

Messages never carry credentials: the password and user name of the store URL are
replaced by ``***`` in every message this module builds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import redis.exceptions as rx

from squidie_core.errors import BackendUnavailable, CorruptDataError, SquidieError, StoreError

__all__ = ["MAPPING", "map_errors", "translate"]

_Factory = Callable[[str], SquidieError]


def _unavailable(detail: str) -> SquidieError:
    return BackendUnavailable("redis", detail)


def _store(hint: str) -> _Factory:
    def make(detail: str) -> SquidieError:
        return StoreError(f"redis: {detail}" + (f" ({hint})" if hint else ""))

    return make


def _response(detail: str) -> SquidieError:
    head = detail.split(" ", 1)[0]
    if head == "SQUIDIE_CORRUPT":
        return CorruptDataError("redis", detail.split(" ", 1)[1].split(" script:", 1)[0])
    if head in ("WRONGTYPE", "NOGROUP"):
        return CorruptDataError("redis", f"a key has an unexpected type or shape: {detail}")
    if head in ("BUSY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"):
        return BackendUnavailable("redis", detail)
    return StoreError(f"redis refused a command: {detail}")


#: Every redis-py exception class and how it is translated.
MAPPING: dict[type[BaseException], _Factory] = {
    # The server cannot be reached or cannot serve now.
    rx.ConnectionError: _unavailable,
    rx.TimeoutError: _unavailable,
    rx.BusyLoadingError: _unavailable,
    rx.MaxConnectionsError: _unavailable,
    rx.InvalidResponse: _unavailable,
    rx.ReadOnlyError: _unavailable,
    rx.MasterDownError: _unavailable,
    rx.ClusterDownError: _unavailable,
    rx.TryAgainError: _unavailable,
    rx.ChildDeadlockedError: _unavailable,
    rx.AuthenticationError: _store("check the user name and password of the store URL"),
    rx.AuthenticationWrongNumberOfArgsError: _store(
        "the server does not take a user name with the password; drop it from the URL"
    ),
    rx.AuthorizationError: _store("the user lacks a permission the Redis store needs"),
    rx.ExternalAuthProviderError: _store("the credential provider failed"),
    rx.NoPermissionError: _store(
        "the ACL user needs +@all on the namespace's keys (~<namespace>:*), EVALSHA and TIME"
    ),
    rx.OutOfMemoryError: _store(
        "Redis reached maxmemory: give it more memory; set maxmemory-policy noeviction"
    ),
    # Cluster routing: every script touches one hash slot by design; these mean a client
    # or deployment that does not match (see docs/backends/redis.md, Cluster).
    rx.ClusterCrossSlotError: _store(
        "on Redis Cluster, a run's dispatches must all be in the run's queue"
    ),
    rx.AskError: _store("a cluster slot is migrating; use a cluster-aware client"),
    rx.MovedError: _store("a cluster slot moved; use a cluster-aware client"),
    rx.ClusterError: _store("Redis Cluster error"),
    rx.SlotNotCoveredError: _unavailable,
    rx.CrossSlotTransactionError: _store("keys of one operation span several cluster slots"),
    rx.InvalidPipelineStack: _store("redis-py cluster pipeline misuse"),
    rx.RedisClusterException: _store("Redis Cluster client error"),
    # Errors the server returned for a command.
    rx.NoScriptError: _store("a script vanished from the server's cache twice in a row"),
    rx.ModuleError: _store("a Redis module refused the command"),
    rx.NoSuchFieldsetError: _store(""),
    rx.ExecAbortError: _store(""),
    rx.ResponseError: _response,
    # Client-side misuse: a bug in this adapter, reported as a store error.
    rx.DataError: _store("a value could not be encoded for Redis"),
    rx.PubSubError: _store(""),
    rx.WatchError: _store(""),
    rx.LockNotOwnedError: _store(""),
    rx.LockError: _store(""),
    rx.IncorrectPolicyType: _store(""),
    rx.RedisError: _store(""),
}
# Classes of newer redis-py releases (8.x), mapped where they exist: the server at its
# maxclients limit, and no node of a cluster reachable.
for _name in ("MaxClientsReachedError", "RedisClusterUnreachableError"):
    if hasattr(rx, _name):
        MAPPING[getattr(rx, _name)] = _unavailable

_CAUGHT = (rx.RedisError, rx.RedisClusterException, rx.ChildDeadlockedError,
           rx.IncorrectPolicyType)


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def translate(exc: BaseException, secrets: Sequence[str] = ()) -> SquidieError:
    """Return the Squidie error for a redis-py exception (credentials scrubbed)."""
    detail = _scrub(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                    secrets)
    for cls in type(exc).__mro__:
        factory = MAPPING.get(cls)
        if factory is not None:
            if cls is rx.ResponseError:
                return factory(_scrub(str(exc), secrets))
            return factory(detail)
    return StoreError(f"redis: {detail}")


@contextmanager
def map_errors(secrets: Sequence[str] = ()) -> Iterator[None]:
    """Translate redis-py exceptions raised in the block (``raise ... from exc``).

    Args:
        secrets: Strings to hide in messages (the URL's password and user name).
    """
    try:
        yield
    except _CAUGHT as exc:
        raise translate(exc, secrets) from exc
