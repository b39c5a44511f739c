"""One type system (featurehouse.types): every engine's type names read alike, a declared type checked
against the built relation, and HUGEINT and DECIMAL features served as one Python type on every path."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
import pytest
from sqlglot import exp
from starlette.testclient import TestClient

from featurehouse import types
from featurehouse.errors import InvalidFeatureMetadata
from featurehouse.registry.manifest import parse_entities, registry_from_manifest
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation
from featurehouse.serving.app import ServeConfig, create_app
from featurehouse.stream.rows import InvalidRow, coerce
from featurehouse.types import Kind
from tests.stores import store_over

# -- parsing: one logical type per spelling, on every engine ----------------------------------------

PARSED = [
    # (type text, dialect, kind, canonical name)
    ("HUGEINT", "duckdb", Kind.INT128, "hugeint"),
    ("UHUGEINT", "duckdb", Kind.INT128, "uhugeint"),
    ("BIGINT", "duckdb", Kind.INTEGER, "bigint"),
    ("int8", "postgres", Kind.INTEGER, "bigint"),
    ("int8", None, Kind.INTEGER, "bigint"),
    ("long", "spark", Kind.INTEGER, "bigint"),
    ("INTEGER", "duckdb", Kind.INTEGER, "integer"),
    ("int4", "postgres", Kind.INTEGER, "integer"),
    ("int", "spark", Kind.INTEGER, "integer"),
    ("UBIGINT", "duckdb", Kind.INTEGER, "ubigint"),
    ("double precision", "postgres", Kind.FLOAT, "double"),
    ("DOUBLE", "duckdb", Kind.FLOAT, "double"),
    ("float8", "postgres", Kind.FLOAT, "double"),
    ("float64", None, Kind.FLOAT, "double"),
    ("real", "postgres", Kind.FLOAT, "float"),
    ("DECIMAL(18,3)", "duckdb", Kind.DECIMAL, "decimal(18,3)"),
    ("numeric(10, 2)", "postgres", Kind.DECIMAL, "decimal(10,2)"),
    ("numeric", "postgres", Kind.DECIMAL, "decimal"),
    ("decimal(10,2)", "spark", Kind.DECIMAL, "decimal(10,2)"),
    ("character varying", "postgres", Kind.STRING, "varchar"),
    ("character varying(20)", "postgres", Kind.STRING, "varchar"),
    ("text", "postgres", Kind.STRING, "varchar"),
    ("VARCHAR", "duckdb", Kind.STRING, "varchar"),
    ("string", "spark", Kind.STRING, "varchar"),
    ("boolean", "postgres", Kind.BOOLEAN, "boolean"),
    ("bool", None, Kind.BOOLEAN, "boolean"),
    ("date", "postgres", Kind.DATE, "date"),
    ("timestamp without time zone", "postgres", Kind.TIMESTAMP, "timestamp"),
    ("TIMESTAMP", "duckdb", Kind.TIMESTAMP, "timestamp"),
    ("timestamp_ntz", "spark", Kind.TIMESTAMP, "timestamp"),
    ("TIMESTAMP_NS", "duckdb", Kind.TIMESTAMP, "timestamp_ns"),
    ("timestamp with time zone", "postgres", Kind.TIMESTAMPTZ, "timestamptz"),
    ("TIMESTAMP WITH TIME ZONE", "duckdb", Kind.TIMESTAMPTZ, "timestamptz"),
    ("timestamp", "spark", Kind.TIMESTAMPTZ, "timestamptz"),  # Spark's TIMESTAMP is local-time-zone
    ("time", "postgres", Kind.TIME, "time"),
    ("INTERVAL", "duckdb", Kind.INTERVAL, "interval"),
    ("BLOB", "duckdb", Kind.BINARY, "blob"),
    ("bytea", "postgres", Kind.BINARY, "blob"),
    ("INTEGER[]", "duckdb", Kind.LIST, "integer[]"),
    ("bigint[]", "postgres", Kind.LIST, "bigint[]"),
    ("array<int>", "spark", Kind.LIST, "integer[]"),
    ("ARRAY", "postgres", Kind.LIST, "list"),  # information_schema's spelling: element unknown
    ("STRUCT(a INTEGER, b VARCHAR)", "duckdb", Kind.STRUCT, "struct(a int, b text)"),
    ("map<string,int>", "spark", Kind.STRUCT, "map(text, int)"),
    ("jsonb", "postgres", Kind.STRUCT, "json"),
    ("UUID", "duckdb", Kind.OTHER, "uuid"),
    ("USER-DEFINED", "postgres", Kind.OTHER, "user-defined"),
    ("no such type", None, Kind.OTHER, "no such type"),
]


@pytest.mark.parametrize(("text", "dialect", "kind", "name"), PARSED, ids=[f"{d}:{t}" for t, d, _, _ in PARSED])
def test_every_engines_spelling_parses_to_one_logical_type(text, dialect, kind, name):
    parsed = types.logical(text, dialect)
    assert (parsed.kind, parsed.name) == (kind, name)


def test_families_say_what_a_reader_gets_after_the_serving_casts():
    assert types.family("HUGEINT") is types.Family.INTEGER
    assert types.family("numeric(38,0)", "postgres") is types.Family.FLOAT
    assert types.family("timestamptz") is types.Family.TIMESTAMP
    assert types.family("date") is types.Family.DATE
    assert types.is_timestamp("timestamp with time zone") and not types.is_timestamp("date")


@pytest.mark.parametrize(("a", "b"), [
    ("int", "INTEGER"), ("int4", "integer"), ("integer", "BIGINT"), ("text", "VARCHAR"),
    ("character varying", "text"), ("double", "double precision"), ("float8", "DOUBLE"),
    ("timestamp", "timestamp without time zone"), ("decimal", "DECIMAL(18,3)"), ("integer[]", "ARRAY"),
])
def test_spellings_of_one_logical_type_are_the_same_type(a, b):
    assert types.same_type(a, b)


@pytest.mark.parametrize(("a", "b"), [
    ("bigint", "HUGEINT"), ("varchar", "INTEGER"), ("double", "DECIMAL(18,3)"), ("timestamp", "TIMESTAMPTZ"),
    ("date", "timestamp"), ("decimal(18,2)", "DECIMAL(18,3)"), ("integer[]", "VARCHAR[]"),
])
def test_different_logical_types_differ(a, b):
    assert not types.same_type(a, b)


def test_exact_comparison_keeps_widths_and_decimal_digits_for_the_schema_gate():
    assert types.same_type("int8", "BIGINT", exact=True)
    assert not types.same_type("integer", "bigint", exact=True)
    assert not types.same_type("DECIMAL(18, 2)", "decimal(18,3)", exact=True)


def test_arrow_types_are_those_a_training_set_holds():
    assert types.arrow_type("HUGEINT") == pa.int64()
    assert types.arrow_type("DECIMAL(18,3)") == pa.float64()
    assert types.arrow_type("numeric", "postgres") == pa.float64()
    assert types.arrow_type("INTEGER") == pa.int32() and types.arrow_type("bigint") == pa.int64()
    assert types.arrow_type("timestamp") == pa.timestamp("us")
    assert types.arrow_type("VARCHAR[]") == pa.list_(pa.string())
    assert types.arrow_type("STRUCT(a INTEGER)") is None


@pytest.mark.parametrize(("dialect", "data_type", "sql"), [
    ("duckdb", "HUGEINT", 'CAST("x" AS BIGINT)'),
    ("duckdb", "UHUGEINT", 'CAST("x" AS BIGINT)'),
    ("duckdb", "DECIMAL(38,0)", 'CAST("x" AS DOUBLE)'),
    ("postgres", "numeric", 'CAST("x" AS DOUBLE PRECISION)'),
    ("spark", "decimal(10,2)", "CAST(`x` AS DOUBLE)"),
    ("duckdb", "BIGINT", '"x"'),
    ("postgres", "double precision", '"x"'),
    ("duckdb", "VARCHAR", '"x"'),
])
def test_serving_cast_makes_int128_a_bigint_and_decimal_a_double(dialect, data_type, sql):
    assert types.serving_cast(exp.column("x", quoted=True), data_type, dialect).sql(dialect) == sql


def test_a_pushed_value_is_held_as_it_is_served():
    assert coerce("v", "total", "HUGEINT", 3) == 3
    assert coerce("v", "amount", "DECIMAL(18,3)", 3) == 3.0 and isinstance(coerce("v", "amount", "numeric", 3), float)
    with pytest.raises(InvalidRow, match="field 'total': .* outside the 64-bit range"):
        coerce("v", "total", "HUGEINT", 2**70)


# -- a declared data_type is checked against the built relation -----------------------------------

ENTITIES = parse_entities({"user": ["user_id"]})


def manifest_with(columns: dict[str, str]) -> dict:
    node = {"unique_id": "model.p.user_totals", "resource_type": "model", "name": "user_totals", "version": None,
            "database": "warehouse", "schema": "main", "alias": "user_totals",
            "config": {"meta": {"featurehouse": {"entity": "user", "event_time": "event_time"}}},
            "columns": {c: {"name": c, "data_type": t} for c, t in columns.items()}}
    return {"nodes": {node["unique_id"]: node}}


BUILT = {"user_id": "BIGINT", "event_time": "TIMESTAMP", "total": "HUGEINT", "label": "INTEGER"}


def test_a_declared_type_the_built_relation_contradicts_is_an_error_naming_view_and_column():
    manifest = manifest_with({"user_id": "bigint", "event_time": "timestamp", "total": "bigint"})
    with pytest.raises(InvalidFeatureMetadata) as info:
        registry_from_manifest(manifest, ENTITIES, describe=lambda relation: BUILT)
    message = str(info.value)
    assert "model 'user_totals'" in message and "columns.total.data_type" in message
    assert "declared 'bigint' but the built relation warehouse.main.user_totals has 'HUGEINT'" in message


def test_a_declared_varchar_over_an_integer_column_is_an_error():
    manifest = manifest_with({"label": "varchar"})
    with pytest.raises(InvalidFeatureMetadata, match=r"columns\.label\.data_type: declared 'varchar' .* has 'INTEGER'"):
        registry_from_manifest(manifest, ENTITIES, describe=lambda relation: BUILT)


def test_spellings_of_the_built_type_are_not_errors():
    built = {"user_id": "bigint", "event_time": "timestamp without time zone", "n": "integer", "s": "text",
             "d": "double precision", "w": "bigint"}
    manifest = manifest_with({"user_id": "int8", "event_time": "timestamp", "n": "INT", "s": "varchar",
                              "d": "double", "w": "integer"})
    view = registry_from_manifest(manifest, ENTITIES, describe=lambda relation: built).view("user_totals")
    assert {f.column: f.data_type for f in view.features} == {"n": "INT", "s": "varchar", "d": "double", "w": "integer"}


# -- HUGEINT and DECIMAL features: one Python type on every path ----------------------------------

USER = Entity("user", ("user_id",))
T0 = datetime(2026, 3, 1)


def totals_view(warehouse) -> tuple[Registry, dict[str, str]]:
    """A view whose `total` is SUM(int) (DuckDB: HUGEINT; PostgreSQL sums bigint to numeric) and whose
    `amount` is a DECIMAL; the registry holds the types the warehouse describes, as a built model's."""
    integer = "INTEGER" if warehouse.dialect == "duckdb" else "bigint"
    warehouse.execute("DROP TABLE IF EXISTS fh_types_raw CASCADE" if warehouse.dialect == "postgres"
                      else "DROP TABLE IF EXISTS fh_types_raw")
    warehouse.execute(f"CREATE TEMP TABLE fh_types_raw (user_id BIGINT, event_time TIMESTAMP, n {integer}, "
                      "amount DECIMAL(18,3))")
    warehouse.execute("INSERT INTO fh_types_raw VALUES "
                      f"(1, '{T0}', 1, 1.250), (1, '{T0 + timedelta(minutes=1)}', 2, 2.500), "
                      f"(2, '{T0}', 40, 0.125)")
    warehouse.execute("CREATE TEMP VIEW fh_types_totals AS SELECT user_id, event_time, "
                      "SUM(n) OVER (PARTITION BY user_id ORDER BY event_time) AS total, amount FROM fh_types_raw")
    described = warehouse.describe(Relation(None, None, "fh_types_totals"))
    view = FeatureView("totals", 1, USER, Relation(None, None, "fh_types_totals"), "event_time",
                       (Feature("totals", "total", described["total"], 1),
                        Feature("totals", "amount", described["amount"], 1)))
    registry = Registry(entities={"user": USER})
    registry.add(view)
    return registry, described


