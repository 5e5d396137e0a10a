"""The driver parameters of the SQL store's sized statements (``_DriverStatement``).

Multi-row parameters are read straight from the rows through a precomputed layout. They
must be exactly what the former path built: a dict of every row's keys suffixed ``_{i}``
over the shared parameters, each bind looked up in it (else the statement's own value),
the bind processors applied except to ``None``, then a tuple for positional dialects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.mysql import pymysql
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.dialects.sqlite import pysqlite

from squidie_backends.sql import SQLStore, uninstall
from squidie_backends.sql._store import _ROW_KEYS, _DriverStatement, _numbered


def _suffixed_values(statement: _DriverStatement, rows: Sequence[Mapping[str, Any]],
                     shared: Mapping[str, Any]) -> dict[str, Any] | tuple[Any, ...]:
    """The former path, kept as the reference: ``SQLStore._chunks``' suffixed dict, then
    ``_DriverStatement.values`` bind by bind."""
    params = dict(shared)
    for i, row in enumerate(rows):
        params.update({f"{key}_{i}": value for key, value in row.items()})
    values = {}
    for name in statement.names:
        value = params[name] if name in params else statement.defaults[name]
        processor = statement.processors.get(name)
        values[name] = value if processor is None or value is None else processor(value)
    if statement.positional:
        return tuple(values[name] for name in statement.names)
    return values


def _typed(values: dict[str, Any] | tuple[Any, ...]) -> object:
    """``values`` with each value's type, so that ``5`` and a processed ``5.0`` differ."""
    if isinstance(values, dict):
        return {name: (type(value), value) for name, value in values.items()}
    return [(type(value), value) for value in values]


class _Marked(sa.TypeDecorator[str]):
    """A type whose bind processor shows that it ran."""

    impl = sa.String(32)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return f"<{value}>"


_T = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
              sa.Column("k", sa.String(32)), sa.Column("state", sa.String(16)),
              sa.Column("tag", _Marked()), sa.Column("note", _Marked()))


def _marked_update(n: int) -> sa.Update:
    """Row binds (``k_{i}``, processed ``note_{i}``; ``k_{i}`` twice), a processed shared
    bind (``v_tag``) and the statement's own values (``state``, ``state_1``)."""
    p = sa.bindparam
    keys = [p(f"k_{i}", type_=_T.c.k.type) for i in range(n)]
    return sa.update(_T).where(_T.c.k.in_(keys), _T.c.state == "claimed").values(
        state="done", tag=p("v_tag", type_=_Marked()),
        note=sa.case(*((_T.c.k == keys[i], p(f"note_{i}", type_=_Marked()))
                       for i in range(n))))


#: The paramstyles of the store's drivers: SQLite's positional ``qmark``, psycopg's and
#: PyMySQL's named ``pyformat`` (compiled only: no connection).
_DIALECTS: list[sa.Dialect] = [
    pysqlite.dialect(), psycopg.dialect(), pymysql.dialect()]  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("dialect", _DIALECTS, ids=["qmark", "psycopg", "pymysql"])
def test_row_parameters_fill_the_suffixed_binds_as_the_suffixed_dict_did(
    dialect: sa.Dialect,
) -> None:
    statement = _DriverStatement(_marked_update(3), dialect)
    rows: list[dict[str, Any]] = [
        {"k": "a", "note": "x"}, {"k": "b", "note": None}, {"k": "c", "note": "z"}]
    shared: dict[str, Any] = {"v_tag": "t"}
    values = statement.values(shared, rows)
    assert _typed(values) == _typed(_suffixed_values(statement, rows, shared))
    by_name = (dict(zip(statement.names, values, strict=True)) if statement.positional
               else values)
    assert isinstance(by_name, dict)
    assert by_name == {"state": "done", "v_tag": "<t>", "k_0": "a", "k_1": "b", "k_2": "c",
                       "note_0": "<x>", "note_1": None, "note_2": "<z>",
                       "state_1": "claimed"}
    # A row's parameter wins over a shared one of the same name, which wins over the
    # statement's own value.
    shared = {"v_tag": "t", "note_1": "shared", "state": "given"}
    assert (_typed(statement.values(shared, rows))
            == _typed(_suffixed_values(statement, rows, shared)))
    assert "'given'" in repr(statement.values(shared, rows))
    assert "'shared'" not in repr(statement.values(shared, rows))


def test_a_missing_row_parameter_is_a_key_error() -> None:
    statement = _DriverStatement(_marked_update(2), pysqlite.dialect())
    with pytest.raises(KeyError):
        statement.values({"v_tag": "t"}, [{"k": "a", "note": "x"}])


