"""Online/offline parity: do the online store's values and event times equal the warehouse's latest rows?

For sampled (or all) entities of a view@version, the warehouse's latest row (the same SQL the sync
runs, so the same ranking as training) is compared with what the online store holds. Differences are
classified: a value differs, the event time differs, the entity is missing online. A row that reached
the warehouse after the last good sync (its created_at is past the sync's watermark) is *pending*,
not a mismatch: the next sync will carry it. Rows past the view's TTL may be gone online (retention).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlglot import exp

from featurehouse.catalog import Catalog
from featurehouse.clock import naive_utc_value
from featurehouse.guard.freshness import last_good_syncs
from featurehouse.offline.warehouse import Warehouse, utc_now
from featurehouse.online.history import ParityResult, record_parity
from featurehouse.registry.model import FeatureView
from featurehouse.sync.latest import latest_values_sql

MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Mismatch:
    feature: str  # view.column, or view.<event_time> for event-time differences
    entity_id: str
    online: Any
    warehouse: Any
    kind: str  # value | event_time | missing_online


@dataclass
class ViewParity:
    view: str
    version: int
    compared: int = 0
    mismatched: int = 0  # entities with any difference
    missing_online: int = 0
    event_time_differs: int = 0
    pending: int = 0  # newer in the warehouse than the last sync's watermark
    expired: int = 0  # past the TTL and gone online (retention): not compared
    per_feature: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[Mismatch]] = field(default_factory=dict)

    @property
    def versioned_name(self) -> str:
        return f"{self.view}@{self.version}"

    @property
    def rate(self) -> float:
        return self.mismatched / self.compared if self.compared else 0.0

    def add(self, m: Mismatch) -> None:
        self.per_feature[m.feature] = self.per_feature.get(m.feature, 0) + 1
        examples = self.examples.setdefault(m.feature, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(m)


def entity_id(view: FeatureView, key: tuple) -> str:
    """The id as serving takes it: `42`, or `card_id=1;merchant_id=7` (values percent-encoded)."""
    from urllib.parse import quote

    if len(view.entity.keys) == 1:
        return str(key[0])
    return ";".join(f"{k}={quote(str(v), safe='')}" for k, v in zip(view.entity.keys, key))


def same(a: Any, b: Any) -> bool:
    """Exact equality: the same type and value (values round-trip the online store with their types,
    and every path serves one Python type per feature: an int 1 is not a float 1.0, True is not 1),
    NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def sample_sql(view: FeatureView, dialect: str, sample: int | None, seed: str = "featurehouse") -> str:
    """The latest row per entity, for `sample` entities picked by a hash of their key (stable across runs
    and engines), or all of them."""
    latest = latest_values_sql(view, dialect)
    if sample is None:
        return latest
    parts: list[exp.Expr] = [exp.cast(exp.column(k, quoted=True), exp.DataType.Type.TEXT) for k in view.entity.keys]
    text: exp.Expr = exp.Literal.string(seed)
    for part in reversed(parts):  # key1 || key2 || ... || seed
        text = exp.DPipe(this=part, expression=text)
    digest = exp.func("md5", text).sql(dialect)  # TEXT: VARCHAR on DuckDB, STRING on Spark
    return f"SELECT * FROM ({latest}) AS __fh_latest ORDER BY {digest} LIMIT {int(sample)}"


def check_parity(warehouse: Warehouse, online, view: FeatureView, sample: int | None = 1000,
                 now: datetime | None = None, batch: int = 500, catalog: Catalog | None = None) -> ViewParity:
    now = now or utc_now()
    result = ViewParity(view.name, view.version)
    table = warehouse.fetch_arrow(sample_sql(view, warehouse.dialect, sample))
    watermark = last_good_syncs(catalog or warehouse).get((view.name, view.version), {}).get("watermark")
    rows = table.to_pylist()
    columns = view.feature_columns
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        keys = [tuple(r[k] for k in view.entity.keys) for r in chunk]
        records = online.read(view.entity.name, keys, [(view, view.version)])
        for row, key, rec in zip(chunk, keys, records):
            record = rec[view.versioned_name]
            et = naive_utc_value(row["__fh_event_time"])  # the online store holds naive UTC; TIMESTAMPTZ comes aware
            created_at = row["__fh_created_at"]
            expired = view.ttl is not None and et < now - view.ttl
            pending = watermark is not None and created_at is not None and naive_utc_value(created_at) > watermark
            if record is None:
                if expired:
                    result.expired += 1
                    continue
                if pending:
                    result.pending += 1
                    continue
                result.compared += 1
                result.mismatched += 1
                result.missing_online += 1
                result.add(Mismatch(f"{view.name}.<entity>", entity_id(view, key), None, et, "missing_online"))
                continue
            if record.event_time < et and pending:
                result.pending += 1
                continue
            result.compared += 1
            differs = False
            if record.event_time != et:
                differs = True
                result.event_time_differs += 1
                result.add(Mismatch(f"{view.name}.{view.event_time}", entity_id(view, key), record.event_time, et,
                                    "event_time"))
            for column in columns:
                online_value, offline_value = record.values.get(column), naive_utc_value(row[column])
                if not same(online_value, offline_value):
                    differs = True
                    result.add(Mismatch(f"{view.name}.{column}", entity_id(view, key), online_value, offline_value,
                                        "value"))
            result.mismatched += differs
    _remember(online, result)
    return result


def _remember(online, result: ViewParity) -> None:
    """The check's counts for the web catalog's health (featurehouse/online/history.py); a store that
    refuses them costs the catalog its parity tile, never the check's result."""
    import redis

    # counts and feature names only: the catalog shows every view's page to every reader, values and entity
    # ids of restricted views included, so it is never told either
    worst = sorted(result.per_feature.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    example = ", ".join(f"{n:,} missing online" if feature.endswith(".<entity>") else f"{feature} differs for {n:,}"
                        for feature, n in worst)
    try:
        record_parity(online.client, ParityResult(result.versioned_name, time.time(), result.compared,
                                                  result.mismatched, result.missing_online, result.pending, example))
    except (redis.RedisError, AttributeError):
        pass
