"""Feast repositories written from scratch for the import tests, with their data as Parquet.

`marketplace_repo`: several entities, a composite key (user x merchant), a string key with Unicode,
a late correction (two rows for one key and event time, told apart by the created timestamp), a view
without TTL, a source with a `field_mapping`, and a FeatureService across views. Alongside the
Python Feast would run: an on-demand view, a push source, a stream source and a definition only the
repository's code could compute, which the import must list rather than drop.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

START = datetime(2026, 3, 1, tzinfo=timezone.utc)
USERS = ["u1", "u2", "u3", "ü-4 (o'neil)", "u5"]
MERCHANTS = [10, 20, 30]

MARKETPLACE_DEFINITIONS = '''
from datetime import timedelta
from pathlib import Path

import pandas as pd

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, RequestSource, ValueType
from feast.data_format import JsonFormat
from feast.data_source import KafkaSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Bool, Float32, Float64, Int64, String

DATA = Path(__file__).parent / "data"

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING, description="A buyer.")
merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)

user_stats_source = FileSource(
    name="user_stats_source",
    path=str(DATA / "user_stats.parquet"),
    timestamp_field="ts",
    created_timestamp_column="created_ts",
)

user_stats = FeatureView(
    name="user_stats",
    entities=[user],
    ttl=timedelta(hours=3),
    schema=[
        Field(name="user_id", dtype=String),
        Field(name="spend_7d", dtype=Float64, description="Spend over the trailing week."),
        Field(name="n_orders", dtype=Int64),
        Field(name="segment", dtype=String),
    ],
    source=user_stats_source,
    online=True,
    owner="risk@example.com",
    tags={"team": "risk", "domain": "payments"},
)

merchant_stats = FeatureView(
    name="merchant_stats",
    entities=[merchant],
    schema=[Field(name="risk_score", dtype=Float32), Field(name="is_new", dtype=Bool)],
    source=FileSource(name="merchant_source", path="data/merchant_stats.parquet", timestamp_field="event_timestamp"),
    online=False,
)

pair_source = FileSource(
    name="pair_source",
    path="data/pairs.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
    field_mapping={"amt": "amount_1h"},
)

user_merchant_stats = FeatureView(
    name="user_merchant_stats",
    entities=[user, merchant],
    ttl=timedelta(minutes=90),
    schema=[Field(name="amount_1h", dtype=Float64), Field(name="txn_1h", dtype=Int64)],
    source=pair_source,
)

pair_push = PushSource(name="pair_push", batch_source=pair_source)

user_merchant_fresh = FeatureView(
    name="user_merchant_fresh",
    entities=[user, merchant],
    ttl=timedelta(minutes=90),
    schema=[Field(name="amount_1h", dtype=Float64), Field(name="txn_1h", dtype=Int64)],
    source=pair_push,
)

clicks_stream = KafkaSource(
    name="clicks",
    kafka_bootstrap_servers="localhost:9092",
    topic="clicks",
    timestamp_field="event_timestamp",
    batch_source=FileSource(name="clicks_batch", path="data/merchant_stats.parquet", timestamp_field="event_timestamp"),
    message_format=JsonFormat(schema_json="merchant_id integer, risk_score double, event_timestamp timestamp"),
)

request = RequestSource(name="basket", schema=[Field(name="basket_value", dtype=Float64)])


@on_demand_feature_view(sources=[user_stats, request], schema=[Field(name="spend_ratio", dtype=Float64)])
def spend_ratio(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["spend_ratio"] = inputs["basket_value"] / inputs["spend_7d"]
    return out


regional = [FeatureView(name=f"region_{r}", entities=[user], schema=[], source=user_stats_source) for r in "ab"][0]

fraud_v1 = FeatureService(
    name="fraud_v1",
    features=[user_stats[["spend_7d", "segment"]], merchant_stats, user_merchant_stats, spend_ratio],
    owner="risk@example.com",
    description="The card fraud model, first version.",
)

buyer_service = FeatureService(name="buyer_v1", features=[user_stats.with_name("buyer_stats")],
                               tags={"stage": "production"})
'''

FEATURE_STORE_YAML = """project: {project}
registry: data/registry.db
provider: local
offline_store:
    type: {offline}
online_store:
    type: sqlite
    path: data/online_store.db
