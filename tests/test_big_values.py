"""Values at the edges of their types, and names that are not plain identifiers, on the way through a
training set: the join's result stays exact, and recording it for lineage never costs the user it."""

from __future__ import annotations

import math
import warnings
from datetime import datetime, timedelta
from decimal import Decimal

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from featurehouse import FeatureStore
from featurehouse.cli.context import CliContext
from featurehouse.cli.main import cli
from featurehouse.offline.lineage import LineageLog, spine_fingerprint
from featurehouse.offline.profile import profile_column, profile_table
from featurehouse.offline.training_set import LineageNotRecorded
from featurehouse.offline.warehouse import DuckDBWarehouse
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation

T0 = datetime(2026, 5, 1, 9, 30)
INT64_MAX = 9223372036854775807
INT64_MIN = -9223372036854775808
BEYOND_FLOAT = 9007199254740993  # 2**53 + 1: the first integer float64 cannot hold
VALUES = [INT64_MAX, INT64_MIN, BEYOND_FLOAT, None]  # user 1..4; user 5 has no row at all
QUOTED, WEIRD = 'la"bel', "weird col;--"


def big_store(warehouse) -> FeatureStore:
    """One view `big` whose int64 feature `v` holds the int64 extremes, 2**53 + 1 and a NULL, and whose
    feature `small` holds small numbers."""
    user = Entity("user", ("user_id",))
    warehouse.load_table("big", pa.table({
        "user_id": pa.array([1, 2, 3, 4], pa.int64()),
        "event_time": pa.array([T0] * 4, pa.timestamp("us")),
        "v": pa.array(VALUES, pa.int64()),
        "small": pa.array([1, 2, 3, 4], pa.int64()),
    }))
    registry = Registry(entities={"user": user})
    registry.add(FeatureView("big", 1, user, Relation(None, None, "big"), "event_time",
                             (Feature("big", "v", "bigint", 1), Feature("big", "small", "bigint", 1))))
    return FeatureStore.from_registry(registry, warehouse)


@pytest.fixture
def store(warehouse):
    return big_store(warehouse)


def spine() -> pd.DataFrame:
    """Users 1..5 an hour after the features' rows, with a label."""
    return pd.DataFrame({"user_id": [1, 2, 3, 4, 5], "t": [T0 + timedelta(hours=1)] * 5, "label": [1, 0, 1, 0, 1]})


def quoted_spine() -> pd.DataFrame:
    """Labels under names that need quoting: a double quote, and a space, a semicolon and a comment."""
    out = spine().drop(columns="label")
    out[QUOTED] = [1, 0, 1, 0, 1]
    out[WEIRD] = ["a'b", 'c"d', "e;--f", "g\\h", None]
    return out


# -- big integers ------------------------------------------------------------------------------


def test_int64_extremes_come_back_exact_and_are_recorded(store):
    ts = store.build_training_set(spine(), ["big.v"], "t")
    assert ts.table.column("big__v").to_pylist() == VALUES + [None]
    assert ts.record is not None and ts.record_error is None
    stored = LineageLog(store.warehouse).training_set(ts.record.training_set_id)
    profile = stored.profile["big.v@1"]
    assert profile["kind"] == "numeric" and profile["count"] == 5 and profile["null_rate"] == pytest.approx(0.4)
    assert min(profile["edges"]) >= float(INT64_MIN) and max(profile["edges"]) <= float(INT64_MAX)
    assert math.isfinite(profile["mean"]) and math.isfinite(profile["std"])


def test_pandas_keeps_an_int64_column_with_nulls_exact(store):
    df = store.training_set(spine(), ["big.v"], "t")
    assert df["big__v"].dtype == pd.Int64Dtype()
    assert [None if v is pd.NA else v for v in df["big__v"].tolist()] == VALUES + [None]
    assert df["big__v"][2] == BEYOND_FLOAT  # not 9007199254740992.0
    assert df["user_id"].dtype == pd.Int64Dtype()  # a dtype that does not depend on the data


