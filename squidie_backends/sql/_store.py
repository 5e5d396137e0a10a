"""``SQLStore``: the storage contract over SQLAlchemy Core (SQLite, PostgreSQL, MariaDB).

Every public method is one short database transaction, retried as a whole on transient
errors (busy, deadlock, serialization failure, connection reset) with bounded, jittered
backoff, and run inside ``map_errors`` so that nothing but Squidie errors escapes.

Time: every lease and visibility decision reads ``self.clock`` once per transaction and
passes that instant to the database as a bound parameter (``eligible_at <= :now``). The
database's own ``now()`` is never used, so a test that injects a ``ManualClock`` controls
expiry and visibility exactly, and all processes sharing a store must share a clock
source (the system clock, kept in sync with NTP, in production).

Claiming under concurrency (PostgreSQL, MariaDB)::

    worker A                              database                         worker B
    BEGIN                                                                  BEGIN
    SELECT ... WHERE lane='default'       row d1 locked by A
      AND eligible_at <= :now
      ORDER BY eligible_at, dkey LIMIT 1
      FOR UPDATE SKIP LOCKED      ---->                             <----  same SELECT
                                          d1 is locked: B skips it,
                                          gets d2 instead
    UPDATE d1: claimed, fence+1, token    UPDATE d2: claimed ...
    COMMIT                                                                 COMMIT

On SQLite there are no row locks: write transactions start with ``BEGIN IMMEDIATE``, so
the second claimer waits (busy timeout) until the first committed, then sees d1 claimed.

A commit racing a take-over of its expired lease::

    worker A (lease fence 1)              database                         worker B
    ... paused past expiry ...            d1 eligible again
                                          d1 locked, fence 2, token b <--  claim
    commit(settle=a):
      UPDATE d1 SET completed WHERE       waits for B's row lock, then
      token_hash = h(a) AND               re-checks the row: token is b
      lease_expires_at > :now             0 rows -> LeaseLostError,
                                          rollback, nothing appended

Two commits at the same sequence::

    commit X (expected 5)                 facts PK (run_id, seq)          commit Y (expected 5)
    INSERT fact (r, 6)            ---->   row (r, 6) pending X    <----   INSERT fact (r, 6)
    COMMIT                                                                 waits for X, then
                                                                           unique violation ->
                                                                           AppendConflict
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any, TypeVar

import sqlalchemy as sa
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from squidie_backends.sql._config import Config, make_engine, parse_config
from squidie_backends.sql._dialects import DriverRead
from squidie_backends.sql._errors import category_of, map_errors
from squidie_backends.sql._manage import apply_migrations, read_version
from squidie_backends.sql._notify import PgWakeUps, SqliteWakeUps, channel_for
from squidie_backends.sql._schema import (
    ID_LENGTH,
    KEY_LENGTH,
    SCHEMA_VERSION,
    build_tables,
)
from squidie_core import _json
from squidie_core._clock import Clock, SystemClock
from squidie_core.errors import (
    AppendConflict,
    CapabilityNotSupported,
    CorruptDataError,
    DispatchNotFound,
    IdempotencyConflict,
    InvalidArgument,
    LeaseLostError,
    RunTerminalError,
    SchemaVersionError,
    SquidieError,
    StoreError,
    ValueTooLarge,
)
from squidie_core.storage import (
    COMMIT_ERRORS,
    TERMINAL_STATUSES,
    Capabilities,
    Checkpoint,
    Commit,
    CommitResult,
    Dispatch,
    DispatchRecord,
    Fact,
    Lease,
    Page,
    QueueDepth,
    RunEntry,
    check_commit,
    check_contiguous,
    decode_cursor,
    encode_cursor,
    hash_token,
    new_token,
    same_facts,
)

__all__ = ["SQLStore", "capabilities_for"]

log = logging.getLogger("squidie.sql")

T = TypeVar("T")

#: The row parameters of the multi-row writes (``SQLStore._for``), by the column each
#: one fills.
_ROW_KEYS: dict[str, dict[str, str]] = {
    "facts": {c: c for c in ("run_id", "seq", "type", "at", "body")},
    "dispatches": {c: c for c in (
        "dkey", "run_id", "workflow", "step", "attempt", "queue", "priority",
        "max_deliveries", "delay", "state", "visible_at", "lane", "eligible_at",
        "deliveries", "fence", "owner_id", "token_hash", "lease_expires_at", "reason",
        "dead_order", "history")},
    "runs": {f"v_{c}": c for c in (
        "run_id", "workflow", "trigger", "status", "queue", "created_at", "updated_at",
        "last_seq", "parent_run_id")},
    "checkpoints": {"v_run_id": "run_id", "v_seq": "seq", "v_data": "data"},
}

#: The array parameters of PostgreSQL's ``unnest`` writes and reads (``SQLStore._unnest``).
_UNNEST_ARRAYS: dict[str, tuple[str, ...]] = {
    **{kind: tuple(keys) for kind, keys in _ROW_KEYS.items()},
    "settle": ("b_key", "b_token_hash", "v_event"),
    "take": ("id", "token_hash", "event"),
    "fail_others": ("run_id",),
    "facts_after": ("run_id", "seq"),
    "checkpointed_facts": ("run_id",),
}

#: The batch reads of ``read_runs``, one statement for any number of runs on PostgreSQL
#: and SQLite (``SQLStore._reads``).
_READS = ("facts_after", "checkpointed_facts")

#: The journal's columns a batch read selects, of the facts table aliased ``f``.
_FACT_COLUMNS = "f.run_id, f.seq, f.type, f.at, f.body"

#: PostgreSQL writes more rows than this with ``unnest`` (fewer: a ``VALUES`` list, which
#: psycopg sends without dumping arrays).
_UNNEST_FROM = 4

#: The most rows one sized statement (``SQLStore._for``) covers; more go in chunks.
_SIZED_MAX = 64

_HISTORY_LIMIT = 50
_DEAD_COUNTER = "dead_order"


def capabilities_for(dialect_name: str, *, notify: bool = True) -> Capabilities:
    """The capabilities a SQL store on ``dialect_name`` declares.

    ``wake_up`` is PostgreSQL's ``LISTEN``/``NOTIFY`` and SQLite's ``data_version``
    watcher (on unless ``notify`` is false); MariaDB/MySQL has none.
    """
    networked = dialect_name != "sqlite"
    return Capabilities(
        durable=True,
        multi_process=True,
        multi_node=networked,
        priorities=True,
        wake_up=dialect_name in ("postgresql", "sqlite") and notify,
        embedded=not networked,
        # The injected clock's instant is compared with stored doubles exactly.
        visibility_precision=0.0,
        # MariaDB's default max_allowed_packet is 16 MiB and a commit may carry a value
        # twice (in a fact and in the checkpoint): stay well inside it.
        max_value_bytes=4 * 1024 * 1024 if dialect_name == "mysql" else None,
    )


def _raw_cursor(connection: Any) -> Any:
    """A psycopg ``RawCursor`` (``$1`` placeholders, parsed by the server) on
    ``connection``; psycopg is imported only by PostgreSQL stores."""
    import psycopg

    return psycopg.RawCursor(connection)


@dataclass(frozen=True, slots=True)
class _Params:
    """A validated commit with its statement parameters."""

    commit: Commit
    fact_rows: list[dict[str, Any]]
    run: dict[str, Any]
    checkpoint: dict[str, Any] | None


#: The driver's parameters of one execution: a tuple for the positional paramstyles
#: (SQLite's ``qmark``), a dict for the named ones (psycopg's and PyMySQL's ``pyformat``).
_DriverParams = dict[str, Any] | tuple[Any, ...]

#: Where each driver parameter's value is read (``_DriverStatement._layout``): one
#: ``(name, source, key)`` per parameter, ``sources[source][key]`` in the list
#: ``[*rows, params, defaults]`` (``source`` is a row's index, ``_SHARED`` or ``_DEFAULT``).
_Layout = tuple[tuple[str, int, str], ...]

_SHARED, _DEFAULT = -2, -1

#: PostgreSQL's one statement for writes sent together (``SQLStore._one_statement``): its
#: SQL, each part's parameter names (prefixed), and its numbered form (``_numbered``).
_Joined = tuple[str, list[tuple[str, ...]], tuple[str, tuple[str, ...]] | None]

#: A psycopg placeholder (``%(name)s``, or ``%(name)b`` for binary) or an escaped ``%``.
_PYFORMAT = re.compile(r"%\((\w+)\)([sb])|%%")


def _numbered(sql: str) -> tuple[str, tuple[str, ...]] | None:
    """``sql``'s ``%(name)s`` placeholders as PostgreSQL's own ``$1``, ``$2``, ... (one
    number per name) and the names in number order; ``None`` if a parameter is sent in
    binary (``%(name)b``: a raw cursor sends every parameter in one format).

    psycopg parses a query's placeholders on every execution of a query with more than
    50 parameters (it caches the parse only below that), which for a worker's commit of
    one step cost a sixth of its CPU; the numbered form, sent through psycopg's
    ``RawCursor``, is parsed by the server alone.
    """
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        name, kind = match.groups()
        if name is None:
            return "%"
        if kind == "b":
            raise ValueError(name)
        return f"${numbers.setdefault(name, len(numbers) + 1)}"

    try:
        text = _PYFORMAT.sub(number, sql)
    except ValueError:
        return None
    return text, tuple(numbers)


class _DriverStatement:
    """A sized statement compiled once for the store's dialect and sent through the
    driver (``exec_driver_sql``). SQLAlchemy would otherwise walk the whole statement
    for its cache key on every execution, which for a multi-row write costs more than
    the round trips it saves. The compiled statement's own values (literals bound as
    parameters) and the dialect's bind processors are applied here, as SQLAlchemy
    would.

    The parameters of a multi-row statement are read straight from its rows (row ``i``
    fills the binds ``{key}_{i}``) through a layout worked out once per shape of the
    input (``_layout``), not from a dict of every row's keys suffixed and then looked up
    bind by bind: building those dicts was most of the cost of a multi-row write in
    Python (a 64-row dispatch insert has 1,344 parameters).
    """

    __slots__ = ("_layouts", "_processors", "defaults", "names", "positional", "processors",
                 "sql")

    def __init__(self, stmt: sa.ClauseElement, dialect: sa.Dialect,
                 binary: Iterable[str] = ()) -> None:
        compiled: Any = stmt.compile(dialect=dialect)
        if compiled.escaped_bind_names or compiled.post_compile_params:
            raise AssertionError(f"not a driver statement: {compiled.string}")
        self.sql: str = compiled.string
        for key in binary:
            # psycopg: send the parameter in binary (a text array would be escaped
            # element by element in Python).
            self.sql = self.sql.replace(f"%({key})s", f"%({key})b")
        self.positional: bool = bool(compiled.positional)
        binds: dict[Any, str] = compiled.bind_names
        #: One name per driver parameter: per position (a name may repeat) if positional.
        self.names: tuple[str, ...] = (
            tuple(compiled.positiontup or ()) if self.positional
            else tuple(dict.fromkeys(binds.values())))
        self.defaults: dict[str, Any] = {
            name: bind.effective_value for bind, name in binds.items() if not bind.required}
        self.processors: dict[str, Callable[[Any], Any]] = dict(compiled._bind_processors)
        # The processors by the driver parameter (position or name) they apply to; most
        # parameters have none (on PostgreSQL and MariaDB, none has one).
        self._processors: tuple[tuple[int | str, Callable[[Any], Any]], ...] = tuple(
            (position if self.positional else name, processor)
            for position, name in enumerate(self.names)
            if (processor := self.processors.get(name)) is not None)
        self._layouts: dict[tuple[int, tuple[str, ...], tuple[str, ...]], _Layout] = {}

    def values(self, params: Mapping[str, Any],
               rows: Sequence[Mapping[str, Any]] = ()) -> _DriverParams:
        """The driver's parameters.

        Args:
            params: Parameters by bind name; of a multi-row statement, the ones its rows
                share.
            rows: Each row's own parameters, by unsuffixed key: row ``i``'s ``key`` fills
                the bind ``{key}_{i}`` (over ``params``, if both have it). Every row has
                the first row's keys.

        Returns:
            A tuple if the dialect's paramstyle is positional, a dict if named. A bind
            neither given nor with a value of its own in the statement raises
            ``KeyError``; processors are not applied to ``None``.
        """
        return self._values(self._layout(params, rows), [*rows, params, self.defaults])

    def values_many(self, params: Mapping[str, Any],
                    rows: Sequence[Mapping[str, Any]]) -> list[_DriverParams]:
        """The driver's parameters of a one-row statement, once per row of ``rows`` (for
        an ``executemany``): as ``values(params, [row])`` for each row."""
        layout = self._layout(params, rows[:1])
        return [self._values(layout, (row, params, self.defaults)) for row in rows]

    def _values(self, layout: _Layout, sources: Sequence[Mapping[str, Any]]) -> _DriverParams:
        values: Any  # a list (positional) or a dict (named), as ``_processors`` index it
        if self.positional:
            values = [sources[source][key] for _, source, key in layout]
        else:
            values = {name: sources[source][key] for name, source, key in layout}
        for at, processor in self._processors:
            value = values[at]
            if value is not None:
                values[at] = processor(value)
        return tuple(values) if self.positional else values

    def _layout(self, params: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> _Layout:
        """Where ``values`` reads each driver parameter, for inputs with these keys: from
        a row (its suffixed bind), else ``params``, else the statement's own value. It
        depends only on the keys, so it is worked out once per shape and kept (a store
        sends a handful of shapes per statement)."""
        shape = (len(rows), tuple(rows[0]) if rows else (), tuple(params))
        layout = self._layouts.get(shape)
        if layout is None:
            where = {name: (_SHARED, name) for name in params}
            for i in range(len(rows)):
                where.update({f"{key}_{i}": (i, key) for key in shape[1]})
            layout = self._layouts[shape] = tuple(
                (name, *where.get(name, (_DEFAULT, name))) for name in self.names)
        return layout


@dataclass(frozen=True, slots=True)
class _Write:
    """One write of a transaction, for ``SQLStore._send``: its statement, parameters (as
    ``_DriverStatement.values``) and table, and what a unique violation of it means
    (``None``: an error like any other). With ``many``, the statement is a one-row one,
    executed for each of ``rows`` in one ``executemany`` (``_DriverStatement.values_many``).
    """

    statement: _DriverStatement
    params: Mapping[str, Any]
    table: str
    on_unique: Callable[[], Exception] | None = None
    rows: Sequence[Mapping[str, Any]] = ()
    many: bool = False

    def parameters(self) -> _DriverParams | list[_DriverParams]:
        """The driver's parameters: one set, or with ``many`` a list of them (one per
        row), which ``exec_driver_sql`` sends as an ``executemany``."""
        if self.many:
            return self.statement.values_many(self.params, self.rows)
        return self.statement.values(self.params, self.rows)


class _KeyRace(Exception):
    """Another transaction inserted the same dispatch key first: run the operation again."""


class _Refused(Exception):
    """A gated statement's gate matched no row, so it wrote nothing (``SQLStore._send``)."""


