"""Spines: the rows a training set is built for (entity keys, an as-of timestamp, labels).

A spine arrives as a DataFrame, an Arrow table, a Parquet/CSV path, a warehouse relation or SQL;
each becomes a table in the warehouse with a row id, so order and duplicates survive the join.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from featurehouse.errors import InvalidSpine
from featurehouse.offline.point_in_time import ROW_ID
from featurehouse.offline.warehouse import Warehouse
from featurehouse.types import Family, from_arrow

# An as-of column is a timestamp (with or without a zone) or a date, read as its midnight.
_POINTS_IN_TIME = (Family.TIMESTAMP, Family.DATE)
_SQL_START = re.compile(r"^\s*(select|with|from|values|\()", re.IGNORECASE)


@dataclass(frozen=True)
class LoadedSpine:
    """A spine in the warehouse: the table to read it from and its columns with their types."""

    table: str
    columns: dict[str, Family]  # name -> what the column holds (featurehouse.types.Family)
    rows: int | None


def load_spine(warehouse: Warehouse, spine: Any, timestamp: str) -> LoadedSpine:
    name = f"__fh_spine_input_{uuid.uuid4().hex[:12]}"
    if isinstance(spine, Path) or (isinstance(spine, str) and _is_file(spine)):  # a Path is always a file spine
        path = Path(spine)
        if warehouse.dialect == "duckdb" and path.suffix.lower() in (".parquet", ".pq") and path.is_file():
            return _load_parquet_in_duckdb(warehouse, name, path, timestamp)
        table = _read_file(path)
    elif isinstance(spine, str):
        return _load_sql(warehouse, name, spine, timestamp)
    elif isinstance(spine, pa.Table):
        table = spine
    elif hasattr(spine, "to_arrow") and not hasattr(spine, "columns"):
        table = spine.to_arrow()
    else:
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover
            pd = None
        if pd is None or not isinstance(spine, pd.DataFrame):
            raise InvalidSpine("spine must be a DataFrame, Arrow table, Parquet/CSV path, relation or SQL; "
                               f"got {type(spine).__name__}")
        _no_duplicates([str(c) for c in spine.columns])
        table = pa.Table.from_pandas(spine, preserve_index=False)
    table = _normalise(table, timestamp)
    table = table.append_column(ROW_ID, pa.array(range(table.num_rows), pa.int64()))
    warehouse.load_table(name, table)
    return LoadedSpine(name, {f.name: from_arrow(f.type).family for f in table.schema if f.name != ROW_ID},
                       table.num_rows)


def _is_file(spine: str | Path) -> bool:
    text = str(spine)
    return isinstance(spine, Path) or text.lower().endswith((".parquet", ".pq", ".csv")) and not _SQL_START.match(text)


def _read_file(path: Path) -> pa.Table:
    if not path.is_file():
        raise InvalidSpine(f"spine file {path} does not exist")
    try:
        if path.suffix.lower() == ".csv":
            import pyarrow.csv as pacsv

            return pacsv.read_csv(path)
        import pyarrow.parquet as pq

        return pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise InvalidSpine(f"spine file {path} cannot be read: {' '.join(str(e).split())[:300]}") from None


def _no_duplicates(names: list[str]) -> None:
    """Two columns of one name: one would be dropped or renamed without a word."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidSpine(f"spine has two columns named '{name}'; rename one")
        seen.add(name)


def _normalise(table: pa.Table, timestamp: str) -> pa.Table:
    """As-of timestamps become naive UTC with microseconds; dates become midnight."""
    _no_duplicates(table.column_names)
    if ROW_ID in table.column_names:
        raise InvalidSpine(f"spine column '{ROW_ID}' is reserved by featurehouse; rename it")
    if timestamp not in table.column_names:
        raise InvalidSpine(f"spine has no timestamp column '{timestamp}' (columns: {', '.join(table.column_names)})")
    columns = []
    for f, col in zip(table.schema, table.columns):
        t = f.type
        if pa.types.is_timestamp(t):
            if t.tz is not None:
                col = col.cast(pa.timestamp(t.unit))  # Arrow keeps instants in UTC: this drops the zone only
            if t.unit == "ns":
                col = pc.cast(col, pa.timestamp("us"), safe=False)
        elif f.name == timestamp and pa.types.is_date(t):
            col = pc.cast(col, pa.timestamp("us"))
        columns.append(col)
    table = pa.table(columns, names=table.column_names)
    ts_type = table.schema.field(timestamp).type
    if not pa.types.is_timestamp(ts_type):
        raise InvalidSpine(f"spine column '{timestamp}' has type {from_arrow(ts_type).family.value} ({ts_type}), "
                           "expected a timestamp")
    return table


