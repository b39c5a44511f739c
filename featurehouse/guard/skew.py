"""Training-serving skew: what serving returned against what training would have joined at that moment.

For each logged served vector, the point-in-time join (the training-set code path) is run with the
vector's entity and `served_at` as the spine. Per feature: how often the two differ, the mean absolute
numeric error, and the null rates on both sides. Values are compared as serving rendered them (the
JSON the model received), so a difference here is a difference the model saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson
import pyarrow as pa

from featurehouse.guard.served import served_values
from featurehouse.registry.model import Registry, parse_entity_key
from featurehouse.serving.served_log import render_value


@dataclass
class FeatureSkew:
    feature: str  # view.column@N
    compared: int
    mismatches: int
    mean_abs_error: float | None
    null_rate_served: float
    null_rate_offline: float
    examples: list[tuple[str, datetime, str, str]]  # (entity, served_at, served, offline)

    @property
    def mismatch_rate(self) -> float:
        return self.mismatches / self.compared if self.compared else 0.0


def measure_skew(store, model: str | None = None, since: datetime | None = None,
                 features: list[str] | None = None) -> list[FeatureSkew]:
    """Skew per logged feature@version (of one model, since a time, or of these versioned features)."""
    table = served_values(store.warehouse, model, since)
    if table.num_rows == 0:
        return []
    rows = table.to_pylist()
    if features:
        wanted = set(features)
        rows = [r for r in rows if f"{r['feature']}@{r['version']}" in wanted]
    registry: Registry = store.registry
    by_type: dict[str, list[dict]] = {}
    for r in rows:
        by_type.setdefault(r["entity_type"], []).append(r)
    out: list[FeatureSkew] = []
    for entity_type, typed in by_type.items():
        out += _skew_of_entity_type(store, registry, entity_type, typed)
    return sorted(out, key=lambda s: s.feature)


def _skew_of_entity_type(store, registry: Registry, entity_type: str, rows: list[dict]) -> list[FeatureSkew]:
    entity = registry.entities[entity_type]
    versioned = sorted({f"{r['feature']}@{r['version']}" for r in rows})
    # one spine row per served vector
    vectors: dict[tuple[str, datetime], int] = {}
    for r in rows:
        vectors.setdefault((r["entity_id"], r["served_at"]), len(vectors))
    casts = _key_casts(store, registry, entity_type, versioned)
    spine_cols: dict[str, list] = {k: [] for k in entity.keys}
    spine_cols["__fh_served_at"] = []
    for (entity_id, served_at) in vectors:
        for k, v in zip(entity.keys, parse_entity_key(entity, entity_id)):
            spine_cols[k].append(casts[k](v))
        spine_cols["__fh_served_at"].append(served_at)
    spine = pa.table({**{k: spine_cols[k] for k in entity.keys},
                      "__fh_served_at": pa.array(spine_cols["__fh_served_at"], pa.timestamp("us"))})
    ts = store.build_training_set(spine, versioned, "__fh_served_at", entity=entity_type, record=False)
    column_of = dict(zip(ts.features, ts.columns))
    offline = {c: ts.table.column(c).to_pylist() for c in ts.columns}
    results = []
    for feature in versioned:
        served = [r for r in rows if f"{r['feature']}@{r['version']}" == feature]
        values = offline[column_of[feature]]
        mismatches, errors, nulls_served, nulls_offline, examples = 0, [], 0, 0, []
        for r in served:
            index = vectors[(r["entity_id"], r["served_at"])]
            offline_json = render_value(values[index])
            served_value, offline_value = orjson.loads(r["value_json"]), values[index]
            nulls_served += served_value is None
            nulls_offline += offline_json == "null"
            if r["value_json"] != offline_json:
                mismatches += 1
                if len(examples) < 5:
                    examples.append((r["entity_id"], r["served_at"], r["value_json"], offline_json))
            if _number(served_value) and _number(offline_value):
                errors.append(abs(float(served_value) - float(offline_value)))
        n = len(served)
        results.append(FeatureSkew(feature, n, mismatches, sum(errors) / len(errors) if errors else None,
                                   nulls_served / n, nulls_offline / n, examples))
    return results


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _key_casts(store, registry: Registry, entity_type: str, versioned: list[str]) -> dict:
    """Served ids are text; the spine's keys must have the views' key types for the join."""
    from featurehouse.registry.model import FeatureRef

    view, _ = registry.resolve(FeatureRef.parse(versioned[0]))
    described = store.warehouse.describe(view.relation) or {}
    casts = {}
    for key in registry.entities[entity_type].keys:
        kind = family_of_sql_type(described.get(key, "varchar"))
        casts[key] = int if kind == "integer" else float if kind == "float" else str
    return casts


def family_of_sql_type(data_type: str) -> str:
    t = data_type.lower()
    if any(x in t for x in ("int", "serial")):
        return "integer"
    if any(x in t for x in ("double", "float", "real", "numeric", "decimal")):
        return "float"
    return "string"
