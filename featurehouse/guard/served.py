"""Landing the served-vector log in the warehouse: `featurehouse.featurehouse_served_values`.

One row per served value (entity, feature, version, rendered value, event time, status, served_at,
model). Landing is idempotent by stream id: a batch that landed and was not yet trimmed from the
stream (a crash in between) lands again as the same rows, replacing themselves.
"""

from __future__ import annotations

from datetime import datetime

import orjson
import pyarrow as pa
from sqlglot import exp

from featurehouse.catalog import SERVED_VALUES, Catalog, as_catalog
from featurehouse.catalog.catalog import CatalogWarehouse
from featurehouse.online.codec import from_micros
from featurehouse.serving.served_log import SERVED_STREAM

TABLE = SERVED_VALUES.name
ARROW_SCHEMA = pa.schema([
    ("stream_id", pa.string()), ("entity_type", pa.string()), ("entity_id", pa.string()), ("model", pa.string()),
    ("served_at", pa.timestamp("us")), ("feature", pa.string()), ("version", pa.int64()),
    ("value_json", pa.string()), ("value_num", pa.float64()), ("event_time", pa.timestamp("us")),
    ("status", pa.string()),
])


def land_served(client, catalog: Catalog | CatalogWarehouse, batch: int = 5000) -> int:
    """Move the served stream into the warehouse; returns how many vectors landed."""
    catalog = as_catalog(catalog)
    landed = 0
    while True:
        entries = client.xrange(SERVED_STREAM, "-", "+", count=batch)
        if not entries:
            return landed
        catalog.append(SERVED_VALUES, _rows(entries), "stream_id")
        last = entries[-1][0].decode() if isinstance(entries[-1][0], bytes) else entries[-1][0]
        ms, _, seq = last.partition("-")
        client.xtrim(SERVED_STREAM, minid=f"{ms}-{int(seq) + 1}", approximate=False)  # what landed, exactly
        landed += len(entries)
        if len(entries) < batch:
            return landed


def _rows(entries) -> pa.Table:
    cols: dict[str, list] = {f.name: [] for f in ARROW_SCHEMA}
    for stream_id, fields in entries:
        f = {k.decode(): v for k, v in fields.items()}
        sid = stream_id.decode()
        served_at = from_micros(int(f["served_at"]))
        for name, (value_json, event_us, status, version) in orjson.loads(f["features"]).items():
            value = orjson.loads(value_json)
            cols["stream_id"].append(sid)
            cols["entity_type"].append(f["entity_type"].decode())
            cols["entity_id"].append(f["entity_id"].decode())
            cols["model"].append(f["model"].decode() or None)
            cols["served_at"].append(served_at)
            cols["feature"].append(name.partition("@")[0])
            cols["version"].append(int(version))
            cols["value_json"].append(value_json)
            cols["value_num"].append(float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None)
            cols["event_time"].append(from_micros(event_us) if event_us is not None else None)
            cols["status"].append(status)
    return pa.table(cols, schema=ARROW_SCHEMA)


def served_values(catalog: Catalog | CatalogWarehouse, model: str | None = None, since: datetime | None = None,
                  features: list[str] | None = None) -> pa.Table:
    """Landed served values, optionally of one model (`name` or `name@version`) and since a time."""
    catalog = as_catalog(catalog)
    if not catalog.exists(SERVED_VALUES):
        return ARROW_SCHEMA.empty_table()
    conditions: list[exp.Expr] = []
    params: list = []
    if model:
        same = exp.column("model", quoted=True).eq(exp.Placeholder())
        params.append(model)
        if "@" not in model:  # a model's name covers all its versions
            same = exp.or_(same, exp.Like(this=exp.column("model", quoted=True), expression=exp.Placeholder()))
            params.append(model + "@%")
        conditions.append(exp.paren(same))
    if since is not None:
        conditions.append(exp.GTE(this=exp.column("served_at", quoted=True), expression=exp.Placeholder()))
        params.append(since)
    if features:
        conditions.append(exp.In(this=exp.column("feature", quoted=True),
                                 expressions=[exp.Placeholder() for _ in features]))
        params.extend(features)
    return catalog.select(SERVED_VALUES, order_by=("served_at", "stream_id"),
                          condition=exp.and_(*conditions) if conditions else None, condition_params=params)