def _load_parquet_in_duckdb(warehouse: Warehouse, name: str, path: Path, timestamp: str) -> LoadedSpine:
    """DuckDB reads the file itself: no copy through Python; the file's row number keeps the order."""
    source = f"read_parquet({exp.Literal.string(str(path)).sql('duckdb')}, file_row_number = true)"
    try:
        described = warehouse.fetch_arrow(f"DESCRIBE SELECT * FROM {source}").to_pylist()
    except Exception as e:  # noqa: BLE001 - DuckDB's own words say what is wrong with the file
        raise InvalidSpine(f"spine file {path} cannot be read: {' '.join(str(e).split())[:300]}") from None
    _no_duplicates([r["column_name"] for r in described])
    types = {r["column_name"]: r["column_type"].upper() for r in described if r["column_name"] != "file_row_number"}
    if ROW_ID in types:
        raise InvalidSpine(f"spine column '{ROW_ID}' is reserved by featurehouse; rename it")
    if timestamp not in types:
        raise InvalidSpine(f"spine has no timestamp column '{timestamp}' (columns: {', '.join(types)})")
    select = []
    for col, dtype in types.items():
        ident = exp.column(col, quoted=True)
        # UTC microseconds, as for every other spine (the session time zone is UTC)
        if dtype.startswith("TIMESTAMP") and dtype != "TIMESTAMP" or (col == timestamp and dtype == "DATE"):
            ident = exp.cast(ident, "TIMESTAMP").as_(col, quoted=True)
        select.append(ident)
    query = exp.select(*select, exp.column("file_row_number").as_(ROW_ID)).from_(source)
    table = exp.to_identifier(name, quoted=True).sql("duckdb")
    warehouse.execute(f"CREATE TEMP TABLE {table} AS {query.sql('duckdb')}")
    columns = warehouse.column_families(f"SELECT * FROM {table} LIMIT 0")
    columns.pop(ROW_ID, None)
    if columns[timestamp] not in _POINTS_IN_TIME:
        raise InvalidSpine(f"spine column '{timestamp}' has type {types[timestamp]}, expected a timestamp")
    return LoadedSpine(name, columns, None)


def _load_sql(warehouse: Warehouse, name: str, spine: str, timestamp: str) -> LoadedSpine:
    """A relation name or a SELECT, materialised in the warehouse with a row id."""
    if _SQL_START.match(spine):
        import sqlglot
        from sqlglot.errors import SqlglotError

        try:
            statements = [s for s in sqlglot.parse(spine, read=warehouse.dialect) if s is not None]
        except SqlglotError as e:  # a parse or a tokenizer error (an unterminated quote)
            raise InvalidSpine(f"spine SQL does not parse: {str(e).splitlines()[0]}") from None
        if len(statements) != 1:
            raise InvalidSpine(f"spine SQL must be one query, got {len(statements)} statements")
        parsed = statements[0]
        if not isinstance(parsed, exp.Query):  # a bare VALUES list
            raise InvalidSpine("spine SQL must be a query (SELECT, WITH or FROM ...); "
                               "write a VALUES list as SELECT * FROM (VALUES ...) AS t(column, ...)")
        _no_duplicates(list(parsed.named_selects))
        source = parsed.subquery("__fh_src")
    else:
        from sqlglot.errors import SqlglotError

        try:
            source = exp.to_table(spine, dialect=warehouse.dialect)
        except SqlglotError as e:
            raise InvalidSpine(f"spine {spine!r} is neither a query nor a table name: "
                               f"{str(e).splitlines()[0]}") from None
    ident = exp.to_identifier(name, quoted=True)
    try:
        warehouse.create_numbered(name, source, ROW_ID)
    except Exception as e:  # the engine's own message names the missing relation or column
        raise InvalidSpine(f"spine {spine!r} cannot be read: {str(e).strip().splitlines()[0]}") from None
    columns = warehouse.column_families(f"SELECT * FROM {ident.sql(warehouse.dialect)} LIMIT 0")
    columns.pop(ROW_ID, None)
    if timestamp not in columns:
        raise InvalidSpine(f"spine has no timestamp column '{timestamp}' (columns: {', '.join(columns)})")
    if columns[timestamp] not in _POINTS_IN_TIME:
        raise InvalidSpine(f"spine column '{timestamp}' is not a timestamp")
    return LoadedSpine(name, columns, None)
