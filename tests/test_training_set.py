"""training_set as users call it: spines of every kind, and bad input named in one line."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest

from featurehouse import FeatureStore, InvalidSpine, UnknownFeature
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation

T0 = datetime(2026, 5, 1, 9, 30, 0, 123456)


@pytest.fixture
def store(warehouse):
    """Two views of one user: transaction stats (7d TTL) and a profile; real tables in the warehouse."""
    user = Entity("user", ("user_id",))
    warehouse.load_table("txn_stats", pa.Table.from_pylist([
        {"user_id": 1, "event_time": T0, "created_at": T0, "txn_count": 3},
        {"user_id": 1, "event_time": T0 + timedelta(hours=1), "created_at": T0 + timedelta(hours=5), "txn_count": 4},
        {"user_id": 2, "event_time": T0, "created_at": T0, "txn_count": 9},
    ]))
    warehouse.load_table("profile", pa.Table.from_pylist([
        {"user_id": 1, "updated_at": T0 - timedelta(days=30), "country": "DE"},
        {"user_id": 2, "updated_at": T0 - timedelta(days=30), "country": "日本"},
    ]))
    registry = Registry(entities={"user": user})
    registry.add(FeatureView("txn_stats", 1, user, Relation(None, None, "txn_stats"), "event_time",
                             (Feature("txn_stats", "txn_count", "bigint", 1),), created_at="created_at",
                             ttl=timedelta(days=7)))
    registry.add(FeatureView("profile", 1, user, Relation(None, None, "profile"), "updated_at",
                             (Feature("profile", "country", "varchar", 1),)))
    return FeatureStore.from_registry(registry, warehouse)


def spine_df():
    return pd.DataFrame({
        "user_id": [2, 1, 1, 3, 1],
        "label_time": [T0, T0 + timedelta(hours=2), T0 - timedelta(seconds=1), T0, T0 + timedelta(hours=2)],
        "label": [1, 0, 0, 1, 0],
    })


FEATURES = ["txn_stats.txn_count", "profile.country"]


def test_spine_rows_keep_order_duplicates_and_labels(store):
    out = store.training_set(spine_df(), FEATURES, timestamp="label_time", entity="user")
    assert list(out.columns) == ["user_id", "label_time", "label", "txn_stats__txn_count", "profile__country"]
    assert out["user_id"].tolist() == [2, 1, 1, 3, 1]
    assert out["label"].tolist() == [1, 0, 0, 1, 0]
    assert _values(out["txn_stats__txn_count"]) == [9, 4, None, None, 4]
    assert _values(out["profile__country"]) == ["日本", "DE", "DE", None, "DE"]


def _values(series):
    """pandas shows NULL as NaN/NA; compare as Python values with None."""
    return [None if pd.isna(v) else v for v in series.tolist()]


def test_arrow_output_has_nulls_for_entities_without_history(store):
    table = store.training_set_arrow(spine_df(), FEATURES, timestamp="label_time")
    assert table.column("txn_stats__txn_count").to_pylist() == [9, 4, None, None, 4]


def test_as_known_at_hides_rows_ingested_after_the_as_of_time(store):
    table = store.training_set_arrow(spine_df(), ["txn_stats.txn_count"], timestamp="label_time", as_known_at=True)
    # the 10:30 row was only ingested at 14:30: at 11:30 the store knew the 09:30 value
    assert table.column("txn_stats__txn_count").to_pylist() == [9, 3, None, None, 3]


def test_timezone_aware_spines_are_read_in_utc(store):
    spine = spine_df()
    spine["label_time"] = spine["label_time"].dt.tz_localize("UTC").dt.tz_convert("America/New_York")
    table = store.training_set_arrow(spine, FEATURES, timestamp="label_time")
    assert table.column("txn_stats__txn_count").to_pylist() == [9, 4, None, None, 4]
    assert table.column("label_time").to_pylist()[0] == T0


def test_parquet_and_csv_spines_are_read(store, tmp_path):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(spine_df(), preserve_index=False)
    pq.write_table(table, tmp_path / "spine.parquet")
    pacsv.write_csv(table, tmp_path / "spine.csv")
    for path in (tmp_path / "spine.parquet", str(tmp_path / "spine.csv")):
        out = store.training_set_arrow(path, FEATURES, timestamp="label_time")
        assert out.column("txn_stats__txn_count").to_pylist() == [9, 4, None, None, 4]


def test_sql_spines_are_read(store):
    out = store.training_set_arrow("select 1 as user_id, cast('2026-05-01 12:00:00' as timestamp) as label_time",
                                   FEATURES, timestamp="label_time")
    assert out.to_pylist() == [{"user_id": 1, "label_time": datetime(2026, 5, 1, 12), "txn_stats__txn_count": 4,
                                "profile__country": "DE"}]


def test_missing_entity_column_is_named(store):
    with pytest.raises(InvalidSpine, match="spine has no column 'user_id' \\(key of entity 'user'"):
        store.training_set(spine_df().rename(columns={"user_id": "uid"}), FEATURES, timestamp="label_time")


def test_missing_timestamp_column_is_named(store):
    with pytest.raises(InvalidSpine, match="spine has no timestamp column 'as_of'"):
        store.training_set(spine_df(), FEATURES, timestamp="as_of")


def test_non_timestamp_as_of_is_rejected(store):
    spine = spine_df().assign(label_time="2026-05-01")
    with pytest.raises(InvalidSpine, match="spine column 'label_time' has type string .*, expected a timestamp"):
        store.training_set(spine, FEATURES, timestamp="label_time")


def test_unknown_feature_and_version_are_named(store):
    with pytest.raises(UnknownFeature, match="no feature column 'txn_cnt'"):
        store.training_set(spine_df(), ["txn_stats.txn_cnt"], timestamp="label_time")
    with pytest.raises(UnknownFeature, match="feature view 'txn_stats' has no version 2"):
        store.training_set(spine_df(), ["txn_stats.txn_count@2"], timestamp="label_time")


def test_missing_spine_file_is_named(store, tmp_path):
    with pytest.raises(InvalidSpine, match="does not exist"):
        store.training_set(tmp_path / "nope.parquet", FEATURES, timestamp="label_time")


def test_as_known_at_needs_created_at(store):
    from featurehouse import FeaturehouseError

    with pytest.raises(FeaturehouseError, match="'profile@1' has no created_at column"):
        store.training_set(spine_df(), ["profile.country"], timestamp="label_time", as_known_at=True)


def test_timezone_aware_parquet_spines_are_read_in_utc_and_keep_order(store, tmp_path):
    import pyarrow.parquet as pq

    spine = spine_df()
    spine["label_time"] = spine["label_time"].dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo")
    pq.write_table(pa.Table.from_pandas(spine, preserve_index=False), tmp_path / "tz.parquet")
    table = store.training_set_arrow(tmp_path / "tz.parquet", FEATURES, timestamp="label_time")
    assert table.column("user_id").to_pylist() == [2, 1, 1, 3, 1]
    assert table.column("label_time").to_pylist()[0] == T0
    assert table.column("txn_stats__txn_count").to_pylist() == [9, 4, None, None, 4]


def test_parquet_spine_with_a_non_timestamp_as_of_is_rejected(store, tmp_path):
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"user_id": [1], "label_time": ["yesterday"]}), tmp_path / "bad.parquet")
    with pytest.raises(InvalidSpine, match="spine column 'label_time' has type .*, expected a timestamp"):
        store.training_set(tmp_path / "bad.parquet", FEATURES, timestamp="label_time")