def expected_total_type(warehouse) -> type:
    return int if warehouse.dialect == "duckdb" else float  # PostgreSQL: SUM(bigint) is numeric -> double


def test_the_warehouse_gives_hugeint_and_decimal_columns(warehouse):
    _, described = totals_view(warehouse)
    assert types.logical(described["total"]).kind is (Kind.INT128 if warehouse.dialect == "duckdb" else Kind.DECIMAL)
    assert types.logical(described["amount"]).kind is Kind.DECIMAL


def test_training_set_holds_int64_and_float64(warehouse, redis_url):
    registry, _ = totals_view(warehouse)
    spine = pa.table({"user_id": pa.array([1, 2], pa.int64()),
                      "as_of": pa.array([T0 + timedelta(hours=1)] * 2, pa.timestamp("us"))})
    with store_over(registry, warehouse, redis_url, sync=False) as store:
        table = store.training_set_arrow(spine, ["totals.total", "totals.amount"], "as_of")
    total_arrow = pa.int64() if warehouse.dialect == "duckdb" else pa.float64()
    assert table.schema.field("totals__total").type == total_arrow
    assert table.schema.field("totals__amount").type == pa.float64()
    rows = table.to_pylist()
    assert [(r["totals__total"], r["totals__amount"]) for r in rows] == [(3, 2.5), (40, 0.125)]
    assert all(type(r["totals__total"]) is expected_total_type(warehouse) for r in rows)
    assert all(type(r["totals__amount"]) is float for r in rows)