entity_key_serialization_version: 3
"""

# The features of marketplace_repo a training set asks for, as Feast names them and as featurehouse does.
MARKETPLACE_FEATURES = ["user_stats:spend_7d", "user_stats:n_orders", "user_stats:segment",
                        "merchant_stats:risk_score", "merchant_stats:is_new",
                        "user_merchant_stats:amount_1h", "user_merchant_stats:txn_1h"]


def marketplace_repo(root: Path, seed: int, offline: str = "duckdb") -> Path:
    """Write the repository and its data under `root`; returns the repository directory."""
    rng = random.Random(seed)
    repo = root / "marketplace_repo"
    (repo / "data").mkdir(parents=True)
    (repo / "feature_definitions.py").write_text(MARKETPLACE_DEFINITIONS, encoding="utf-8")
    (repo / "feature_store.yaml").write_text(FEATURE_STORE_YAML.format(project="marketplace", offline=offline),
                                             encoding="utf-8")

    def minute(m: int) -> datetime:
        return START + timedelta(minutes=m)

    user_rows = []
    for u in USERS[:-1]:  # u5 has no rows: its features are NULL
        for m in sorted(rng.sample(range(0, 24 * 60, 7), 40)):
            created = minute(m) + timedelta(seconds=rng.randint(1, 600))
            row = {"user_id": u, "ts": minute(m), "created_ts": created, "spend_7d": round(rng.uniform(0, 900), 2),
                   "n_orders": rng.randint(0, 50), "segment": rng.choice(["new", "loyal", None, "vip"])}
            user_rows.append(row)
            if rng.random() < 0.2:  # a late correction: same key and event time, created later, new values
                user_rows.append({**row, "created_ts": created + timedelta(minutes=rng.randint(1, 30)),
                                  "spend_7d": round(rng.uniform(0, 900), 2), "n_orders": rng.randint(0, 50)})
    _write(repo / "data" / "user_stats.parquet", user_rows, {
        "user_id": pa.string(), "ts": pa.timestamp("us", tz="UTC"), "created_ts": pa.timestamp("us", tz="UTC"),
        "spend_7d": pa.float64(), "n_orders": pa.int64(), "segment": pa.string()})

    merchant_rows = [{"merchant_id": mid, "event_timestamp": minute(m), "risk_score": rng.choice([0.25, 0.5, 0.75, None]),
                      "is_new": rng.random() < 0.3}
                     for mid in MERCHANTS for m in sorted(rng.sample(range(0, 24 * 60, 5), 15))]
    _write(repo / "data" / "merchant_stats.parquet", merchant_rows, {
        "merchant_id": pa.int64(), "event_timestamp": pa.timestamp("us", tz="UTC"), "risk_score": pa.float32(),
        "is_new": pa.bool_()})

    pair_rows = []
    for u in USERS[:-1]:
        for mid in MERCHANTS:
            for m in sorted(rng.sample(range(0, 24 * 60, 11), 12)):
                pair_rows.append({"user_id": u, "merchant_id": mid, "event_timestamp": minute(m),
                                  "created": minute(m) + timedelta(seconds=rng.randint(0, 59)),
                                  "amt": round(rng.uniform(1, 300), 2), "txn_1h": rng.randint(1, 9)})
    _write(repo / "data" / "pairs.parquet", pair_rows, {
        "user_id": pa.string(), "merchant_id": pa.int64(), "event_timestamp": pa.timestamp("us", tz="UTC"),
        "created": pa.timestamp("us", tz="UTC"), "amt": pa.float64(), "txn_1h": pa.int64()})
    return repo


def marketplace_spine(seed: int, rows: int = 400) -> pa.Table:
    """Entity rows for a training set: every user (one without data), every merchant, as-of times that hit
    event times exactly and TTL edges exactly as well as times in between."""
    rng = random.Random(seed + 1)
    out = []
    for i in range(rows):
        m = rng.choice([rng.randint(-30, 26 * 60), rng.randrange(0, 24 * 60, 7), rng.randrange(0, 24 * 60, 7) + 180,
                        rng.randrange(0, 24 * 60, 11) + 90, rng.randrange(0, 24 * 60, 5)])
        t = START + timedelta(minutes=m, seconds=rng.choice([0, 0, 0, 1, 59]))
        out.append({"row_id": i, "user_id": rng.choice(USERS), "merchant_id": rng.choice(MERCHANTS),
                    "event_timestamp": t})
    return pa.Table.from_pylist(out, schema=pa.schema([
        ("row_id", pa.int64()), ("user_id", pa.string()), ("merchant_id", pa.int64()),
        ("event_timestamp", pa.timestamp("us", tz="UTC"))]))


def _write(path: Path, rows: list[dict], types: dict[str, pa.DataType]) -> None:
    schema = pa.schema(list(types.items()))
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