def test_to_pandas_of_an_unrecorded_training_set_keeps_integers_exact(store):
    df = store.build_training_set(spine(), ["big.v"], "t", record=False).to_pandas()
    assert df["big__v"].dtype == pd.Int64Dtype() and df["big__v"][2] == BEYOND_FLOAT


def test_to_pandas_maps_booleans_and_unsigned_to_nullable_dtypes(store):
    ts = store.build_training_set(spine(), ["big.v"], "t", record=False)
    ts.table = pa.table({"b": pa.array([True, None]), "u": pa.array([2**64 - 1, None], pa.uint64()),
                         "f": pa.array([0.5, None])})
    df = ts.to_pandas()
    assert df["b"].dtype == pd.BooleanDtype() and df["u"].dtype == pd.UInt64Dtype()
    assert df["u"][0] == 2**64 - 1 and df["b"][1] is pd.NA and df["f"].dtype == "float64"


# -- names that need quoting -------------------------------------------------------------------


def test_spine_columns_with_quotes_and_semicolons_build_and_record(store):
    ts = store.build_training_set(quoted_spine(), ["big.small"], "t", name="o'brien \"quoted\" \\ run")
    assert ts.table.column_names == ["user_id", "t", QUOTED, WEIRD, "big__small"]
    assert ts.table.column(QUOTED).to_pylist() == [1, 0, 1, 0, 1]
    assert ts.table.column(WEIRD).to_pylist() == ["a'b", 'c"d', "e;--f", "g\\h", None]
    log = LineageLog(store.warehouse)
    stored = log.training_set(ts.record.training_set_id)
    assert stored.name == "o'brien \"quoted\" \\ run"
    assert stored.spine_fingerprint == spine_fingerprint(ts.table, ["user_id", "t", QUOTED, WEIRD])
    version = ts.record.training_set_id  # PostgreSQL's log tables outlive a test run: a fresh version each time
    mv = log.register_model("m'; DROP TABLE x; --", version, ts.record.training_set_id)
    assert log.model_version(mv.ref).training_set_id == ts.record.training_set_id


def test_fingerprint_depends_on_the_values_of_quoted_columns():
    table = pa.table({QUOTED: [1, 2], WEIRD: ["x", "y"]})
    other = pa.table({QUOTED: [1, 3], WEIRD: ["x", "y"]})
    assert spine_fingerprint(table, [QUOTED, WEIRD]) != spine_fingerprint(other, [QUOTED, WEIRD])


# -- recording never loses a result ------------------------------------------------------------


def _disk_full(*_args, **_kwargs):
    raise OSError("disk full\nsecond line of detail")


def test_a_failed_recording_still_returns_the_training_set(store, monkeypatch):
    monkeypatch.setattr(LineageLog, "record_training_set", _disk_full)
    with pytest.warns(LineageNotRecorded, match="not recorded for lineage: OSError: disk full"):
        ts = store.build_training_set(spine(), ["big.v"], "t")
    assert ts.record is None
    assert ts.record_error == "training set not recorded for lineage: OSError: disk full"
    assert ts.table.column("big__v").to_pylist() == VALUES + [None]


def test_a_failed_publish_keeps_the_record_and_says_so(store, monkeypatch):
    monkeypatch.setattr(FeatureStore, "publish", _disk_full)
    with pytest.warns(LineageNotRecorded, match="feature versions not published"):
        ts = store.build_training_set(spine(), ["big.small"], "t")
    assert ts.record is not None and ts.record.training_set_id in ts.record_error
    assert ts.rows == 5


def test_an_unrecorded_training_set_warns_nothing(store):
    with warnings.catch_warnings():
        warnings.simplefilter("error", LineageNotRecorded)
        ts = store.build_training_set(spine(), ["big.v"], "t", record=False)
    assert ts.record is None and ts.record_error is None


# -- the CLI -----------------------------------------------------------------------------------


@pytest.fixture
def cli_store(monkeypatch):
    """The CLI's store is the hand-built one (no dbt project needed) on an in-memory DuckDB."""
    with DuckDBWarehouse(":memory:") as wh:
        store = big_store(wh)
        monkeypatch.setattr(CliContext, "store", lambda self: store)
        yield store


