"""Feast reference half of bench/training_set.py.  Runs INSIDE the Feast venv
(see bench/feast_env.sh), one store per process:

    $FEAST_PY bench/feast_driver.py --data DIR --store duckdb|file [--repeat 3] [--out result.parquet]

Builds a throwaway Feast repo in a temp dir (file registry, sqlite online store,
provider local): Entity ``user`` (join key user_id), FeatureViews ``big_view``
(ttl 7d) and ``small_view`` (ttl 365d) over FileSource(timestamp_field=
'event_time', created_timestamp_column='created_at').  Times
``get_historical_features(entity_df=<spine.parquet as pandas>, features=[6 refs]).to_df()``
``--repeat`` times and prints ONE JSON line on stdout:

    {"store", "times_s", "median_s", "peak_rss_mb", "rows", "spine_rows", "feast_version", "non_null"}

peak_rss_mb is ru_maxrss of this process (includes reading the spine).  All
Feast output (logs, warnings, prints) goes to stderr.  ``--out`` writes the
last result (spine columns + 6 features) to Parquet for cross-checking.

Measured with Feast 0.67.0 on the default data (1M spine, 5M big rows, 2 cores):
  duckdb: ~7 s per call, ~1.0 GB peak RSS, result identical to reference_sql.
  file:   ~670 s per call, ~17.9 GB peak RSS (left-merges every spine row with
          every row of its user before the TTL filter), and WRONG: it returns
          only ~455k of 1M rows (spine rows whose user has view rows but none
          inside the TTL window are dropped by _filter_ttl) and ~4k rows carry
          a superseded correction (created_at tie-break lost in the dask sort).
          Use --repeat 1 for it; "rows" != "spine_rows" flags the row loss.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

BIG_FEATURES = ("txn_count_7d", "amount_sum_7d", "amount_max_7d")
SMALL_FEATURES = ("age_days", "country", "risk_score")
OFFLINE_STORE_TYPE = {"duckdb": "duckdb", "file": "file"}  # "file" == Feast's dask store


def _write_repo_config(repo: Path, store: str) -> None:
    (repo / "data").mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        "project: fh_bench\n"
        f"registry: {repo / 'data' / 'registry.db'}\n"
        "provider: local\n"
        "online_store:\n"
        "  type: sqlite\n"
        f"  path: {repo / 'data' / 'online_store.db'}\n"
        "offline_store:\n"
        f"  type: {OFFLINE_STORE_TYPE[store]}\n"
        "entity_key_serialization_version: 3\n"
    )


def _objects(data: Path):
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64, String

    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    big = FeatureView(
        name="big_view",
        entities=[user],
        ttl=timedelta(days=7),
        schema=[Field(name="txn_count_7d", dtype=Int64), Field(name="amount_sum_7d", dtype=Float64),
                Field(name="amount_max_7d", dtype=Float64)],
        source=FileSource(name="big_src", path=str(data / "big_view.parquet"),
                          timestamp_field="event_time", created_timestamp_column="created_at"),
        online=False,
    )
    small = FeatureView(
        name="small_view",
        entities=[user],
        ttl=timedelta(days=365),
        schema=[Field(name="age_days", dtype=Int64), Field(name="country", dtype=String),
                Field(name="risk_score", dtype=Float64)],
        source=FileSource(name="small_src", path=str(data / "small_view.parquet"),
                          timestamp_field="event_time", created_timestamp_column="created_at"),
        online=False,
    )
    return [user, big, small]


def run(data: Path, store: str, repeat: int, out: str | None) -> dict:
    import pandas as pd
    import feast
    from feast import FeatureStore

    features = [f"big_view:{f}" for f in BIG_FEATURES] + [f"small_view:{f}" for f in SMALL_FEATURES]
    with tempfile.TemporaryDirectory(prefix="fh-feast-") as tmp:
        repo = Path(tmp)
        _write_repo_config(repo, store)
        fs = FeatureStore(repo_path=str(repo))
        fs.apply(_objects(data))
        entity_df = pd.read_parquet(data / "spine.parquet")

        times, df = [], None
        for _ in range(repeat):
            df = None  # free the previous result before the next run
            t0 = time.perf_counter()
            df = fs.get_historical_features(entity_df=entity_df, features=features).to_df()
            times.append(round(time.perf_counter() - t0, 3))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
        non_null = {f: int(df[f].notna().sum()) for f in BIG_FEATURES + SMALL_FEATURES}
        if out:
            df.to_parquet(out, index=False)
    return {
        "store": store,
        "times_s": times,
        "median_s": statistics.median(times),
        "peak_rss_mb": round(peak, 1),
        "rows": int(len(df)),
        "spine_rows": int(len(entity_df)),
        "feast_version": feast.__version__,
        "non_null": non_null,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="time Feast get_historical_features on the bench data")
    ap.add_argument("--data", required=True, help="dir with spine/big_view/small_view.parquet")
    ap.add_argument("--store", choices=sorted(OFFLINE_STORE_TYPE), required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", help="optional Parquet path for the last result")
    a = ap.parse_args(argv)

    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        res = run(Path(a.data).resolve(), a.store, a.repeat, a.out)
    real_stdout.write(json.dumps(res) + "\n")
    real_stdout.flush()


if __name__ == "__main__":
    main()
