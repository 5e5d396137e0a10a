"""URLs, options, registration through the entry points, and the public surface."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sql_helpers import dispatch, start

import squidie_backends.sql as sql_package
from squidie_backends.sql import SQLStore, uninstall
from squidie_backends.sql._config import parse_config
from squidie_core import ManualClock, open_store
from squidie_core._discovery import LoadedBackend, registry
from squidie_core.errors import InvalidArgument, MissingDriver


def test_public_surface() -> None:
    assert sorted(sql_package.__all__) == sorted([
        "SCHEMA_VERSION", "SQLStore", "SchemaReport", "doctor", "downgrade", "install",
        "uninstall",
    ])
    for name in sql_package.__all__:
        assert hasattr(sql_package, name)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:",
                                 "sqlite:///file::memory:?cache=shared"])
def test_in_memory_sqlite_is_refused_clearly(url: str) -> None:
    with pytest.raises(InvalidArgument, match="memory://"):
        SQLStore(url)


def test_url_normalisation_and_redaction() -> None:
    pg = parse_config("postgres://u:hunter2@db/app?schema=sq&prefix=app_&sslmode=require")
    assert pg.url.drivername == "postgresql+psycopg"
    assert (pg.prefix, pg.schema) == ("app_", "sq")
    assert dict(pg.url.query) == {"sslmode": "require"}  # left for the driver
    assert "hunter2" not in pg.public_url and "***" in pg.public_url
    assert pg.secrets == ("hunter2",)
    my = parse_config("mariadb://root@db/app")
    assert my.url.drivername == "mysql+pymysql"
    assert dict(my.url.query) == {"charset": "utf8mb4"}
    assert parse_config("mysql://root@db/app").dialect.name == "mysql"


def test_keyword_options_win_over_the_query() -> None:
    config = parse_config("sqlite:///x.db?prefix=a_&synchronous=normal", {"prefix": "b_"})
    assert (config.prefix, config.options["synchronous"]) == ("b_", "normal")


@pytest.mark.parametrize(("options", "match"), [
    ({"prefx": "a_"}, "did you mean 'prefix'"),
    ({"prefix": "bad-prefix"}, "letters, digits"),
    ({"synchronous": "off"}, "full, normal"),
    ({"auto_install": "maybe"}, "true or false"),
    ({"schema": "s"}, "SQLite has no schemas"),
    ({"synchronous_commit": "off"}, "PostgreSQL option"),
    ({"pool_size": 0}, "at least"),
])
def test_bad_options_are_clear_errors(options: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        parse_config("sqlite:///x.db", options)


def test_repr_never_shows_the_password(postgres_url: str, unique_name: str) -> None:
    url = postgres_url.replace("postgres@", "postgres:not-a-secret@") + f"?prefix={unique_name}_"
    store = SQLStore(url)  # trust auth ignores the password
    try:
        assert "not-a-secret" not in repr(store) and "not-a-secret" not in store.url
    finally:
        store.close()
        uninstall(url)


def test_sqlite_runs_in_wal_with_the_chosen_durability(tmp_path: Path) -> None:
    for mode, expected in (("full", 2), ("normal", 1)):
        url = f"sqlite:///{tmp_path}/{mode}.db?synchronous={mode}"
        store = SQLStore(url)
        try:
            with store._engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == expected
        finally:
            store.close()
    raw = sqlite3.connect(f"{tmp_path}/full.db")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent
    raw.close()


def test_registered_through_entry_points_per_scheme(tmp_path: Path) -> None:
    by_scheme = {s: b for b in registry().backends() for s in b.info.schemes}
    for scheme in ("sqlite", "postgresql", "postgres", "mysql", "mariadb"):
        assert by_scheme[scheme].plugin == "sql"
    assert by_scheme["postgresql"].info.extra == "postgres"
    assert by_scheme["mysql"].info.extra == "mysql"
    assert by_scheme["postgresql"].info.requires[0] == "psycopg"
    assert by_scheme["mysql"].info.requires[0] == "pymysql"
    clock = ManualClock()
    store = open_store(f"sqlite:///{tmp_path}/ep.db?prefix=ep_", clock=clock)
    try:
        assert isinstance(store, SQLStore) and store.clock is clock
        start(store, "r", dispatch("r"))
        assert store.claim("w", lease_for=1)[0].expires_at == clock.now() + 1
    finally:
        store.close()


def test_a_missing_driver_names_the_extra() -> None:
    backend = next(b for b in registry().backends() if b.info.name == "postgresql")
    fake = LoadedBackend(
        info=type(backend.info)(**{**backend.info.__dict__,
                                   "requires": ("no_such_psycopg_module",)}),
        plugin=backend.plugin, distribution=backend.distribution,
    )
    missing = fake.driver_missing()
    assert missing == "no_such_psycopg_module"
    error = MissingDriver(fake.info.name, missing, fake.info.extra or "")
    assert "pip install 'squidie[postgres]'" in str(error)


def test_wait_for_work_is_declared_on_sqlite_unless_turned_off(tmp_path: Path) -> None:
    from squidie_core.errors import CapabilityNotSupported

    store = SQLStore(f"sqlite:///{tmp_path}/w.db")
    try:
        assert store.capabilities.wake_up and store.capabilities.durable
        assert store.wait_for_work(["default"], 0.05) is False  # nothing committed
    finally:
        store.close()
    store = SQLStore(f"sqlite:///{tmp_path}/w.db", notify="false")
    try:
        assert not store.capabilities.wake_up
        with pytest.raises(CapabilityNotSupported):
            store.wait_for_work(["default"], 0.1)
    finally:
        store.close()
    from squidie_core.errors import StoreError

    with pytest.raises(StoreError, match="closed"):
        store.head("r")


@pytest.mark.parametrize(("version", "mariadb", "ok"), [
    ((10, 5, 20), True, False), ((10, 6, 0), True, True), ((10, 11, 9), True, True),
    ((5, 7, 44), False, False), ((8, 0, 36), False, True),
])
def test_servers_without_skip_locked_are_refused(version: tuple[int, ...], mariadb: bool,
                                                 ok: bool) -> None:
    from types import SimpleNamespace

    from squidie_backends.sql._dialects import MySQLDialect
    from squidie_core.errors import StoreError

    conn = SimpleNamespace(dialect=SimpleNamespace(server_version_info=version,
                                                   is_mariadb=mariadb))
    if ok:
        MySQLDialect().check_server(conn)  # type: ignore[arg-type]
    else:
        with pytest.raises(StoreError, match="SKIP LOCKED"):
            MySQLDialect().check_server(conn)  # type: ignore[arg-type]


def test_sqlite_without_json_functions_is_refused() -> None:
    from types import SimpleNamespace

    import sqlalchemy as sa

    from squidie_backends.sql._dialects import SQLiteDialect
    from squidie_core.errors import StoreError

    def no_json(sql: str) -> None:
        raise sa.exc.OperationalError(sql, {}, Exception("no such table: json_each"))

    conn = SimpleNamespace(exec_driver_sql=no_json,
                           dialect=SimpleNamespace(server_version_info=(3, 7, 17)))
    with pytest.raises(StoreError, match=r"json_each.*3\.7\.17"):
        SQLiteDialect().check_server(conn)  # type: ignore[arg-type]
