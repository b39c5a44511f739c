"""A brute-force point-in-time join: docs/semantics.md written as the plainest Python we could write."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass
class OracleView:
    keys: tuple[str, ...]
    event_time: str
    created_at: str | None
    feature_columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    ttl: timedelta | None = None
    serving_delay: timedelta | None = None
    as_known_at: bool = False


def _order(value: Any) -> tuple:
    """NULL lowest, NaN highest, otherwise the value itself (strings by code point)."""
    if value is None:
        return (0,)
    if isinstance(value, float) and math.isnan(value):
        return (2,)
    return (1, value)


def latest_row(view: OracleView, key: tuple, as_of: datetime | None) -> dict[str, Any] | None:
    if as_of is None or any(k is None for k in key):
        return None
    upper = as_of - (view.serving_delay or timedelta(0))
    candidates = []
    for row in view.rows:
        et = row[view.event_time]
        if et is None or tuple(row[k] for k in view.keys) != key:
            continue
        if et > upper:
            continue
        if view.ttl is not None and et < as_of - view.ttl:
            continue
        if view.as_known_at:
            created = row[view.created_at]
            if created is None or created > as_of:
                continue
        candidates.append(row)
    if not candidates:
        return None

    def rank(row):
        tie = [_order(row[view.created_at])] if view.created_at else []
        return (row[view.event_time], *tie, *[_order(row[c]) for c in view.feature_columns])

    return max(candidates, key=rank)


def point_in_time(spine: list[dict[str, Any]], timestamp: str, views: dict[str, OracleView],
                  wanted: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Each spine row, in order, with `view__column` for every wanted feature."""
    out = []
    for srow in spine:
        row = dict(srow)
        for name, view in views.items():
            hit = latest_row(view, tuple(srow[k] for k in view.keys), srow[timestamp])
            for col in wanted[name]:
                row[f"{name}__{col}"] = None if hit is None else hit[col]
        out.append(row)
    return out
