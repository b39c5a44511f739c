"""Published schemas: the contract of each feature view@version once something outside dbt relies on it.

A version is published the first time it is synced online, backfilled, promoted or used in a recorded
training set. From then on its columns, their order and their types are fixed: the online store keeps
values as arrays in column order, and models were trained on those types. `featurehouse check`
compares the project's current SQL against this table (featurehouse/guard/schema_gate.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlglot import exp

from featurehouse.offline.lineage import equals, insert_row
from featurehouse.offline.warehouse import Warehouse, utc_now
from featurehouse.registry.model import FeatureView, Relation

SCHEMA = "featurehouse"
TABLE = "featurehouse_published_schemas"
COLUMNS = [("view", "VARCHAR"), ("version", "INTEGER"), ("schema", "VARCHAR"), ("transform_ref", "VARCHAR"),
           ("published_at", "TIMESTAMP"), ("published_by", "VARCHAR"), ("logic_checksum", "VARCHAR")]


@dataclass(frozen=True)
class PublishedSchema:
    view: str
    version: int
    schema: dict[str, str | None]  # feature column -> type (None: not known), in column order
    transform_ref: str
    published_at: datetime
    published_by: str  # sync | backfill | promote | training-set
    logic_checksum: str | None = None  # FeatureView.logic_checksum when published (None: recorded before it existed)

    @property
    def versioned_name(self) -> str:
        return f"{self.view}@{self.version}"


def view_schema(view: FeatureView) -> dict[str, str | None]:
    return {f.column: f.data_type for f in view.features}


class PublishedSchemas:
    def __init__(self, warehouse: Warehouse):
        self.wh = warehouse
        self.table = warehouse.ensure_table(SCHEMA, TABLE, COLUMNS)

    def publish(self, view: FeatureView, by: str) -> bool:
        """Record view@version's schema unless it is already published; True when this call published it.

        The first record stands: a later sync of a changed relation does not overwrite the contract."""
        d = self.wh.dialect
        where = f"{equals('view', view.name, d)} AND {equals('version', int(view.version), d)}"
        if self.wh.fetch_arrow(f"SELECT 1 AS x FROM {self.table} WHERE {where}").num_rows:
            return False
        values = [view.name, view.version, json.dumps(view_schema(view)), f"{view.unique_id}@{view.checksum}",
                  utc_now(), by, view.logic_checksum]
        insert_row(self.wh, self.table, [c for c, _ in COLUMNS], values)
        return True

    def restate(self, view: FeatureView) -> None:
        """A declared restatement reached the online store: view@version's published logic is now its
        corrected SQL (`featurehouse check` compares against it from here on)."""
        d = self.wh.dialect
        mark = exp.Placeholder().sql(d)
        self.wh.execute(f"UPDATE {self.table} SET transform_ref = {mark}, logic_checksum = {mark} "
                        f"WHERE {equals('view', view.name, d)} AND {equals('version', int(view.version), d)}",
                        (f"{view.unique_id}@{view.checksum}", view.logic_checksum))

    def all(self) -> dict[tuple[str, int], PublishedSchema]:
        rows = self.wh.fetch_arrow(f"SELECT * FROM {self.table} ORDER BY published_at").to_pylist()
        out: dict[tuple[str, int], PublishedSchema] = {}
        for r in rows:
            out.setdefault((r["view"], r["version"]), PublishedSchema(
                r["view"], r["version"], json.loads(r["schema"]), r["transform_ref"], r["published_at"],
                r["published_by"], r.get("logic_checksum")))
        return out


def read_published(warehouse: Warehouse) -> dict[tuple[str, int], PublishedSchema]:
    """Published schemas, including versions promoted before this table existed (the version log)."""
    from featurehouse.offline.versions import SCHEMA as VSCHEMA
    from featurehouse.offline.versions import TABLE as VTABLE
    from featurehouse.offline.versions import VersionLog

    out: dict[tuple[str, int], PublishedSchema] = {}
    if warehouse.describe(Relation(None, SCHEMA, TABLE)):
        out.update(PublishedSchemas(warehouse).all())
    if warehouse.describe(Relation(None, VSCHEMA, VTABLE)):
        log = VersionLog(warehouse)
        rows = warehouse.fetch_arrow(f"SELECT * FROM {log.table} ORDER BY active_from").to_pylist()
        for r in rows:
            out.setdefault((r["view"], r["version"]), PublishedSchema(
                r["view"], r["version"], json.loads(r["schema"]), r["transform_ref"], r["active_from"], "promote"))
    return out
