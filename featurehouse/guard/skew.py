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

from featurehouse import types
from featurehouse.catalog import Catalog
from featurehouse.guard.served import served_values
from featurehouse.offline.training_set import build_training_set
from featurehouse.offline.warehouse import Warehouse
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


def measure_skew(registry: Registry, warehouse: Warehouse, catalog: Catalog, model: str | None = None,
                 since: datetime | None = None, features: list[str] | None = None) -> list[FeatureSkew]:
    """Skew per logged feature@version (of one model, since a time, or of these versioned features)."""
    table = served_values(catalog, model, since)
    if table.num_rows == 0:
        return []
    # columns, not row dicts: served logs run to millions of values
    cols = {c: table.column(c).to_pylist() for c in ("entity_type", "entity_id", "feature", "version", "value_json")}
    served_us = table.column("served_at").cast(pa.int64()).to_pylist()
    wanted = set(features) if features else None
    by_type: dict[str, list[int]] = {}
    versioned = [f"{f}@{v}" for f, v in zip(cols["feature"], cols["version"])]
    for i, entity_type in enumerate(cols["entity_type"]):
        if wanted is None or versioned[i] in wanted:
            by_type.setdefault(entity_type, []).append(i)
    out: list[FeatureSkew] = []
    for entity_type, rows in by_type.items():
        out += _skew_of_entity_type(warehouse, registry, entity_type, rows, cols, served_us, versioned)
    return sorted(out, key=lambda s: s.feature)


def _skew_of_entity_type(warehouse: Warehouse, registry: Registry, entity_type: str, rows: list[int], cols: dict,
                         served_us: list[int], versioned: list[str]) -> list[FeatureSkew]:
    entity = registry.entities[entity_type]
    names = sorted({versioned[i] for i in rows})
    vectors: dict[tuple[str, int], int] = {}  # (entity id, served_at µs) -> spine row
    by_feature: dict[str, list[tuple[int, int]]] = {n: [] for n in names}  # feature -> [(log row, spine row)]
    for i in rows:
        spine_row = vectors.setdefault((cols["entity_id"][i], served_us[i]), len(vectors))
        by_feature[versioned[i]].append((i, spine_row))
    casts = _key_casts(warehouse, registry, entity_type, names)
    keys: dict[str, list] = {k: [] for k in entity.keys}
    for entity_id, _ in vectors:
        for k, v in zip(entity.keys, parse_entity_key(entity, entity_id)):
            keys[k].append(casts[k](v))
    spine = pa.table({**keys, "__fh_served_at": pa.array([at for _, at in vectors], pa.int64()).cast(pa.timestamp("us"))})
    ts = build_training_set(warehouse, registry, spine, names, "__fh_served_at", entity=entity_type)
    column_of = dict(zip(ts.features, ts.columns))
    results = []
    for feature in names:
        offline = ts.table.column(column_of[feature]).to_pylist()
        rendered: dict[int, str] = {}
        mismatches = nulls_served = nulls_offline = 0
        errors: list[float] = []
        examples = []
        for i, spine_row in by_feature[feature]:
            offline_json = rendered.get(spine_row)
            if offline_json is None:
                offline_json = rendered[spine_row] = render_value(offline[spine_row])
            served_json = cols["value_json"][i]
            nulls_served += served_json == "null"
            nulls_offline += offline_json == "null"
            if served_json != offline_json:
                mismatches += 1
                if len(examples) < 5:
                    examples.append((cols["entity_id"][i], _at(served_us[i]), served_json, offline_json))
                served_value, offline_value = orjson.loads(served_json), offline[spine_row]
                if _number(served_value) and _number(offline_value):
                    errors.append(abs(float(served_value) - float(offline_value)))
            elif _number(offline[spine_row]):
                errors.append(0.0)
        n = len(by_feature[feature])
        results.append(FeatureSkew(feature, n, mismatches, sum(errors) / len(errors) if errors else None,
                                   nulls_served / n, nulls_offline / n, examples))
    return results


def _at(micros: int) -> datetime:
    from featurehouse.online.codec import from_micros

    return from_micros(micros)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _key_casts(warehouse: Warehouse, registry: Registry, entity_type: str, versioned: list[str]) -> dict:
    """Served ids are text; the spine's keys must have the views' key types for the join."""
    from featurehouse.registry.model import FeatureRef

    view, _ = registry.resolve(FeatureRef.parse(versioned[0]))
    described = warehouse.describe(view.relation) or {}
    casts = {}
    for key in registry.entities[entity_type].keys:
        kind = types.family(described.get(key, "varchar"), warehouse.dialect)
        casts[key] = int if kind is types.Family.INTEGER else float if kind is types.Family.FLOAT else str
    return casts
