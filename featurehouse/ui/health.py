"""A view's freshness as the catalog shows it, from either source: the full check (`featurehouse
freshness`: the warehouse's newest event and the materializers' lag; what the static export shows, as of
its time), or the online store's materializer marks alone (what a serving worker, which never opens the
warehouse, knows live: the lag serving judges staleness by, judged by the check's own rule)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurehouse.registry.model import FeatureView
from featurehouse.serving.vectors import Freshness, human_duration, materializer_lag
from featurehouse.ui.pages import FreshnessPanel

if TYPE_CHECKING:  # the check's rows: a serving worker, which renders from marks alone, never imports the guards
    from featurehouse.guard.freshness import ViewFreshness

LIVE = ("live, from the online store's materializer marks (the lag serving judges staleness by); the "
        "warehouse's newest event is checked by `featurehouse freshness`")


def from_check(row: ViewFreshness, as_of: str) -> FreshnessPanel:
    """`featurehouse freshness`'s row for the view, as it stood at `as_of`."""
    parts = []
    if row.data_age_s is not None:
        parts.append(f"newest event {human_duration(row.data_age_s)} old")
    if row.materializer_lag_s is not None:
        parts.append(f"materializers lag {human_duration(row.materializer_lag_s)}")
    if row.slo_s is not None:
        parts.append(f"SLO {human_duration(row.slo_s)}")
    return FreshnessPanel(row.status.replace(" ", "-"), "; ".join(parts) or "no data yet", tuple(row.reasons),
                          f"as of {as_of}, from the same check as `featurehouse freshness`")


def from_marks(view: FeatureView, marks: Freshness, now_s: float) -> FreshnessPanel:
    """Live, from the materializer marks in the online store."""
    if not view.online:
        return FreshnessPanel("unknown", "not served online: no materializer to watch", (), LIVE)
    lag, _, reason = materializer_lag(view, marks, now_s)
    slo = view.freshness_slo.total_seconds() if view.freshness_slo else None
    parts = ["never synced or streamed to the online store" if lag is None
             else f"materializers lag {human_duration(lag)}"]
    if slo is not None:
        parts.append(f"SLO {human_duration(slo)}")
    status = "no-slo" if slo is None else "breach" if reason else "ok"
    return FreshnessPanel(status, "; ".join(parts), (reason,) if reason else (), LIVE)
