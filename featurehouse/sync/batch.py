"""Batch sync: the latest row per entity of each online view, from the warehouse to the online store."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterator

import pyarrow as pa

from featurehouse.offline.warehouse import Warehouse
from featurehouse.online.codec import encode_values
from featurehouse.online.keys import entity_key
from featurehouse.online.store import OnlineStore
from featurehouse.registry.model import FeatureView
from featurehouse.sync.latest import latest_values_sql, max_created_at_sql
from featurehouse.sync.runs import SyncRun, SyncRunLog

# progress(view, rows_done, rows_total)
Progress = Callable[[str, int, int], None]


@dataclass
class SyncPlan:
    view: FeatureView
    version: int
    mode: str
    watermark_from: datetime | None  # created_at bounds, or dbt build times of a view without created_at
    watermark_to: datetime | None


def plan_sync(warehouse: Warehouse, log: SyncRunLog, view: FeatureView, version: int | None = None,
              full_refresh: bool = False, rebuilt_at: datetime | None = None) -> SyncPlan:
    """Incremental from the last successful watermark on created_at.

    A view without created_at is read whole, unless dbt has not rebuilt it (`rebuilt_at`, from
    run_results.json) since the last successful sync: then there is nothing new to read.
    """
    version = view.version if version is None else version
    if not view.created_at:
        last = None if full_refresh else log.last_watermark(view.name, version)
        if rebuilt_at is not None and last is not None and rebuilt_at <= last:
            return SyncPlan(view, version, "incremental", last, rebuilt_at)
        return SyncPlan(view, version, "full", None, rebuilt_at)
    upper = warehouse.fetch_arrow(max_created_at_sql(view, warehouse.dialect)).column(0)[0].as_py()
    lower = None if full_refresh else log.last_watermark(view.name, version)
    return SyncPlan(view, version, "full" if lower is None else "incremental", lower, upper)


def sync_view(warehouse: Warehouse, online: OnlineStore, log: SyncRunLog, view: FeatureView,
              version: int | None = None, full_refresh: bool = False, batch_size: int = 5000,
              progress: Progress | None = None, event_time_from=None, event_time_until=None,
              mode: str | None = None, rebuilt_at: datetime | None = None, restate: bool = False) -> SyncRun:
    """One view (at one version) from the warehouse to the online store, recorded in the sync run log.

    An online store that never saw a successful sync of this view (a new or wiped Redis) gets a full
    sync, whatever the warehouse's watermark says. `restate` (a declared correction of this version)
    reads every row again and replaces stored values whose payload differs at an equal event time
    and created_at, counted in the run's rows_restated.
    """
    target_version = view.version if version is None else version
    full_refresh = full_refresh or restate
    if not full_refresh and hasattr(online, "last_synced") and online.last_synced(view.name, target_version) is None:
        full_refresh = True
    plan = plan_sync(warehouse, log, view, version, full_refresh, rebuilt_at)
    layout = online.layout_for_write(view, plan.version)  # recorded before anything is written under it
    run = log.start(view.name, plan.version, mode or ("restate" if restate else plan.mode), plan.watermark_from,
                    plan.watermark_to, logic_ref=view.logic_ref)
    try:
        if plan.mode == "incremental" and plan.watermark_to is not None and plan.watermark_from is not None \
                and plan.watermark_to <= plan.watermark_from:  # an incremental plan always has a lower bound
            log.finish(run, "success")  # nothing ingested since the last run
            return run
        bounds = (plan.watermark_from, plan.watermark_to) if view.created_at else (None, None)
        sql = latest_values_sql(view, warehouse.dialect, *bounds, event_time_from, event_time_until)
        table = warehouse.fetch_arrow(sql)
        run.rows_read = table.num_rows
        for done, batch in _batches(table, batch_size):
            result = online.write_encoded(view, encode_batch(view, batch, layout.columns), version=plan.version,
                                          batch_size=500, restate=restate)
            run.rows_written += result.written
            run.rows_skipped_older += result.skipped_older
            run.rows_restated += result.restated
            if progress:
                progress(view.versioned_name, done, run.rows_read)
        if progress and not run.rows_read:
            progress(view.versioned_name, 0, 0)
    except BaseException as e:  # recorded, then raised: KeyboardInterrupt too
        log.finish(run, "failed", f"{type(e).__name__}: {e}"[:2000])
        raise
    log.finish(run, "success")
    if hasattr(online, "mark_synced"):
        online.mark_synced(view.name, plan.version, time.time())
    return run


def _batches(table: pa.Table, size: int) -> Iterator[tuple[int, pa.Table]]:
    for start in range(0, table.num_rows, size):
        batch = table.slice(start, size)
        yield start + batch.num_rows, batch


def encode_batch(view: FeatureView, batch: pa.Table, columns: tuple[str, ...] | None = None
                 ) -> list[tuple[str, int, int | None, bytes]]:
    """Latest-value rows (keys, event time, created_at, features) as the online store's items, each
    array in the order of `columns` (the store's recorded layout), taken by name from the batch.

    Timestamps become microseconds in Arrow, without Python datetimes: most of a sync's Python time.
    """
    import pyarrow.compute as pc

    nkeys = len(view.entity.keys)
    keys = [batch.column(i).to_pylist() for i in range(nkeys)]
    micros = [pc.cast(pc.cast(batch.column(nkeys + j), pa.timestamp("us")), pa.int64()).to_pylist() for j in (0, 1)]
    values = [batch.column(c).to_pylist() for c in (columns or view.feature_columns)]
    entity = view.entity.name
    out = []
    for i in range(batch.num_rows):
        key = entity_key(entity, tuple(k[i] for k in keys))
        out.append((key, micros[0][i], micros[1][i], encode_values([v[i] for v in values])))
    return out
