"""The generated SQL as each engine receives it: quoted identifiers, the right plan, readable text."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from featurehouse.offline.point_in_time import PointInTimeQuery, ViewRequest
from featurehouse.offline.training_set import build_training_set
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation

NASTY = 'amount"; drop table users; --'
ENTITY = Entity("user", ("user id",))


def view(ttl=timedelta(days=7), delay=None, known_at=False, table="txn stats"):
    return FeatureView("txn", 1, ENTITY, Relation("wh", "main", table), "event time",
                       (Feature("txn", NASTY, "double", 1), Feature("txn", "país", "varchar", 1)),
                       created_at="created at", ttl=ttl, serving_delay=delay, as_known_at=known_at)


def query(v):
    return PointInTimeQuery(exp.table_("spine", quoted=True), ("user id", "as of"), "as of",
                            (ViewRequest(v, v.features, ("txn__a", "txn__b"), v.as_known_at),))


def test_duckdb_uses_asof_join_with_ttl_around_it():
    sql = query(view()).to_sql("duckdb")
    assert "ASOF LEFT JOIN" in sql
    assert "QUALIFY" in sql  # one row per key and event time before the ASOF match
    assert """CASE\n    WHEN "v0"."__fh_et" >= "s"."as of" - INTERVAL '604800' SECOND""" in sql


def test_as_known_at_takes_the_window_plan_on_duckdb():
    q = query(view(known_at=True))
    assert q.plan("duckdb") == "window"
    sql = q.to_sql("duckdb")
    assert "ASOF" not in sql and 'ROW_NUMBER() OVER' in sql and '"f"."created at" <= "s"."as of"' in sql


def test_postgres_uses_the_portable_plan_and_code_point_string_order():
    sql = query(view(delay=timedelta(seconds=1.5))).to_sql("postgres")
    assert "ASOF" not in sql and "QUALIFY" not in sql
    assert '"f"."país" COLLATE "C" DESC NULLS LAST' in sql
    assert "INTERVAL '1500000 MICROSECOND'" in sql


def test_spark_uses_the_portable_plan_in_its_own_words():
    """sqlglot passes DuckDB-only syntax (ASOF JOIN, EPOCH_US) to Spark unchanged: the Spark SQL must not hold any."""
    q = query(view(delay=timedelta(seconds=1.5)))
    assert q.plan("spark") == "window"
    sql = q.to_sql("spark")
    assert "ASOF" not in sql and "EPOCH" not in sql and "QUALIFY" not in sql
    assert "ROW_NUMBER() OVER (\n      PARTITION BY `s`.`__fh_row`\n      ORDER BY `f`.`event time` DESC" in sql
    assert "`f`.`país` COLLATE UTF8_BINARY DESC" in sql  # code point order even for a column with a collation
    assert "- INTERVAL '1500000' MICROSECOND" in sql and "- INTERVAL '604800' SECOND" in sql


def test_identifiers_are_quoted_never_pasted():
    for dialect in ("duckdb", "postgres"):
        sql = query(view()).to_sql(dialect)
        assert '"amount""; drop table users; --"' in sql
        parsed = sqlglot.parse(sql, read=dialect)
        assert len(parsed) == 1  # the column name cannot end the statement
    sql = query(view()).to_sql("spark")
    assert '`amount"; drop table users; --`' in sql and len(sqlglot.parse(sql, read="spark")) == 1


def test_rendered_sql_reads_back_identically():
    for dialect in ("duckdb", "postgres", "spark"):
        sql = query(view()).to_sql(dialect)
        assert sqlglot.parse_one(sql, read=dialect).sql(dialect, pretty=True) == sql


@pytest.mark.spark_ready
def test_nasty_names_run_end_to_end(warehouse):
    t0 = datetime(2026, 1, 1)
    warehouse.load_table("txn stats", pa.table({
        "user id": ["ö'1"], "event time": pa.array([t0], pa.timestamp("us")),
        "created at": pa.array([t0], pa.timestamp("us")), NASTY: [2.5], "país": ["ES"]}))
    v = FeatureView("txn", 1, ENTITY, Relation(None, None, "txn stats"), "event time",
                    (Feature("txn", NASTY, "double", 1), Feature("txn", "país", "varchar", 1)),
                    created_at="created at", ttl=timedelta(days=7))
    registry = Registry(entities={"user": ENTITY})
    registry.add(v)
    spine = pa.table({"user id": ["ö'1"], "as of": pa.array([t0 + timedelta(days=1)], pa.timestamp("us"))})
    out = build_training_set(warehouse, registry, spine, [f"txn.{NASTY}", "txn.país"], timestamp="as of")
    assert out.table.to_pylist()[0][f"txn__{NASTY}"] == 2.5
    assert out.table.to_pylist()[0]["txn__país"] == "ES"
