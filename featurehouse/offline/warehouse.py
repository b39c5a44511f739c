"""Connections to the offline store (the dbt warehouse): run generated SQL, load spines, fetch Arrow.

Queries go through the engines' native drivers rather than dbt's adapter: dbt adapters return
agate tables row by row, far too slow for million-row training sets.

DuckDB lets one process at a time open a file, so a DuckDB warehouse on a file holds it only while it
works on it: opened for a statement or a unit of work (`Warehouse.session`), closed once idle for a
moment, waiting a bounded time for a file another process holds (FEATUREHOUSE_WAREHOUSE_LOCK_TIMEOUT_S).
A sync, a stream consumer and the guards take turns instead of locking each other out.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import logging
import math
import os
import random
import re
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import pyarrow as pa

from featurehouse import clock
from featurehouse.errors import ProjectError, WarehouseLocked, WarehouseUnavailable
from featurehouse.registry.model import Relation
from featurehouse.types import Family, column_type_for, family, from_arrow, pg_type_name

utc_now = clock.utc_now  # now as naive UTC, the warehouse's convention for timestamps

LOCK_TIMEOUT_ENV = "FEATUREHOUSE_WAREHOUSE_LOCK_TIMEOUT_S"
DEFAULT_LOCK_TIMEOUT_S = 10.0  # long enough for another featurehouse process's statement, short for cron
_FIRST_RETRY_S, _LONGEST_RETRY_S = 0.01, 0.1  # jittered backoff between attempts to open a held file
# Opening a DuckDB file costs ~12 ms, so a file stays open for _LINGER_S after a statement (the next one
# is usually close behind); held longer than _TURN_S at a stretch, it is let go at the next pause between
# statements and left free for _LONGEST_RETRY_S, so a process waiting for it gets its turn.
_LINGER_S, _TURN_S = 0.05, 1.0
_CLOSE_WAIT_S = 30.0  # close() waits this long for statements other threads are running
_EXIT_WAIT_S = 5.0  # at interpreter exit, how long a closer thread may take to finish closing its file

# The file warehouses with a closer thread, so interpreter exit can stop those threads first: a daemon
# thread still inside DuckDB (closing a connection) when Python finalizes is killed by pthread_exit as
# it takes the GIL back, and the unwind through DuckDB's C++ frames aborts the process (exit 134 after
# a command had finished its work). Weak: it keeps nobody's warehouse alive.
_CLOSERS: weakref.WeakSet[DuckDBWarehouse] = weakref.WeakSet()


@atexit.register
def _stop_closers_at_exit() -> None:
    deadline = time.monotonic() + _EXIT_WAIT_S  # one wait for them all: exit is never held for long
    for warehouse in list(_CLOSERS):
        warehouse._stop_closer(max(0.0, deadline - time.monotonic()))

log = logging.getLogger(__name__)
T = TypeVar("T")


def sql_literal(value: Any, dialect: str) -> str:
    """A Python value as a SQL literal of `dialect` (for featurehouse's own log tables)."""
    from sqlglot import exp

    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), "TIMESTAMP").sql(dialect)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return exp.Literal.number(value).sql(dialect)
    return exp.Literal.string(str(value)).sql(dialect)


