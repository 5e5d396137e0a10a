"""PostgreSQL: a batch's lookups use their indexes, even on tables never analysed.

Until autovacuum (or ``ANALYZE``) first visits a table, PostgreSQL prices a lookup of
16 keys above a scan of the whole table. The store's batch transactions turn sequential
scans off for their own statements (``Dialect.transaction(batch=True)``); these tests
read the plans PostgreSQL picks for the group commit's lock of the settled leases.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sql_helpers import dispatch

from squidie_backends.sql import SQLStore, uninstall

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_store(postgres_url: str, unique_name: str) -> Iterator[SQLStore]:
    url = f"{postgres_url}?prefix={unique_name}_"
    store = SQLStore(url)
    yield store
    store.close()
    uninstall(url)


def _plan(store: SQLStore, keys: list[str], *, batch: bool) -> str:
    sql = store._sql["lock_settled"].params(keys=keys).compile(
        dialect=store._engine.dialect, compile_kwargs={"literal_binds": True}).string

    def body(conn: sa.Connection) -> str:
        return "\n".join(str(row[0]) for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))

    return store._run(body, write=False, batch=batch)


def test_a_batch_reads_by_index_from_a_table_never_analysed(pg_store: SQLStore) -> None:
    pg_store.enqueue([dispatch(f"r{i}") for i in range(3000)])
    with pg_store._engine.connect() as conn:
        analysed = conn.execute(sa.text(
            "SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"),
            {"t": pg_store.tables.dispatches.name}).scalar()
    assert analysed == -1  # never analysed: the planner has no statistics
    keys = sorted(dispatch(f"r{i}").key for i in range(0, 3000, 187))
    assert len(keys) == 17
    # Left to itself, PostgreSQL scans the whole table for them...
    assert "Seq Scan" in _plan(pg_store, keys, batch=False)
    # ...which a batch's transaction rules out.
    plan = _plan(pg_store, keys, batch=True)
    assert "Seq Scan" not in plan and "dispatches_key" in plan


def test_the_setting_ends_with_the_batch(pg_store: SQLStore) -> None:
    """``SET LOCAL``: the next transaction on the same pooled connection plans freely."""
    def setting(conn: sa.Connection) -> str:
        return str(conn.exec_driver_sql("SHOW enable_seqscan").scalar())

    assert pg_store._run(setting, write=False, batch=True) == "off"
    assert pg_store._run(setting, write=False) == "on"
