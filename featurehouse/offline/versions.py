"""Which version of each feature view is active, and since when: a log table in the warehouse.

`promote` closes the active row and opens a new one, in one transaction, so the log always holds
every version's schema and the time it was active; promoting the previous version is the rollback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlglot import exp

from featurehouse.offline.warehouse import Warehouse
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


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _lit(value, dialect: str) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), "TIMESTAMP").sql(dialect)
    if isinstance(value, int):
        return str(value)
    return exp.Literal.string(str(value)).sql(dialect)


def read_active(warehouse: Warehouse) -> dict[str, int]:
    """Promoted versions, without creating the log table when nothing was ever promoted."""
    from featurehouse.registry.model import Relation

    if not warehouse.describe(Relation(None, SCHEMA, TABLE)):
        return {}
    return VersionLog(warehouse).active()


class VersionLog:
    def __init__(self, warehouse: Warehouse):
        self.wh = warehouse
        d = warehouse.dialect
        self.table = exp.table_(TABLE, db=SCHEMA, quoted=True).sql(d)
        self.view_col = exp.to_identifier("view", quoted=True).sql(d)
        cols = ", ".join(f"{exp.to_identifier(c, quoted=True).sql(d)} {t}" for c, t in COLUMNS)
        warehouse.execute(f"CREATE SCHEMA IF NOT EXISTS {exp.to_identifier(SCHEMA, quoted=True).sql(d)}")
        warehouse.execute(f"CREATE TABLE IF NOT EXISTS {self.table} ({cols})")

    def active(self) -> dict[str, int]:
        rows = self.wh.fetch_arrow(f"SELECT {self.view_col} AS v, version FROM {self.table} WHERE active_until IS NULL")
        return {r["v"]: r["version"] for r in rows.to_pylist()}

    def promote(self, view: FeatureView) -> int | None:
        """Make `view` (at its version) the active one; returns the version it replaces."""
        d = self.wh.dialect
        previous = self.active().get(view.name)
        now = _now()
        schema = json.dumps({f.column: f.data_type for f in view.features})
        values = [view.name, view.version, schema, f"{view.unique_id}@{view.checksum}", now, None]
        self.wh.execute("BEGIN")
        try:
            self.wh.execute(f"UPDATE {self.table} SET active_until = {_lit(now, d)} "
                            f"WHERE {self.view_col} = {_lit(view.name, d)} AND active_until IS NULL")
            self.wh.execute(f"INSERT INTO {self.table} VALUES ({', '.join(_lit(v, d) for v in values)})")
            self.wh.execute("COMMIT")
        except BaseException:
            self.wh.execute("ROLLBACK")
            raise
        return previous

    def history(self, view: str) -> list[VersionPeriod]:
        rows = self.wh.fetch_arrow(f"SELECT * FROM {self.table} WHERE {self.view_col} = {_lit(view, self.wh.dialect)} "
                                   f"ORDER BY active_from").to_pylist()
        return [VersionPeriod(r["view"], r["version"], json.loads(r["schema"]), r["transform_ref"],
                              r["active_from"], r["active_until"]) for r in rows]