class Warehouse:
    """One connection to the offline store, in UTC."""

    dialect: str = ""

    def execute(self, sql: str, params: tuple | None = None) -> None:
        raise NotImplementedError

    def fetch_arrow(self, sql: str, params: tuple | None = None) -> pa.Table:
        """The query's result as Arrow; `params` fill its placeholders (`?` on DuckDB, `%s` on PostgreSQL)."""
        raise NotImplementedError

    def load_table(self, name: str, table: pa.Table, temporary: bool = True) -> None:
        """Create (or replace) a table, by default temporary, holding `table`."""
        raise NotImplementedError

    def replace_table(self, schema: str, name: str, table: pa.Table) -> None:
        """Create (or replace) the permanent table schema.name holding `table`."""
        raise NotImplementedError

    def append_table(self, schema: str, name: str, table: pa.Table, id_column: str) -> None:
        """Append rows to schema.name (created on first use), replacing rows with the same `id_column`
        values in the same transaction, so appending one batch twice leaves it there once."""
        raise NotImplementedError

    def execute_dml(self, statement: Any, params: Sequence[Any] = ()) -> None:
        """Run a sqlglot UPDATE or DELETE, its placeholders filled from `params` in the order they appear:
        an engine without row-level DML (Spark's Parquet tables) brings its own way."""
        self.execute(statement.sql(self.dialect), tuple(params) or None)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Statements inside commit together or not at all."""
        self.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def column_families(self, sql: str) -> dict[str, Family]:
        """Column name -> what each column of a query's result holds (featurehouse.types.Family)."""
        return {f.name: from_arrow(f.type).family for f in self.fetch_arrow(sql).schema}

    def describe(self, relation: Relation) -> dict[str, str] | None:
        raise NotImplementedError

    def describe_many(self, relations: Sequence[Relation]) -> dict[Relation, dict[str, str] | None]:
        """Each relation's columns as `describe` gives them, in as few round trips as the engine allows:
        the registry describes every view at every load (200 views were 200 queries, 1 s)."""
        return {relation: self.describe(relation) for relation in relations}

    def estimated_rows(self, relations: Sequence[Relation]) -> int | None:
        """The engine's estimate of how many rows the relations hold together, or None when it keeps none
        for one of them (a view, an engine that does not say). Cheap: read from the engine's catalog."""
        return None

    def create_numbered(self, name: str, source: Any, row_id: str) -> None:
        """A temporary table `name` holding the rows of `source` (a sqlglot table or subquery) and a unique
        `row_id` column numbering them in the source's order."""
        from sqlglot import exp

        ident = exp.to_identifier(name, quoted=True).sql(self.dialect)
        select = exp.select(exp.Star(), exp.Window(this=exp.RowNumber()).as_(row_id)).from_(source)
        self.execute(f"CREATE TEMP TABLE {ident} AS {select.sql(self.dialect)}")

    def describe_query(self, sql: str) -> dict[str, str]:
        """Column -> type of what a query would return, in the same type names `describe` gives,
        without running it to completion (the schema gate checks SQL that is not built yet)."""
        raise NotImplementedError

    def ensure_table(self, schema: str, name: str, columns: list[tuple[str, str]]) -> str:
        """Create schema.name with these (column, type) pairs if missing, adding any column an existing
        table lacks; returns its quoted name. Rows are then written by column name, never by position."""
        from sqlglot import exp

        d = self.dialect
        table = exp.table_(name, db=schema, quoted=True).sql(d)
        def spelled(t: str) -> str:  # DOUBLE is DOUBLE PRECISION on PostgreSQL
            return exp.DataType.build(t).sql(d)

        cols = ", ".join(f"{exp.to_identifier(c, quoted=True).sql(d)} {spelled(t)}" for c, t in columns)
        with self.session():
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {exp.to_identifier(schema, quoted=True).sql(d)}")
            self.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")
            existing = self.describe(Relation(None, schema, name)) or {}
            for c, t in columns:  # a table made by an older featurehouse gets the columns added since
                if c not in existing:
                    column = exp.to_identifier(c, quoted=True).sql(d)
                    self.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {spelled(t)}")
        return table

    def relation_sql(self, relation: Relation) -> str:
        from sqlglot import exp

        return exp.table_(
            relation.identifier, db=relation.schema, catalog=relation.database, quoted=True
        ).sql(self.dialect)

    def session(self) -> contextlib.AbstractContextManager[Any]:
        """One connection for a unit of work of several statements: on a DuckDB file it (and the file)
        is held until the outermost session ends; other engines hold one connection anyway."""
        return contextlib.nullcontext()

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def lock_timeout_from_env() -> float:
    """FEATUREHOUSE_WAREHOUSE_LOCK_TIMEOUT_S: how long to wait for a DuckDB file another process holds."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        raise ProjectError(f"{LOCK_TIMEOUT_ENV}={raw!r}: give a number of seconds (0 or more)")
    return seconds


_LOCK_ERROR = re.compile(r'Could not set lock on file "(?P<file>[^"]+)"'
                         r'(?:: Conflicting lock is held in (?P<holder>.+?)(?:\. See also|$))?', re.S)


def lock_conflict(error: BaseException) -> tuple[str, str] | None:
    """(file, holder) when `error` is DuckDB refusing a file another process holds; None otherwise."""
    import duckdb

    return lock_conflict_in(str(error)) if isinstance(error, duckdb.IOException) else None


def lock_conflict_in(message: str) -> tuple[str, str] | None:
    """(file, holder) when a message (a dbt run's error, say) is DuckDB refusing a file another process holds."""
    found = _LOCK_ERROR.search(message)
    if found is None:
        return None
    return found["file"], " ".join((found["holder"] or "a process DuckDB did not name").split())


@dataclass
class LockWait:
    """Opens a DuckDB file, retrying with jittered backoff while another process holds it, for at most
    `timeout_s`. Once a wait has run out, later opens try once until one succeeds: a command waits for
    its timeout once, not once per statement (the registry loader alone describes every view)."""

    timeout_s: float
    exhausted: bool = False

    def open(self, connect: Callable[[], T]) -> T:
        started = time.monotonic()
        deadline = started + (0.0 if self.exhausted else self.timeout_s)
        delay, file = _FIRST_RETRY_S, None
        while True:
            try:
                opened = connect()
            except Exception as e:
                conflict = lock_conflict(e)
                left = deadline - time.monotonic()
                if conflict is None:
                    raise
                if left <= 0:
                    self.exhausted = True
                    raise WarehouseLocked(*conflict, self.timeout_s, LOCK_TIMEOUT_ENV) from None
                if file is None:
                    file = conflict[0]
                    log.info("waiting up to %gs for DuckDB file %s: another process holds it (%s)",
                             self.timeout_s, *conflict)
                time.sleep(min(left, random.uniform(delay / 2, delay)))
                delay = min(2 * delay, _LONGEST_RETRY_S)
                continue
            if file is not None:
                log.info("DuckDB file %s is ours after waiting %.2fs", file, time.monotonic() - started)
            self.exhausted = False
            return opened


# Statements whose effect lives on the connection: they decide when a file's connection may close.
_BEGINS = re.compile(r"\s*(BEGIN|START\s+TRANSACTION)\b", re.I)
_ENDS = re.compile(r"\s*(COMMIT|END|ROLLBACK|ABORT)\b", re.I)
_MAKES_TEMP = re.compile(r"\s*CREATE\s+(OR\s+REPLACE\s+)?TEMP(ORARY)?\b", re.I)
_SETS = re.compile(r"\s*(SET|RESET|USE)\b", re.I)  # session settings, replayed on every new connection


class DuckDBWarehouse(Warehouse):
    """DuckDB in memory (one connection, held) or on a file. DuckDB lets one process at a time open a
    file, so a file's connection is held only while featurehouse works on it: from a statement (or a
    `session`) until it has been idle for _LINGER_S, and never much longer than _TURN_S at a stretch when
    it can be let go. State that lives on the connection (an open transaction, temporary tables, a handle
    given out by `con`) keeps it open until the state is gone; settings made with SET are made again on
    every new connection."""

    dialect = "duckdb"

    def __init__(self, path: str | os.PathLike = ":memory:", read_only: bool = False, threads: int | None = None,
                 *, credentials: Any = None, lock_timeout_s: float | None = None, files_from: Path | None = None):
        """`credentials` (dbt-duckdb's DuckDBCredentials, with an absolute path) opens the database the way
        dbt-duckdb opens its own, so models that read attached databases, extensions or settings read the same
        here; it replaces `path`. The session is always in UTC, the warehouse's convention. `lock_timeout_s`
        (default: FEATUREHOUSE_WAREHOUSE_LOCK_TIMEOUT_S, else 10) bounds the wait for a file another process holds.
        `files_from` (the dbt project): where relative file paths in SQL are read from, as dbt reads them
        (it runs in the project): a source's `external_location: data/x.parquet`, `read_csv('seeds/...')`."""
        if lock_timeout_s is not None and not (math.isfinite(lock_timeout_s) and lock_timeout_s >= 0):
            raise ValueError(f"lock_timeout_s must be 0 or more seconds, got {lock_timeout_s}")
        if credentials is None:
            self.path = str(path)
            self._opener: Callable[[], Any] = functools.partial(_connect_plain, self.path, read_only)
        else:
            self.path = str(credentials.path)
            self._opener = _dbt_duckdb_opener(credentials, read_only)
        self._settings = ["SET TimeZone = 'UTC'"] + ([f"SET threads = {int(threads)}"] if threads else [])
        configured = (getattr(credentials, "settings", None) or {}) if credentials is not None else {}
        if files_from is not None and "file_search_path" not in configured:  # the profile's own wins
            self._settings.append("SET file_search_path = '%s'" % str(files_from).replace("'", "''"))
        self._lock_wait = LockWait(lock_timeout_from_env() if lock_timeout_s is None else lock_timeout_s)
        self._per_use = bool(self.path) and _is_local_file(self.path)  # "" is in memory too
        self._cond = threading.Condition(threading.RLock())  # guards the connection's bookkeeping below
        self._con: Any = None
        self._users = 0
        self._opened_at = self._idle_since = self._free_until = 0.0
        self._in_transaction = self._temp_objects = self._handed_out = False
        self._parked = False  # the closer thread waits for state to go, woken by the end of a statement
        self._catalog: str | None = None
        self._closer: threading.Thread | None = None
        if not self._per_use:
            self._con = self._connect(self._opener)
            return
        try:  # now, so a wrong profile fails here as it always did; a held file is waited for at first use
            self._open(self._opener)
        except Exception as e:
            if lock_conflict(e) is None:
                raise

    @property
    def catalog(self) -> str:
        """The database's name in SQL (current_database())."""
        if self._catalog is None:
            with self.session() as con:
                self._catalog = str(con.execute("select current_database()").fetchall()[0][0])
        return self._catalog

    @property
    def con(self) -> Any:
        """The duckdb connection itself, for code that needs the driver; on a file it is held, and the
        file with it, until `close()`."""
        with self._cond:
            con = self._connection()
            self._handed_out = True
            return con

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        with self._cond:
            con = self._connection()
            self._users += 1
        try:
            yield con
        finally:
            self._release()

    def execute(self, sql, params=None):
        with self._statement(sql) as con:
            # DuckDB 2 keeps a result open until it is read; read it so the connection is free again.
            (con.execute(sql, params) if params else con.execute(sql)).fetchall()

    def fetch_arrow(self, sql, params=None):
        with self._statement(sql) as con:
            return con.sql(sql, params=params).to_arrow_table() if params else con.sql(sql).to_arrow_table()

    def load_table(self, name, table, temporary=True):
        from sqlglot import exp

        ident = exp.to_identifier(name, quoted=True).sql("duckdb")
        with self.session() as con:
            con.register("__fh_load", table)
            try:
                kind = "TEMP TABLE" if temporary else "TABLE"
                self.execute(f"CREATE OR REPLACE {kind} {ident} AS SELECT * FROM __fh_load")
            finally:
                con.unregister("__fh_load")

    def replace_table(self, schema, name, table):
        from sqlglot import exp

        target = exp.table_(name, db=schema, quoted=True).sql("duckdb")
        with self.session() as con:
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {exp.to_identifier(schema, quoted=True).sql('duckdb')}")
            con.register("__fh_load", table)
            try:
                self.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM __fh_load")
            finally:
                con.unregister("__fh_load")

    def append_table(self, schema, name, table, id_column):
        from sqlglot import exp

        target = exp.table_(name, db=schema, quoted=True).sql("duckdb")
        ident = exp.to_identifier(id_column, quoted=True).sql("duckdb")
        with self.session() as con:
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {exp.to_identifier(schema, quoted=True).sql('duckdb')}")
            con.register("__fh_append", table)
            try:
                self.execute(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM __fh_append WHERE false")
                self.execute("BEGIN")
                self.execute(f"DELETE FROM {target} WHERE {ident} IN (SELECT {ident} FROM __fh_append)")
                self.execute(f"INSERT INTO {target} BY NAME SELECT * FROM __fh_append")
                self.execute("COMMIT")
            except BaseException:
                if self._in_transaction:
                    self.execute("ROLLBACK")
                raise
            finally:
                con.unregister("__fh_append")

    def describe(self, relation):
        with self.session() as con:
            rows = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_name = ? and (? is null or table_schema = ?) and (? is null or table_catalog = ?) "
                "order by ordinal_position",
                [relation.identifier, relation.schema, relation.schema, relation.database, relation.database],
            ).fetchall()
        return {c: t for c, t in rows} or None

    def describe_many(self, relations):
        names = sorted({r.identifier for r in relations})
        if not names:
            return {}
        with self.session() as con:
            rows = con.execute(
                "select table_catalog, table_schema, table_name, column_name, data_type from information_schema.columns "
                "where list_contains(?, table_name) order by table_catalog, table_schema, table_name, ordinal_position",
                [names]).fetchall()
        return _columns_by_relation(relations, rows, by_database=True)

    def describe_query(self, sql):
        with self.session() as con:
            return {row[0]: row[1] for row in con.execute(f"DESCRIBE ({sql})").fetchall()}

    def estimated_rows(self, relations):
        total = 0
        with self.session() as con:
            for r in relations:
                found = con.execute(
                    "select estimated_size from duckdb_tables() where table_name = ? "
                    "and (? is null or schema_name = ?) and (? is null or database_name = ?)",
                    [r.identifier, r.schema, r.schema, r.database, r.database]).fetchall()
                if len(found) != 1 or found[0][0] is None:
                    return None  # a view (computed at each read), or not one table
                total += int(found[0][0])
        return total

    def close(self):
        with self._cond:
            if self._per_use:
                # another thread's statement keeps its connection to the end (bounded: a stuck one is cut)
                self._cond.wait_for(lambda: self._users == 0, timeout=_CLOSE_WAIT_S)
                self._disconnect()
            elif self._con is not None:
                self._con.close()  # kept: using a closed in-memory warehouse stays an error, not a new database

    # -- the connection's life --------------------------------------------------------------------

    def _connection(self) -> Any:
        """The open connection, or a new one once the file is ours (called holding self._cond)."""
        if self._con is None:
            pause = self._free_until - time.monotonic()
            if pause > 0:  # we just let go after a long stretch: another process's turn first
                time.sleep(pause)
            self._open(functools.partial(self._lock_wait.open, self._opener))
        return self._con

    def _open(self, opener: Callable[[], Any]) -> None:
        """Open a connection to the file, with a thread that closes it once idle."""
        self._con = self._connect(opener)
        self._opened_at = self._idle_since = time.monotonic()
        self._closer = threading.Thread(target=self._close_when_idle, args=(self._con,),
                                        name=f"featurehouse-duckdb-{self.path}", daemon=True)
        _CLOSERS.add(self)
        self._closer.start()

    def _stop_closer(self, timeout_s: float) -> None:
        """Close the file and wait for the closer thread to end (interpreter exit: the process is going,
        so state on the connection goes with it, as it would on a kill). A statement another thread is
        still running keeps its connection; it is waited for up to `timeout_s`, then left."""
        deadline = time.monotonic() + timeout_s
        # bounded: a thread may hold the lock while it waits for another process's file
        if not self._cond.acquire(timeout=timeout_s):
            return
        try:
            if self._cond.wait_for(lambda: self._users == 0, timeout=max(0.0, deadline - time.monotonic())):
                self._disconnect()
            closer = self._closer
        finally:
            self._cond.release()
        if closer is not None and closer is not threading.current_thread():
            closer.join(max(0.0, deadline - time.monotonic()))

    def _connect(self, opener: Callable[[], Any]) -> Any:
        con = opener()
        try:
            for setting in self._settings:
                con.execute(setting).fetchall()
        except BaseException:
            con.close()
            raise
        return con

    @contextlib.contextmanager
    def _statement(self, sql: str) -> Iterator[Any]:
        """A session for one statement, noting what the statement leaves on the connection."""
        with self.session() as con:
            if _MAKES_TEMP.match(sql):
                self._temp_objects = True  # counted again when the connection would close
            try:
                yield con
            finally:
                if _ENDS.match(sql):
                    self._in_transaction = False
            if _BEGINS.match(sql):
                self._in_transaction = True
            elif _SETS.match(sql) and sql not in self._settings:
                self._settings.append(sql)

    def _release(self) -> None:
        """The end of a statement or session: a file held for a long stretch is let go now, if it can be;
        otherwise the closer thread lets it go once idle."""
        with self._cond:
            self._users -= 1
            if self._users or not self._per_use:
                return
            now = time.monotonic()
            self._idle_since = now
            if now - self._opened_at >= _TURN_S and not self._holds_state():
                self._disconnect()
                self._free_until = now + _LONGEST_RETRY_S  # a waiting process retries within this
            elif self._parked:
                self._cond.notify_all()

    def _close_when_idle(self, con: Any) -> None:
        """The closer thread of one connection: closes it after _LINGER_S without a statement (while no
        state lives on it); ends when the connection is closed, by it or anyone. It wakes on its own
        timer, not at every statement, so a statement does not pay for a thread switch."""
        with self._cond:
            while self._con is con:
                idle_for = self._idle_since + _LINGER_S - time.monotonic()
                if self._users or idle_for > 0:
                    self._cond.wait(idle_for if idle_for > 0 else _LINGER_S)
                elif self._holds_state():
                    self._parked = True
                    self._cond.wait()
                    self._parked = False
                else:
                    self._disconnect()

    def _holds_state(self) -> bool:
        """Whether the open connection holds what a new one would lose."""
        if self._in_transaction or self._handed_out:
            return True
        if self._temp_objects and self._con is not None:
            self._temp_objects = bool(self._con.execute(
                "select (select count(*) from duckdb_tables() where temporary) "
                "+ (select count(*) from duckdb_views() where temporary and not internal)").fetchall()[0][0])
        return self._temp_objects

    def _disconnect(self) -> None:
        con, self._con = self._con, None
        self._in_transaction = self._temp_objects = self._handed_out = False
        if con is not None:
            con.close()
        self._cond.notify_all()


def _columns_by_relation(relations: Sequence[Relation], rows: Sequence[tuple], by_database: bool
                         ) -> dict[Relation, dict[str, str] | None]:
    """(catalog, schema, table, column, type) rows, in column order, matched to relations as `describe`
    matches one: a relation without a schema (or database) matches any."""
    by_table: dict[str, list[tuple]] = {}
    for row in rows:
        by_table.setdefault(row[2], []).append(row)
    out: dict[Relation, dict[str, str] | None] = {}
    for relation in relations:
        columns: dict[str, str] = {}
        for catalog, schema, _, column, data_type in by_table.get(relation.identifier, ()):
            if relation.schema is not None and schema != relation.schema:
                continue
            if by_database and relation.database is not None and catalog != relation.database:
                continue
            columns[column] = data_type
        out[relation] = columns or None
    return out


def _connect_plain(path: str, read_only: bool) -> Any:
    import duckdb

    return duckdb.connect(path, read_only=read_only)


def _pg_type(t: pa.DataType) -> str:
    """Arrow type -> PostgreSQL column type, for loading spines (featurehouse.types decides)."""
    return column_type_for(t, "postgres")


class PostgresWarehouse(Warehouse):
    dialect = "postgres"

    def __init__(self, dsn: str | None = None, *, credentials: Any = None, **params: Any):
        """`credentials` (dbt-postgres's PostgresCredentials) connects the way dbt-postgres does: SSL options,
        timeouts, search_path, application_name, then SET ROLE; `params` (psycopg2's) override them."""
        import psycopg2

        role = None
        if credentials is not None:
            params = {**_pg_connect_params(credentials), **params}
            role = credentials.role
        where = dsn or f"{params.get('host')}:{params.get('port')}/{params.get('dbname')}"
        try:
            self.con = psycopg2.connect(dsn, **params) if dsn else psycopg2.connect(**params)
        except psycopg2.OperationalError as e:
            raise WarehouseUnavailable(f"cannot connect to PostgreSQL at {where}: {str(e).strip()}") from None
        self.con.autocommit = True
        try:
            with self.con.cursor() as cur:
                if role:
                    cur.execute(f"SET ROLE {role}")  # unquoted, as dbt-postgres does: same name folding
                cur.execute("SET TIME ZONE 'UTC'")
        except psycopg2.Error as e:
            self.con.close()
            raise ProjectError(f"PostgreSQL at {where}: {str(e).strip()}") from None

    def execute(self, sql, params=None):
        with self.con.cursor() as cur:
            cur.execute(sql, params)

    def fetch_arrow(self, sql, params=None):
        with self.con.cursor() as cur:
            cur.execute(sql, params)
            names = [d.name for d in cur.description]
            rows = cur.fetchall()
        columns = list(zip(*rows)) if rows else [[] for _ in names]
        return pa.table({n: pa.array(list(c)) if rows else pa.array([], pa.null()) for n, c in zip(names, columns)})

    def load_table(self, name, table, temporary=True):
        self._copy_in(None, name, table, temporary)

    def replace_table(self, schema, name, table):
        from sqlglot import exp

        self.execute(f"CREATE SCHEMA IF NOT EXISTS {exp.to_identifier(schema, quoted=True).sql('postgres')}")
        self._copy_in(schema, name, table, temporary=False)

    def _copy_in(self, schema, name, table, temporary):
        """CREATE TABLE + COPY FROM STDIN (CSV): the fast way into PostgreSQL."""
        import pyarrow.csv as pacsv
        from sqlglot import exp

        target = exp.table_(name, db=schema, quoted=True).sql("postgres")
        q = lambda s: exp.to_identifier(s, quoted=True).sql("postgres")  # noqa: E731
        cols = ", ".join(f"{q(f.name)} {_pg_type(f.type)}" for f in table.schema)
        kind = "TEMP TABLE" if temporary else "TABLE"
        with self.con.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {target} CASCADE")
            cur.execute(f"CREATE {kind} {target} ({cols})")
            buf = io.BytesIO()
            pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
            buf.seek(0)
            cur.copy_expert(f"COPY {target} FROM STDIN WITH (FORMAT csv, NULL '')", buf)

    def append_table(self, schema, name, table, id_column):
        import pyarrow.csv as pacsv
        from sqlglot import exp

        q = lambda s: exp.to_identifier(s, quoted=True).sql("postgres")  # noqa: E731
        target = exp.table_(name, db=schema, quoted=True).sql("postgres")
        cols = ", ".join(f"{q(f.name)} {_pg_type(f.type)}" for f in table.schema)
        ids = table.column(id_column).to_pylist()
        buf = io.BytesIO()
        pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
        buf.seek(0)
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {q(schema)}")
        self.execute(f"CREATE TABLE IF NOT EXISTS {target} ({cols})")
        self.con.autocommit = False
        try:
            with self.con.cursor() as cur:
                cur.execute(f"DELETE FROM {target} WHERE {q(id_column)} = ANY(%s)", (ids,))
                cur.copy_expert(f"COPY {target} ({', '.join(q(f.name) for f in table.schema)}) "
                                f"FROM STDIN WITH (FORMAT csv, NULL '')", buf)
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise
        finally:
            self.con.autocommit = True

    def column_families(self, sql):
        """Result OIDs read as type names (built-in ones from featurehouse.types, others from pg_type)."""
        with self.con.cursor() as cur:
            cur.execute(sql)
            oids = {d.name: d.type_code for d in cur.description}
            names = {oid: pg_type_name(oid) for oid in set(oids.values())}
            unknown = [oid for oid, name in names.items() if name is None]
            if unknown:
                cur.execute("select oid::int, format_type(oid, null) from pg_type where oid = any(%s)", (unknown,))
                names.update(cur.fetchall())
        return {col: family(names.get(oid), "postgres") for col, oid in oids.items()}

    def describe(self, relation):
        with self.con.cursor() as cur:
            cur.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_name = %s and (%s::text is null or table_schema = %s) order by ordinal_position",
                (relation.identifier, relation.schema, relation.schema),
            )
            return {c: t for c, t in cur.fetchall()} or None

    def describe_many(self, relations):
        names = sorted({r.identifier for r in relations})
        if not names:
            return {}
        with self.con.cursor() as cur:
            cur.execute("select table_catalog, table_schema, table_name, column_name, data_type "
                        "from information_schema.columns where table_name = any(%s) "
                        "order by table_schema, table_name, ordinal_position", (names,))
            rows = cur.fetchall()
        return _columns_by_relation(relations, rows, by_database=False)

    def describe_query(self, sql):
        with self.con.cursor() as cur:
            cur.execute("CREATE TEMPORARY VIEW fh_describe_query AS " + sql)
            try:
                cur.execute("select column_name, data_type from information_schema.columns "
                            "where table_name = 'fh_describe_query' and table_schema = pg_my_temp_schema()::regnamespace::text "
                            "order by ordinal_position")
                return {c: t for c, t in cur.fetchall()}
            finally:
                cur.execute("DROP VIEW IF EXISTS fh_describe_query")

    def close(self):
        self.con.close()