#: The columns PostgreSQL's one-statement claim returns per dispatch taken (then the
#: number of rows it locked and whether the queue has another level); the first is never
#: null in a row it took.
_CLAIMED = ("dkey", "run_id", "workflow", "step", "attempt", "queue", "priority", "delay",
            "max_deliveries", "fence", "deliveries", "n")

#: How a dispatch history's ``claimed`` event begins, up to its fence (``_event``'s
#: encoding): PostgreSQL's one-statement claim writes the fence in SQL between it and
#: the rest, which the client encodes.
_CLAIMED_EVENT = '{"event":"claimed","fence":'

#: The transaction setting in which PostgreSQL's one-statement claim leaves the runs it
#: took, for the read that follows it (``SQLStore._claimed_read``).
_CLAIMED_RUNS = "squidie.claimed_runs"

#: Claims read their runs while at least this share of their runs was read from the
#: checkpoint (a moving average per thread, ``SQLStore._reads_with_claims``).
_FRESH_TO_READ = 0.5

#: What a thread's last claim read with it (``SQLStore._prefetched``): the run of each
#: lease token it handed out, and each run's checkpoint and facts' rows.
_Claimed = tuple[dict[str, str], dict[str, tuple[Checkpoint | None, list[Any]]]]

#: The text a gated statement fails to cast when its gate matched no row (its error, an
#: ``invalid_text_representation``, is told from any other by this text).
_GATE_REFUSED = "squidie: gate refused"


def _event(**fields: Any) -> str:
    return _json.dumps({k: v for k, v in fields.items() if v is not None}) + "\n"


def _text(name: str, value: Any, limit: int = ID_LENGTH) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(name, f"must be a string, not {type(value).__name__}")
    if len(value) > limit:
        raise InvalidArgument(
            name, f"is {len(value)} characters long; the SQL store accepts at most {limit}"
        )
    return value


