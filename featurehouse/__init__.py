"""featurehouse: a SQL-first, warehouse-native feature store built on dbt."""

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
from featurehouse.store import FeatureStore

__version__ = "0.1.0"
__all__ = [
    "Entity", "Feature", "FeatureRef", "FeatureStore", "FeatureView", "FeaturehouseError", "InvalidFeatureMetadata",
    "InvalidSpine", "ProjectError", "Registry", "Relation", "TrainingSet", "UnknownEntity", "UnknownFeature",
]