# -- Apache Spark: a local SparkSession in this process (dbt-spark's `method: session`) -------------------

# Settings of featurehouse's SparkSession; a profile's `server_side_parameters` override them. dbt-spark forces ANSI
# mode off on its session (the same session, in this process), so featurehouse's SQL runs under the same rules.
SPARK_DEFAULTS = {
    "spark.master": "local[2]",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",  # not INT96 (nanoseconds): the warehouse holds µs
    "spark.sql.ansi.enabled": "false",
}
SPARK_WAREHOUSE_DIR = "spark.sql.warehouse.dir"
SPARK_METASTORE_URL = "spark.hadoop.javax.jdo.option.ConnectionURL"
SPARK_DRIVER_JAVA_OPTIONS = "spark.driver.extraJavaOptions"  # read when the JVM starts (local mode: this process's)
# Spark's static settings: fixed when the session starts, so a running session must already have them.
_SPARK_STATIC = (SPARK_WAREHOUSE_DIR, SPARK_METASTORE_URL, "spark.sql.catalogImplementation")


def spark_conf(settings: dict[str, Any], project_dir: Path) -> dict[str, str]:
    """The SparkSession settings of a dbt-spark `method: session` target: SPARK_DEFAULTS, then the profile's
    `server_side_parameters`. Tables (parquet) and the Derby metastore live under the project's .featurehouse/
    unless the profile says where; a relative warehouse dir is the project's. Give both in the profile when dbt
    runs from its own CLI too, so it finds the same tables (Derby lets one process at a time open a metastore)."""
    conf = {**SPARK_DEFAULTS, **{str(k): str(v) for k, v in (settings.get("server_side_parameters") or {}).items()}}
    home = project_dir / ".featurehouse" / "spark"
    where = conf.get(SPARK_WAREHOUSE_DIR)
    conf[SPARK_WAREHOUSE_DIR] = _in_project(where, project_dir) if where else str(home / "warehouse")
    conf.setdefault(SPARK_METASTORE_URL, f"jdbc:derby:;databaseName={home / 'metastore_db'};create=true")
    conf.setdefault(SPARK_DRIVER_JAVA_OPTIONS, f"{derby_log_option(home)} {quiet_log_option(home)}")
    return conf


