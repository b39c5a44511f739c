"""The sync run log, a table in the warehouse: what each run read and wrote, and its watermark.

A run is recorded as 'running' before it writes anything and 'success' only after its last batch
landed, so a run killed half-way leaves no successful watermark behind: the next run reads the same
rows again, and the write guard makes writing them twice change nothing.

Each run records a watermark per source (`watermarks`: the view's relation and each of its stream
landing tables, by name -> the created_at the next incremental run reads after): a push's ingestion
time says nothing about what dbt's relation has received, so one source never moves another's.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlglot import exp

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
    # per source (relation name -> created_at): where the next incremental run starts reading
    watermarks: dict[str, datetime | None] = field(default_factory=dict)
    online_store: str = ""  # the id of the online store it wrote to (fh:store_id)
    repaired_since: datetime | None = None  # a repair: the older state the online store went back to (not recorded)


# Runs that read every row of their view: the ones a periodic reconciliation counts.
FULL_READS = ("full", "reconcile", "repair", "restate")


@dataclass(frozen=True)
class LastSync:
    """The newest successful run of a view version, as the next run needs it."""

    finished_at: datetime | None
    watermark_to: datetime | None
    watermarks: dict[str, datetime | None] | None  # None: recorded before watermarks were per source


class SyncRunLog:
    def __init__(self, catalog: Catalog | CatalogWarehouse):
        self.catalog = as_catalog(catalog)
        self.table = self.catalog.table(SYNC_RUNS)
        # what `remember` read for one online store: (view, version) -> last success / last full read
        self._store: str | None = None
        self._successes: dict[tuple[str, int], LastSync] = {}
        self._full_reads: dict[tuple[str, int], datetime] = {}

    def remember(self, online_store: str) -> None:
        """Read every view version's last success and last full read into `online_store` in two queries,
        so a sync of every view asks the log nothing more per view (200 views were 600 queries). Runs
        finished through this log afterwards keep what it remembers current."""
        t = exp.table_(SYNC_RUNS.name, db=self.catalog.schema, quoted=True)
        self.catalog.table(SYNC_RUNS)

        def col(name: str, table: str = "r") -> exp.Column:
            return exp.column(name, table=table, quoted=True)

        where = exp.and_(col("status", "x").eq(exp.Placeholder()), col("online_store", "x").eq(exp.Placeholder()))
        newest = exp.select(col("view", "x"), col("version", "x"), exp.Max(this=col("finished_at", "x")).as_("m")) \
            .from_(t.copy().as_("x")).where(where).group_by(col("view", "x"), col("version", "x"))
        query = exp.select(col("view"), col("version"), col("finished_at"), col("watermark_to"), col("watermarks")) \
            .from_(t.copy().as_("r")) \
            .join(newest.subquery("l"), on=exp.and_(col("view").eq(col("view", "l")), col("version").eq(col("version", "l")),
                                                    col("finished_at").eq(exp.column("m", table="l")))) \
            .where(exp.and_(col("status").eq(exp.Placeholder()), col("online_store").eq(exp.Placeholder())))
        params = ("success", online_store, "success", online_store)
        rows = self.catalog.warehouse.fetch_arrow(query.sql(self.catalog.dialect), params).to_pylist()
        self._successes = {(r["view"], int(r["version"])): LastSync(r["finished_at"], r["watermark_to"],
                                                                    _parse_watermarks(r.get("watermarks")))
                           for r in rows}
        modes = exp.column("mode", quoted=True).isin(*[exp.Placeholder() for _ in FULL_READS])
        full = self.catalog.latest(SYNC_RUNS, ("view", "version"), ("finished_at",),
                                   {"status": "success", "online_store": online_store},
                                   condition=modes, condition_params=FULL_READS)
        self._full_reads = {(r["view"], int(r["version"])): r["finished_at"] for r in full}
        self._store = online_store

    def start(self, view: str, version: int, mode: str, watermark_from, watermark_to, logic_ref: str = "",
              watermarks: dict[str, datetime | None] | None = None, online_store: str = "") -> SyncRun:
        run = SyncRun(uuid.uuid4().hex, view, version, mode, watermark_from, watermark_to, utc_now(),
                      logic_ref=logic_ref, watermarks=dict(watermarks or {}), online_store=online_store)
        row = {c: getattr(run, c) for c in SYNC_RUNS.column_names}
        row["watermarks"] = json.dumps({k: v.isoformat() if v else None for k, v in run.watermarks.items()},
                                       sort_keys=True)
        self.catalog.insert(SYNC_RUNS, row)
        return run

    def finish(self, run: SyncRun, status: str, error: str | None = None, at: datetime | None = None) -> None:
        """Record the run's outcome; `at` is its finish time when the caller already told the online
        store (the two must be the same instant: sync compares them to detect a restored store)."""
        run.status, run.error, run.finished_at = status, error, at or utc_now()
        done = ("rows_read", "rows_written", "rows_skipped_older", "rows_restated", "finished_at", "status", "error")
        self.catalog.update(SYNC_RUNS, {c: getattr(run, c) for c in done}, {"run_id": run.run_id})
        if status == "success" and self._store is not None and run.online_store == self._store:
            key = (run.view, int(run.version))
            self._successes[key] = LastSync(run.finished_at, run.watermark_to, dict(run.watermarks))
            if run.mode in FULL_READS:
                self._full_reads[key] = run.finished_at

    def last_success(self, view: str, version: int, online_store: str | None = None) -> LastSync | None:
        """The newest successful run of this view version into that online store (None: it never synced)."""
        if online_store is not None and online_store == self._store:
            return self._successes.get((view, int(version)))
        rows = self.catalog.rows(SYNC_RUNS, _successes(view, version, online_store),
                                 order_by=("finished_at",), descending=True, limit=1,
                                 columns=("finished_at", "watermark_to", "watermarks"))
        if not rows:
            return None
        row = rows[0]
        return LastSync(row["finished_at"], row["watermark_to"], _parse_watermarks(row.get("watermarks")))

    def last_full_read(self, view: str, version: int, online_store: str | None = None) -> datetime | None:
        """When a successful run last read every row of this view version (full, reconcile, repair, restate)."""
        if online_store is not None and online_store == self._store:
            return self._full_reads.get((view, int(version)))
        modes = exp.column("mode", quoted=True).isin(*[exp.Placeholder() for _ in FULL_READS])
        rows = self.catalog.select(SYNC_RUNS, _successes(view, version, online_store),
                                   order_by=("finished_at",), descending=True, limit=1, columns=("finished_at",),
                                   condition=modes, condition_params=FULL_READS).to_pylist()
        return rows[0]["finished_at"] if rows else None

    def history(self, view: str | None = None, limit: int = 20) -> list[dict]:
        return self.catalog.rows(SYNC_RUNS, {"view": view} if view else None, order_by=("started_at",),
                                 descending=True, limit=limit)


def _parse_watermarks(text: str | None) -> dict[str, datetime | None] | None:
    if not text:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None  # unreadable: the next run reads every source whole, which is always safe
    if not isinstance(parsed, dict):
        return None
    return {str(k): datetime.fromisoformat(v) if isinstance(v, str) else None for k, v in parsed.items()}


def _successes(view: str, version: int, online_store: str | None) -> dict:
    where = {"status": "success", "view": view, "version": int(version)}
    return where if online_store is None else {**where, "online_store": online_store}
