"""Drift: served feature values against the distributions a model's training set had.

Each recorded training set keeps a profile per feature (offline/profile.py). Served values (the
landed served-vector log) are binned the same way and compared by the population stability index,
with nulls as a bin of their own. Rule of thumb: PSI < 0.1 stable, 0.1 - 0.2 moderate, > 0.2 drifted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import orjson

from featurehouse.catalog import Catalog
from featurehouse.guard.served import served_values
from featurehouse.offline.lineage import LineageLog
from featurehouse.offline.profile import OTHER, categorical_shares, numeric_shares, psi

MIN_SERVED = 50


@dataclass
class FeatureDrift:
    feature: str  # view.column@N
    served: int
    psi: float | None  # None: too few served values to judge
    null_rate_training: float
    null_rate_served: float
    mean_training: float | None = None
    mean_served: float | None = None

    def flagged(self, threshold: float) -> bool:
        return self.psi is not None and self.psi > threshold


def measure_drift(catalog: Catalog, training_set_id: str, model: str | None = None, since: datetime | None = None
                  ) -> list[FeatureDrift]:
    record = LineageLog(catalog).training_set(training_set_id)
    bare = {f.rpartition("@")[0] for f in record.features}
    table = served_values(catalog, model, since, sorted(bare))
    served: dict[str, list] = {}
    for r in table.to_pylist():
        served.setdefault(f"{r['feature']}@{r['version']}", []).append(orjson.loads(r["value_json"]))
    out = []
    for feature in record.features:
        profile = record.profile.get(feature, {})
        values = served.get(feature, [])
        n = len(values)
        non_null = [v for v in values if v is not None]
        null_served = 1 - len(non_null) / n if n else 0.0
        null_training = profile.get("null_rate", 0.0)
        row = FeatureDrift(feature, n, None, null_training, null_served, profile.get("mean"))
        if n >= MIN_SERVED and profile:
            if profile.get("kind") == "numeric":
                numbers = np.asarray([float(v) for v in non_null if isinstance(v, (int, float))], dtype=float)
                expected = [null_training] + [s * (1 - null_training) for s in profile.get("shares", [])]
                actual = [null_served] + [s * (1 - null_served) for s in numeric_shares(numbers, profile.get("edges", []))]
                row.mean_served = float(numbers.mean()) if numbers.size else None
            else:
                known = [k for k in profile.get("shares", {}) if k != OTHER]
                shares = categorical_shares([_category(v) for v in non_null], known)
                expected = {"__null__": null_training, **{k: s * (1 - null_training) for k, s in profile["shares"].items()}}
                actual = {"__null__": null_served, **{k: s * (1 - null_served) for k, s in shares.items()}}
            row.psi = psi(expected, actual)
        out.append(row)
    return out


def _category(value) -> str:
    """Served values are JSON; training profiles hold Arrow's text of a value (`true`, not `True`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
