"""Which version of each feature view is active, and since when: a log table in the warehouse.

`promote` closes the active row and opens a new one, in one transaction, so the log always holds
every version's schema and the time it was active; promoting the previous version is the rollback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlglot import exp

from featurehouse.offline.warehouse import Warehouse, sql_literal, utc_now
from featurehouse.registry.model import FeatureView

SCHEMA = "featurehouse"
TABLE = "featurehouse_view_versions"
COLUMNS = [("view", "VARCHAR"), ("version", "INTEGER"), ("schema", "VARCHAR"), ("transform_ref", "VARCHAR"),
           ("active_from", "TIMESTAMP"), ("active_until", "TIMESTAMP")]


@dataclass(frozen=True)
class VersionPeriod:
    view: str
    version: int
    schema: dict
    transform_ref: str
    active_from: datetime
    active_until: datetime | None


def read_active(warehouse: Warehouse) -> dict[str, int]:
    """Promoted versions, without creating the log table when nothing was ever promoted."""
    from featurehouse.registry.model import Relation

    if not warehouse.describe(Relation(None, SCHEMA, TABLE)):
        return {}
    return VersionLog(warehouse).active()


class VersionLog:
    def __init__(self, warehouse: Warehouse):
        self.wh = warehouse
        self.table = warehouse.ensure_table(SCHEMA, TABLE, COLUMNS)
        self.view_col = exp.to_identifier("view", quoted=True).sql(warehouse.dialect)

    def active(self) -> dict[str, int]:
        rows = self.wh.fetch_arrow(f"SELECT {self.view_col} AS v, version FROM {self.table} WHERE active_until IS NULL")
        return {r["v"]: r["version"] for r in rows.to_pylist()}

    def promote(self, view: FeatureView) -> int | None:
        """Make `view` (at its version) the active one; returns the version it replaces."""
        d = self.wh.dialect
        previous = self.active().get(view.name)
        now = utc_now()
        schema = json.dumps({f.column: f.data_type for f in view.features})
        values = [view.name, view.version, schema, f"{view.unique_id}@{view.checksum}", now, None]
        self.wh.execute("BEGIN")
        try:
            self.wh.execute(f"UPDATE {self.table} SET active_until = {sql_literal(now, d)} "
                            f"WHERE {self.view_col} = {sql_literal(view.name, d)} AND active_until IS NULL")
            self.wh.execute(f"INSERT INTO {self.table} VALUES ({', '.join(sql_literal(v, d) for v in values)})")
            self.wh.execute("COMMIT")
        except BaseException:
            self.wh.execute("ROLLBACK")
            raise
        return previous

    def history(self, view: str) -> list[VersionPeriod]:
        rows = self.wh.fetch_arrow(f"SELECT * FROM {self.table} WHERE {self.view_col} = {sql_literal(view, self.wh.dialect)} "
                                   f"ORDER BY active_from").to_pylist()
        return [VersionPeriod(r["view"], r["version"], json.loads(r["schema"]), r["transform_ref"],
                              r["active_from"], r["active_until"]) for r in rows]
