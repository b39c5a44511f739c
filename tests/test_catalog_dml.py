"""featurehouse's own tables take the same UPDATE, DELETE and transactions on every engine: row-level DML on
DuckDB and PostgreSQL, a rewrite of the table on Spark, whose Parquet tables have neither."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from sqlglot import exp

from featurehouse.catalog import Catalog
from featurehouse.catalog.tables import TableSpec

pytestmark = pytest.mark.spark_ready

T0, T1 = datetime(2026, 3, 1, 12, 0, 0, 7), datetime(2026, 3, 2, 8, 30)
SPEC = TableSpec("fh_dml_log", (("id", "BIGINT"), ("name", "VARCHAR"), ("closed_at", "TIMESTAMP"),
                                ("note", "VARCHAR")))


@pytest.fixture
def catalog(warehouse):
    schema = f"fh_dml_{uuid.uuid4().hex[:8]}"
    catalog = Catalog(warehouse, schema)
    for i, name in enumerate(["a", "b", None, "c"]):
        catalog.insert(SPEC, {"id": i, "name": name, "closed_at": None, "note": f"n{i}-x"})
    yield catalog
    warehouse.execute(f"DROP SCHEMA IF EXISTS {exp.to_identifier(schema, quoted=True).sql(warehouse.dialect)} CASCADE")


def table(catalog: Catalog) -> list[dict]:
    return catalog.rows(SPEC, order_by=("id",))


def test_update_sets_the_matching_rows_only_with_values_in_any_column_order(catalog):
    catalog.update(SPEC, {"note": "done", "closed_at": T0}, {"name": "b"})
    catalog.update(SPEC, {"closed_at": T1}, {"name": None})  # IS NULL
    assert table(catalog) == [
        {"id": 0, "name": "a", "closed_at": None, "note": "n0-x"},
        {"id": 1, "name": "b", "closed_at": T0, "note": "done"},
        {"id": 2, "name": None, "closed_at": T1, "note": "n2-x"},
        {"id": 3, "name": "c", "closed_at": None, "note": "n3-x"},
    ]


def test_an_update_may_compute_from_the_row_and_take_parameters_before_its_condition(catalog):
    column = exp.column("note", quoted=True)
    update = exp.update(exp.table_(SPEC.name, db=catalog.schema, quoted=True), {},
                        where=exp.column("id", quoted=True).isin(exp.Placeholder(), exp.Placeholder()))
    update.set("expressions", [exp.EQ(this=column.copy(), expression=exp.func(
        "replace", column.copy(), exp.Placeholder(), exp.Literal.string("y")))])
    catalog.warehouse.execute_dml(update, ("-x", 1, 3))
    assert [r["note"] for r in table(catalog)] == ["n0-x", "n1y", "n2-x", "n3y"]


def test_delete_removes_the_matching_rows_and_a_null_condition_removes_nothing(catalog):
    name = exp.column("name", quoted=True)
    catalog.delete(SPEC, name.eq(exp.Placeholder()), ["a"])
    catalog.delete(SPEC, name.neq(exp.Literal.string("zzz")).and_(exp.column("id", quoted=True).eq(2)))  # NULL for id 2
    assert [r["id"] for r in table(catalog)] == [1, 2, 3]
    catalog.delete(SPEC, exp.column("id", quoted=True).isin(exp.Placeholder(), exp.Placeholder()), [1, 3])
    assert [r["id"] for r in table(catalog)] == [2]


def test_statements_in_a_transaction_all_take_effect(catalog):
    with catalog.transaction():
        catalog.update(SPEC, {"closed_at": T0}, {"id": 0})
        catalog.insert(SPEC, {"id": 9, "name": "z", "closed_at": None, "note": None})
    assert [(r["id"], r["closed_at"]) for r in table(catalog)] == [(0, T0), (1, None), (2, None), (3, None), (9, None)]
