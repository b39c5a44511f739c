"""featurehouse's own warehouse tables: one spec each (tables.py), one place that reads and writes them."""

from featurehouse.catalog.catalog import Catalog, as_catalog
from featurehouse.catalog.tables import (
                                         ALL,
                                         AUDIT,
                                         DEFAULT_SCHEMA,
                                         DELETIONS,
                                         MODEL_VERSIONS,
                                         PUBLISHED_SCHEMAS,
                                         SERVED_VALUES,
                                         SYNC_RUNS,
                                         TOKENS,
                                         TOMBSTONES,
                                         TRAINING_SETS,
                                         VIEW_VERSIONS,
                                         TableSpec,
)

__all__ = ["ALL", "AUDIT", "TOKENS", "TOMBSTONES",
           "DEFAULT_SCHEMA", "DELETIONS", "MODEL_VERSIONS", "PUBLISHED_SCHEMAS", "SERVED_VALUES", "SYNC_RUNS",
           "TRAINING_SETS", "VIEW_VERSIONS", "Catalog", "TableSpec", "as_catalog"]
