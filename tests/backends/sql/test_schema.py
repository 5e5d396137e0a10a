"""Schema management: install, version checks, drift report, up/down/up, prefixes."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sql_helpers import dispatch, start

from squidie_backends.sql import SCHEMA_VERSION, SQLStore, doctor, downgrade, install, uninstall
from squidie_backends.sql._config import make_engine, parse_config
from squidie_backends.sql._manage import apply_migrations
from squidie_backends.sql._schema import MIGRATIONS, Migration, Tables, build_tables
from squidie_core.errors import InvalidArgument, SchemaVersionError


def _engine(url: str) -> tuple[sa.Engine, Tables]:
    config = parse_config(url)
    return make_engine(config), build_tables(config.prefix, config.schema)


def test_install_is_idempotent_and_doctor_is_clean(store_url: str) -> None:
    try:
        assert doctor(store_url).installed_version == 0
        assert not doctor(store_url).ok
        assert install(store_url) == SCHEMA_VERSION
        assert install(store_url) == SCHEMA_VERSION
        report = doctor(store_url)
        assert report.ok, report.problems()
        assert report.to_dict()["expected_version"] == SCHEMA_VERSION
    finally:
        uninstall(store_url)
    assert doctor(store_url).missing_tables  # every table is gone


def test_concurrent_installs_apply_once(store_url: str) -> None:
    errors: list[BaseException] = []

    def go() -> None:
        try:
            install(store_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert doctor(store_url).ok
    finally:
        uninstall(store_url)


def test_doctor_reports_drift(store_url: str) -> None:
    install(store_url)
    engine, tables = _engine(store_url)
    try:
        index = next(i for i in tables.dispatches.indexes if i.name.endswith("claim"))
        with engine.begin() as conn:
            index.drop(conn)
            conn.execute(sa.text(
                f"ALTER TABLE {conn.dialect.identifier_preparer.format_table(tables.runs)} "
                "ADD COLUMN extra_col INTEGER"
            ))
        report = doctor(store_url)
        assert not report.ok
        assert report.missing_indexes == (index.name,)
        assert report.unexpected_columns == (f"{tables.runs.name}.extra_col",)
        assert any("missing index" in p for p in report.problems())
    finally:
        engine.dispose()
        uninstall(store_url)


def test_store_refuses_a_newer_schema(store_url: str) -> None:
    install(store_url)
    engine, tables = _engine(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.update(tables.version).values(version=SCHEMA_VERSION + 1))
        with pytest.raises(SchemaVersionError, match="upgrade squidie"):
            SQLStore(store_url)
        with pytest.raises(SchemaVersionError):
            install(store_url)
        assert "newer" in doctor(store_url).problems()[0]
    finally:
        with engine.begin() as conn:
            conn.execute(sa.update(tables.version).values(version=SCHEMA_VERSION))
        engine.dispose()
        uninstall(store_url)


def test_without_auto_install_a_missing_schema_is_an_error(store_url: str) -> None:
    with pytest.raises(SchemaVersionError, match="squidie install"):
        SQLStore(store_url, auto_install=False)
    with pytest.raises(SchemaVersionError):
        SQLStore(f"{store_url}&auto_install=false")
    try:
        install(store_url)
        SQLStore(store_url, auto_install=False).close()
    finally:
        uninstall(store_url)


def _add_marker_index(conn: sa.Connection, t: Tables) -> None:
    # An online-style step: only adds an index (no table rewrite, no long lock).
    sa.Index(f"{t.prefix}runs_updated", t.runs.c.updated_at).create(conn)


def _drop_marker_index(conn: sa.Connection, t: Tables) -> None:
    sa.Index(f"{t.prefix}runs_updated", t.runs.c.updated_at).drop(conn)


def test_migrate_up_down_up(open_store: Callable[..., SQLStore], store_url: str) -> None:
    """v1 -> v2 (a test-only migration) -> v1 -> v0 -> v2, with data surviving v2 -> v1."""
    store = open_store()
    start(store, "r", dispatch("r"))
    config = parse_config(store_url)
    engine = make_engine(config)
    steps = [*MIGRATIONS, Migration(2, "index runs by update time", _add_marker_index,
                                    _drop_marker_index)]
    try:
        def indexes() -> set[str]:
            with engine.connect() as conn:
                name = store.tables.runs.name
                return {str(i["name"]) for i in sa.inspect(conn).get_indexes(name)}

        marker = f"{store.prefix}runs_updated"
        assert apply_migrations(config, engine, migrations=steps) == 2
        assert marker in indexes()
        assert apply_migrations(config, engine, migrations=steps) == 2  # idempotent
        with pytest.raises(InvalidArgument):
            apply_migrations(config, engine, target=1, migrations=steps)  # install never downgrades
        assert apply_migrations(config, engine, target=1, allow_down=True, migrations=steps) == 1
        assert marker not in indexes()
        assert store.head("r") == 1  # data kept across the down step
        assert apply_migrations(config, engine, migrations=steps) == 2
        assert store.head("r") == 1
        # All the way down and up again: an empty, working store.
        assert apply_migrations(config, engine, target=0, allow_down=True, migrations=steps) == 0
        assert doctor(store_url).installed_version == 0
        assert apply_migrations(config, engine, migrations=steps) == 2
        store.close()
        with pytest.raises(SchemaVersionError):  # v2 is newer than this code's v1
            SQLStore(store_url)
        with pytest.raises(SchemaVersionError):  # and this code cannot revert it either
            downgrade(store_url, 1)
    finally:
        apply_migrations(config, engine, target=0, allow_down=True, migrations=steps)
        engine.dispose()


def test_prefixes_isolate_stores(base_url: str, unique_name: str) -> None:
    a_url, b_url = f"{base_url}?prefix={unique_name}a_", f"{base_url}?prefix={unique_name}b_"
    a, b = SQLStore(a_url), SQLStore(b_url)
    try:
        start(a, "r", dispatch("r"))
        assert a.head("r") == 1 and b.head("r") == 0
        assert b.claim("w", lease_for=30) == []
        assert a.prefix == f"{unique_name}a_"
        assert a.tables.facts.name == f"{unique_name}a_facts"
    finally:
        a.close()
        b.close()
        uninstall(a_url)
        uninstall(b_url)


def test_postgres_schema_option(postgres_url: str, unique_name: str) -> None:
    url = f"{postgres_url}?schema={unique_name}&prefix=sq_"
    store = SQLStore(url)
    try:
        start(store, "r")
        engine, _ = _engine(postgres_url)
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names(schema=unique_name)
        engine.dispose()
        assert "sq_facts" in names and store.head("r") == 1
        assert doctor(url).ok
    finally:
        store.close()
        uninstall(url)
        engine, _ = _engine(postgres_url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{unique_name}"'))
        engine.dispose()