# Spark logs its warnings (metastore, Hive types, native libraries) on the console by default: between
# featurehouse's own lines they read as trouble. Errors only, and not the metastore's (a CREATE ... IF NOT EXISTS
# logs an error; a metastore held by another process logs thousands of lines, then fails as one WarehouseUnavailable),
# unless the profile sets the driver's options. The repl logger at the root's level: no banner about log levels.
_SPARK_LOG4J2 = """rootLogger.level = error
rootLogger.appenderRef.console.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.repl.name = org.apache.spark.api.python.PythonGatewayServer
logger.repl.level = error
logger.hms.name = org.apache.hadoop.hive.metastore.RetryingHMSHandler
logger.hms.level = fatal
logger.functions.name = org.apache.hadoop.hive.ql.exec.FunctionRegistry
logger.functions.level = fatal
logger.hive.name = org.apache.hadoop.hive
logger.hive.level = fatal
logger.datanucleus.name = DataNucleus
logger.datanucleus.level = fatal
"""


def quiet_log_option(directory: Path) -> str:
    """The JVM option that points log4j2 at a configuration of errors only, written into `directory`."""
    path = directory / "log4j2.properties"
    if not path.is_file() or path.read_text(encoding="utf-8") != _SPARK_LOG4J2:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(_SPARK_LOG4J2, encoding="utf-8")
    return f"-Dlog4j2.configurationFile=file:{path}"