#: Per sized statement: the keys of its rows and its shared parameters.
_SIZED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    **{kind: (tuple(keys), ()) for kind, keys in _ROW_KEYS.items()},
    "settle": (("b_key", "b_token_hash", "v_event"), ("v_state", "v_reason", "b_now")),
    "take": (("id", "token_hash", "event"), ("v_owner", "v_expires")),
    "fail_others": (("run_id",), ("v_at",)),
    "facts_after": (("run_id", "seq"), ()),
    "checkpointed_facts": (("run_id",), ()),
}


def _value(seed: int) -> int | None:
    # Integers, so that SQLite's float processors show (5 becomes 5.0), and some None.
    return None if seed % 3 == 0 else seed


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("kind", sorted(_SIZED))
def test_the_store_statements_get_the_parameters_of_the_suffixed_dict(
    sql_store: SQLStore, kind: str, n: int
) -> None:
    row_keys, shared_keys = _SIZED[kind]
    statement = sql_store._for(kind, n)
    rows = [{key: _value(10 * i + j) for j, key in enumerate(row_keys)} for i in range(n)]
    shared = {key: _value(100 + j) for j, key in enumerate(shared_keys)}
    expected = _typed(_suffixed_values(statement, rows, shared))
    assert _typed(statement.values(shared, rows)) == expected
    assert _typed(statement.values(shared, rows)) == expected  # the kept layout


def test_single_row_parameters_are_read_by_name(sql_store: SQLStore) -> None:
    # ``n=1`` (PostgreSQL's NOTIFY on every dialect's compiler) and PostgreSQL's unnest
    # writes: the parameters by name only.
    statements: list[tuple[_DriverStatement, dict[str, Any]]] = [
        (sql_store._for("notify", 1), {"channel": "c", "queue": "q"})]
    if sql_store.name == "postgresql":
        statements.append((sql_store._for("settle", 0), {
            "b_key": ["k"], "b_token_hash": ["h"], "v_event": ["e"], "v_state": "completed",
            "v_reason": None, "b_now": 5}))
    for statement, params in statements:
        expected = _typed(_suffixed_values(statement, (), params))
        assert _typed(statement.values(params)) == expected


@pytest.mark.parametrize("kind", sorted(_SIZED))
def test_batched_rows_get_the_parameters_of_one_row_each(sql_store: SQLStore,
                                                         kind: str) -> None:
    row_keys, shared_keys = _SIZED[kind]
    statement = sql_store._for(kind, 1)
    rows = [{key: _value(10 * i + j) for j, key in enumerate(row_keys)} for i in range(4)]
    shared = {key: _value(100 + j) for j, key in enumerate(shared_keys)}
    expected = [_typed(_suffixed_values(statement, [row], shared)) for row in rows]
    assert [_typed(v) for v in statement.values_many(shared, rows)] == expected
    assert [_typed(v) for v in statement.values_many(shared, rows)] == expected


@pytest.mark.parametrize("kind", sorted(_ROW_KEYS))
def test_pymysql_sends_an_inserts_executemany_as_one_statement(
    mysql_url: str, unique_name: str, kind: str
) -> None:
    # PyMySQL rewrites ``executemany`` into one multi-row INSERT only when the SQL
    # matches this pattern; otherwise it sends one statement per row.
    from pymysql.cursors import RE_INSERT_VALUES

    url = f"{mysql_url}?prefix={unique_name}_"
    store = SQLStore(url)
    try:
        assert kind in store._dialect.many_rows
        sql = store._for(kind, 1).sql
        match = RE_INSERT_VALUES.match(sql)
        assert match is not None, sql
        assert match.group(2).count("%(") == len(_ROW_KEYS[kind])
    finally:
        store.close()
        uninstall(url)


def test_a_numbered_statement_numbers_each_name_once_and_unescapes_percent() -> None:
    """``_numbered``: psycopg's named placeholders as PostgreSQL's ``$n`` (a repeated
    name keeps its number), ``%%`` back to ``%``; a binary placeholder: no numbered form."""
    sql = "SELECT %(a)s::INT, %(b)s, %(a)s WHERE x LIKE 'p%%' AND y = %(c_1)s"
    assert _numbered(sql) == ("SELECT $1::INT, $2, $1 WHERE x LIKE 'p%' AND y = $3",
                              ("a", "b", "c_1"))
    assert _numbered("SELECT %(a)s, %(b)b") is None
    assert _numbered("SELECT 1") == ("SELECT 1", ())
