"""The one place where driver and SQLAlchemy exceptions become Squidie errors.

Every public store method runs inside ``map_errors``. Errors the store raises on purpose
(``AppendConflict``, ``LeaseLostError``...) pass through untouched; a driver exception
that escaped the store's own handling is mapped by its PEP 249 category (every DB-API
driver, ``sqlite3``, ``psycopg`` and ``PyMySQL`` included, names its exception classes
after PEP 249, and SQLAlchemy wraps them in classes of the same names), and re-raised
with ``raise ... from exc`` so the driver's traceback stays attached:

=====================================  =============================================
driver / SQLAlchemy category           Squidie error
=====================================  =============================================
OperationalError, InterfaceError,      ``BackendUnavailable`` (after the transient
pool timeout, disconnection            retries, when the error was transient)
IntegrityError                         ``ConflictError`` (a constraint the store did
                                       not expect to meet)
DataError                              ``InvalidArgument`` (a value the column refuses)
ProgrammingError                       ``StoreError`` (hinting at ``squidie install``
                                       when a table is missing)
InternalError, NotSupportedError,      ``StoreError``
DatabaseError, Error, Warning,
any other SQLAlchemy error
=====================================  =============================================

Messages name the backend and the driver's first line of text, never the SQL statement,
its parameters or the URL, and any known secret (the URL's password) is blanked out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import sqlalchemy as sa

from squidie_core.errors import (
    BackendUnavailable,
    ConflictError,
    InvalidArgument,
    SquidieError,
    StoreError,
)

__all__ = ["DRIVER_BASES", "PEP249_CATEGORIES", "category_of", "map_errors", "translate"]

#: PEP 249 exception names, most specific first.
PEP249_CATEGORIES = (
    "IntegrityError",
    "DataError",
    "OperationalError",
    "InterfaceError",
    "ProgrammingError",
    "NotSupportedError",
    "InternalError",
    "DatabaseError",
    "Error",
    "Warning",
)

#: Driver base classes named outside PEP 249, and the category they count as.
DRIVER_BASES = {"MySQLError": "Error"}  # PyMySQL: the base of its Error and Warning

_UNAVAILABLE = frozenset({"OperationalError", "InterfaceError"})
_MISSING_TABLE = ("no such table", "does not exist", "doesn't exist", "1146")


def category_of(exc: BaseException) -> str | None:
    """Return the PEP 249 category of a driver or SQLAlchemy exception, if it has one.

    The driver's own exception (``exc.orig``) decides when there is one; SQLAlchemy's
    wrapper classes carry the same names otherwise.
    """
    for candidate in (getattr(exc, "orig", None), exc):
        if candidate is None:
            continue
        names = {
            cls.__name__ for cls in type(candidate).__mro__ if cls.__module__ != "builtins"
        }
        for name in PEP249_CATEGORIES:
            if name in names:
                return name
        for name, category in DRIVER_BASES.items():
            if name in names:
                return category
    return None


def _detail(exc: BaseException, secrets: Sequence[str]) -> str:
    source = getattr(exc, "orig", None) or exc
    text = str(source).strip().splitlines()
    line = text[0] if text else type(source).__name__
    for secret in secrets:
        if secret:
            line = line.replace(secret, "***")
    return f"{type(source).__name__}: {line}"[:500]


def translate(exc: BaseException, backend: str, secrets: Sequence[str] = ()) -> SquidieError:
    """Return the Squidie error for a driver or SQLAlchemy exception (not raised)."""
    detail = _detail(exc, secrets)
    if isinstance(exc, sa.exc.TimeoutError | sa.exc.DisconnectionError):
        return BackendUnavailable(backend, detail)
    category = category_of(exc)
    if category in _UNAVAILABLE or getattr(exc, "connection_invalidated", False):
        return BackendUnavailable(backend, detail)
    if category == "IntegrityError":
        return ConflictError(f"{backend}: unexpected constraint violation: {detail}")
    if category == "DataError":
        return InvalidArgument("value", f"{backend} refused it: {detail}")
    if category == "ProgrammingError" and any(m in detail.lower() for m in _MISSING_TABLE):
        return StoreError(
            f"{backend}: a table of the store is missing ({detail}); "
            "run `squidie install --store URL`"
        )
    return StoreError(f"{backend} error: {detail}")


def _is_driver_error(exc: BaseException) -> bool:
    return isinstance(exc, sa.exc.SQLAlchemyError) or category_of(exc) is not None


@contextlib.contextmanager
def map_errors(backend: str, secrets: Sequence[str] = ()) -> Iterator[None]:
    """Turn driver and SQLAlchemy exceptions raised in the body into Squidie errors.

    Args:
        backend: The backend name for messages (``sqlite``, ``postgresql``...).
        secrets: Strings that must never appear in a message (the URL's password).

    Raises:
        SquidieError: the mapped error, chained to the original with ``from``.
    """
    try:
        yield
    except SquidieError:
        raise
    except Exception as exc:
        if not _is_driver_error(exc):
            raise
        raise translate(exc, backend, secrets) from exc
