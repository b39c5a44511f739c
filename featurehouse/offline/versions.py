"""Which version of each feature view is active, and since when: a log table in the warehouse.

`promote` closes the active row and opens a new one, in one transaction, so the log always holds
every version's schema and the time it was active; promoting the previous version is the rollback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from featurehouse.catalog import VIEW_VERSIONS, Catalog, as_catalog
from featurehouse.catalog.catalog import CatalogWarehouse
from featurehouse.clock import utc_now
from featurehouse.registry.model import FeatureView

TABLE = VIEW_VERSIONS.name


@dataclass(frozen=True)
class VersionPeriod:
    view: str
    version: int
    schema: dict
    transform_ref: str
    active_from: datetime
    active_until: datetime | None


def read_active(catalog: Catalog | CatalogWarehouse) -> dict[str, int]:
    """Promoted versions, without creating the log table when nothing was ever promoted."""
    catalog = as_catalog(catalog)
    if not catalog.exists(VIEW_VERSIONS):
        return {}
    return VersionLog(catalog).active()


class VersionLog:
    def __init__(self, catalog: Catalog | CatalogWarehouse):
        self.catalog = as_catalog(catalog)
        self.table = self.catalog.table(VIEW_VERSIONS)

    def active(self) -> dict[str, int]:
        return {r["view"]: r["version"] for r in self.catalog.rows(VIEW_VERSIONS, {"active_until": None})}

    def promote(self, view: FeatureView) -> int | None:
        """Make `view` (at its version) the active one; returns the version it replaces."""
        previous = self.active().get(view.name)
        now = utc_now()
        row = {"view": view.name, "version": view.version,
               "schema": json.dumps({f.column: f.data_type for f in view.features}),
               "transform_ref": f"{view.unique_id}@{view.checksum}", "active_from": now, "active_until": None}
        with self.catalog.transaction():
            self.catalog.update(VIEW_VERSIONS, {"active_until": now}, {"view": view.name, "active_until": None})
            self.catalog.insert(VIEW_VERSIONS, row)
        return previous

    def history(self, view: str | None = None) -> list[VersionPeriod]:
        """The view's periods (every view's, with None), oldest first."""
        rows = self.catalog.rows(VIEW_VERSIONS, {"view": view} if view is not None else None, order_by=("active_from",))
        return [VersionPeriod(r["view"], r["version"], json.loads(r["schema"]), r["transform_ref"],
                              r["active_from"], r["active_until"]) for r in rows]
