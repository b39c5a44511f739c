"""SparkWarehouse keeps the Warehouse contract of DuckDB and PostgreSQL: Arrow in and out with the same values
and types, tables described without running a query, rows appended by id, timestamps in UTC."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pytest

from featurehouse.registry.model import Relation
from featurehouse.types import Family

pytestmark = pytest.mark.spark

T0 = datetime(2026, 3, 1, 12, 0, 0, 7)  # microseconds survive


@pytest.fixture
def wh(spark_warehouse):
    schema = "fh_spark_contract"
    spark_warehouse.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    yield spark_warehouse
    spark_warehouse.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def rows(n: int, start: int = 0) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()), "name": [f"é{i}" for i in range(start, start + n)],
                     "at": pa.array([T0] * n, pa.timestamp("us")), "score": pa.array([0.5] * n, pa.float64())})


def test_arrow_round_trips_with_its_values_and_types(wh):
    wh.load_table("contract_t", rows(3))
    back = wh.fetch_arrow("select * from contract_t order by id")
    assert back.schema.field("at").type == pa.timestamp("us")  # naive in, naive out (TIMESTAMP_NTZ)
    assert back.to_pylist() == rows(3).to_pylist()


def test_a_spark_timestamp_is_an_instant_returned_in_utc(wh):
    got = wh.fetch_arrow("select cast('2026-03-01 12:00:00.000007' as timestamp) as t").column("t")[0].as_py()
    assert got == T0.replace(tzinfo=timezone.utc)


def test_parameters_fill_question_marks(wh):
    assert wh.fetch_arrow("select ? + 1 as n, ? as s", (41, "ü")).to_pylist() == [{"n": 42, "s": "ü"}]


def test_tables_are_described_and_queries_typed_without_running_them(wh):
    assert wh.describe(Relation(None, "fh_spark_contract", "nothing_here")) is None
    wh.replace_table("fh_spark_contract", "t", rows(2))
    relation = Relation(None, "fh_spark_contract", "t")
    assert wh.describe(relation) == {"id": "bigint", "name": "string", "at": "timestamp_ntz", "score": "double"}
    query = f"select id, name, at, cast(score as decimal(10, 2)) as d from {wh.relation_sql(relation)} where 1 / 0 > 1"
    assert wh.describe_query(query) == {"id": "bigint", "name": "string", "at": "timestamp_ntz", "d": "decimal(10,2)"}
    assert wh.column_families(query) == {"id": Family.INTEGER, "name": Family.STRING, "at": Family.TIMESTAMP,
                                         "d": Family.FLOAT}


def test_appending_a_batch_twice_leaves_it_there_once(wh):
    wh.append_table("fh_spark_contract", "log", rows(3), "id")
    wh.append_table("fh_spark_contract", "log", rows(3, start=2), "id")
    wh.append_table("fh_spark_contract", "log", rows(3, start=2), "id")
    got = wh.fetch_arrow("select id, name from fh_spark_contract.log order by id").to_pylist()
    assert got == [{"id": i, "name": f"é{i}"} for i in range(5)]


def test_ensure_table_makes_the_table_then_adds_the_columns_it_lacks(wh):
    wh.ensure_table("fh_spark_contract", "own", [("run_id", "VARCHAR"), ("started_at", "TIMESTAMP")])
    table = wh.ensure_table("fh_spark_contract", "own", [("run_id", "VARCHAR"), ("started_at", "TIMESTAMP"),
                                                         ("rows", "BIGINT")])
    wh.execute(f"INSERT INTO {table} (run_id, started_at, rows) VALUES (?, ?, ?)", ("r1", T0, 7))
    assert wh.fetch_arrow(f"select * from {table}").to_pylist() == [{"run_id": "r1", "started_at": T0, "rows": 7}]


def test_a_large_table_is_loaded_through_parquet_with_the_same_values_and_types(wh, monkeypatch):
    import featurehouse.offline.warehouse as warehouse_module

    monkeypatch.setattr(warehouse_module, "_SPARK_LOCAL_ROWS", 2)  # "large": more rows than Spark's tasks should carry
    wh.load_table("contract_big", rows(5))
    back = wh.fetch_arrow("select * from contract_big order by id")
    assert back.schema.field("at").type == pa.timestamp("us")
    assert back.to_pylist() == rows(5).to_pylist()