def run_training_set(tmp_path, *extra: str):
    pq.write_table(pa.Table.from_pandas(spine(), preserve_index=False), tmp_path / "spine.parquet")
    out = tmp_path / "train.parquet"
    result = CliRunner().invoke(cli, ["--project-dir", str(tmp_path), "training-set", "--spine",
                                      str(tmp_path / "spine.parquet"), "--timestamp", "t", "--features", "big.v",
                                      "--out", str(out), *extra], catch_exceptions=False)
    return result, out


def test_cli_records_a_training_set_of_int64_extremes(cli_store, tmp_path):
    result, out = run_training_set(tmp_path)
    assert result.exit_code == 0, result.output
    assert "recorded as training set" in result.output and "warning" not in result.output
    assert pq.read_table(out).column("big__v").to_pylist() == VALUES + [None]


def test_cli_writes_the_file_and_warns_in_one_line_when_recording_fails(cli_store, tmp_path, monkeypatch):
    monkeypatch.setattr(LineageLog, "record_training_set", _disk_full)
    result, out = run_training_set(tmp_path)
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).column("big__v").to_pylist() == VALUES + [None]
    warned = [line for line in result.output.splitlines() if "warning" in line.lower()]
    assert warned == ["warning: training set not recorded for lineage: OSError: disk full"]
    assert "Traceback" not in result.output and "recorded as training set" not in result.output


def test_cli_preview_prints_exact_integers(cli_store, tmp_path):
    pq.write_table(pa.Table.from_pandas(spine(), preserve_index=False), tmp_path / "spine.parquet")
    result = CliRunner().invoke(cli, ["--project-dir", str(tmp_path), "training-set", "--spine",
                                      str(tmp_path / "spine.parquet"), "--timestamp", "t", "--features", "big.v",
                                      "--no-record"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert str(BEYOND_FLOAT) in result.output and str(INT64_MIN) in result.output


# -- profiles of odd columns -------------------------------------------------------------------


@pytest.mark.parametrize("column", [
    pa.array([INT64_MAX, INT64_MIN, BEYOND_FLOAT, None], pa.int64()),
    pa.array([2**64 - 1, 0], pa.uint64()),
    pa.array([Decimal(10**37), Decimal(-(10**37))], pa.decimal128(38, 0)),
    pa.array([Decimal(10**75)], pa.decimal256(76, 0)),
    pa.array([math.nan, math.inf, -math.inf, 1.7e308, -1.7e308, 1.7e308]),
    pa.array([None, None], pa.int64()),
    pa.array([], pa.int64()),
    pa.array([None, None], pa.null()),
    pa.array([b"\xff", b"ok"]),
    pa.array([[1], [2, 3]]),
], ids=["int64-extremes", "uint64-max", "decimal128", "decimal256", "nan-inf-huge", "all-null", "empty",
        "null-type", "invalid-utf8", "lists"])
def test_profiles_never_raise_and_stay_finite(column):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy overflow warnings count as failures
        profile = profile_column(column)
    numbers = [profile.get("mean", 0.0), profile.get("std", 0.0), *profile.get("edges", [])]
    assert all(math.isfinite(x) for x in numbers)
    shares = profile["shares"]
    total = sum(shares.values()) if isinstance(shares, dict) else sum(shares)
    assert total == pytest.approx(1.0) or (total == 0 and len(column) == column.null_count)


def test_profile_of_a_duckdb_hugeint_column():
    table = duckdb.sql("SELECT (170141183460469231731687303715884105727::HUGEINT - i) AS h "
                       "FROM range(3) t(i)").to_arrow_table()
    profile = profile_table(table, ["h"])["h"]
    assert profile["kind"] == "numeric" and profile["edges"] and math.isfinite(profile["mean"])


def test_profile_of_ordinary_numbers_is_unchanged():
    profile = profile_column(pa.array(list(range(1, 11))))
    assert profile["edges"] == pytest.approx([1.9, 2.8, 3.7, 4.6, 5.5, 6.4, 7.3, 8.2, 9.1])
    assert profile["shares"] == pytest.approx([0.1] * 10)
    assert profile["mean"] == 5.5 and profile["std"] == pytest.approx(2.8722813232690143)