class SQLStore:
    """The ``Store`` contract on SQLite, PostgreSQL or MariaDB/MySQL.

    Args:
        url: ``sqlite:///path.db``, ``postgresql://user@host/db``,
            ``mysql://user@host/db`` (``mariadb://`` and ``postgres://`` too). Options may
            be given as query parameters.
        clock: The one clock behind every lease and visibility decision (default: the
            system clock).
        **options: ``prefix`` (table-name prefix, default ``squidie_``), ``schema``
            (database schema; not on SQLite), ``synchronous`` (SQLite: ``full`` by
            default, or ``normal``), ``auto_install`` (create or upgrade the schema when
            opening, default true), ``busy_timeout`` (SQLite, seconds, default 10),
            ``pool_size`` (default 5), ``retry_attempts`` (transient-error attempts per
            operation, default 6). Keyword arguments win over query parameters.

    Raises:
        InvalidArgument: a bad URL or option.
        SchemaVersionError: the schema is missing (with ``auto_install=false``), older, or
            newer than this code understands.
        BackendUnavailable: the database cannot be reached.
    """

    def __init__(
        self, url: str = "sqlite:///squidie.db", *, clock: Clock | None = None, **options: Any
    ) -> None:
        self._config: Config = parse_config(url, options)
        self._dialect = self._config.dialect
        self.name: str = self._dialect.name
        self.clock: Clock = clock or SystemClock()
        opts = self._config.options
        self.capabilities: Capabilities = capabilities_for(self.name,
                                                           notify=bool(opts["notify"]))
        self.tables = build_tables(self._config.prefix, self._config.schema)
        self._closed = False
        self._retrying = Retrying(
            retry=retry_if_exception(self._transient),
            stop=stop_after_attempt(int(opts["retry_attempts"])),
            wait=wait_random_exponential(multiplier=0.01, max=0.5),
            reraise=True,
        )
        self._engine = make_engine(self._config)
        self._wake: PgWakeUps | SqliteWakeUps | None = None
        if self.capabilities.wake_up:
            self._wake = (
                SqliteWakeUps(str(self._engine.url.database)) if self.name == "sqlite"
                else PgWakeUps(self._engine, channel_for(self.prefix, self._config.schema)))
        self._sql = self._prepare()
        #: Statements over ``n`` rows (a batch's runs or leases), built once per size.
        self._sized: dict[tuple[str, int], _DriverStatement] = {}
        #: Prepared statements sent as driver statements (``_driver_statement``).
        self._driver: dict[str, _DriverStatement] = {}
        #: PostgreSQL's one-statement claim (``_claim_statement``), built on first use.
        self._claim_sql: str | None = None
        #: The read of a claim's runs (``_claimed_read``), built on first use.
        self._claimed_sql: str | None = None
        #: Per thread, the journals of the runs its last claim took (``_prefetched``).
        self._prefetch = threading.local()
        #: PostgreSQL's one-statement forms of inserts sent together (``_one_statement``).
        self._joined: dict[tuple[str, ...], _Joined] = {}
        try:
            self._open(bool(opts["auto_install"]))
        except BaseException:
            self._engine.dispose()
            raise

    # ------------------------------------------------------------------ plumbing

    @property
    def url(self) -> str:
        """The store's URL with any password hidden."""
        return self._config.public_url

    @property
    def prefix(self) -> str:
        """The table-name prefix."""
        return self._config.prefix

    def __repr__(self) -> str:
        return f"SQLStore({self.url!r}, prefix={self.prefix!r})"

    def _open(self, auto_install: bool) -> None:
        with map_errors(self.name, self._config.secrets), self._engine.connect() as conn:
            self._dialect.check_server(conn)
            version = read_version(conn, self.tables)
            conn.rollback()
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the store at {self.url} has schema version {version}; this code "
                f"understands up to {SCHEMA_VERSION}: upgrade squidie"
            )
        if not auto_install:
            what = "no schema" if version == 0 else f"schema version {version}"
            raise SchemaVersionError(
                f"the store at {self.url} has {what}, this code needs {SCHEMA_VERSION}: "
                "run `squidie install --store URL` (or open it with auto_install=true)"
            )
        apply_migrations(self._config, self._engine)

    def _transient(self, exc: BaseException) -> bool:
        if category_of(exc) is None and not isinstance(exc, sa.exc.DBAPIError):
            return False
        transient = self._dialect.is_transient(exc)
        if transient:
            log.debug("transient %s error, retrying: %s", self.name, type(exc).__name__)
        return transient

    def _run(self, body: Callable[[sa.Connection], T], *, write: bool,
             batch: bool = False) -> T:
        """Run ``body`` in one transaction, retrying it whole on transient errors
        (``batch``: see ``Dialect.transaction``)."""
        return self._run_reading(lambda conn, _: body(conn), (), write=write, batch=batch)

    def _run_reading(self, body: Callable[[sa.Connection, list[list[Any]]], T],
                     reads: Sequence[DriverRead], *, write: bool, batch: bool = False) -> T:
        """As ``_run``, with ``reads`` run first and their rows given to ``body``, one
        list per read (see ``Dialect.transaction``: on PostgreSQL they travel with the
        transaction's start)."""
        with map_errors(self.name, self._config.secrets):
            if self._closed:
                raise StoreError(f"the {self.name} store is closed")
            for attempt in self._retrying.copy():
                with (
                    attempt,
                    self._engine.connect() as conn,
                    self._dialect.transaction(conn, write=write, batch=batch,
                                              reads=reads) as rows,
                ):
                    return body(conn, rows)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _prepare(self) -> dict[str, Any]:
        """Build the hot-path statements once, with bound parameters.

        SQLAlchemy then reuses their compiled form; building them per call would cost more
        CPU than the round trips they save.
        """
        f, r, c, d = (self.tables.facts, self.tables.runs, self.tables.checkpoints,
                      self.tables.dispatches)
        p, any_of = sa.bindparam, self._dialect.any_of
        head = sa.select(sa.func.max(f.c.seq)).where(f.c.run_id == p("run_id"))
        status = sa.select(r.c.status).where(r.c.run_id == p("run_id"))
        live = sa.and_(
            d.c.dkey == p("b_key"), d.c.state == "claimed", d.c.token_hash == p("b_token_hash"),
            d.c.lease_expires_at > p("b_now"),
        )

        def level(floor: bool) -> sa.Select[Any]:
            stmt = sa.select(sa.func.min(d.c.priority)).where(d.c.lane == p("queue"))
            return stmt.where(d.c.priority > p("floor")) if floor else stmt

        def candidates(floor: bool) -> sa.Select[Any]:
            # Each row carries the next priority level of the queue (NULL: none), so a
            # claim that runs out of rows at this level knows without a probe.
            after = sa.select(sa.func.min(d.c.priority)).where(
                d.c.lane == p("queue"), d.c.priority > level(floor).scalar_subquery())
            stmt = (
                sa.select(d, after.scalar_subquery().label("next_level"))
                .where(d.c.lane == p("queue"),
                       d.c.priority == level(floor).scalar_subquery(),
                       d.c.eligible_at <= p("now"))
                .order_by(d.c.eligible_at, d.c.dkey)
                .limit(p("want", type_=sa.Integer))
            )
            return self._dialect.lock_claim(stmt)

        return {
            "head": head,
            "head_status": sa.select(head.scalar_subquery(), status.scalar_subquery()),
            "read": sa.select(f.c.seq, f.c.type, f.c.at, f.c.body)
            .where(f.c.run_id == p("run_id"), f.c.seq > p("after")).order_by(f.c.seq),
            "read_checkpoint": sa.select(c.c.seq, c.c.data).where(c.c.run_id == p("run_id")),
            "upsert_checkpoint": self._dialect.upsert(
                c, {"run_id": p("v_run_id"), "seq": p("v_seq"), "data": p("v_data")},
                ["run_id"], guard="seq",
            ),
            "settle": sa.update(d).where(live).values(
                state=p("v_state"), reason=p("v_reason"), lane=None, eligible_at=None,
                lease_expires_at=None, history=d.c.history + p("v_event", type_=sa.Text),
            ),
            "extend": sa.update(d).where(live).values(
                lease_expires_at=p("v_expires"), eligible_at=p("v_expires")
            ),
            "take_one": sa.update(d).where(d.c.id == p("b_id")).values(
                state="claimed", deliveries=d.c.deliveries + 1, fence=d.c.fence + 1,
                owner_id=p("v_owner"), token_hash=p("v_hash"),
                lease_expires_at=p("v_expires"), eligible_at=p("v_expires"),
                history=d.c.history + p("v_event", type_=sa.Text),
            ),
            "existing_keys": sa.select(d).where(any_of(d.c.dkey, "keys")),
            # The group commit's reads: the settled leases' rows (locked, in key order),
            # the journal heads and the run statuses.
            "lock_settled": self._dialect.lock_update(
                sa.select(d.c.dkey, d.c.state, d.c.token_hash, d.c.lease_expires_at)
                .where(any_of(d.c.dkey, "keys")).order_by(d.c.dkey)),
            # One index probe per run for its head (a correlated MAX over the journal's
            # primary key), not a grouped scan.
            "heads_statuses": sa.select(
                r.c.run_id, r.c.status,
                sa.select(sa.func.max(f.c.seq)).where(f.c.run_id == r.c.run_id)
                .scalar_subquery(),
            ).where(any_of(r.c.run_id, "run_ids")),
            "heads": sa.select(f.c.run_id, sa.func.max(f.c.seq))
            .where(any_of(f.c.run_id, "run_ids")).group_by(f.c.run_id),
            "level": {False: level(False), True: level(True)},
            "candidates": {False: candidates(False), True: candidates(True)},
        }

    def _for(self, kind: str, n: int) -> _DriverStatement:
        """The ``kind`` statement over ``n`` rows, with bound parameters, built once
        (``n=0``: the form for any number of rows, PostgreSQL's ``unnest`` writes and
        reads, SQLite's ``json_each`` reads). The parameters of row ``i`` are suffixed ``_{i}``:

        ``facts_after``: the facts of run ``run_id`` after sequence ``seq``.
        ``checkpointed_facts``: the checkpoint of run ``run_id`` and its facts after it.
        ``take``: claim the row ``id`` with token hash ``token_hash`` and history event
        ``event`` (shared: ``v_owner``, ``v_expires``).
        ``facts``, ``dispatches``, ``runs``, ``checkpoints``: insert (upsert, for runs
        and checkpoints) a row.
        ``settle``: settle the live lease ``b_key`` (``b_token_hash``, history event
        ``v_event``) as ``v_state`` (shared: ``v_state``, ``v_reason``, ``b_now``).
        ``fail_others``: fail the pending and claimed dispatches of the run ``run_id``,
        which ended at ``v_at`` (shared).
        ``notify``: wake the idle workers of ``queue`` (``channel``; PostgreSQL, ``n=1``).
        """
        sized = self._sized.get((kind, n))
        if sized is None:
            arrays = _UNNEST_ARRAYS[kind] if n == 0 and self.name == "postgresql" else ()
            sized = self._sized[(kind, n)] = _DriverStatement(
                self._build(kind, n), self._engine.dialect, binary=arrays)
        return sized

    def _build(self, kind: str, n: int) -> sa.ClauseElement:
        f, d, p = self.tables.facts, self.tables.dispatches, sa.bindparam
        if n == 0:
            return self._unnest(kind) if self.name == "postgresql" else self._json_each(kind)
        if kind in _ROW_KEYS:
            return self._insert_rows(kind, n)
        if kind == "settle":
            keys = [p(f"b_key_{i}", type_=d.c.dkey.type) for i in range(n)]
            return sa.update(d).where(
                d.c.dkey.in_(keys), d.c.state == "claimed",
                d.c.token_hash == sa.case(*(
                    (d.c.dkey == keys[i], p(f"b_token_hash_{i}", type_=sa.String))
                    for i in range(n))),
                d.c.lease_expires_at > p("b_now"),
            ).values(
                state=p("v_state"), reason=p("v_reason"), lane=None, eligible_at=None,
                lease_expires_at=None, history=d.c.history + sa.case(*(
                    (d.c.dkey == keys[i], p(f"v_event_{i}", type_=sa.Text))
                    for i in range(n))),
            )
        if kind == "fail_others":
            return self._fail_others(
                d.c.run_id.in_([p(f"run_id_{i}", type_=d.c.run_id.type) for i in range(n)]))
        if kind == "fail_others_but":
            return self._fail_others(sa.and_(d.c.run_id == p("run_id_0", type_=d.c.run_id.type),
                                             d.c.dkey != p("b_key", type_=d.c.dkey.type)))
        if kind in ("gate", "gate_open"):
            return self._gate(open_run=kind == "gate_open")
        if kind == "notify":
            return sa.text("SELECT pg_notify(:channel, :queue)")
        if kind == "checkpointed_facts":
            # The checkpoints of runs ``run_id`` and their facts after them (all of them
            # where a run has none), in one statement: a run's checkpoint row has a null
            # ``seq``. The bound is an uncorrelated subquery per run, evaluated once, so
            # the facts' primary key serves the range as it does for ``facts_after``.
            c = self.tables.checkpoints
            ids = [p(f"run_id_{i}", type_=f.c.run_id.type) for i in range(n)]
            facts = sa.select(
                f.c.run_id, f.c.seq, f.c.type, f.c.at, f.c.body,
                sa.cast(sa.null(), c.c.seq.type).label("cp_seq"),
                sa.cast(sa.null(), c.c.data.type).label("cp_data"),
            ).where(sa.or_(*(sa.and_(f.c.run_id == ids[i], f.c.seq > sa.func.coalesce(
                sa.select(c.c.seq).where(c.c.run_id == ids[i]).scalar_subquery(), 0))
                for i in range(n))))
            checkpoints = sa.select(
                c.c.run_id, sa.cast(sa.null(), f.c.seq.type), sa.cast(sa.null(), f.c.type.type),
                sa.cast(sa.null(), f.c.at.type), sa.cast(sa.null(), f.c.body.type),
                c.c.seq, c.c.data,
            ).where(c.c.run_id.in_(ids))
            return sa.union_all(facts, checkpoints)
        if kind == "facts_after":
            return (
                sa.select(f.c.run_id, f.c.seq, f.c.type, f.c.at, f.c.body)
                .where(sa.or_(*(sa.and_(f.c.run_id == p(f"run_id_{i}"),
                                        f.c.seq > p(f"seq_{i}"))
                                for i in range(n))))
                .order_by(f.c.run_id, f.c.seq)
            )
        ids = [p(f"id_{i}", type_=d.c.id.type) for i in range(n)]  # take
        return sa.update(d).where(d.c.id.in_(ids)).values(
            state="claimed", deliveries=d.c.deliveries + 1, fence=d.c.fence + 1,
            owner_id=p("v_owner"),
            token_hash=sa.case(*((d.c.id == ids[i], p(f"token_hash_{i}", type_=sa.String))
                                 for i in range(n))),
            lease_expires_at=p("v_expires"), eligible_at=p("v_expires"),
            history=d.c.history + sa.case(
                *((d.c.id == ids[i], p(f"event_{i}", type_=sa.Text)) for i in range(n))),
        )

    def _gate(self, *, open_run: bool) -> sa.Update:
        """Settle the live lease ``b_key`` (``b_token_hash``, history event ``v_event``)
        as completed if run ``b_run_id``'s journal ends at ``b_expected`` (and, with
        ``open_run``, the run has not ended), returning the row: the gate of
        ``SQLStore._commit_settled``."""
        d, f, r, p = self.tables.dispatches, self.tables.facts, self.tables.runs, sa.bindparam
        run_id = p("b_run_id", type_=f.c.run_id.type)
        checks = [
            d.c.dkey == p("b_key", type_=d.c.dkey.type), d.c.state == "claimed",
            d.c.token_hash == p("b_token_hash", type_=sa.String),
            d.c.lease_expires_at > p("b_now"),
            sa.select(sa.func.coalesce(sa.func.max(f.c.seq), 0)).where(f.c.run_id == run_id)
            .scalar_subquery() == p("b_expected", type_=f.c.seq.type),
        ]
        if open_run:
            checks.append(~sa.exists().where(r.c.run_id == run_id, sa.or_(
                *(r.c.status == status for status in sorted(TERMINAL_STATUSES)))))
        return sa.update(d).where(*checks).values(
            state="completed", reason=None, lane=None, eligible_at=None,
            lease_expires_at=None, history=d.c.history + p("v_event", type_=sa.Text),
        ).returning(d.c.id)

    def _fail_others(self, ended: sa.ColumnElement[bool]) -> sa.Update:
        """Fail the pending and claimed dispatches of the runs that ``ended`` selects,
        which ended at ``v_at`` (shared)."""
        d = self.tables.dispatches
        failed_event = (
            sa.literal('{"event":"failed","fence":') + sa.cast(d.c.fence, sa.String)
            + sa.literal(',"at":') + sa.bindparam("v_at", type_=sa.Text)
            + sa.literal(',"reason":"run_terminal"}\n')
        )
        return sa.update(d).where(
            ended, sa.or_(d.c.state == "pending", d.c.state == "claimed"),
        ).values(state="failed", reason="run_terminal", lane=None, eligible_at=None,
                 lease_expires_at=None, history=d.c.history + failed_event)

    def _table_of(self, kind: str) -> sa.Table:
        """The table a multi-row write of ``kind`` goes to."""
        table: sa.Table = getattr(
            self.tables,
            "dispatches" if kind in ("settle", "fail_others", "fail_others_but", "take",
                                     "gate", "gate_open") else kind)
        return table

    def _insert_rows(self, kind: str, n: int) -> sa.ClauseElement:
        table = self._table_of(kind)
        keys = _ROW_KEYS[kind]
        # Each parameter typed as its column, for the dialect's bind processors.
        rows = [{column: sa.bindparam(f"{key}_{i}", type_=table.c[column].type)
                 for key, column in keys.items()} for i in range(n)]
        if kind == "runs":
            return self._dialect.upsert(table, rows, ["run_id"])
        if kind == "checkpoints":
            return self._dialect.upsert(table, rows, ["run_id"], guard="seq")
        return sa.insert(table).values(rows)

    def _writes(self, kind: str, rows: Sequence[Mapping[str, Any]], *,
                on_unique: Callable[[], Exception] | None = None,
                **shared: Any) -> list[_Write]:
        """The writes of ``rows``: one statement, not one per row; ``shared`` holds the
        parameters every row has in common.

        PostgreSQL, past a few rows: one statement over ``unnest`` of one array per
        column, whatever the number of rows (``_unnest``). The kinds of the dialect's
        ``many_rows`` (SQLite; inserts on MariaDB): the one-row statement in one
        ``executemany``. Otherwise: one multi-row statement per 64 rows
        (``_for(kind, n)``).
        """
        if not rows:
            return []
        table = self._table_of(kind).name
        if self.name == "postgresql" and len(rows) > _UNNEST_FROM and kind in _UNNEST_ARRAYS:
            params = dict(shared)
            for key in rows[0]:
                params[key] = [row[key] for row in rows]
            return [_Write(self._for(kind, 0), params, table, on_unique)]
        if len(rows) > 1 and kind in self._dialect.many_rows:
            return [_Write(self._for(kind, 1), shared, table, on_unique, rows, many=True)]
        return [_Write(statement, shared, table, on_unique, chunk)
                for statement, chunk in self._chunks(kind, rows)]

    def _send(self, conn: sa.Connection, writes: Sequence[_Write], *,
              joined: bool = False, gate: _Write | None = None) -> None:
        """Execute ``writes`` in order. PostgreSQL sends them in one round trip (a psycopg
        pipeline: the statements queued, their results read once, at the end; libpq 14 or
        newer); the other databases one by one. A unique violation of a write with
        ``on_unique`` raises what that returns (the transaction is aborted either way).

        ``joined``: on PostgreSQL, inserts into distinct tables (and at most one
        ``NOTIFY``) go as one statement (``_one_statement``), which the server executes
        in a fraction of the time of four. ``gate`` (PostgreSQL): ``writes`` and the
        gate go as one statement that writes nothing and raises ``_Refused`` unless the
        gate updated exactly one row (see ``_one_statement``).
        """
        one = self._one_statement(writes, gate=gate) if joined or gate else None
        if gate is not None and one is None:
            raise AssertionError("a gated write needs PostgreSQL's one-statement form")
        if one is not None or (self._dialect.pipelines and len(writes) > 1):
            raw = conn.connection.driver_connection
            assert raw is not None
            try:
                if one is not None:
                    # First in its transaction (a start, a worker's commit), one
                    # statement commits alone: one round trip instead of BEGIN, the
                    # statement and COMMIT.
                    sql, params = one
                    with (self._dialect.autocommit(conn),
                          _raw_cursor(raw) if isinstance(params, list) else raw.cursor()
                          as cursor):
                        cursor.execute(sql, params)
                    return
                with raw.pipeline(), raw.cursor() as cursor:
                    for write in writes:
                        send = cursor.executemany if write.many else cursor.execute
                        send(write.statement.sql, write.parameters())
            except Exception as exc:
                if gate is not None and _GATE_REFUSED in str(exc):
                    raise _Refused() from exc
                if self._dialect.is_unique_violation(exc):
                    table = getattr(getattr(exc, "diag", None), "table_name", None)
                    for write in writes:
                        if write.on_unique is not None and write.table == table:
                            raise write.on_unique() from exc
                raise
            return
        for write in writes:
            try:
                conn.exec_driver_sql(write.statement.sql, write.parameters())
            except sa.exc.IntegrityError as exc:
                if write.on_unique is not None and self._dialect.is_unique_violation(exc):
                    raise write.on_unique() from exc
                raise

    def _one_statement(self, writes: Sequence[_Write], *, gate: _Write | None = None
                       ) -> tuple[str, dict[str, Any] | list[Any]] | None:
        """PostgreSQL: ``writes`` as one statement and its parameters, if they are inserts
        into distinct tables and at most one ``NOTIFY`` (``None`` otherwise): each insert
        a data-modifying ``WITH`` query, the ``NOTIFY`` (or ``SELECT 1``) the statement
        itself, each write's parameters prefixed ``w{i}_``. Every part sees the same
        snapshot, so no part may depend on another's rows: distinct tables, inserts only
        (an insert's ``ON CONFLICT`` sees only the rows already committed or its own).

        With ``gate``, an ``UPDATE ... RETURNING``, the gate is one more part and the
        statement itself fails, writing nothing, unless the gate returned exactly one row
        (a cast of ``_GATE_REFUSED``). The caller vouches that no part depends on
        another's rows or touches another's (the rule above is not checked).

        Unless a part sends a parameter in binary, the statement comes numbered
        (``_numbered``) with its parameters as a list, for psycopg's ``RawCursor``."""
        if self.name != "postgresql" or len(writes) + (gate is not None) < 2:
            return None
        if gate is None:
            tables = [write.table for write in writes]
            if (any(write.many for write in writes) or len(set(tables)) != len(tables)
                    or not all(write.table == "" or write.statement.sql.startswith("INSERT ")
                               for write in writes)):
                return None
        parts_of = [*writes, gate] if gate is not None else writes
        key = tuple(write.statement.sql for write in parts_of)
        joined = self._joined.get(key)
        if joined is None:
            parts, main = [], "SELECT 1"
            for i, write in enumerate(parts_of):
                part = re.sub(r"%\((\w+)\)([sb])", rf"%(w{i}_\1)\2", write.statement.sql)
                if write.table:
                    parts.append(f"w{i} AS ({part})")
                else:
                    main = part
            if gate is not None:
                assert all(write.table for write in writes), "a gated statement notifies no one"
                main = (f"SELECT CAST(CASE WHEN count(*) = 1 THEN '1' "
                        f"ELSE '{_GATE_REFUSED}' END AS integer) FROM w{len(writes)}")
            # Each part's parameter names, prefixed, in the order its values come.
            names = [tuple(f"w{i}_{name}" for name in write.statement.names)
                     for i, write in enumerate(parts_of)]
            sql = f"WITH {', '.join(parts)} {main}"
            joined = self._joined[key] = (sql, names, _numbered(sql))
        sql, names, numbered = joined
        params: dict[str, Any] = {}
        for prefixed, write in zip(names, parts_of, strict=True):
            values = write.parameters()
            assert isinstance(values, dict)
            params.update(zip(prefixed, values.values(), strict=True))
        if numbered is not None:
            text, order = numbered
            return text, [params[name] for name in order]
        return sql, params

    def _chunks(self, kind: str, rows: Sequence[Mapping[str, Any]]
                ) -> Iterator[tuple[_DriverStatement, Sequence[Mapping[str, Any]]]]:
        """The ``kind`` statement over ``rows``, 64 rows a statement, with its rows (their
        parameters unsuffixed: ``_DriverStatement.values`` reads row ``i``'s ``key`` for
        the bind ``{key}_{i}``)."""
        for start in range(0, len(rows), _SIZED_MAX):
            chunk = rows[start:start + _SIZED_MAX]
            yield self._for(kind, len(chunk)), chunk

    def _unnest(self, kind: str) -> sa.TextClause | sa.Update:
        """PostgreSQL's multi-row write or read of ``kind``: one array parameter per
        column (the ``_UNNEST_ARRAYS``, sent in binary). The arrays' text elements are
        compared ``COLLATE "C"``, the collation of the keys' indexes."""
        if kind in _READS:
            return self._unnest_read(kind)
        preparer = self._engine.dialect.identifier_preparer
        table = self._table_of(kind)
        name = preparer.format_table(table)

        def array(key: str, column: str) -> str:
            return self._array(key, table.c[column])

        if kind == "fail_others":
            return self._fail_others(self._dialect.any_of(table.c.run_id, "run_id"))
        if kind == "take":
            return sa.text(
                f"UPDATE {name} SET state = 'claimed', deliveries = {name}.deliveries + 1, "
                f"fence = {name}.fence + 1, owner_id = :v_owner, token_hash = u.token_hash, "
                "lease_expires_at = :v_expires, eligible_at = :v_expires, "
                f"history = {name}.history || u.event "
                f"FROM unnest({array('id', 'id')}, {array('token_hash', 'token_hash')}, "
                f"{array('event', 'history')}) AS u(id, token_hash, event) "
                f"WHERE {name}.id = u.id")

        if kind == "settle":
            return sa.text(
                f"UPDATE {name} SET state = :v_state, reason = :v_reason, lane = NULL, "
                "eligible_at = NULL, lease_expires_at = NULL, "
                f"history = {name}.history || u.event "
                f"FROM unnest({array('b_key', 'dkey')}, {array('b_token_hash', 'token_hash')}, "
                f"{array('v_event', 'history')}) AS u(dkey, token_hash, event) "
                f'WHERE {name}.dkey = u.dkey COLLATE "C" AND {name}.state = \'claimed\' '
                f'AND {name}.token_hash = u.token_hash COLLATE "C" '
                f"AND {name}.lease_expires_at > :b_now"
            )
        keys = _ROW_KEYS[kind]
        columns = ", ".join(preparer.quote(c) for c in keys.values())
        arrays = ", ".join(array(key, column) for key, column in keys.items())
        sql = f"INSERT INTO {name} ({columns}) SELECT * FROM unnest({arrays})"
        if kind in ("runs", "checkpoints"):
            sets = ", ".join(f"{preparer.quote(c)} = EXCLUDED.{preparer.quote(c)}"
                             for c in keys.values() if c != "run_id")
            sql += f" ON CONFLICT (run_id) DO UPDATE SET {sets}"
            if kind == "checkpoints":
                sql += f" WHERE {name}.seq <= EXCLUDED.seq"
        return sa.text(sql)

    def _type_of(self, column: sa.Column[Any]) -> str:
        """``column``'s SQL type on the store's dialect, without its collation."""
        return str(column.type.compile(dialect=self._engine.dialect)).split(" COLLATE ")[0]

    def _array(self, key: str, column: sa.Column[Any]) -> str:
        """The array parameter ``key`` of ``column``'s type (PostgreSQL's ``unnest``)."""
        return f"CAST(:{key} AS {self._type_of(column)}[])"

    def _unnest_read(self, kind: str, run_ids: str | None = None) -> sa.TextClause:
        """PostgreSQL's read of many runs (``_unnest``): ``facts_after`` takes the arrays
        ``run_id`` and ``seq``, ``checkpointed_facts`` ``run_id`` (or the runs of the SQL
        array expression ``run_ids``).

        Each run's facts are a ``LATERAL`` subquery on the journal's primary key, kept
        from being flattened into a join by ``OFFSET 0``: joined to ``unnest``, a table
        PostgreSQL has no statistics for yet is hashed whole. The checkpoints are looked
        up by ``= ANY``, an index scan of the keys given.
        """
        c, f = self.tables.checkpoints, self.tables.facts
        preparer = self._engine.dialect.identifier_preparer
        facts, checkpoints = preparer.format_table(f), preparer.format_table(c)
        run_ids, columns = run_ids or self._array("run_id", f.c.run_id), _FACT_COLUMNS

        def per_run(bound: str) -> str:
            return (f"CROSS JOIN LATERAL (SELECT {columns} FROM {facts} AS f "
                    f'WHERE f.run_id = u.run_id COLLATE "C" AND f.seq > {bound} OFFSET 0) AS f')

        if kind == "facts_after":
            return sa.text(
                f"SELECT {columns} FROM unnest({run_ids}, {self._array('seq', f.c.seq)}) "
                f"AS u(run_id, seq) {per_run('u.seq')}")
        fact_types = [f"CAST(NULL AS {self._type_of(f.c[column])})"
                      for column in ("seq", "type", "at", "body")]
        checkpoint_seq = (f"coalesce((SELECT c.seq FROM {checkpoints} AS c "
                          f'WHERE c.run_id = u.run_id COLLATE "C"), 0)')
        return sa.text(
            f"SELECT {columns}, CAST(NULL AS {self._type_of(c.c.seq)}) AS cp_seq, "
            f"CAST(NULL AS {self._type_of(c.c.data)}) AS cp_data "
            f"FROM unnest({run_ids}) AS u(run_id) {per_run(checkpoint_seq)} "
            f"UNION ALL SELECT c.run_id, {', '.join(fact_types)}, c.seq, c.data "
            f'FROM {checkpoints} AS c WHERE c.run_id COLLATE "C" = ANY({run_ids})')

    def _json_each(self, kind: str) -> sa.TextClause:
        """SQLite's read of many runs, whatever their number: their rows as one JSON
        array (``runs``) walked by ``json_each``, each element joined to the journal's
        primary key (``CROSS JOIN`` keeps ``json_each`` the outer loop). ``facts_after``:
        ``[[run_id, seq], ...]``; ``checkpointed_facts``: ``[run_id, ...]``."""
        preparer = self._engine.dialect.identifier_preparer
        facts = preparer.format_table(self.tables.facts)
        checkpoints = preparer.format_table(self.tables.checkpoints)
        columns = _FACT_COLUMNS
        if kind == "facts_after":
            return sa.text(
                f"SELECT {columns} FROM json_each(:runs) AS j CROSS JOIN {facts} AS f "
                "WHERE f.run_id = json_extract(j.value, '$[0]') "
                "AND f.seq > json_extract(j.value, '$[1]')")
        if kind == "checkpointed_facts":
            return sa.text(
                f"SELECT {columns}, NULL AS cp_seq, NULL AS cp_data "
                f"FROM json_each(:runs) AS j CROSS JOIN {facts} AS f "
                "WHERE f.run_id = j.value AND f.seq > coalesce("
                f"(SELECT c.seq FROM {checkpoints} AS c WHERE c.run_id = j.value), 0) "
                "UNION ALL SELECT c.run_id, NULL, NULL, NULL, NULL, c.seq, c.data "
                f"FROM json_each(:runs) AS j CROSS JOIN {checkpoints} AS c "
                "WHERE c.run_id = j.value")
        raise AssertionError(f"no json_each form of {kind!r}")

    def _reads(self, kind: str, rows: Sequence[Mapping[str, Any]]
               ) -> Iterator[tuple[_DriverStatement, Mapping[str, Any],
                                   Sequence[Mapping[str, Any]]]]:
        """The statements reading the runs of ``rows`` (``read_runs``), with their shared
        parameters and rows, past one run, one statement for all of them: on PostgreSQL
        over ``unnest`` of their keys (``_unnest``), on SQLite over ``json_each``
        (``_json_each``); otherwise the sized ``kind`` statements (``_chunks``)."""
        if self.name == "postgresql" and len(rows) > 1:
            params = {key: [row[key] for row in rows] for key in _UNNEST_ARRAYS[kind]}
            yield self._for(kind, 0), params, ()
            return
        if self.name == "sqlite" and len(rows) > 1:
            elements = ([row["run_id"] for row in rows] if kind == "checkpointed_facts"
                        else [[row["run_id"], row["seq"]] for row in rows])
            yield self._for(kind, 0), {"runs": _json.dumps(elements)}, ()
            return
        for statement, chunk in self._chunks(kind, rows):
            yield statement, {}, chunk

    # ------------------------------------------------------------------ journal

    def _head(self, conn: sa.Connection, run_id: str) -> int:
        return int(conn.execute(self._sql["head"], {"run_id": run_id}).scalar() or 0)

    def _read(
        self, conn: sa.Connection, run_id: str, after: int, upto: int | None = None
    ) -> list[Fact]:
        f = self.tables.facts
        stmt = self._sql["read"]
        if upto is not None:
            stmt = stmt.where(f.c.seq <= upto)
        return [self._fact(run_id, row)
                for row in conn.execute(stmt, {"run_id": run_id, "after": after})]

    @staticmethod
    def _fact(run_id: str, row: Any) -> Fact:
        try:
            body = _json.loads(row.body)
        except ValueError as exc:
            raise CorruptDataError(f"run {run_id} fact {row.seq}", str(exc)) from exc
        if not isinstance(body, dict):
            raise CorruptDataError(f"run {run_id} fact {row.seq}", "body is not an object")
        return Fact(seq=int(row.seq), type=row.type, at=float(row.at), body=body)

    def _fact_rows(self, run_id: str, facts: Sequence[Fact]) -> list[dict[str, Any]]:
        rows = []
        for fact in facts:
            try:
                body = _json.dumps(dict(fact.body))
            except (TypeError, ValueError) as exc:
                raise InvalidArgument("facts", f"fact {fact.seq} is not JSON: {exc}") from exc
            limit = self.capabilities.max_value_bytes
            if limit is not None and len(body) > limit // 4 and len(body.encode()) > limit:
                raise ValueTooLarge(f"fact {fact.seq} of run {run_id}", len(body.encode()),
                                    limit)
            rows.append({"run_id": run_id, "seq": fact.seq,
                         "type": _text("fact type", fact.type, 64),
                         "at": float(fact.at), "body": body})
        return rows

    def _fact_writes(self, run_id: str, expected: int,
                     rows: list[dict[str, Any]]) -> list[_Write]:
        # A unique violation: a concurrent writer took the same sequence. The head is
        # re-read afterwards (the transaction is aborted).
        return self._writes("facts", rows,
                            on_unique=lambda: AppendConflict(run_id, expected, None))

    def _is_replay(self, conn: sa.Connection, run_id: str, head: int, expected: int,
                   facts: Sequence[Fact]) -> bool:
        if not facts or head < expected + len(facts):
            return False
        # Times come back as floats: compare the request the same way (0 and 0.0).
        requested = [replace(f, at=float(f.at)) for f in facts]
        return same_facts(self._read(conn, run_id, expected, expected + len(facts)), requested)

    def _conflict_with_head(self, exc: AppendConflict) -> AppendConflict:
        if exc.actual_seq is not None:
            return exc
        return AppendConflict(exc.run_id, exc.expected_seq, self.head(exc.run_id))

    def append(self, run_id: str, facts: Sequence[Fact], expected_seq: int) -> int:
        self._forget_claimed()
        check_contiguous(facts, expected_seq)
        _text("run_id", run_id)
        rows = self._fact_rows(run_id, facts)

        def body(conn: sa.Connection) -> int:
            head = self._head(conn, run_id)
            if self._is_replay(conn, run_id, head, expected_seq, facts):
                return expected_seq + len(facts)
            if head != expected_seq:
                raise AppendConflict(run_id, expected_seq, head)
            self._send(conn, self._fact_writes(run_id, expected_seq, rows))
            return expected_seq + len(facts)

        try:
            return self._run(body, write=True)
        except AppendConflict as exc:
            raise self._conflict_with_head(exc) from None

    def read(self, run_id: str, after_seq: int = 0) -> list[Fact]:
        return self._run(lambda conn: self._read(conn, run_id, max(after_seq, 0)), write=False)

    def read_runs(
        self, after: Mapping[str, int | None]
    ) -> dict[str, tuple[Checkpoint | None, list[Fact]]]:
        """``BatchReader.read_runs`` in one transaction: the runs read from their
        checkpoint in one statement with their checkpoints (``checkpointed_facts``), the
        runs read after a known sequence in another (``facts_after``), whatever the
        number of runs, except on MariaDB/MySQL: one more of either per 64 runs past the
        first 64 (``_reads``). A lone run's load is one statement."""
        if not after:
            return {}
        for run_id in after:
            _text("run_id", run_id)

        fresh = [{"run_id": run_id} for run_id in sorted(after) if after[run_id] is None]
        known = [{"run_id": run_id, "seq": seq}
                 for run_id, seq in sorted(after.items()) if seq is not None]
        # The rows of ``checkpointed_facts`` carry ``cp_seq`` (a checkpoint's row: no
        # ``seq``); those of ``facts_after`` are facts only.
        reads = [(statement.sql, statement.values(params, chunk))
                 for kind, runs in (("checkpointed_facts", fresh), ("facts_after", known))
                 for statement, params, chunk in self._reads(kind, runs)]

        def body(conn: sa.Connection, results: list[list[Any]]
                 ) -> dict[str, tuple[Checkpoint | None, list[Fact]]]:
            runs = self._rows_by_run(after, [row for rows in results for row in rows])
            return {run_id: (checkpoint, [self._fact(run_id, row) for row in rows])
                    for run_id, (checkpoint, rows) in runs.items()}

        return self._run_reading(body, reads, write=False, batch=len(after) > 1)

    def read_claimed(
        self, leases: Sequence[Lease], after: Mapping[str, int | None]
    ) -> dict[str, tuple[Checkpoint | None, list[Fact]]]:
        """``ClaimReader.read_claimed``: on PostgreSQL, the runs of the leases this
        thread's last claim took are answered from what the claim read with them
        (``_claimed_read``), the others by ``read_runs``."""
        for run_id in after:
            _text("run_id", run_id)
        if self._dialect.pipelines:
            self._learn_fresh(leases, after)
        found = self._prefetched(leases, after)
        rest = {run_id: seq for run_id, seq in after.items() if run_id not in found}
        return {**found, **self.read_runs(rest)} if rest else found

    def head(self, run_id: str) -> int:
        return self._run(lambda conn: self._head(conn, run_id), write=False)

    def read_checkpoint(self, run_id: str) -> Checkpoint | None:
        def body(conn: sa.Connection) -> Checkpoint | None:
            row = conn.execute(self._sql["read_checkpoint"], {"run_id": run_id}).first()
            return None if row is None else Checkpoint(seq=int(row.seq), data=row.data)

        return self._run(body, write=False)

    @staticmethod
    def _checkpoint_params(run_id: str, checkpoint: Checkpoint) -> dict[str, Any]:
        return {"v_run_id": run_id, "v_seq": int(checkpoint.seq), "v_data": str(checkpoint.data)}

    def write_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> None:
        _text("run_id", run_id)
        params = self._checkpoint_params(run_id, checkpoint)
        self._run(lambda conn: conn.execute(self._sql["upsert_checkpoint"], params),
                  write=True)

    def delete_checkpoints(self, run_id: str | None = None) -> int:
        c = self.tables.checkpoints
        stmt = sa.delete(c)
        if run_id is not None:
            stmt = stmt.where(c.c.run_id == run_id)
        return self._run(lambda conn: int(conn.execute(stmt).rowcount), write=True)

    @staticmethod
    def _run_entry(row: Any) -> RunEntry:
        return RunEntry(
            run_id=row.run_id, workflow=row.workflow, trigger=row.trigger, status=row.status,
            queue=row.queue, created_at=float(row.created_at), updated_at=float(row.updated_at),
            last_seq=int(row.last_seq), parent_run_id=row.parent_run_id,
        )

    def get_run(self, run_id: str) -> RunEntry | None:
        r = self.tables.runs

        def body(conn: sa.Connection) -> RunEntry | None:
            row = conn.execute(sa.select(r).where(r.c.run_id == run_id)).first()
            return None if row is None else self._run_entry(row)

        return self._run(body, write=False)

    def run_counts(self) -> dict[tuple[str, str], int]:
        """Runs per ``(workflow, status)``, from the run index (optional store method)."""
        r = self.tables.runs

        def body(conn: sa.Connection) -> dict[tuple[str, str], int]:
            stmt = sa.select(r.c.workflow, r.c.status, sa.func.count()).group_by(
                r.c.workflow, r.c.status)
            return {(str(w), str(s)): int(n) for w, s, n in conn.execute(stmt)}

        return self._run(body, write=False)

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        if limit < 1:
            raise InvalidArgument("limit", "must be at least 1")
        r = self.tables.runs
        stmt = sa.select(r)
        if workflow is not None:
            stmt = stmt.where(r.c.workflow == workflow)
        if status is not None:
            stmt = stmt.where(r.c.status == status)
        if cursor is not None:
            created, rid = decode_cursor(cursor, 2)
            try:
                created_at, after_id = float(created), str(rid)
            except (TypeError, ValueError):
                raise InvalidArgument("cursor", "not a cursor returned by a listing") from None
            # Expanded row comparison (created_at, run_id) < (c, r); the leading range
            # condition lets every dialect use the index.
            stmt = stmt.where(
                r.c.created_at <= created_at,
                sa.or_(r.c.created_at < created_at, r.c.run_id < after_id),
            )
        stmt = stmt.order_by(r.c.created_at.desc(), r.c.run_id.desc()).limit(limit + 1)

        def body(conn: sa.Connection) -> Page:
            rows = [self._run_entry(row) for row in conn.execute(stmt)]
            page = rows[:limit]
            nxt = None
            if len(rows) > limit:
                nxt = encode_cursor(page[-1].created_at, page[-1].run_id)
            return Page(items=list(page), next_cursor=nxt)

        return self._run(body, write=False)

    # ------------------------------------------------------------------ delivery helpers

    @staticmethod
    def _dispatch(row: Any) -> Dispatch:
        return Dispatch(
            key=row.dkey, run_id=row.run_id, workflow=row.workflow, step=row.step,
            attempt=int(row.attempt), queue=row.queue, priority=int(row.priority),
            delay=float(row.delay), max_deliveries=int(row.max_deliveries),
        )

    @staticmethod
    def _history(text: str, key: str) -> tuple[Mapping[str, Any], ...]:
        events = []
        for line in text.splitlines()[-_HISTORY_LIMIT:]:
            try:
                events.append(_json.loads(line))
            except ValueError as exc:
                raise CorruptDataError(f"dispatch {key} history", str(exc)) from exc
        return tuple(events)

    def _record(self, row: Any, now: float) -> DispatchRecord:
        state = row.state
        if state == "pending":
            state = "available" if row.visible_at <= now else "scheduled"
        return DispatchRecord(
            dispatch=self._dispatch(row),
            state=state,
            visible_at=float(row.visible_at),
            deliveries=int(row.deliveries),
            fence=int(row.fence),
            owner_id=row.owner_id,
            lease_expires_at=(
                float(row.lease_expires_at) if row.state == "claimed" else None
            ),
            reason=row.reason,
            history=self._history(row.history, row.dkey),
        )

    @staticmethod
    def _validate_dispatch(d: Dispatch) -> None:
        _text("dispatch key", d.key, KEY_LENGTH)
        for name in ("run_id", "workflow", "step", "queue"):
            _text(f"dispatch {name}", getattr(d, name))
        for name in ("attempt", "priority", "max_deliveries"):
            value = getattr(d, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidArgument(f"dispatch {name}", "must be an integer")

    def _check_enqueue(
        self,
        conn: sa.Connection,
        dispatches: Sequence[Dispatch],
        statuses: Mapping[str, str] | None,
    ) -> list[Dispatch]:
        """Return the dispatches to insert, raising for a different intent or a dead run.

        ``statuses`` are the runs' index statuses; ``None`` reads (and share-locks) them.
        """
        if not dispatches:
            return []
        keys = list(dict.fromkeys(x.key for x in dispatches))
        existing = {row.dkey: row for row in conn.execute(self._sql["existing_keys"],
                                                           {"keys": keys})}
        if statuses is None:
            run_ids = sorted({x.run_id for x in dispatches if x.key not in existing})
            r = self.tables.runs
            statuses = {}
            if run_ids:
                stmt = self._dialect.lock_shared(
                    sa.select(r.c.run_id, r.c.status).where(r.c.run_id.in_(run_ids))
                )
                statuses = {row.run_id: row.status for row in conn.execute(stmt)}
        fresh: list[Dispatch] = []
        seen: set[str] = set()
        for x in dispatches:
            row = existing.get(x.key)
            if row is not None:
                if self._dispatch(row).intent() != x.intent():
                    raise IdempotencyConflict(x.key, "dispatch enqueued with a different intent")
                continue
            if x.key in seen:
                continue
            status = statuses.get(x.run_id)
            if status in TERMINAL_STATUSES:
                raise RunTerminalError(x.run_id, "enqueue", status, "the run has ended")
            seen.add(x.key)
            fresh.append(x)
        return fresh

    def _announcements(self, queues: Iterable[str]) -> list[_Write]:
        """The writes that wake idle workers of ``queues`` when the transaction commits
        (PostgreSQL's ``NOTIFY``; SQLite's watcher sees every commit by itself)."""
        if not isinstance(self._wake, PgWakeUps):
            return []
        notify = self._for("notify", 1)
        return [_Write(notify, {"channel": self._wake.channel, "queue": queue}, "")
                for queue in sorted(set(queues))]

    def _dispatch_writes(self, fresh: Sequence[Dispatch], now: float, *,
                         announce: bool = False) -> list[_Write]:
        if not fresh:
            return []
        rows = []
        for x in fresh:
            visible_at = now + max(float(x.delay), 0.0)
            rows.append({
                "dkey": x.key, "run_id": x.run_id, "workflow": x.workflow, "step": x.step,
                "attempt": x.attempt, "queue": x.queue, "priority": x.priority,
                "max_deliveries": x.max_deliveries, "delay": float(x.delay),
                "state": "pending", "visible_at": visible_at, "lane": x.queue,
                "eligible_at": visible_at, "deliveries": 0, "fence": 0, "owner_id": None,
                "token_hash": None, "lease_expires_at": None, "reason": None,
                "dead_order": None, "history": "",
            })
        writes = self._writes("dispatches", rows, on_unique=_KeyRace)
        if announce:
            writes += self._announcements(x.queue for x in fresh if x.delay <= 0)
        return writes

    def _retry_key_races(self, operation: Callable[[], T]) -> T:
        for _ in range(5):
            try:
                return operation()
            except _KeyRace:
                continue
        raise StoreError(f"{self.name}: a dispatch key kept being inserted concurrently")

    @staticmethod
    def _live_params(lease: Lease, now: float) -> dict[str, Any]:
        return {"b_key": lease.key, "b_token_hash": hash_token(lease.token), "b_now": now}

    def _settle(self, conn: sa.Connection, lease: Lease, state: str, now: float,
                reason: str | None = None) -> bool:
        """Settle a live lease's dispatch (fenced); ``False`` if the lease is not live."""
        params = self._live_params(lease, now)
        params.update(v_state=state, v_reason=reason,
                      v_event=_event(event=state, fence=lease.fence, at=now, reason=reason))
        return bool(conn.execute(self._sql["settle"], params).rowcount == 1)

    def _live_clause(self, lease: Lease, now: float) -> sa.ColumnElement[bool]:
        d = self.tables.dispatches
        return sa.and_(
            d.c.dkey == lease.key,
            d.c.state == "claimed",
            d.c.token_hash == hash_token(lease.token),
            d.c.lease_expires_at > now,
        )

    def _lost(self, conn: sa.Connection, lease: Lease, now: float) -> LeaseLostError:
        """Explain why a fenced write matched no row (read in the same transaction)."""
        d = self.tables.dispatches
        row = conn.execute(
            sa.select(d.c.state, d.c.token_hash, d.c.lease_expires_at).where(
                d.c.dkey == lease.key
            )
        ).first()
        if row is None:
            return LeaseLostError(lease.key, "unknown dispatch")
        if row.state != "claimed" or row.token_hash != hash_token(lease.token):
            return LeaseLostError(lease.key, "another delivery holds it or it was settled")
        return LeaseLostError(lease.key, "the lease expired")

    def _next_dead_orders(self, conn: sa.Connection, count: int) -> list[int]:
        """Reserve ``count`` consecutive dead-letter positions (row-locks the counter)."""
        c = self.tables.counters
        conn.execute(
            sa.update(c).where(c.c.name == _DEAD_COUNTER).values(value=c.c.value + count)
        )
        last = int(conn.execute(sa.select(c.c.value).where(c.c.name == _DEAD_COUNTER)).scalar_one())
        return list(range(last - count + 1, last + 1))

    # ------------------------------------------------------------------ delivery

    def enqueue(self, dispatches: Sequence[Dispatch]) -> None:
        for x in dispatches:
            self._validate_dispatch(x)
        if not dispatches:
            return

        def body(conn: sa.Connection) -> None:
            fresh = self._check_enqueue(conn, dispatches, None)
            self._send(conn, self._dispatch_writes(fresh, self.clock.now(), announce=True))

        self._retry_key_races(lambda: self._run(body, write=True))

    def _candidates(self, conn: sa.Connection, queue: str, want: int, now: float) -> list[Any]:
        """Lock up to ``want`` claimable rows of one queue, in claim order.

        Priorities are visited one level at a time (``priority = MIN(priority) > floor``),
        so each statement is a bounded range scan of the claim index, whatever the number
        of dispatches scheduled for later or under unexpired leases.
        """
        found: list[Any] = []
        floor: int | None = None
        while len(found) < want:
            params = {"queue": queue, "floor": floor, "now": now, "want": want - len(found)}
            stmt = self._sql["candidates"][floor is not None]
            rows = conn.execute(stmt, params).all()
            if rows:
                found += rows
                floor = int(rows[0].priority)
                if len(found) < want and rows[0].next_level is None:
                    break  # that level ran out of visible rows, and it is the last
                continue
            # Nothing visible at that level: step past it, or stop if it was the last.
            nxt = conn.execute(self._sql["level"][floor is not None], params).scalar()
            if nxt is None:
                break
            floor = int(nxt)
        return found

    def claim(
        self, owner_id: str, *, lease_for: float, limit: int = 1, queues: Sequence[str] = ()
    ) -> list[Lease]:
        if limit < 1:
            raise InvalidArgument("limit", "must be at least 1")
        if lease_for <= 0:
            raise InvalidArgument("lease_for", "must be positive")
        _text("owner_id", owner_id)
        self._forget_claimed()
        names = list(dict.fromkeys(queues or ("default",)))
        if self._wake is not None:
            self._wake.before_claim(names)
        first: list[Lease] = []
        if self.name == "postgresql" and len(names) == 1 and limit <= _SIZED_MAX:
            # The common claim, one statement committed alone; what it cannot decide
            # (rows past their delivery limit, other priority levels) is left to the
            # claim below, in a transaction of its own. It sends a token hash per row
            # it may take, so larger claims go to the claim below directly.
            first, settled = self._run(
                lambda conn: self._claim_at_once(conn, names[0], owner_id, limit, lease_for),
                write=True)
            if settled:
                return first
            limit -= len(first)

        def body(conn: sa.Connection) -> list[Lease]:
            now = self.clock.now()
            expires = now + lease_for
            leases: list[Lease] = []
            while len(leases) < limit:
                want = limit - len(leases)
                rows = [r for q in names for r in self._candidates(conn, q, want, now)]
                if not rows:
                    break
                rows.sort(key=lambda r: (r.priority, r.eligible_at, r.dkey))
                rows = rows[:want]
                doomed = [r for r in rows if r.deliveries >= r.max_deliveries]
                taken = [r for r in rows if r.deliveries < r.max_deliveries]
                if taken:
                    leases += self._take(conn, taken, owner_id, now, expires)
                if not doomed:
                    break
                self._bury_rows(conn, doomed, "delivery_limit_exceeded", now)
            return leases

        if not first:
            return self._run(body, write=True)
        try:
            return first + self._run(body, write=True)
        except StoreError as exc:  # the leases taken are the caller's all the same
            log.warning("%s: claim stopped after %d lease(s): %s", self.name, len(first), exc)
            return first

    def _claim_at_once(self, conn: sa.Connection, queue: str, owner_id: str, limit: int,
                       lease_for: float) -> tuple[list[Lease], bool]:
        """PostgreSQL: claim up to ``limit`` visible dispatches of ``queue``'s first
        priority level in one statement (``_claim_statement``), in autocommit; the leases
        and whether the claim is settled. It is not if the statement locked rows past
        their delivery limit (left for the full claim to bury) or found fewer than
        ``limit`` with another priority level in the queue."""
        now = self.clock.now()
        expires = now + lease_for
        tokens = [new_token() for _ in range(limit)]
        claimed = _event(event="claimed", fence=0, owner=owner_id, at=now)
        assert claimed.startswith(_CLAIMED_EVENT + "0,")
        raw = conn.connection.driver_connection
        assert raw is not None
        params = {
            "queue": queue, "now": now, "want": limit, "owner": owner_id,
            "expires": expires, "hashes": [hash_token(t) for t in tokens],
            "tail": claimed[len(_CLAIMED_EVENT) + 1:],
        }
        journals: list[Any] | None = None
        with self._dialect.autocommit(conn), raw.cursor() as cursor:
            if self._dialect.pipelines and self._reads_with_claims():
                # The claimed runs' journals travel with the claim (``_claimed_read``).
                with raw.pipeline():
                    cursor.execute(self._claim_statement(), params)
                    read = self._dialect.queue_read(raw, (self._claimed_read(), None))
                journals = read.fetchall()
            else:
                cursor.execute(self._claim_statement(), params)
            rows = cursor.fetchall()
        taken = [SimpleNamespace(**dict(zip(_CLAIMED, row, strict=False)))
                 for row in rows if row[0] is not None]
        locked, more = rows[0][-2], rows[0][-1]
        leases = [
            Lease(dispatch=self._dispatch(row), owner_id=owner_id, token=tokens[row.n - 1],
                  fence=int(row.fence), delivery=int(row.deliveries), expires_at=expires)
            for row in taken
        ]
        if journals is not None:
            self._prefetch.claimed = ({lease.token: lease.dispatch.run_id for lease in leases},
                                      self._rows_by_run([row.run_id for row in taken],
                                                        journals))
        return leases, locked == len(taken) and (len(taken) == limit or not more)

    def _claim_statement(self) -> str:
        """The text of ``_claim_at_once``: the rows of the queue's first level visible
        now, in claim order, locked skipping those other claimers hold (as
        ``_candidates``), each past its delivery limit left as it is, the others taken
        as ``_take`` takes them, token hash ``n`` to the ``n``-th; then one row per
        taken dispatch (none: one row of nulls) with the number of rows locked and
        whether the queue has another level.

        For ``_claimed_read``, sent after it in its transaction, the statement leaves the
        taken dispatches' runs in the setting ``_CLAIMED_RUNS`` and ``enable_seqscan``
        off (as for any batch read, see ``Dialect.transaction``; set while the claim
        runs, so for the statements planned after it)."""
        if self._claim_sql is not None:
            return self._claim_sql
        d = self._engine.dialect.identifier_preparer.format_table(self.tables.dispatches)
        expired = ("""CASE WHEN t.state = 'claimed' THEN '{"event":"lease_expired","fence":' """
                   """|| t.fence || ',"owner":' || to_json(t.owner_id)::text || E'}\\n' """
                   "ELSE '' END")
        sql = (
            f"WITH lvl AS (SELECT min(priority) AS p FROM {d} WHERE lane = %(queue)s), "
            f"picked AS (SELECT id, eligible_at, dkey, deliveries, max_deliveries FROM {d} "
            f"WHERE lane = %(queue)s AND priority = (SELECT p FROM lvl) "
            f"AND eligible_at <= %(now)s ORDER BY eligible_at, dkey LIMIT %(want)s "
            f"FOR UPDATE SKIP LOCKED), "
            f"numbered AS (SELECT id, row_number() OVER (ORDER BY eligible_at, dkey) AS n "
            f"FROM picked WHERE deliveries < max_deliveries), "
            f"took AS (UPDATE {d} AS t SET state = 'claimed', deliveries = t.deliveries + 1, "
            f"fence = t.fence + 1, owner_id = %(owner)s, "
            f"token_hash = (CAST(%(hashes)s AS text[]))[numbered.n], "
            f"lease_expires_at = %(expires)s, eligible_at = %(expires)s, "
            f"history = t.history || {expired} || '{_CLAIMED_EVENT}' "
            f"|| (t.fence + 1) || %(tail)s "
            f"FROM numbered WHERE t.id = numbered.id "
            f"RETURNING {', '.join(f't.{c}' for c in _CLAIMED[:-1])}, numbered.n) "
            f"SELECT took.*, s.settings, s.locked, s.more FROM (SELECT (SELECT "
            f"set_config('{_CLAIMED_RUNS}', coalesce(CAST(array_agg(run_id) AS text), "
            f"'{{}}'), true) || set_config('enable_seqscan', 'off', true) FROM took) "
            f"AS settings, (SELECT count(*) FROM picked) "
            f"AS locked, EXISTS (SELECT 1 FROM {d} WHERE lane = %(queue)s "
            f"AND priority > (SELECT p FROM lvl)) AS more) AS s "
            f"LEFT JOIN took ON true ORDER BY took.n"
        )
        self._claim_sql = sql
        return sql

    def _claimed_read(self) -> str:
        """PostgreSQL: the checkpoints and journals of the runs a claim just took (the
        setting ``_CLAIMED_RUNS`` its statement left), as ``read_runs`` reads them.

        Sent after the claim in its pipeline, so in its implicit transaction, the read
        sees the claim's settings and, taking a snapshot of its own, every fact
        committed before it ran."""
        if self._claimed_sql is None:
            run_ids = f"CAST(nullif(current_setting('{_CLAIMED_RUNS}', true), '') AS text[])"
            text = self._unnest_read("checkpointed_facts", run_ids)
            self._claimed_sql = _DriverStatement(text, self._engine.dialect).sql
        return self._claimed_sql

    def _reads_with_claims(self) -> bool:
        """Whether this thread's claims read their runs (``_claimed_read``): while most
        of the runs of its recent claims were read from their checkpoints.

        The claim's read returns every fact since a run's checkpoint. A run the engine
        has cached is read only after the cached sequence (a W1 run's later steps, or
        any step of an in-process worker that started the run): for those, the rows
        read for nothing cost more than the round trip saved (measured: W1 drained in
        process, the claim 4.0-4.9 -> 7.0 ms against a 1.6-3.0 ms read saved)."""
        return bool(getattr(self._prefetch, "fresh", 1.0) >= _FRESH_TO_READ)

    def _learn_fresh(self, leases: Sequence[Lease], after: Mapping[str, int | None]) -> None:
        """Record which share of the runs of a claim were read from their checkpoints
        (``_reads_with_claims``), in a moving average per thread."""
        asked = [after[lease.dispatch.run_id] for lease in leases
                 if lease.dispatch.run_id in after]
        if asked:
            share = sum(seq is None for seq in asked) / len(asked)
            self._prefetch.fresh = (0.8 * getattr(self._prefetch, "fresh", 1.0)
                                    + 0.2 * share)

    def _forget_claimed(self) -> _Claimed | None:
        """Drop what this thread's last claim read (``_prefetched``) and return it."""
        claimed: _Claimed | None = getattr(self._prefetch, "claimed", None)
        self._prefetch.claimed = None
        return claimed

    @staticmethod
    def _rows_by_run(run_ids: Iterable[str], rows: Sequence[Any]
                     ) -> dict[str, tuple[Checkpoint | None, list[Any]]]:
        """The rows of a read of runs from their checkpoints (``read_runs``,
        ``_claimed_read``) by run: its checkpoint and its facts' rows, in sequence order,
        not decoded yet (``_prefetched`` decodes only those asked for)."""
        facts: dict[str, list[Any]] = {run_id: [] for run_id in run_ids}
        checkpoints: dict[str, Checkpoint] = {}
        for row in rows:
            if row.seq is None:
                checkpoints[row.run_id] = Checkpoint(seq=int(row.cp_seq), data=row.cp_data)
            else:
                facts[row.run_id].append(row)
        for run_rows in facts.values():
            run_rows.sort(key=lambda row: row.seq)
        return {run_id: (checkpoints.get(run_id), run_rows)
                for run_id, run_rows in facts.items()}

    def _prefetched(self, leases: Sequence[Lease], after: Mapping[str, int | None]
                    ) -> dict[str, tuple[Checkpoint | None, list[Fact]]]:
        """What this thread's last claim read of the runs of ``after`` that ``leases``
        of that claim hold (``read_runs``'s answer for them), taken once: the next
        ``read_claimed`` on the thread, its next claim or journal write drops it.

        A run read after a sequence is answered only if its checkpoint is not past it
        (the facts in between were not read). The answer is the journal as it was when
        the claim took the run's dispatch: a read made then, which a commit's
        optimistic check covers as it covers any read before it."""
        claimed = self._forget_claimed()
        if claimed is None:
            return {}
        tokens, runs = claimed
        held = {lease.dispatch.run_id for lease in leases
                if tokens.get(lease.token) == lease.dispatch.run_id}
        found: dict[str, tuple[Checkpoint | None, list[Fact]]] = {}
        for run_id, seq in after.items():
            hit = runs.get(run_id) if run_id in held else None
            if hit is None:
                continue
            checkpoint, rows = hit
            if seq is None:
                found[run_id] = (checkpoint, [self._fact(run_id, row) for row in rows])
            elif checkpoint is None or checkpoint.seq <= seq:
                found[run_id] = (None, [self._fact(run_id, row)
                                        for row in rows if row.seq > seq])
        return found

    @staticmethod
    def _expired_event(row: Any) -> str:
        if row.state == "claimed":
            return _event(event="lease_expired", fence=int(row.fence), owner=row.owner_id)
        return ""

    def _take(self, conn: sa.Connection, rows: list[Any], owner_id: str, now: float,
              expires: float) -> list[Lease]:
        tokens = {row.id: new_token() for row in rows}
        events = {
            row.id: self._expired_event(row)
            + _event(event="claimed", fence=int(row.fence) + 1, owner=owner_id, at=now)
            for row in rows
        }
        if len(rows) == 1:  # the common case (execute_next), as one prebuilt statement
            (row,) = rows
            conn.execute(self._sql["take_one"], {
                "b_id": row.id, "v_owner": owner_id, "v_hash": hash_token(tokens[row.id]),
                "v_expires": expires, "v_event": events[row.id],
            })
        else:
            self._take_many(conn, tokens, events, owner_id, expires)
        return [
            Lease(
                dispatch=self._dispatch(row),
                owner_id=owner_id,
                token=tokens[row.id],
                fence=int(row.fence) + 1,
                delivery=int(row.deliveries) + 1,
                expires_at=expires,
            )
            for row in rows
        ]

    def _take_many(self, conn: sa.Connection, tokens: dict[int, str], events: dict[int, str],
                   owner_id: str, expires: float) -> None:
        """Claim several rows in one UPDATE (per-row token and history via CASE)."""
        rows = [{"id": row_id, "token_hash": hash_token(token), "event": events[row_id]}
                for row_id, token in tokens.items()]
        self._send(conn, self._writes("take", rows, v_owner=owner_id, v_expires=expires))

    def _bury_rows(self, conn: sa.Connection, rows: list[Any], reason: str,
                   now: float) -> None:
        d = self.tables.dispatches
        orders = dict(zip((r.id for r in rows), self._next_dead_orders(conn, len(rows)),
                          strict=True))
        events = {
            r.id: self._expired_event(r) + _event(event="dead_lettered", reason=reason, at=now)
            for r in rows
        }
        conn.execute(
            sa.update(d)
            .where(d.c.id.in_(list(orders)))
            .values(
                state="dead_lettered", reason=reason, lease_expires_at=None, token_hash=None,
                lane=None, eligible_at=None,
                dead_order=sa.case(orders, value=d.c.id),
                history=d.c.history + sa.case(events, value=d.c.id),
            )
        )

    def heartbeat(self, lease: Lease, *, lease_for: float) -> Lease:
        if lease_for <= 0:
            raise InvalidArgument("lease_for", "must be positive")

        def body(conn: sa.Connection) -> Lease:
            now = self.clock.now()
            expires = now + lease_for
            params = {**self._live_params(lease, now), "v_expires": expires}
            if conn.execute(self._sql["extend"], params).rowcount != 1:
                raise self._lost(conn, lease, now)
            return replace(lease, expires_at=expires)

        return self._run(body, write=True)

    def complete(self, lease: Lease) -> None:
        d = self.tables.dispatches

        def body(conn: sa.Connection) -> None:
            now = self.clock.now()
            if self._settle(conn, lease, "completed", now):
                return
            row = conn.execute(
                sa.select(d.c.state, d.c.token_hash).where(d.c.dkey == lease.key)
            ).first()
            if row is not None and row.state == "completed" and (
                row.token_hash == hash_token(lease.token)
            ):
                return  # completed before by this same lease: idempotent
            raise self._lost(conn, lease, now)

        self._run(body, write=True)

    def retry(self, lease: Lease, *, delay: float = 0.0, reason: str | None = None) -> None:
        d = self.tables.dispatches

        def body(conn: sa.Connection) -> None:
            now = self.clock.now()
            visible_at = now + max(delay, 0.0)
            done = conn.execute(
                sa.update(d).where(self._live_clause(lease, now)).values(
                    state="pending", visible_at=visible_at, eligible_at=visible_at,
                    lane=d.c.queue, lease_expires_at=None, token_hash=None,
                    history=d.c.history + _event(event="retried", fence=lease.fence, at=now,
                                                 reason=reason),
                )
            )
            if done.rowcount != 1:
                raise self._lost(conn, lease, now)

        self._run(body, write=True)

    def dead_letter(self, lease: Lease, reason: str) -> None:
        d = self.tables.dispatches

        def body(conn: sa.Connection) -> None:
            now = self.clock.now()
            (order,) = self._next_dead_orders(conn, 1)
            done = conn.execute(
                sa.update(d).where(self._live_clause(lease, now)).values(
                    state="dead_lettered", reason=reason, lease_expires_at=None,
                    token_hash=None, lane=None, eligible_at=None, dead_order=order,
                    history=d.c.history + _event(event="dead_lettered", reason=reason, at=now),
                )
            )
            if done.rowcount != 1:
                raise self._lost(conn, lease, now)

        self._run(body, write=True)

    def dead_letters(
        self, *, queue: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page:
        if limit < 1:
            raise InvalidArgument("limit", "must be at least 1")
        after = 0
        if cursor is not None:
            try:
                after = int(decode_cursor(cursor, 1)[0])
            except (TypeError, ValueError):
                raise InvalidArgument("cursor", "not a cursor returned by a listing") from None
        d = self.tables.dispatches
        stmt = sa.select(d).where(d.c.dead_order.is_not(None), d.c.dead_order > after)
        if queue is not None:
            stmt = stmt.where(d.c.queue == queue)
        stmt = stmt.order_by(d.c.dead_order).limit(limit + 1)

        def body(conn: sa.Connection) -> Page:
            now = self.clock.now()
            rows = conn.execute(stmt).all()
            items = [self._record(row, now) for row in rows[:limit]]
            nxt = encode_cursor(int(rows[limit - 1].dead_order)) if len(rows) > limit else None
            return Page(items=items, next_cursor=nxt)

        return self._run(body, write=False)

    def redrive(self, dispatch_key: str, *, delay: float = 0.0) -> None:
        d, r = self.tables.dispatches, self.tables.runs

        def body(conn: sa.Connection) -> None:
            row = conn.execute(
                sa.select(d.c.id, d.c.state, d.c.run_id, d.c.queue)
                .where(d.c.dkey == dispatch_key)
            ).first()
            if row is None or row.state != "dead_lettered":
                raise DispatchNotFound(dispatch_key, "not dead-lettered")
            status = conn.execute(
                self._dialect.lock_shared(sa.select(r.c.status).where(r.c.run_id == row.run_id))
            ).scalar()
            if status in TERMINAL_STATUSES:
                raise RunTerminalError(row.run_id, "redrive", status, "the run has ended")
            now = self.clock.now()
            visible_at = now + max(delay, 0.0)
            done = conn.execute(
                sa.update(d).where(d.c.id == row.id, d.c.state == "dead_lettered").values(
                    state="pending", deliveries=0, reason=None, visible_at=visible_at,
                    eligible_at=visible_at, lane=d.c.queue, dead_order=None,
                    history=d.c.history + _event(event="redriven", at=now),
                )
            )
            if done.rowcount != 1:
                raise DispatchNotFound(dispatch_key, "not dead-lettered")
            if delay <= 0:
                self._send(conn, self._announcements([row.queue]))

        self._run(body, write=True)

    def dispatches(self, run_id: str) -> list[DispatchRecord]:
        d = self.tables.dispatches
        stmt = sa.select(d).where(d.c.run_id == run_id).order_by(d.c.id)

        def body(conn: sa.Connection) -> list[DispatchRecord]:
            now = self.clock.now()
            return [self._record(row, now) for row in conn.execute(stmt)]

        return self._run(body, write=False)

    def _queue_names(self, conn: sa.Connection) -> list[str]:
        """Every queue that has dispatches: a loose index scan, one probe per queue."""
        d = self.tables.dispatches
        names: list[str] = []
        probe = sa.select(sa.func.min(d.c.queue))
        name = conn.execute(probe).scalar()
        while name is not None:
            names.append(name)
            name = conn.execute(probe.where(d.c.queue > name)).scalar()
        return names

    def depth(self, queues: Sequence[str] | None = None) -> dict[str, QueueDepth]:
        d = self.tables.dispatches

        def body(conn: sa.Connection) -> dict[str, QueueDepth]:
            now = self.clock.now()
            names = list(dict.fromkeys(queues)) if queues is not None else self._queue_names(conn)
            if not names:
                return {}
            visible = sa.and_(d.c.state == "pending", d.c.visible_at <= now)
            live = conn.execute(
                sa.select(
                    d.c.lane,
                    sa.func.sum(sa.case((visible, 1), else_=0)),
                    sa.func.sum(sa.case((sa.and_(d.c.state == "pending",
                                                 d.c.visible_at > now), 1), else_=0)),
                    sa.func.sum(sa.case((d.c.state == "claimed", 1), else_=0)),
                    sa.func.min(sa.case((visible, d.c.visible_at), else_=None)),
                )
                .where(d.c.lane.in_(names))
                .group_by(d.c.lane)
            ).all()
            dead = conn.execute(
                sa.select(d.c.queue, sa.func.count())
                .where(d.c.dead_order.is_not(None), d.c.queue.in_(names))
                .group_by(d.c.queue)
            ).all()
            counts: dict[str, dict[str, Any]] = {
                name: {"visible": 0, "scheduled": 0, "claimed": 0, "dead": 0,
                       "oldest_visible_at": None}
                for name in names
            }
            for lane, vis, sched, claimed, oldest in live:
                counts[lane].update(
                    visible=int(vis or 0), scheduled=int(sched or 0),
                    claimed=int(claimed or 0),
                    oldest_visible_at=None if oldest is None else float(oldest),
                )
            for queue, count in dead:
                counts[queue]["dead"] = int(count)
            return {name: QueueDepth(**c) for name, c in counts.items()}

        return self._run(body, write=False)

    # ------------------------------------------------------------------ commit

    def _commit_params(self, commit: Commit) -> _Params:
        """Validate a commit and build its statement parameters (before any round trip)."""
        check_commit(commit)
        run_id = commit.run_id
        _text("run_id", run_id)
        for x in commit.enqueue:
            self._validate_dispatch(x)
        entry = commit.run
        run_row = {
            "run_id": run_id, "workflow": _text("workflow", entry.workflow),
            "trigger": _text("trigger", entry.trigger), "status": _text("status", entry.status, 16),
            "queue": _text("queue", entry.queue), "created_at": float(entry.created_at),
            "updated_at": float(entry.updated_at), "last_seq": int(entry.last_seq),
            "parent_run_id": (None if entry.parent_run_id is None
                              else _text("parent_run_id", entry.parent_run_id)),
        }
        return _Params(
            commit=commit,
            fact_rows=self._fact_rows(run_id, commit.facts),
            run={f"v_{name}": value for name, value in run_row.items()},
            checkpoint=(self._checkpoint_params(run_id, commit.checkpoint)
                        if commit.checkpoint is not None else None),
        )

    def commit(self, commit: Commit) -> CommitResult:
        self._forget_claimed()
        params = self._commit_params(commit)
        run_id = commit.run_id
        expected, count = commit.expected_seq, len(commit.facts)
        if expected == 0 and commit.settle is None and count:
            # A new run (a start): write optimistically. If the run or one of its keys
            # exists after all (a resend, an idempotent start, a race), the unique keys
            # refuse the writes and the full checks below decide, in a new transaction.
            try:
                return self._run(lambda conn: self._commit_new_run(conn, params), write=True)
            except (AppendConflict, _KeyRace):
                pass

        if (self.name == "postgresql" and commit.settle is not None and count
                and not (commit.terminal and commit.enqueue)):
            # A worker's outcome: write optimistically, in one statement gated on the
            # checks. If the gate refuses or a key is taken, nothing was written and the
            # full checks below decide and explain, in a new transaction.
            try:
                return self._run(lambda conn: self._commit_settled(conn, params), write=True)
            except (AppendConflict, _KeyRace, _Refused):
                pass

        def body(conn: sa.Connection) -> CommitResult:
            now = self.clock.now()
            head_v, status = conn.execute(self._sql["head_status"], {"run_id": run_id}).one()
            head = int(head_v or 0)
            # 1. an identical commit already applied: a resend after a lost reply.
            if self._is_replay(conn, run_id, head, expected, commit.facts):
                return CommitResult(head, replayed=True)
            # 2. the settled lease must be current and unexpired (settles it, fenced).
            lease = commit.settle
            if lease is not None and not self._settle(conn, lease, "completed", now):
                raise self._lost(conn, lease, now)
            # 3. the journal must be where the writer left it.
            if head != expected:
                raise AppendConflict(run_id, expected, head)
            # 4. no new work for a run that has ended.
            if commit.enqueue and status in TERMINAL_STATUSES:
                raise RunTerminalError(run_id, "schedule", status, "the run has ended")
            # 5. every enqueued key is new or the same intent.
            fresh = self._check_enqueue(conn, commit.enqueue, {})
            # A worker's own commit is followed by its own next claim: only commits from
            # outside a worker (starts, approvals, resumes) wake idle workers.
            self._send(conn, self._commit_writes([params], fresh, now, announce=lease is None))
            return CommitResult(expected + count)

        try:
            return self._retry_key_races(lambda: self._run(body, write=True))
        except AppendConflict as exc:
            raise self._conflict_with_head(exc) from None

    def _commit_new_run(self, conn: sa.Connection, params: _Params) -> CommitResult:
        """``commit`` of a run's first facts, without the reads: the journal's and the
        dispatches' unique keys stand in for checks 1, 3 and 5 (a new run cannot be
        terminal, check 4)."""
        commit = params.commit
        self._send(conn, self._commit_writes([params], commit.enqueue, self.clock.now(),
                                             announce=True), joined=True)
        return CommitResult(len(commit.facts))

    def _commit_settled(self, conn: sa.Connection, params: _Params) -> CommitResult:
        """``commit`` of an outcome that settles a lease, on PostgreSQL, as one statement
        committed alone: its gate settles the lease only if it is live, the journal
        ends where the writer left it and, if the commit schedules work, the run has not
        ended (checks 2 to 4); the writes follow, their unique keys standing in for
        checks 1 and 5. A commit that both ends its run and schedules work is not sent
        this way (failing the run's other dispatches would not see the new ones)."""
        commit = params.commit
        lease = commit.settle
        assert lease is not None
        now = self.clock.now()
        gate = _Write(self._for("gate_open" if commit.enqueue else "gate", 1), {
            **self._live_params(lease, now), "b_run_id": commit.run_id,
            "b_expected": commit.expected_seq,
            "v_event": _event(event="completed", fence=lease.fence, at=now),
        }, self._table_of("gate").name)
        self._send(conn, self._commit_writes([params], commit.enqueue, now, spare=lease.key),
                   gate=gate)
        return CommitResult(commit.expected_seq + len(commit.facts))

    def _commit_writes(self, commits: Sequence[_Params], fresh: Sequence[Dispatch],
                       now: float, *, announce: bool = False,
                       spare: str | None = None) -> list[_Write]:
        """The writes of checked ``commits`` (their new dispatches: ``fresh``): facts,
        dispatches, run index rows, checkpoints, and the failing of the dispatches left
        to the runs that ended (but the dispatch ``spare``, for the one commit of a gated
        statement, whose gate settles it in the same snapshot)."""
        first = commits[0].commit
        ended = [{"run_id": p.commit.run_id} for p in commits if p.commit.terminal]
        return [
            *self._fact_writes(first.run_id, first.expected_seq,
                               [row for p in commits for row in p.fact_rows]),
            *self._dispatch_writes(fresh, now, announce=announce),
            *self._writes("runs", [p.run for p in commits]),
            *self._writes("checkpoints", [p.checkpoint for p in commits
                                          if p.checkpoint is not None]),
            *(self._writes("fail_others", ended, v_at=_json.dumps(now)) if spare is None
              else self._writes("fail_others_but", ended, v_at=_json.dumps(now),
                                b_key=spare)),
        ]

    def commit_many(self, commits: Sequence[Commit]) -> list[CommitResult | SquidieError]:
        """The group commit: the worker's outcomes in one transaction, a few statements.

        The fast path takes commits that settle a lease, one per run: in one transaction
        it locks their dispatch rows (in key order), reads the runs' statuses and journal
        heads, keeps the commits whose lease is live, whose head is where the writer
        left it, whose run may still schedule and whose dispatch keys are all new, and
        writes them with one statement per table. Every other commit — a resend, a
        conflict, a lost lease, a second commit of the same run, a commit without a lease
        — is then committed alone with ``commit``, which decides and explains it. If a
        concurrent writer races the group (a journal sequence or dispatch key taken
        between the checks and the writes), the group's transaction is rolled back and
        its commits are committed alone too.
        """
        self._forget_claimed()
        results: list[CommitResult | SquidieError | None] = [None] * len(commits)
        group: list[tuple[int, _Params]] = []
        alone: list[int] = []
        runs: set[str] = set()
        for index, commit in enumerate(commits):
            if commit.settle is None or commit.run_id in runs:
                alone.append(index)
                continue
            try:
                group.append((index, self._commit_params(commit)))
            except (InvalidArgument, ValueTooLarge) as exc:
                results[index] = exc
                continue
            runs.add(commit.run_id)
        if group:
            try:
                written = self._run_reading(
                    lambda conn, rows: self._commit_group(conn, group, rows),
                    self._group_reads(group), write=True, batch=len(group) > 1)
            except (AppendConflict, _KeyRace):
                written = {}
            for index, _ in group:
                if index in written:
                    results[index] = written[index]
                else:
                    alone.append(index)
        for index in sorted(alone):
            try:
                results[index] = self.commit(commits[index])
            except COMMIT_ERRORS as exc:
                results[index] = exc
        return [r for r in results if r is not None]

    def _group_reads(self, group: Sequence[tuple[int, _Params]]) -> list[DriverRead]:
        """PostgreSQL: the group commit's reads (``_commit_group``), sent with its
        transaction's start; elsewhere none (``_commit_group`` runs them itself).

        The settled leases' rows, locked in key order; the runs' statuses and journal
        heads; and, if the group enqueues, which of its dispatch keys exist: the keys of
        every commit of the group, since the checks that leave some out come after.
        """
        if self.name != "postgresql":
            return []
        reads = [("lock_settled", {"keys": self._group_keys(group)}),
                 ("heads_statuses", {"run_ids": sorted({p.commit.run_id for _, p in group})})]
        keys = [x.key for _, p in group for x in p.commit.enqueue]
        if keys:
            reads.append(("existing_keys", {"keys": keys}))
        return [(statement.sql, statement.values(params))
                for statement, params in ((self._driver_statement(name), params)
                                          for name, params in reads)]

    @staticmethod
    def _group_keys(group: Sequence[tuple[int, _Params]]) -> list[str]:
        """The keys of the leases ``group`` settles, sorted (the order they are locked in)."""
        return sorted(p.commit.settle.key for _, p in group if p.commit.settle is not None)

    def _driver_statement(self, name: str) -> _DriverStatement:
        """The prepared statement ``name`` (``_prepare``) as a driver statement, built
        once (PostgreSQL: its ``any_of`` lists are one array parameter, never expanded)."""
        statement = self._driver.get(name)
        if statement is None:
            statement = self._driver[name] = _DriverStatement(self._sql[name],
                                                              self._engine.dialect)
        return statement

    def _commit_group(self, conn: sa.Connection, group: Sequence[tuple[int, _Params]],
                      prefetched: Sequence[Sequence[Any]] = ()) -> dict[int, CommitResult]:
        """Check and write the commits of ``group`` that pass; their results by index.
        ``prefetched``: the rows of ``_group_reads``, if it had any."""
        now = self.clock.now()
        run_ids = sorted({p.commit.run_id for _, p in group})
        if prefetched:
            locked, heads_statuses, *existing = prefetched
        else:
            locked = conn.execute(self._sql["lock_settled"],
                                  {"keys": self._group_keys(group)}).all()
            heads_statuses = conn.execute(self._sql["heads_statuses"],
                                          {"run_ids": run_ids}).all()
            existing = []
        rows = {row.dkey: row for row in locked}
        runs = {row[0]: (row[1], int(row[2] or 0)) for row in heads_statuses}
        unindexed = [r for r in run_ids if r not in runs]
        if unindexed:  # runs without an index row yet (facts appended, or none at all)
            heads = dict.fromkeys(unindexed, 0)
            heads.update((row[0], int(row[1])) for row in conn.execute(
                self._sql["heads"], {"run_ids": unindexed}))
            runs.update((r, (None, head)) for r, head in heads.items())
        passing: list[tuple[int, _Params]] = []
        for index, p in group:
            commit = p.commit
            lease = commit.settle
            assert lease is not None
            row = rows.get(lease.key)
            status, head = runs[commit.run_id]
            if (row is None or row.state != "claimed"
                    or row.token_hash != hash_token(lease.token)
                    or float(row.lease_expires_at) <= now
                    or head != commit.expected_seq
                    or (commit.enqueue and status in TERMINAL_STATUSES)):
                continue
            passing.append((index, p))
        keys = [x.key for _, p in passing for x in p.commit.enqueue]
        if keys:
            taken = {row.dkey for row in (existing[0] if existing else conn.execute(
                self._sql["existing_keys"], {"keys": keys}))}
            passing = [(i, p) for i, p in passing
                       if not any(x.key in taken for x in p.commit.enqueue)]
        if not passing:
            return {}
        settles = []
        for _, p in passing:
            lease = p.commit.settle
            assert lease is not None
            settles.append({"b_key": lease.key, "b_token_hash": hash_token(lease.token),
                            "v_event": _event(event="completed", fence=lease.fence, at=now)})
        commits = [p for _, p in passing]
        self._send(conn, [
            *self._writes("settle", settles, v_state="completed", v_reason=None, b_now=now),
            *self._commit_writes(commits, [x for p in commits for x in p.commit.enqueue], now),
        ])
        return {index: CommitResult(p.commit.expected_seq + len(p.commit.facts))
                for index, p in passing}

    # ------------------------------------------------------------------ misc

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        if self._wake is None:
            raise CapabilityNotSupported(self.name, "wake_up")
        if self._closed:
            return False
        return self._wake.wait(list(dict.fromkeys(queues or ("default",))), timeout)

    def close(self) -> None:
        """Dispose of the connection pool; the store is unusable afterwards."""
        self._closed = True
        if self._wake is not None:
            self._wake.close()
        self._engine.dispose()
