"""One home for featurehouse's own warehouse tables: made, read and written here, by table spec.

Identifiers are quoted by sqlglot and values travel as driver parameters, never pasted into SQL.
The schema is the project's `vars.featurehouse.schema` (default `featurehouse`): the dbt macros read
the same variable, so both find the version log and stream landing tables in one place.
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping, Protocol, Sequence

import pyarrow as pa
from sqlglot import exp

from featurehouse.catalog.tables import DEFAULT_SCHEMA, TableSpec
from featurehouse.registry.model import Relation


class CatalogWarehouse(Protocol):
    """What the catalog needs of a warehouse connection (featurehouse.offline.warehouse.Warehouse)."""

    dialect: str

    def execute(self, sql: str, params: tuple | None = None) -> None: ...

    def fetch_arrow(self, sql: str, params: tuple | None = None) -> pa.Table: ...

    def describe(self, relation: Relation) -> dict[str, str] | None: ...

    def ensure_table(self, schema: str, name: str, columns: list[tuple[str, str]]) -> str: ...

    def append_table(self, schema: str, name: str, table: pa.Table, id_column: str) -> None: ...

    def execute_dml(self, statement: Any, params: Sequence[Any] = ()) -> None: ...

    def transaction(self) -> contextlib.AbstractContextManager[None]: ...


Where = Mapping[str, Any]  # column -> value (None: IS NULL), all of them must hold


class Catalog:
    def __init__(self, warehouse: CatalogWarehouse, schema: str = DEFAULT_SCHEMA):
        self.warehouse, self.schema = warehouse, schema or DEFAULT_SCHEMA
        self._made: dict[str, str] = {}

    @property
    def dialect(self) -> str:
        return self.warehouse.dialect

    def relation(self, spec: TableSpec | str) -> Relation:
        return Relation(None, self.schema, spec if isinstance(spec, str) else spec.name)

    def table(self, spec: TableSpec) -> str:
        """The table's quoted name, made (or given the columns added since) on first use."""
        if spec.name not in self._made:
            self._made[spec.name] = self.warehouse.ensure_table(self.schema, spec.name, list(spec.columns))
        return self._made[spec.name]

    def _table(self, spec: TableSpec) -> exp.Table:
        self.table(spec)
        return exp.table_(spec.name, db=self.schema, quoted=True)

    def exists(self, spec: TableSpec) -> bool:
        """Whether the table is there, without making it (read paths on a fresh warehouse)."""
        return spec.name in self._made or bool(self.warehouse.describe(self.relation(spec)))

    def insert(self, spec: TableSpec, row: Mapping[str, Any]) -> None:
        unknown = sorted(set(row) - set(spec.column_names))
        if unknown:
            raise ValueError(f"{spec.name} has no column {unknown[0]!r}")
        names = list(row)
        insert = exp.insert(exp.values([tuple(exp.Placeholder() for _ in names)]), self._table(spec),
                            columns=[exp.to_identifier(n, quoted=True) for n in names])
        self.warehouse.execute(insert.sql(self.dialect), tuple(row[n] for n in names))

    def update(self, spec: TableSpec, values: Mapping[str, Any], where: Where) -> None:
        cond, params = self._condition(where)
        sets = [exp.EQ(this=exp.column(n, quoted=True), expression=exp.Placeholder()) for n in values]
        update = exp.update(self._table(spec), {}, where=cond)
        update.set("expressions", sets)
        self.warehouse.execute_dml(update, (*values.values(), *params))

    def delete(self, spec: TableSpec, condition: exp.Expr, params: Sequence[Any] = ()) -> None:
        """Delete the rows matching a sqlglot condition (placeholders filled from `params`); none when the table
        was never made."""
        if not self.exists(spec):
            return
        self.warehouse.execute_dml(exp.delete(self._table(spec), where=condition), tuple(params))

    def rows(self, spec: TableSpec, where: Where | None = None, order_by: Sequence[str] = (),
             descending: bool = False, limit: int | None = None, columns: Sequence[str] = ()) -> list[dict]:
        """Rows of the table as dicts (none when it was never made)."""
        return self.select(spec, where, order_by, descending, limit, columns).to_pylist()

    def select(self, spec: TableSpec, where: Where | None = None, order_by: Sequence[str] = (),
               descending: bool = False, limit: int | None = None, columns: Sequence[str] = (),
               condition: exp.Expr | None = None, condition_params: Sequence[Any] = ()) -> pa.Table:
        """Rows matching `where` (equalities) and `condition` (a sqlglot condition whose placeholders
        `condition_params` fill, after those of `where`)."""
        if not self.exists(spec):
            # pa.nulls, not pa.array([]): pyarrow imports pandas at its first pa.array (0.2 s, 40 MB in a sync)
            return pa.table({c: pa.nulls(0) for c in (columns or spec.column_names)})
        cond, params = self._condition(where or {})
        if condition is not None:
            cond = condition if cond is None else exp.and_(cond, condition)
            params = [*params, *condition_params]
        query = exp.select(*([exp.column(c, quoted=True) for c in columns] if columns else ["*"])) \
            .from_(self._table(spec))
        if cond is not None:
            query = query.where(cond)
        if order_by:
            query = query.order_by(*[exp.Ordered(this=exp.column(c, quoted=True), desc=descending) for c in order_by])
        if limit is not None:
            query = query.limit(int(limit))
        return self.warehouse.fetch_arrow(query.sql(self.dialect), tuple(params) or None)

    def max(self, spec: TableSpec, column: str, where: Where) -> Any:
        """The greatest non-NULL value of `column` among matching rows (None: no such row)."""
        if not self.exists(spec):
            return None
        cond, params = self._condition(where)
        query = exp.select(exp.Max(this=exp.column(column, quoted=True)).as_("m", quoted=True)).from_(self._table(spec))
        if cond is not None:
            query = query.where(cond)
        rows = self.warehouse.fetch_arrow(query.sql(self.dialect), tuple(params) or None).to_pylist()
        return rows[0]["m"] if rows else None

    def latest(self, spec: TableSpec, group_by: Sequence[str], maxima: Sequence[str], where: Where,
               condition: exp.Expr | None = None, condition_params: Sequence[Any] = ()) -> list[dict]:
        """Per group of `group_by` columns, the greatest value of each of `maxima` among matching rows
        (`condition`: a sqlglot condition too, its placeholders filled by `condition_params`)."""
        if not self.exists(spec):
            return []
        cond, params = self._condition(where)
        if condition is not None:
            cond = condition if cond is None else exp.and_(cond, condition)
            params = [*params, *condition_params]
        keys = [exp.column(c, quoted=True) for c in group_by]
        query = exp.select(*keys, *[exp.Max(this=exp.column(c, quoted=True)).as_(c, quoted=True) for c in maxima]) \
            .from_(self._table(spec)).group_by(*[k.copy() for k in keys])
        if cond is not None:
            query = query.where(cond)
        return self.warehouse.fetch_arrow(query.sql(self.dialect), tuple(params) or None).to_pylist()

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Statements inside commit together or not at all (on engines with transactions: not Spark)."""
        return self.warehouse.transaction()

    def append(self, spec: TableSpec, table: pa.Table, id_column: str) -> None:
        """Append rows, replacing rows with the same `id_column` values in one transaction (idempotent)."""
        self.table(spec)
        self.warehouse.append_table(self.schema, spec.name, table, id_column)

    def _condition(self, where: Where) -> tuple[exp.Expr | None, list[Any]]:
        conditions: list[exp.Expr] = []
        params: list[Any] = []
        for name, value in where.items():
            column = exp.column(name, quoted=True)
            if value is None:
                conditions.append(exp.Is(this=column, expression=exp.Null()))
            else:
                conditions.append(exp.EQ(this=column, expression=exp.Placeholder()))
                params.append(value)
        return (exp.and_(*conditions) if conditions else None), params


def as_catalog(source: "Catalog | CatalogWarehouse") -> Catalog:
    """A catalog, from a catalog or a bare warehouse connection (then in the default schema)."""
    return source if isinstance(source, Catalog) else Catalog(source)
