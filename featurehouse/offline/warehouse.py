"""Connections to the offline store (the dbt warehouse): run generated SQL, load spines, fetch Arrow.

Queries go through the engines' native drivers rather than dbt's adapter: dbt adapters return
agate tables row by row, far too slow for million-row training sets.
"""

from __future__ import annotations

import io
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from featurehouse.errors import ProjectError
from featurehouse.registry.model import Relation


def utc_now() -> datetime:
    """Now as naive UTC, the warehouse's convention for timestamps."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


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

    def fetch_arrow(self, sql: str) -> pa.Table:
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

    def column_families(self, sql: str) -> dict[str, str]:
        """Column name -> 'timestamp' | 'string' | 'integer' | 'float' | 'other' of a query's result."""
        from featurehouse.offline.spine import family

        return {f.name: family(f.type) for f in self.fetch_arrow(sql).schema}

    def describe(self, relation: Relation) -> dict[str, str] | None:
        raise NotImplementedError

    def describe_query(self, sql: str) -> dict[str, str]:
        """Column -> type of what a query would return, in the same type names `describe` gives,
        without running it to completion (the schema gate checks SQL that is not built yet)."""
        raise NotImplementedError

    def ensure_table(self, schema: str, name: str, columns: list[tuple[str, str]]) -> str:
        """Create schema.name with these (column, type) pairs if missing; returns its quoted name."""
        from sqlglot import exp

        d = self.dialect
        table = exp.table_(name, db=schema, quoted=True).sql(d)
        cols = ", ".join(f"{exp.to_identifier(c, quoted=True).sql(d)} {t}" for c, t in columns)
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {exp.to_identifier(schema, quoted=True).sql(d)}")
        self.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")
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

    def __init__(self, path: str | os.PathLike = ":memory:", read_only: bool = False, threads: int | None = None):
        import duckdb

        self.path = str(path)
        self.con = duckdb.connect(self.path, read_only=read_only)
        self.execute("SET TimeZone = 'UTC'")
        if threads:
            self.execute(f"SET threads = {int(threads)}")
        self.catalog = self.con.execute("select current_database()").fetchall()[0][0]

    def execute(self, sql, params=None):
        # DuckDB 2 keeps a result open until it is read; read it so the connection is free again.
        (self.con.execute(sql, params) if params else self.con.execute(sql)).fetchall()

    def fetch_arrow(self, sql):
        return self.con.sql(sql).to_arrow_table()

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


# Arrow type -> PostgreSQL column type, for loading spines.
def _pg_type(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "bigint"
    if pa.types.is_floating(t):
        return "double precision"
    if pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_date(t):
        return "date"
    return "text"


class PostgresWarehouse(Warehouse):
    dialect = "postgres"

    def __init__(self, dsn: str | None = None, **params: Any):
        import psycopg2

        try:
            self.con = psycopg2.connect(dsn, **params) if dsn else psycopg2.connect(**params)
        except psycopg2.OperationalError as e:
            where = dsn or f"{params.get('host')}:{params.get('port')}/{params.get('dbname')}"
            raise ProjectError(f"cannot connect to PostgreSQL at {where}: {str(e).strip()}") from None
        self.con.autocommit = True
        with self.con.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")

    def execute(self, sql, params=None):
        with self.con.cursor() as cur:
            cur.execute(sql, params)

    def fetch_arrow(self, sql):
        with self.con.cursor() as cur:
            cur.execute(sql)
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
        from sqlglot import exp
        import pyarrow.csv as pacsv

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
        from sqlglot import exp
        import pyarrow.csv as pacsv

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

    _OID_FAMILY = {1114: "timestamp", 1184: "timestamp", 1082: "timestamp", 25: "string", 1043: "string",
                   1042: "string", 20: "integer", 21: "integer", 23: "integer", 700: "float", 701: "float",
                   1700: "float"}

    def column_families(self, sql):
        with self.con.cursor() as cur:
            cur.execute(sql)
            return {d.name: self._OID_FAMILY.get(d.type_code, "other") for d in cur.description}

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
    """Open the warehouse a dbt profile target points at."""
    if target_type == "duckdb":
        path = str(settings.get("path", ":memory:"))
        if path != ":memory:" and not os.path.isabs(path) and not path.startswith("md:"):
            path = str(project_dir / path)  # dbt runs with the project dir as cwd (see DbtProject.run_dbt)
        if path != ":memory:" and not path.startswith("md:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return DuckDBWarehouse(path)
    if target_type in ("postgres", "postgresql"):
        return PostgresWarehouse(
            host=settings.get("host", "127.0.0.1"),
            port=int(settings.get("port", 5432)),
            user=settings.get("user"),
            password=settings.get("password") or settings.get("pass") or None,
            dbname=settings.get("dbname") or settings.get("database"),
        )
    raise ProjectError(f"warehouse type '{target_type}' is not supported yet (supported: duckdb, postgres)")
