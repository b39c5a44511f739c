"""featurehouse: a SQL-first, warehouse-native feature store built on dbt.

The names below are imported on first use, so a process that needs only part of the package (a
serving worker reads vectors from Redis) loads no pyarrow, sqlglot or dbt it does not use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "FeatureStore": "featurehouse.store",
    "TrainingSet": "featurehouse.offline.training_set",
    "FeaturehouseError": "featurehouse.errors", "InvalidFeatureMetadata": "featurehouse.errors",
    "InvalidSpine": "featurehouse.errors", "ProjectError": "featurehouse.errors",
    "UnknownEntity": "featurehouse.errors", "UnknownFeature": "featurehouse.errors",
    "Entity": "featurehouse.registry.model", "Feature": "featurehouse.registry.model",
    "FeatureRef": "featurehouse.registry.model", "FeatureView": "featurehouse.registry.model",
    "Registry": "featurehouse.registry.model", "Relation": "featurehouse.registry.model",
    "NearCacheConfig": "featurehouse.serving.near_cache",
}
__all__ = [
    "Entity", "Feature", "FeatureRef", "FeatureStore", "FeatureView", "FeaturehouseError", "InvalidFeatureMetadata",
    "InvalidSpine", "NearCacheConfig", "ProjectError", "Registry", "Relation", "TrainingSet", "UnknownEntity",
    "UnknownFeature",
]

if TYPE_CHECKING:
    from featurehouse.errors import (
        FeaturehouseError,
        InvalidFeatureMetadata,
        InvalidSpine,
        ProjectError,
        UnknownEntity,
        UnknownFeature,
    )
    from featurehouse.offline.training_set import TrainingSet
    from featurehouse.registry.model import Entity, Feature, FeatureRef, FeatureView, Registry, Relation
    from featurehouse.serving.near_cache import NearCacheConfig
    from featurehouse.store import FeatureStore


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'featurehouse' has no attribute {name!r}")