def test_sync_and_in_process_reads_hold_int_and_float(warehouse, redis_url):
    registry, _ = totals_view(warehouse)
    with store_over(registry, warehouse, redis_url) as store:
        vectors = store.online_features("user", ["1", "2"], names=["totals.total", "totals.amount"])
    values = [(v.features["totals.total"].value, v.features["totals.amount"].value) for v in vectors]
    assert values == [(3, 2.5), (40, 0.125)]
    assert all(type(total) is expected_total_type(warehouse) and type(amount) is float for total, amount in values)


def test_http_serves_json_numbers(warehouse, redis_url):
    registry, _ = totals_view(warehouse)
    with store_over(registry, warehouse, redis_url):
        app = create_app(registry, ServeConfig(auth="none", push=True, redis_url=redis_url))
        with TestClient(app) as client:
            response = client.get("/v1/features/user/1", params={"names": "totals.total,totals.amount"})
    assert response.status_code == 200, response.text
    features = response.json()["features"]
    assert features["totals.total"]["value"] == 3 and features["totals.amount"]["value"] == 2.5
    assert type(features["totals.total"]["value"]) is expected_total_type(warehouse)  # not the string "3"
    assert type(features["totals.amount"]["value"]) is float


def test_struct_field_names_compare_unquoted_as_duckdb_quotes_keywords():
    """DuckDB describes `struct(name varchar)` as `STRUCT("name" VARCHAR)`: one type, not a contradiction."""
    assert types.same_type("struct(name varchar, age varchar)", 'STRUCT("name" VARCHAR, age VARCHAR)')
    assert not types.same_type("struct(name varchar)", "STRUCT(title VARCHAR)")


