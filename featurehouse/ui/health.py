"""A view's freshness as the catalog shows it, from either source: the full check (`featurehouse
freshness`: the warehouse's newest event and the materializers' lag; what the static export shows, as of
its time), or the online store's materializer marks alone (what a serving worker, which never opens the
warehouse, knows live: the lag serving judges staleness by, judged by the check's own rule)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from featurehouse.registry.model import FeatureView
from featurehouse.serving.vectors import Freshness, human_duration, materializer_lag
from featurehouse.ui.pages import FreshnessPanel

if TYPE_CHECKING:  # the check's rows: a serving worker, which renders from marks alone, never imports the guards
    from featurehouse.guard.freshness import ViewFreshness

LIVE = ("live, from the online store's marks: the newest event its sync or stream wrote, and its "
        "materializers' lag, judged by the rule of featurehouse freshness (which also reads the warehouse)")


def from_check(row: ViewFreshness, as_of: str) -> FreshnessPanel:
    """`featurehouse freshness`'s row for the view, as it stood at `as_of`."""
    parts = []
    if row.data_age_s is not None:
        parts.append(f"newest event {human_duration(row.data_age_s)} old")
    if row.materializer_lag_s is not None:
        parts.append(f"materializers lag {human_duration(row.materializer_lag_s)}")
    if row.slo_s is not None:
        parts.append(f"SLO {human_duration(row.slo_s)}")
    facts = _facts(_utc(row.newest_event_time), _utc(row.last_sync_at), row.stream_lag_s, row.slo_s)
    return FreshnessPanel(row.status.replace(" ", "-"), "; ".join(parts) or "no data yet", tuple(row.reasons),
                          f"as of {as_of}, from the same check as featurehouse freshness", row.materializer_lag_s,
                          facts)


def from_marks(view: FeatureView, marks: Freshness, now_s: float) -> FreshnessPanel:
    """Live, from the online store's marks: the age of the newest event written (as `featurehouse freshness`
    judges the warehouse's newest event) and the materializers' lag, with the check's own words."""
    if not view.online:
        return FreshnessPanel("unknown", "not served online: no materializer to watch", (), LIVE)
    lag, _, lagging = materializer_lag(view, marks, now_s)
    slo = view.freshness_slo.total_seconds() if view.freshness_slo else None
    newest = marks.newest_event.get(view.versioned_name)
    age = None if newest is None else max(0.0, now_s - newest)
    parts, reasons = [], []
    if age is not None:
        parts.append(f"newest event {human_duration(age)} old")
        if slo is not None and age > slo:
            reasons.append(f"newest event is {human_duration(age)} old (SLO {human_duration(slo)})")
    parts.append("never synced or streamed to the online store" if lag is None
                 else f"materializers lag {human_duration(lag)}")
    if lagging:
        reasons.append(lagging)
    if slo is not None:
        parts.append(f"SLO {human_duration(slo)}")
    status = "no-slo" if slo is None else "breach" if reasons else "ok"
    versioned = view.versioned_name
    facts = _facts(_epoch(newest), _epoch(marks.synced_at.get(versioned)), marks.stream_lag(versioned, now_s), slo)
    return FreshnessPanel(status, "; ".join(parts), tuple(reasons), LIVE, lag, facts)


def _facts(newest_event: str, last_sync: str, stream_lag_s: float | None,
           slo_s: float | None) -> tuple[tuple[str, str], ...]:
    """What a freshness verdict was judged from, as the page lists it."""
    out = [("Newest event", newest_event), ("Last sync", last_sync)]
    if stream_lag_s is not None:
        out.append(("Stream lag", human_duration(stream_lag_s)))
    out.append(("SLO", human_duration(slo_s) if slo_s is not None else "none"))
    return tuple(out)


def _epoch(seconds: float | None) -> str:
    from datetime import datetime, timezone

    return "never" if seconds is None else f"{datetime.fromtimestamp(seconds, timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


def _utc(moment: datetime | None) -> str:
    """A warehouse time (naive UTC, or aware) as the page writes times."""
    from datetime import timezone

    if moment is None:
        return "never"
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"
