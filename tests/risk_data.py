"""A small risk feature view (score, band per user) whose values can be shifted or aged at will."""

from __future__ import annotations

from datetime import timedelta

from featurehouse.offline.warehouse import utc_now
from featurehouse.registry.model import Entity, Feature, FeatureView, Relation

USER = Entity("user", ("user_id",))
NOW = utc_now().replace(microsecond=0)


def risk_view(score_type: str = "double", freshness_slo: timedelta | None = None) -> FeatureView:
    return FeatureView("risk", 1, USER, Relation(None, None, "risk"), "event_time",
                       (Feature("risk", "score", score_type, 1), Feature("risk", "band", "varchar", 1)),
                       created_at="created_at", freshness_slo=freshness_slo)


def risk_rows(users, shift: float = 0.0, age=timedelta(hours=2)) -> list[dict]:
    """Score u % 10 (+ shift), band 'high' above 7, all with one event time `age` ago."""
    return [{"user_id": u, "event_time": NOW - age, "created_at": NOW - age, "score": (u % 10) + shift,
             "band": "high" if (u % 10) + shift > 7 else "low"} for u in users]
