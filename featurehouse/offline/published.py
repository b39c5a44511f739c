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

from featurehouse.catalog import PUBLISHED_SCHEMAS, VIEW_VERSIONS, Catalog, as_catalog
from featurehouse.catalog.catalog import CatalogWarehouse
from featurehouse.clock import utc_now
from featurehouse.registry.model import FeatureView

TABLE = PUBLISHED_SCHEMAS.name


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
    def __init__(self, catalog: Catalog | CatalogWarehouse):
        self.catalog = as_catalog(catalog)
        self.table = self.catalog.table(PUBLISHED_SCHEMAS)

    def publish(self, view: FeatureView, by: str) -> bool:
        """Record view@version's schema unless it is already published; True when this call published it.

        The first record stands: a later sync of a changed relation does not overwrite the contract."""
        key = {"view": view.name, "version": int(view.version)}
        if self.catalog.rows(PUBLISHED_SCHEMAS, key, limit=1, columns=("view",)):
            return False
        self.catalog.insert(PUBLISHED_SCHEMAS, {
            **key, "schema": json.dumps(view_schema(view)), "transform_ref": f"{view.unique_id}@{view.checksum}",
            "published_at": utc_now(), "published_by": by, "logic_checksum": view.logic_checksum})
        return True

    def restate(self, view: FeatureView) -> None:
        """A declared restatement reached the online store: view@version's published logic is now its
        corrected SQL (`featurehouse check` compares against it from here on)."""
        self.catalog.update(PUBLISHED_SCHEMAS, {"transform_ref": f"{view.unique_id}@{view.checksum}",
                                                "logic_checksum": view.logic_checksum},
                            {"view": view.name, "version": int(view.version)})

    def all(self) -> dict[tuple[str, int], PublishedSchema]:
        out: dict[tuple[str, int], PublishedSchema] = {}
        for r in self.catalog.rows(PUBLISHED_SCHEMAS, order_by=("published_at",)):
            out.setdefault((r["view"], r["version"]), PublishedSchema(
                r["view"], r["version"], json.loads(r["schema"]), r["transform_ref"], r["published_at"],
                r["published_by"], r.get("logic_checksum")))
        return out


def read_published(catalog: Catalog | CatalogWarehouse) -> dict[tuple[str, int], PublishedSchema]:
    """Published schemas, including versions promoted before this table existed (the version log)."""
    catalog = as_catalog(catalog)
    out: dict[tuple[str, int], PublishedSchema] = {}
    if catalog.exists(PUBLISHED_SCHEMAS):
        out.update(PublishedSchemas(catalog).all())
    for r in catalog.rows(VIEW_VERSIONS, order_by=("active_from",)):
        out.setdefault((r["view"], r["version"]), PublishedSchema(
            r["view"], r["version"], json.loads(r["schema"]), r["transform_ref"], r["active_from"], "promote"))
    return out
