"""The clock every part judges time by: now, as naive UTC (the warehouse's convention for timestamps)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def naive_utc_value(value: Any) -> Any:
    """A value as the online store gives it back: instants (a TIMESTAMPTZ value, Spark's TIMESTAMP; also inside
    lists) as naive UTC, anything else as it is."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    if isinstance(value, list):
        return [naive_utc_value(v) for v in value]
    return value


EPOCH = datetime(1970, 1, 1)


def epoch_seconds(value: datetime) -> float:
    """A naive UTC time as seconds since the epoch (what the online store's marks hold)."""
    return (value - EPOCH).total_seconds()
