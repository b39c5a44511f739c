"""The sync run log, a table in the warehouse: what each run read and wrote, and its watermark.

A run is recorded as 'running' before it writes anything and 'success' only after its last batch
landed, so a run killed half-way leaves no successful watermark behind: the next run reads the same
rows again, and the write guard makes writing them twice change nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlglot import exp

from featurehouse.offline.warehouse import Warehouse, sql_literal, utc_now

SCHEMA = "featurehouse"
TABLE = "featurehouse_sync_runs"
COLUMNS = [
    ("run_id", "VARCHAR"), ("view", "VARCHAR"), ("version", "INTEGER"), ("mode", "VARCHAR"),
    ("watermark_from", "TIMESTAMP"), ("watermark_to", "TIMESTAMP"), ("rows_read", "BIGINT"),
    ("rows_written", "BIGINT"), ("rows_skipped_older", "BIGINT"), ("started_at", "TIMESTAMP"),
    ("finished_at", "TIMESTAMP"), ("status", "VARCHAR"), ("error", "VARCHAR"),
    ("rows_restated", "BIGINT"), ("logic_ref", "VARCHAR"),
]


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


class SyncRunLog:
    def __init__(self, warehouse: Warehouse):
        self.wh = warehouse
        self.table = warehouse.ensure_table(SCHEMA, TABLE, COLUMNS)

    def start(self, view: str, version: int, mode: str, watermark_from, watermark_to, logic_ref: str = ""
              ) -> SyncRun:
        run = SyncRun(uuid.uuid4().hex, view, version, mode, watermark_from, watermark_to, utc_now(),
                      logic_ref=logic_ref)
        d = self.wh.dialect
        names = ", ".join(exp.to_identifier(c, quoted=True).sql(d) for c, _ in COLUMNS)
        values = ", ".join(sql_literal(getattr(run, c), d) for c, _ in COLUMNS)
        self.wh.execute(f"INSERT INTO {self.table} ({names}) VALUES ({values})")
        return run

    def finish(self, run: SyncRun, status: str, error: str | None = None) -> None:
        run.status, run.error, run.finished_at = status, error, utc_now()
        sets = ", ".join(
            f"{exp.to_identifier(c, quoted=True).sql(self.wh.dialect)} = {sql_literal(getattr(run, c), self.wh.dialect)}"
            for c in ("rows_read", "rows_written", "rows_skipped_older", "rows_restated", "finished_at", "status",
                      "error"))
        self.wh.execute(f"UPDATE {self.table} SET {sets} WHERE run_id = {sql_literal(run.run_id, self.wh.dialect)}")

    def last_watermark(self, view: str, version: int) -> datetime | None:
        """The watermark of the newest successful run of this view version."""
        d = self.wh.dialect
        rows = self.wh.fetch_arrow(
            f"SELECT max(watermark_to) AS w FROM {self.table} WHERE status = 'success' "
            f"AND {exp.to_identifier('view', quoted=True).sql(d)} = {sql_literal(view, d)} AND version = {int(version)}"
        ).to_pylist()
        return rows[0]["w"] if rows else None

    def history(self, view: str | None = None, limit: int = 20) -> list[dict]:
        d = self.wh.dialect
        where = f"WHERE {exp.to_identifier('view', quoted=True).sql(d)} = {sql_literal(view, d)}" if view else ""
        return self.wh.fetch_arrow(
            f"SELECT * FROM {self.table} {where} ORDER BY started_at DESC LIMIT {int(limit)}").to_pylist()
