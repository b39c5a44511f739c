"""The sync run log, a table in the warehouse: what each run read and wrote, and its watermark.

A run is recorded as 'running' before it writes anything and 'success' only after its last batch
landed, so a run killed half-way leaves no successful watermark behind: the next run reads the same
rows again, and the write guard makes writing them twice change nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from featurehouse.catalog import SYNC_RUNS, Catalog, as_catalog
from featurehouse.catalog.catalog import CatalogWarehouse
from featurehouse.clock import utc_now

TABLE = SYNC_RUNS.name
COLUMNS = list(SYNC_RUNS.columns)


@dataclass
class SyncRun:
    run_id: str
    view: str
    version: int
    mode: str  # 'full' or 'incremental'
    watermark_from: datetime | None
    watermark_to: datetime | None
    started_at: datetime
    rows_read: int = 0
    rows_written: int = 0
    rows_skipped_older: int = 0
    finished_at: datetime | None = None
    status: str = "running"
    error: str | None = None
    rows_restated: int = 0  # values corrected in place at an equal event time (a declared restatement)
    logic_ref: str = ""  # the dbt node's unique_id@logic checksum the values came from (FeatureView.logic_ref)
    warning: str | None = None  # something the user should know about this run (not recorded)


class SyncRunLog:
    def __init__(self, catalog: Catalog | CatalogWarehouse):
        self.catalog = as_catalog(catalog)
        self.table = self.catalog.table(SYNC_RUNS)

    def start(self, view: str, version: int, mode: str, watermark_from, watermark_to, logic_ref: str = ""
              ) -> SyncRun:
        run = SyncRun(uuid.uuid4().hex, view, version, mode, watermark_from, watermark_to, utc_now(),
                      logic_ref=logic_ref)
        self.catalog.insert(SYNC_RUNS, {c: getattr(run, c) for c in SYNC_RUNS.column_names})
        return run

    def finish(self, run: SyncRun, status: str, error: str | None = None) -> None:
        run.status, run.error, run.finished_at = status, error, utc_now()
        done = ("rows_read", "rows_written", "rows_skipped_older", "rows_restated", "finished_at", "status", "error")
        self.catalog.update(SYNC_RUNS, {c: getattr(run, c) for c in done}, {"run_id": run.run_id})

    def last_watermark(self, view: str, version: int) -> datetime | None:
        """The watermark of the newest successful run of this view version."""
        return self.catalog.max(SYNC_RUNS, "watermark_to", {"status": "success", "view": view, "version": int(version)})

    def history(self, view: str | None = None, limit: int = 20) -> list[dict]:
        return self.catalog.rows(SYNC_RUNS, {"view": view} if view else None, order_by=("started_at",),
                                 descending=True, limit=limit)
