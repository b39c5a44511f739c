"""A spine a user hands over wrong is a one-line InvalidSpine naming the problem, on every engine."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featurehouse.errors import InvalidSpine
from featurehouse.offline.spine import load_spine

TS = datetime(2026, 5, 1)
pytestmark = pytest.mark.spark_ready


def test_a_dataframe_with_two_columns_of_one_name_is_refused(warehouse):
    df = pd.DataFrame([[1, 2, TS]], columns=["user_id", "user_id", "ts"])
    with pytest.raises(InvalidSpine, match="two columns named 'user_id'"):
        load_spine(warehouse, df, "ts")


def test_an_arrow_table_with_two_columns_of_one_name_is_refused(warehouse):
    table = pa.table([pa.array([1]), pa.array([2]), pa.array([TS])], names=["user_id", "user_id", "ts"])
    with pytest.raises(InvalidSpine, match="two columns named 'user_id'"):
        load_spine(warehouse, table, "ts")


def test_sql_naming_one_column_twice_is_refused_not_renamed(warehouse):
    with pytest.raises(InvalidSpine, match="two columns named 'user_id'"):
        load_spine(warehouse, "select 1 as user_id, 2 as user_id, current_timestamp as ts", "ts")


def test_sql_with_two_statements_is_refused(warehouse):
    with pytest.raises(InvalidSpine, match="one query, got 2 statements"):
        load_spine(warehouse, "select 1 as user_id, current_timestamp as ts; select 2 as user_id", "ts")


def test_a_corrupt_parquet_file_is_refused_naming_it(warehouse, tmp_path):
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"user_id": [1, 2], "ts": [TS, TS]}), good)
    bad = tmp_path / "labels.parquet"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(InvalidSpine, match="labels.parquet cannot be read"):
        load_spine(warehouse, bad, "ts")
