"""Connections to the offline store (the dbt warehouse): run generated SQL, load spines, fetch Arrow.

Queries go through the engines' native drivers rather than dbt's adapter: dbt adapters return
agate tables row by row, far too slow for million-row training sets.
"""

from __future__ import annotations

import io
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from featurehouse import clock
from featurehouse.errors import ProjectError, WarehouseUnavailable
from featurehouse.registry.model import Relation
from featurehouse.types import Family, column_type_for, family, from_arrow, pg_type_name

utc_now = clock.utc_now  # now as naive UTC, the warehouse's convention for timestamps


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

    def column_families(self, sql: str) -> dict[str, Family]:
        """Column name -> what each column of a query's result holds (featurehouse.types.Family)."""
        return {f.name: from_arrow(f.type).family for f in self.fetch_arrow(sql).schema}

    def describe(self, relation: Relation) -> dict[str, str] | None:
        raise NotImplementedError

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

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"

    def __init__(self, path: str | os.PathLike = ":memory:", read_only: bool = False, threads: int | None = None,
                 *, credentials: Any = None):
        """`credentials` (dbt-duckdb's DuckDBCredentials, with an absolute path) opens the database the way
        dbt-duckdb opens its own, so models that read attached databases, extensions or settings read the same
        here; it replaces `path`. The session is always in UTC, the warehouse's convention."""
        import duckdb

        if credentials is None:
            self.path = str(path)
            self.con = duckdb.connect(self.path, read_only=read_only)
        else:
            self.path = str(credentials.path)
            self.con = _open_like_dbt_duckdb(credentials, read_only)
        self.execute("SET TimeZone = 'UTC'")
        if threads:
            self.execute(f"SET threads = {int(threads)}")
        self.catalog = self.con.execute("select current_database()").fetchall()[0][0]

    def execute(self, sql, params=None):
        # DuckDB 2 keeps a result open until it is read; read it so the connection is free again.
        (self.con.execute(sql, params) if params else self.con.execute(sql)).fetchall()

    def fetch_arrow(self, sql, params=None):
        return self.con.sql(sql, params=params).to_arrow_table() if params else self.con.sql(sql).to_arrow_table()

    def load_table(self, name, table, temporary=True):
        from sqlglot import exp

        ident = exp.to_identifier(name, quoted=True).sql("duckdb")
        self.con.register("__fh_load", table)
        try:
            kind = "TEMP TABLE" if temporary else "TABLE"
            self.execute(f"CREATE OR REPLACE {kind} {ident} AS SELECT * FROM __fh_load")
        finally:
            self.con.unregister("__fh_load")

    def replace_table(self, schema, name, table):
        from sqlglot import exp

        target = exp.table_(name, db=schema, quoted=True).sql("duckdb")
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {exp.to_identifier(schema, quoted=True).sql('duckdb')}")
        self.con.register("__fh_load", table)
        try:
            self.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM __fh_load")
        finally:
            self.con.unregister("__fh_load")

    def append_table(self, schema, name, table, id_column):
        from sqlglot import exp

        target = exp.table_(name, db=schema, quoted=True).sql("duckdb")
        ident = exp.to_identifier(id_column, quoted=True).sql("duckdb")
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {exp.to_identifier(schema, quoted=True).sql('duckdb')}")
        self.con.register("__fh_append", table)
        try:
            self.execute(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM __fh_append WHERE false")
            self.execute("BEGIN")
            self.execute(f"DELETE FROM {target} WHERE {ident} IN (SELECT {ident} FROM __fh_append)")
            self.execute(f"INSERT INTO {target} BY NAME SELECT * FROM __fh_append")
            self.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        finally:
            self.con.unregister("__fh_append")

    def describe(self, relation):
        rows = self.con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_name = ? and (? is null or table_schema = ?) and (? is null or table_catalog = ?) "
            "order by ordinal_position",
            [relation.identifier, relation.schema, relation.schema, relation.database, relation.database],
        ).fetchall()
        return {c: t for c, t in rows} or None

    def describe_query(self, sql):
        return {row[0]: row[1] for row in self.con.execute(f"DESCRIBE ({sql})").fetchall()}

    def close(self):
        self.con.close()


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


def warehouse_for_target(target_type: str, settings: dict[str, Any], project_dir: Path) -> Warehouse:
    """Open the warehouse a dbt profile target points at, with the credentials dbt's adapter resolves from
    the same settings, so the connection is configured as dbt's own (attachments, SSL, search_path...)."""
    if target_type == "duckdb":
        return DuckDBWarehouse(credentials=_duckdb_credentials(settings, project_dir))
    if target_type in ("postgres", "postgresql"):
        from featurehouse.project import adapter_credentials

        return PostgresWarehouse(credentials=adapter_credentials({**settings, "type": "postgres"}, target_name=target_type,
                                                                 where=f"{target_type} target"))
    raise ProjectError(f"warehouse type '{target_type}' is not supported yet (supported: duckdb, postgres)")


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


def _open_like_dbt_duckdb(credentials: Any, read_only: bool) -> Any:
    """A plain duckdb connection opened by dbt-duckdb's own code (Environment.initialize_db, then
    initialize_cursor for the settings): config_options, extensions, secrets, filesystems, plugins, attach,
    settings, in dbt-duckdb's order. The connection is ours to use and close."""
    import duckdb
    from dbt.adapters.duckdb.environments import Environment
    from dbt_common.exceptions import DbtBaseException

    credentials = _for_our_connection(credentials, read_only)
    plugins = _duckdb_plugins(credentials)
    try:
        con = Environment.initialize_db(credentials, plugins)
    except (duckdb.Error, DbtBaseException, ImportError) as e:
        raise WarehouseUnavailable(f"cannot open DuckDB at {credentials.path}: {' '.join(str(e).split())}") from None
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
