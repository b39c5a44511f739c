"""Freshness per view@version: how new the warehouse's data is, and how far its materializers lag.

A view breaches its freshness SLO when its newest event in the warehouse is older than the SLO (the
pipeline upstream stopped), or when its materializers lag past it: the stream consumer's lag plus its
silence, or the time since the last good sync. The lag is computed by the same `Freshness.lag` that
serving uses to mark values stale, so a breach here means every value serving returns for that view
is flagged stale there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Sequence

from sqlglot import exp

from featurehouse.catalog import SYNC_RUNS, Catalog, as_catalog
from featurehouse.catalog.catalog import CatalogWarehouse
from featurehouse.clock import epoch_seconds, naive_utc_value
from featurehouse.offline.warehouse import Warehouse, utc_now
from featurehouse.online.keys import MATERIALIZER, STORE_ID, mark_behind
from featurehouse.registry.model import FeatureView
from featurehouse.serving.vectors import Freshness, human_duration, materializer_lag  # noqa: F401 - both named here too


@dataclass
class ViewFreshness:
    view: str
    version: int
    online: bool
    slo_s: float | None
    newest_event_time: datetime | None
    data_age_s: float | None
    last_sync_at: datetime | None
    sync_watermark: datetime | None
    stream_lag_s: float | None  # as the consumer last reported it, plus its silence since
    materializer_lag_s: float | None
    status: str = "ok"  # ok | breach | no slo
    reasons: list[str] = field(default_factory=list)

    @property
    def versioned_name(self) -> str:
        return f"{self.view}@{self.version}"


def newest_event_time(warehouse: Warehouse, view: FeatureView) -> datetime | None:
    col = exp.column(view.event_time, quoted=True)
    newest = None
    for relation in (view.relation, *view.extra_relations):
        sql = exp.select(exp.func("max", col).as_("m")).from_(
            exp.table_(relation.identifier, db=relation.schema, catalog=relation.database, quoted=True))
        value = warehouse.fetch_arrow(sql.sql(warehouse.dialect)).column(0)[0].as_py()
        value = naive_utc_value(value)  # a TIMESTAMPTZ event time comes aware
        if value is not None and (newest is None or value > newest):
            newest = value
    return newest


def last_good_syncs(catalog: Catalog | CatalogWarehouse, online_store: str | None = None
                    ) -> dict[tuple[str, int], dict]:
    """Per view@version: when its last successful sync (into that online store) finished, and its watermark."""
    where = {"status": "success"} if online_store is None else {"status": "success", "online_store": online_store}
    rows = as_catalog(catalog).latest(SYNC_RUNS, ("view", "version"), ("finished_at", "watermark_to"), where)
    return {(r["view"], r["version"]): {"finished_at": r["finished_at"], "watermark": r["watermark_to"]} for r in rows}


def view_freshness(views: Sequence[FeatureView], warehouse: Warehouse, online_client=None,
                   now: datetime | None = None, catalog: Catalog | None = None) -> list[ViewFreshness]:
    now = now or utc_now()
    now_s = epoch_seconds(now)
    state = Freshness.from_hash(online_client.hgetall(MATERIALIZER)) if online_client is not None else Freshness()
    store = online_client.get(STORE_ID) if online_client is not None else None
    syncs = last_good_syncs(catalog or warehouse, store.decode() if isinstance(store, bytes) else store)
    out = []
    for view in views:
        name = view.versioned_name
        slo = view.freshness_slo.total_seconds() if view.freshness_slo else None
        newest = newest_event_time(warehouse, view)
        sync = syncs.get((view.name, view.version), {})
        lag, stream_lag, lagging = materializer_lag(view, state, now_s)
        data_age_s = (now - newest).total_seconds() if newest else None
        row = ViewFreshness(view.name, view.version, view.online, slo, newest, data_age_s, sync.get("finished_at"),
                            sync.get("watermark"), stream_lag, lag)
        behind = _behind_log(state.synced_at.get(name), sync.get("finished_at")) if view.online else None
        if slo is None:
            row.status = "no slo"
            if behind:
                row.reasons.append(behind)
                row.status = "breach"
        else:
            if behind:
                row.reasons.append(behind)
            if newest is None:
                row.reasons.append("no rows in the warehouse")
            elif data_age_s is not None and data_age_s > slo:  # set whenever newest is
                row.reasons.append(f"newest event is {human_duration(data_age_s)} old (SLO {human_duration(slo)})")
            if lagging:
                row.reasons.append(lagging)
            row.status = "breach" if row.reasons else "ok"
        out.append(row)
    return out


def _behind_log(marked_s: float | None, logged: datetime | None) -> str | None:
    """The online store's sync mark older than the warehouse's last successful sync: it was restored
    from an older state or lost writes (featurehouse/sync/batch.py, behind_log)."""
    if marked_s is None or logged is None:
        return None
    logged_s = epoch_seconds(logged)
    if not mark_behind(marked_s, logged_s):
        return None
    return (f"online store is behind the warehouse's sync log by {human_duration(logged_s - marked_s)} "
            "(restored from an older state or lost writes): `featurehouse sync` repairs it")


def prometheus_text(rows: Sequence[ViewFreshness]) -> str:
    """The figures as Prometheus gauges (for node_exporter's textfile collector, or a pushgateway)."""
    lines = []
    gauges = (
        ("featurehouse_view_newest_event_age_seconds", "Age of the newest event of the view in the warehouse",
         lambda r: r.data_age_s),
        ("featurehouse_view_materializer_lag_seconds", "How far the view's sync or stream consumer lags",
         lambda r: r.materializer_lag_s),
        ("featurehouse_view_freshness_slo_seconds", "The view's freshness SLO", lambda r: r.slo_s),
        ("featurehouse_view_freshness_breach", "1 when the view breaches its freshness SLO",
         lambda r: 1.0 if r.status == "breach" else 0.0),
    )
    for name, doc, value in gauges:
        lines += [f"# HELP {name} {doc}", f"# TYPE {name} gauge"]
        for r in rows:
            v = value(r)
            if v is not None:
                lines.append(f'{name}{{view="{r.view}",version="{r.version}"}} {v:.6g}')
    return "\n".join(lines) + "\n"
