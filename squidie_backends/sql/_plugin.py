"""Entry-point module of the SQL backend: declares it, imports no driver.

One ``BackendInfo`` per driver so that a missing driver names its own extra:
``sqlite`` needs only the standard library, ``postgresql``/``postgres`` need psycopg 3
(``pip install 'squidie[postgres]'``), ``mysql``/``mariadb`` need PyMySQL
(``pip install 'squidie[mysql]'``). All three share one factory.
"""

from __future__ import annotations

from typing import Any

from squidie_core.hookspecs import BackendInfo, hookimpl
from squidie_core.storage import Capabilities

_FACTORY = "squidie_backends.sql._plugin:open_store"
_INSTALL = "squidie_backends.sql._plugin:install_schema"
_DOCTOR = "squidie_backends.sql._plugin:doctor_findings"


def _capabilities(networked: bool, wake_up: bool = False) -> Capabilities:
    # Mirrors squidie_backends.sql._store.capabilities_for without importing SQLAlchemy.
    return Capabilities(
        durable=True,
        multi_process=True,
        multi_node=networked,
        embedded=not networked,
        priorities=True,
        wake_up=wake_up,
        visibility_precision=0.0,
        max_value_bytes=None,
    )


@hookimpl
def squidie_register_backends() -> list[BackendInfo]:
    """Declare ``sqlite://``, ``postgresql://`` and ``mysql://`` (with their aliases)."""
    return [
        BackendInfo(
            name="sqlite",
            schemes=("sqlite",),
            factory=_FACTORY,
            requires=("sqlite3", "sqlalchemy"),
            description="SQLite file in WAL mode via SQLAlchemy Core (embedded default)",
            capabilities=_capabilities(networked=False, wake_up=True),
            install=_INSTALL,
            doctor=_DOCTOR,
        ),
        BackendInfo(
            name="postgresql",
            schemes=("postgresql", "postgres"),
            factory=_FACTORY,
            requires=("psycopg", "sqlalchemy"),
            extra="postgres",
            description="PostgreSQL via SQLAlchemy Core and psycopg 3 (SKIP LOCKED claims, "
                        "LISTEN/NOTIFY wake-ups)",
            capabilities=_capabilities(networked=True, wake_up=True),
            install=_INSTALL,
            doctor=_DOCTOR,
        ),
        BackendInfo(
            name="mysql",
            schemes=("mysql", "mariadb"),
            factory=_FACTORY,
            requires=("pymysql", "sqlalchemy"),
            extra="mysql",
            description="MariaDB >= 10.6 / MySQL >= 8.0.1 via SQLAlchemy Core and PyMySQL",
            capabilities=Capabilities(
                durable=True, multi_process=True, multi_node=True, priorities=True,
                visibility_precision=0.0, max_value_bytes=4 * 1024 * 1024,
            ),
            install=_INSTALL,
            doctor=_DOCTOR,
        ),
    ]


def open_store(url: str, **options: Any) -> Any:
    """Open a ``SQLStore`` for ``url`` (options: ``clock`` and the store's options)."""
    from squidie_backends.sql._store import SQLStore

    return SQLStore(url, **options)


def install_schema(url: str, **options: Any) -> str:
    """``squidie install``: create or upgrade the schema; say which version it is at."""
    from squidie_backends.sql._manage import install

    return f"schema at version {install(url, **options)}"


def doctor_findings(url: str, **options: Any) -> list[dict[str, Any]]:
    """``squidie doctor``: the schema's version and any drift, as findings."""
    from squidie_backends.sql._manage import doctor

    report = doctor(url, **options)
    if report.ok:
        return [{"level": "ok", "check": "schema",
                 "detail": f"version {report.installed_version}, no drift"}]
    return [{"level": "error", "check": "schema", "detail": problem}
            for problem in report.problems()]
