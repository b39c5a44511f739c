"""The clock every part judges time by: now, as naive UTC (the warehouse's convention for timestamps)."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