def test_an_arrow_column_declares_the_sql_type_duckdb_builds_for_it():
    import duckdb

    arrow = pa.table({"s": pa.array([{"name": "a", "n": 1}]),
                      "m": pa.array([[("k", 1.5)]], pa.map_(pa.string(), pa.float64())),
                      "l": pa.array([[1, 2]], pa.list_(pa.int32())), "f": pa.array([1.5], pa.float32())})
    built = {row[0]: row[1] for row in duckdb.connect().execute("describe select * from arrow").fetchall()}
    for column in arrow.column_names:
        declared = types.declared_type(arrow.schema.field(column).type)
        assert types.same_type(declared, built[column], exact=True), (column, declared, built[column])


@pytest.mark.parametrize("data_type, value, fits", [
    ("struct(a bigint)", {"a": 2**70}, {"a": 2**63 - 1}), ("json", [1, -(2**64)], [1, -(2**63)]),
    (None, 2**64, 2**64 - 1), ("bigint[]", [2**65], [2**63 - 1])])
def test_a_pushed_integer_past_64_bits_in_a_nested_or_untyped_value_names_the_field(data_type, value, fits):
    """Found by the serving fuzzer: such a value passed the checks and failed at the online store's encoder
    with a TypeError (a 500) instead of a 422 naming the field."""
    from featurehouse.stream.rows import InvalidRow, coerce

    with pytest.raises(InvalidRow, match="field 'f") as raised:
        coerce("v", "f", data_type, value)
    assert "64-bit" in str(raised.value)
    assert coerce("v", "f", data_type, fits) == fits