def derby_log_option(directory: Path) -> str:
    """The JVM option that keeps Derby's derby.log in `directory` (it writes it into the working directory)."""
    return f"-Dderby.stream.error.file={directory / 'derby.log'}"


def spark_session(conf: dict[str, str]) -> Any:
    """This process's SparkSession (Hive catalog, as dbt-spark's session method makes it), started with `conf`,
    or the one already running when its static settings agree: one JVM and one session per process, shared
    with dbt-spark when dbt runs in process."""
    from pyspark.sql import SparkSession  # pyright: ignore[reportMissingImports] - the optional `spark` extra

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    running = getattr(SparkSession, "_instantiatedSession", None)  # the process's session, whichever thread made it
    if running is not None:
        for key in _SPARK_STATIC:
            want, have = conf.get(key), running.conf.get(key, None)
            if want is not None and _spark_path(want) != _spark_path(have or ""):
                raise ProjectError(f"a SparkSession already runs in this process with {key}={have}; "
                                   f"featurehouse needs {want} (a process has one Spark session: give both the same "
                                   "server_side_parameters)")
    builder: Any = SparkSession.builder.appName("featurehouse").enableHiveSupport()
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _spark_path(value: str) -> str:
    return value.removeprefix("file:").rstrip("/")


class SparkWarehouse(Warehouse):
    """Apache Spark through a SparkSession in this process (dbt-spark's `method: session`).

    Results come back as Arrow from Spark's own Arrow path (`DataFrame.toArrow()`), never row by row. Tables
    loaded from Arrow keep naive timestamps naive (Spark's TIMESTAMP_NTZ) so a spine comes back as it was
    given; Spark's TIMESTAMP is an instant (featurehouse.types reads it as timestamptz) and comes back in UTC.
    Temporary tables are temporary views of this session. `close()` leaves the session running: dbt-spark
    shares it, and a JVM takes seconds to start; `stop()` ends it."""

    dialect = "spark"

    def __init__(self, conf: dict[str, str] | None = None, *, session: Any = None):
        self.spark = session if session is not None else spark_session({**SPARK_DEFAULTS, **(conf or {})})
        self._views: set[str] = set()  # temporary views made here: drop_temporary_views() drops them
        self._scratch_dir: Any = None  # Parquet files of large loads (a tempfile.TemporaryDirectory)
        self._check_metastore()

    def _check_metastore(self) -> None:
        """Reach the metastore now: a local Derby metastore admits one process at a time, and another process
        holding it is one line (exit 3), not a Hive stack trace from the first statement that needs it."""
        try:
            self.spark.sql("SHOW DATABASES").collect()
        except Exception as e:  # noqa: BLE001 - pyspark raises its own classes, and Py4JJavaError
            text = str(e)
            held = "XSDB6" in text or "Another instance of Derby" in text
            if held or "SessionHiveMetaStoreClient" in text:  # Hive's client would not start: its cause is not in text
                where = self.spark.conf.get(SPARK_METASTORE_URL, None) or "the metastore"
                raise WarehouseUnavailable(
                    f"Spark's metastore ({where}) {'is held by another process' if held else 'cannot be opened'}: a "
                    "local Derby metastore admits one process at a time (another featurehouse or dbt command, or "
                    "`featurehouse serve` while it loads the registry); retry when it is done, or point the profile "
                    "at a shared Hive metastore") from None
            raise

    def execute(self, sql, params=None):
        self.spark.sql(sql, args=_spark_args(params)) if params else self.spark.sql(sql)

    def fetch_arrow(self, sql, params=None):
        df = self.spark.sql(sql, args=_spark_args(params)) if params else self.spark.sql(sql)
        return df.toArrow()

    def dataframe(self, table: pa.Table) -> Any:
        """An Arrow table as a Spark DataFrame; naive timestamps as TIMESTAMP_NTZ (Spark would read them
        as instants in the session's zone, UTC: the values are the same, the type would not be). A large table
        goes through a Parquet file: createDataFrame ships its rows inside Spark's tasks (1M rows exhaust a
        1 GB driver); the files live until the session's warehouse goes (stop() or the process's end)."""
        if table.num_rows > _SPARK_LOCAL_ROWS:
            import pyarrow.parquet as pq

            path = self._scratch() / f"{uuid.uuid4().hex}.parquet"
            pq.write_table(table, path)
            df = self.spark.read.parquet(str(path))
        else:
            df = self.spark.createDataFrame(table)
        naive = [f.name for f in table.schema if pa.types.is_timestamp(f.type) and f.type.tz is None]
        if naive:
            from pyspark.sql import functions as F  # pyright: ignore[reportMissingImports] - the optional `spark` extra

            df = df.withColumns({name: F.col(_backticked(name)).cast("timestamp_ntz") for name in naive})
        return df

    def load_table(self, name, table, temporary=True):
        df = self.dataframe(table)
        if temporary:
            df.createOrReplaceTempView(_backticked(name))
            self._views.add(name)
        else:
            df.write.mode("overwrite").saveAsTable(_backticked(name))

    def replace_table(self, schema, name, table):
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {_backticked(schema)}")
        self.dataframe(table).write.mode("overwrite").saveAsTable(f"{_backticked(schema)}.{_backticked(name)}")

    def append_table(self, schema, name, table, id_column):
        """Parquet tables have no DELETE: the kept rows and the new ones are written to a new table that then
        takes the old one's place. Not atomic (a crash between the two leaves `name__fh_new` beside it)."""
        target = f"{_backticked(schema)}.{_backticked(name)}"
        incoming = self.dataframe(table)
        if self.describe(Relation(None, schema, name)) is None:
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {_backticked(schema)}")
            incoming.write.saveAsTable(target)
            return
        kept = self.spark.table(target).join(incoming.select(id_column).distinct(), on=id_column, how="left_anti")
        self._swap_in(schema, name, kept.unionByName(incoming, allowMissingColumns=True))

    def execute_dml(self, statement, params=()):
        """Parquet tables have no UPDATE or DELETE: the table's new rows are computed from the old ones by a
        query and written in its place (append_table's swap). Small tables only (featurehouse's own)."""
        from sqlglot import exp

        if not isinstance(statement, (exp.Update, exp.Delete)):
            return super().execute_dml(statement, params)
        table: exp.Table = statement.this
        hit = exp.func("coalesce", exp.paren(statement.args["where"].this.copy()), exp.false()) \
            if statement.args.get("where") else exp.true()
        if isinstance(statement, exp.Delete):
            query = exp.select(exp.Star()).from_(table.copy()).where(exp.not_(hit))
            return self._rewrite(table, query, list(params))
        columns = self.describe(Relation(None, table.db, table.name)) or {}
        sets, taken = {}, 0  # column -> (its new value, the parameters its placeholders take)
        for assignment in statement.expressions:
            n = len(list(assignment.expression.find_all(exp.Placeholder)))
            sets[assignment.this.name] = (assignment.expression, list(params[taken:taken + n]))
            taken += n
        outputs, ordered = [], []
        for name, type_ in columns.items():
            column = exp.column(name, quoted=True)
            if name in sets:
                value, value_params = sets[name]
                column = exp.cast(exp.If(this=exp.column("__fh_hit"), true=value.copy(), false=column),
                                  exp.DataType.build(type_, dialect="spark"))
                ordered += value_params
            outputs.append(column.as_(name, quoted=True) if name in sets else column)
        marked = exp.select(exp.Star(), hit.as_("__fh_hit")).from_(table.copy()).subquery("__fh_t")
        self._rewrite(table, exp.select(*outputs).from_(marked), [*ordered, *params[taken:]])

    def _rewrite(self, table: Any, query: Any, params: list[Any]) -> None:
        df = self.spark.sql(query.sql("spark"), args=_spark_args(tuple(params))) if params \
            else self.spark.sql(query.sql("spark"))
        self._swap_in(table.db, table.name, df)

    def _swap_in(self, schema: str, name: str, df: Any) -> None:
        """Write `df` as schema.name__fh_new, then put it in schema.name's place. Not atomic: a crash between
        the drop and the rename leaves the rows in `name__fh_new` (Delta or Iceberg tables would be)."""
        target = f"{_backticked(schema)}.{_backticked(name)}"
        staged = f"{_backticked(schema)}.{_backticked(name + '__fh_new')}"
        df.write.mode("overwrite").saveAsTable(staged)
        self.execute(f"DROP TABLE {target}")
        self.execute(f"ALTER TABLE {staged} RENAME TO {target}")

    @contextlib.contextmanager
    def transaction(self):
        """Spark has no transactions over statements: each statement inside stands alone."""
        yield

    def ensure_table(self, schema, name, columns):
        """As Warehouse.ensure_table, in Spark's words: a naive TIMESTAMP is TIMESTAMP_NTZ, columns are added
        with ADD COLUMNS."""
        from sqlglot import exp

        def spelled(t: str) -> str:
            built = exp.DataType.build(t)
            return "TIMESTAMP_NTZ" if built.this == exp.DataType.Type.TIMESTAMP else built.sql("spark")

        table = f"{_backticked(schema)}.{_backticked(name)}"
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {_backticked(schema)}")
        self.execute(f"CREATE TABLE IF NOT EXISTS {table} "
                     f"({', '.join(f'{_backticked(c)} {spelled(t)}' for c, t in columns)}) USING parquet")
        existing = self.describe(Relation(None, schema, name)) or {}
        missing = [(c, t) for c, t in columns if c not in existing]
        if missing:
            self.execute(f"ALTER TABLE {table} ADD COLUMNS ({', '.join(f'{_backticked(c)} {spelled(t)}' for c, t in missing)})")
        return table

    def column_families(self, sql):
        """From the analysed plan's schema: nothing runs."""
        return {f.name: family(f.dataType.simpleString(), "spark") for f in self.spark.sql(sql).schema.fields}

    def describe(self, relation):
        from pyspark.errors import AnalysisException  # pyright: ignore[reportMissingImports] - the optional `spark` extra

        try:
            schema = self.spark.table(self.relation_sql(relation)).schema
        except AnalysisException as e:
            if (e.getCondition() or "") in ("TABLE_OR_VIEW_NOT_FOUND", "SCHEMA_NOT_FOUND"):
                return None
            raise
        return {f.name: f.dataType.simpleString() for f in schema.fields}

    def describe_query(self, sql):
        return {f.name: f.dataType.simpleString() for f in self.spark.sql(sql).schema.fields}

    def relation_sql(self, relation):
        """`schema`.`identifier`: dbt-spark's relations have no database part."""
        parts = [p for p in (relation.schema, relation.identifier) if p]
        return ".".join(_backticked(p) for p in parts)

    def create_numbered(self, name, source, row_id):
        """A temporary view with a unique `row_id` in the source's order, computed once (checkpointed in this
        session: a view re-reads its query at every use, and Spark's row_number() needs an ORDER BY)."""
        from pyspark.sql import functions as F  # pyright: ignore[reportMissingImports] - the optional `spark` extra
        from sqlglot import exp

        query = exp.select(exp.Star()).from_(source).sql("spark")
        df = self.spark.sql(query).withColumn(row_id, F.monotonically_increasing_id())
        df.localCheckpoint(eager=True).createOrReplaceTempView(_backticked(name))
        self._views.add(name)

    def drop_temporary_views(self) -> None:
        """Drop the temporary views made through this warehouse (without asking the metastore)."""
        while self._views:
            self.spark.catalog.dropTempView(self._views.pop())

    def _scratch(self) -> Path:
        """A directory of this warehouse's own beside the session's tables, removed when it is collected."""
        if self._scratch_dir is None:
            import tempfile

            root = Path(_spark_path(self.spark.conf.get(SPARK_WAREHOUSE_DIR)))
            root.mkdir(parents=True, exist_ok=True)
            self._scratch_dir = tempfile.TemporaryDirectory(prefix="featurehouse-loads-", dir=root)
        return Path(self._scratch_dir.name)

    def stop(self) -> None:
        """End the SparkSession (and its JVM): for the end of a process, not for `close()`."""
        self.spark.stop()
        if self._scratch_dir is not None:
            self._scratch_dir.cleanup()


