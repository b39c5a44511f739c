"""Pushed rows: validated against the view's schema before they enter the durable stream.

A pushed row is a mapping with the view's entity key columns, its event_time column and any of its
feature columns (missing ones are NULL). Its created_at is the time featurehouse received it, never the
client's: ingestion time is what incremental syncs and "as known at" reads rely on. An event time
further ahead of the clock than `max_clock_skew` (default 5 minutes) is rejected: the write guard
keeps the newest event, so one row from the far future would outrank every real one for good.
Anything else, or a value of the wrong type, is rejected naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping

from featurehouse.errors import FeaturehouseError
from featurehouse.registry.model import FeatureView
from featurehouse.types import Family, logical


class InvalidRow(FeaturehouseError):
    """A pushed row that does not fit the view; `field` names the culprit."""

    def __init__(self, view: str, field: str, problem: str):
        self.view, self.field, self.problem = view, field, problem
        super().__init__(f"view '{view}': field '{field}': {problem}")


@dataclass(frozen=True)
class ValidRow:
    key: tuple
    event_time: datetime
    created_at: datetime
    values: tuple


def _timestamp(view: str, field: str, value: Any) -> datetime:
    try:
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value
        if isinstance(value, str):
            try:
                return _timestamp(view, field, datetime.fromisoformat(value.replace("Z", "+00:00")))
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return datetime.fromtimestamp(value, timezone.utc).replace(tzinfo=None)  # epoch seconds
    except (OverflowError, OSError, ValueError):  # a year outside 1..9999 once in UTC, an epoch of 1e20
        raise InvalidRow(view, field, f"{value!r} is outside the timestamps featurehouse can hold "
                                      "(years 1 to 9999, UTC)") from None
    raise InvalidRow(view, field, f"expected a timestamp (ISO 8601 or epoch seconds), got {value!r}")


_INT64 = range(-(2**63), 2**63)
MAX_CLOCK_SKEW = timedelta(minutes=5)


def coerce(view: str, field: str, data_type: str | None, value: Any) -> Any:
    """Check a value against a declared type (featurehouse.types); JSON's numbers and strings are
    converted where exact. A value is held as it would be served: a DECIMAL column takes numbers as
    floats, a HUGEINT column integers in BIGINT's range (docs/semantics.md, "Types")."""
    if value is None:
        return None
    declared = logical(data_type)
    family = declared.family
    ok = True
    if family is Family.INTEGER:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and value not in _INT64:  # what the online store and every warehouse hold as an integer
            raise InvalidRow(view, field, f"{value} is outside the 64-bit range of {data_type}")
    elif family is Family.FLOAT:
        if isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        ok = isinstance(value, float)
    elif family is Family.BOOLEAN:
        ok = isinstance(value, bool)
    elif family is Family.STRING:
        ok = isinstance(value, str)
    elif family is Family.TIMESTAMP:
        return _timestamp(view, field, value)
    elif family is Family.DATE:
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value)
            except ValueError:
                ok = False
        ok = ok and isinstance(value, date)
    elif family is Family.LIST:
        ok = isinstance(value, list)
    if not ok:
        raise InvalidRow(view, field, f"expected {data_type}, got {type(value).__name__} {value!r}")
    return value


def validate(view: FeatureView, row: Mapping[str, Any], now: datetime | None = None,
             max_clock_skew: timedelta = MAX_CLOCK_SKEW) -> ValidRow:
    if not isinstance(row, Mapping):
        raise InvalidRow(view.name, "<row>", "a row must be an object of column: value")
    if view.created_at and view.created_at in row:
        raise InvalidRow(view.name, view.created_at, "is set by featurehouse when the row arrives (its ingestion "
                                                     "time); leave it out")
    known = set(view.entity.keys) | {view.event_time} | set(view.feature_columns)
    unknown = sorted(set(row) - known)
    if unknown:
        raise InvalidRow(view.name, unknown[0], f"not a column of the view (columns: {', '.join(sorted(known))})")
    key = []
    for k in view.entity.keys:
        value = row.get(k)
        if value is None or isinstance(value, (bool, float, list, dict)):
            raise InvalidRow(view.name, k, f"entity key column is required (a string or an integer), got {value!r}")
        if isinstance(value, int) and value not in _INT64:
            raise InvalidRow(view.name, k, f"{value} is outside the 64-bit range of an integer key")
        key.append(value)
    if row.get(view.event_time) is None:
        raise InvalidRow(view.name, view.event_time, "event time is required")
    event_time = _timestamp(view.name, view.event_time, row[view.event_time])
    created_at = now or datetime.now(timezone.utc).replace(tzinfo=None)
    if event_time > created_at + max_clock_skew:
        raise InvalidRow(view.name, view.event_time, f"{event_time.isoformat()} is ahead of the server's clock "
                                                     f"({created_at.isoformat(timespec='seconds')} UTC) by more than "
                                                     f"the allowed clock skew ({max_clock_skew})")
    values = tuple(coerce(view.name, f.column, f.data_type, row.get(f.column)) for f in view.features)
    return ValidRow(tuple(key), event_time, created_at, values)
