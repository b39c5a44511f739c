"""The clock every part judges time by: now, as naive UTC (the warehouse's convention for timestamps)."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


EPOCH = datetime(1970, 1, 1)


def epoch_seconds(value: datetime) -> float:
    """A naive UTC time as seconds since the epoch (what the online store's marks hold)."""
    return (value - EPOCH).total_seconds()