_SPARK_LOCAL_ROWS = 100_000  # larger Arrow loads go through Parquet (SparkWarehouse.dataframe)


def _spark_args(params: tuple) -> list[Any]:
    """Parameters for `?` markers. A naive datetime is UTC by featurehouse's convention; pyspark would read it in
    the Python process's local time zone, so it is given the UTC zone first."""
    from datetime import timezone

    return [p.replace(tzinfo=timezone.utc) if isinstance(p, datetime) and p.tzinfo is None else p for p in params]


def _backticked(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def warehouse_for_target(target_type: str, settings: dict[str, Any], project_dir: Path) -> Warehouse:
    """Open the warehouse a dbt profile target points at, with the credentials dbt's adapter resolves from
    the same settings, so the connection is configured as dbt's own (attachments, SSL, search_path...)."""
    if target_type == "duckdb":
        return DuckDBWarehouse(credentials=_duckdb_credentials(settings, project_dir), files_from=project_dir.resolve())
    if target_type in ("postgres", "postgresql"):
        from featurehouse.project import adapter_credentials

        return PostgresWarehouse(credentials=adapter_credentials({**settings, "type": "postgres"}, target_name=target_type,
                                                                 where=f"{target_type} target"))
    if target_type == "spark":
        method = str(settings.get("method", "")).lower()
        if method != "session":
            raise ProjectError(f"spark target: method '{method}' is not supported yet; set `method: session` "
                               "(a local SparkSession in this process; thrift and other methods are not supported yet)")
        (project_dir / ".featurehouse" / "spark").mkdir(parents=True, exist_ok=True)  # Derby's log, by default its tables
        return SparkWarehouse(spark_conf(settings, project_dir))
    raise ProjectError(f"warehouse type '{target_type}' is not supported yet (supported: duckdb, postgres, spark)")


def _duckdb_credentials(settings: dict[str, Any], project_dir: Path) -> Any:
    """dbt-duckdb's credentials for a target, with the local files it names made absolute: dbt runs with the
    project dir as cwd (see DbtProject.run_dbt), this process may not."""
    from featurehouse.project import adapter_credentials

    local = dict(settings, type="duckdb")
    local["path"] = _in_project(str(local.get("path", ":memory:")), project_dir)
    if local.get("attach"):
        local["attach"] = [_attachment_in_project(a, project_dir) for a in local["attach"]]
    if local.get("module_paths"):
        local["module_paths"] = [_in_project(str(m), project_dir) for m in local["module_paths"]]
    if _is_local_file(local["path"]):
        Path(local["path"]).parent.mkdir(parents=True, exist_ok=True)
    return adapter_credentials(local, target_name="duckdb", where="duckdb target")


def _is_local_file(path: str) -> bool:
    """A DuckDB path names a local file unless it is :memory: or a URL (md:, s3://, ducklake:...)."""
    from urllib.parse import urlparse

    return not path.startswith(":memory:") and (os.path.isabs(path) or not urlparse(path).scheme)


def _in_project(path: str, project_dir: Path) -> str:
    return str(project_dir / path) if _is_local_file(path) and not os.path.isabs(path) else path


def _attachment_in_project(attachment: Any, project_dir: Path) -> Any:
    """An `attach` entry with a relative file path made absolute; only DuckDB and SQLite attachments name
    files (a postgres attachment's path is a connection string)."""
    if not isinstance(attachment, dict) or "path" not in attachment:
        return attachment
    kind = attachment.get("type") or (attachment.get("options") or {}).get("type") or "duckdb"
    if str(kind).lower() not in ("duckdb", "sqlite"):
        return attachment
    return {**attachment, "path": _in_project(str(attachment["path"]), project_dir)}


def _dbt_duckdb_opener(credentials: Any, read_only: bool) -> Callable[[], Any]:
    """Opens connections the way dbt-duckdb does (`_open_like_dbt_duckdb`); the credentials are adapted
    and the profile's plugins made once, here, not at every connection."""
    ours = _for_our_connection(credentials, read_only)
    return functools.partial(_open_like_dbt_duckdb, ours, _duckdb_plugins(ours))


def _open_like_dbt_duckdb(credentials: Any, plugins: dict[str, Any]) -> Any:
    """A plain duckdb connection opened by dbt-duckdb's own code (Environment.initialize_db, then
    initialize_cursor for the settings): config_options, extensions, secrets, filesystems, plugins, attach,
    settings, in dbt-duckdb's order. The connection is ours to use and close. A file another process
    holds raises DuckDB's own error, for LockWait to wait on."""
    import duckdb
    from dbt.adapters.duckdb.environments import Environment
    from dbt_common.exceptions import DbtBaseException

    try:
        con = Environment.initialize_db(credentials, plugins)
    except (duckdb.Error, DbtBaseException, ImportError) as e:
        if lock_conflict(e) is not None:
            raise
        # I/O (a file, a download, a remote database) may work later; a rejected option or plugin will not
        unavailable = isinstance(e, (duckdb.IOException, duckdb.HTTPException, duckdb.ConnectionException))
        raise (WarehouseUnavailable if unavailable else ProjectError)(
            f"cannot open DuckDB at {credentials.path}: {' '.join(str(e).split())}") from None
    try:
        Environment.initialize_cursor(credentials, con, plugins)
    except (duckdb.Error, DbtBaseException) as e:
        con.close()
        raise ProjectError(f"DuckDB at {credentials.path}: profile `settings` rejected: {' '.join(str(e).split())}") from None
    return con


def _for_our_connection(credentials: Any, read_only: bool) -> Any:
    """A shallow copy of the credentials (the caller's stay untouched) adapted to this connection: read-only
    if asked, and without the extensions compiled into this duckdb, which are loaded already but which
    DuckDB 2 would still try to download on INSTALL (and fail to, offline)."""
    import copy

    ours = copy.copy(credentials)  # copy, not dataclasses.replace: __post_init__ must not run twice
    if read_only:
        ours.config_options = {**(credentials.config_options or {}), "access_mode": "READ_ONLY"}
    if credentials.extensions:
        bundled = _bundled_extensions()
        ours.extensions = [e for e in credentials.extensions if not (isinstance(e, str) and e.lower() in bundled)]
    return ours


def _bundled_extensions() -> set[str]:
    """The extensions statically linked into this duckdb build."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        rows = con.execute("select extension_name from duckdb_extensions() "
                           "where install_mode = 'STATICALLY_LINKED' and loaded").fetchall()
    finally:
        con.close()
    return {name.lower() for (name,) in rows}


def _duckdb_plugins(credentials: Any) -> dict[str, Any]:
    """dbt-duckdb's plugins of the profile, created by dbt-duckdb (Environment.initialize_plugins); its
    `module_paths` are importable while they are created, as they are during a dbt run."""
    import sys

    from dbt.adapters.duckdb.environments import Environment

    added = [p for p in credentials.module_paths or [] if p not in sys.path]
    sys.path.extend(added)
    try:
        return Environment.initialize_plugins(credentials)
    except ImportError as e:
        raise ProjectError(f"a dbt-duckdb plugin of the profile cannot be loaded: {e}") from None
    finally:
        for p in added:
            sys.path.remove(p)


def _pg_connect_params(credentials: Any) -> dict[str, Any]:
    """psycopg2.connect arguments from dbt-postgres's credentials, mapped as its PostgresConnectionManager.open
    maps them (keepalives_idle 0, "the default", is left out, as libpq would pass it on to setsockopt;
    spaces in search_path are escaped)."""
    params: dict[str, Any] = {
        "host": credentials.host, "port": credentials.port, "user": credentials.user,
        "password": credentials.password or None, "dbname": credentials.database,
        "connect_timeout": credentials.connect_timeout,
    }
    if credentials.keepalives_idle:
        params["keepalives_idle"] = credentials.keepalives_idle
    if credentials.search_path:
        params["options"] = "-c search_path={}".format(credentials.search_path.replace(" ", "\\ "))
    for key in ("sslmode", "sslcert", "sslkey", "sslrootcert", "application_name"):
        if getattr(credentials, key, None):
            params[key] = getattr(credentials, key)
    return params
