"""Lineage records in the warehouse: every recorded training set, and the model versions bound to one.

A training set's record is what it takes to answer "what was this model trained on": the features at
their versions and types, the dbt nodes (unique_id@checksum) that computed them, a fingerprint of the
spine, the engine, the row count, and a profile of each feature's distribution (for drift checks).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
from sqlglot import exp

from featurehouse.catalog import MODEL_VERSIONS as MODEL_VERSIONS_TABLE
from featurehouse.catalog import TRAINING_SETS as TRAINING_SETS_TABLE
from featurehouse.catalog import Catalog, as_catalog
from featurehouse.catalog.catalog import CatalogWarehouse
from featurehouse.errors import FeaturehouseError
from featurehouse.offline.profile import profile_table
from featurehouse.offline.warehouse import utc_now
from featurehouse.registry.model import Registry

TRAINING_SETS = TRAINING_SETS_TABLE.name
MODEL_VERSIONS = MODEL_VERSIONS_TABLE.name


class UnknownTrainingSet(FeaturehouseError):
    pass


class UnknownModelVersion(FeaturehouseError):
    pass


@dataclass(frozen=True)
class TrainingSetRecord:
    training_set_id: str
    created_at: datetime
    name: str | None
    spine_fingerprint: str
    row_count: int
    entity_timestamp: str
    features: list[str]  # versioned: view.column@N
    schemas: dict[str, str]  # versioned feature -> type
    transforms: dict[str, str]  # view@N -> dbt unique_id@checksum
    engine: str
    plan: str
    profile: dict[str, dict]  # versioned feature -> distribution profile
    columns: dict[str, str] | None = None  # versioned feature -> output column


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: str
    training_set_id: str
    features: list[str]  # versioned
    registered_at: datetime
    source: str

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"


def spine_fingerprint(table: pa.Table, columns: list[str]) -> str:
    """Order-independent fingerprint of the spine's rows (the non-feature columns of the result)."""
    import duckdb

    if not columns or table.num_rows == 0:
        return hashlib.sha256(json.dumps([columns, table.num_rows]).encode()).hexdigest()[:16]
    con = duckdb.connect()
    try:
        con.register("spine", table.select(columns))
        cols = ", ".join(exp.to_identifier(c, quoted=True).sql("duckdb") for c in columns)
        row = con.execute(f"SELECT sum(hash({cols})::HUGEINT)::VARCHAR, count(*) FROM spine").fetchone()
        assert row is not None  # an aggregate without GROUP BY returns one row
        total, count = row
    finally:
        con.close()
    return hashlib.sha256(f"{columns}|{total}|{count}".encode()).hexdigest()[:16]


def _versioned_feature(name: str) -> tuple[str, str, int]:
    """'view.column@N' -> (view, column, N)."""
    base, _, version = name.rpartition("@")
    view, _, column = base.partition(".")
    return view, column, int(version)


class LineageLog:
    def __init__(self, catalog: Catalog | CatalogWarehouse):
        self.catalog = as_catalog(catalog)
        self.wh = self.catalog.warehouse
        self.training_sets = self.catalog.table(TRAINING_SETS_TABLE)
        self.model_versions = self.catalog.table(MODEL_VERSIONS_TABLE)

    # -- training sets ------------------------------------------------------------------------

    def record_training_set(self, training_set, registry: Registry, timestamp: str, name: str | None = None
                            ) -> TrainingSetRecord:
        table = training_set.table
        feature_columns = dict(zip(training_set.features, training_set.columns))
        spine_columns = [c for c in table.column_names if c not in set(training_set.columns)
                         and not c.endswith("__event_time")]
        fingerprint = spine_fingerprint(table, spine_columns)
        schemas, transforms = {}, {}
        for versioned in training_set.features:
            view_name, column, version = _versioned_feature(versioned)
            view = registry.view(view_name, version)
            schemas[versioned] = next(f.data_type for f in view.features if f.column == column)
            transforms[view.versioned_name] = f"{view.unique_id}@{view.checksum}"
        profile = {f: p for f, p in zip(training_set.features, profile_table(table, training_set.columns).values())}
        created = utc_now()
        ident = "ts_" + hashlib.sha256(
            f"{created.isoformat()}|{fingerprint}|{training_set.features}".encode()).hexdigest()[:12]
        record = TrainingSetRecord(ident, created, name, fingerprint, table.num_rows, timestamp,
                                   list(training_set.features), schemas, transforms, training_set.engine,
                                   training_set.plan, profile, feature_columns)
        self.catalog.insert(TRAINING_SETS_TABLE, {
            "training_set_id": ident, "created_at": created, "name": name, "spine_fingerprint": fingerprint,
            "row_count": table.num_rows, "entity_timestamp": timestamp, "features": json.dumps(record.features),
            "schemas": json.dumps(schemas), "transforms": json.dumps(transforms), "engine": training_set.engine,
            "plan": training_set.plan, "profile": json.dumps({"profile": profile, "columns": feature_columns})})
        return record

    def training_set(self, ident: str) -> TrainingSetRecord:
        rows = self.catalog.rows(TRAINING_SETS_TABLE, {"training_set_id": ident})
        if not rows:
            known = [r.training_set_id for r in self.list_training_sets()[:5]]
            raise UnknownTrainingSet(f"unknown training set '{ident}' (recent: {', '.join(known) or 'none recorded'})")
        return _training_set(rows[0])

    def list_training_sets(self) -> list[TrainingSetRecord]:
        rows = self.catalog.rows(TRAINING_SETS_TABLE, order_by=("created_at",), descending=True)
        return [_training_set(r) for r in rows]

    # -- model versions -----------------------------------------------------------------------

    def register_model(self, model: str, version: str, training_set_id: str, features: list[str] | None = None,
                       source: str = "cli") -> ModelVersion:
        """Bind MODEL@VERSION to a recorded training set (and so to its features at their versions).

        Registering the same binding again is a no-op; rebinding a registered version is refused."""
        record = self.training_set(training_set_id)
        features = list(features) if features else record.features
        unknown = [f for f in features if f not in record.features]
        if unknown:
            raise FeaturehouseError(f"model {model}@{version}: feature '{unknown[0]}' is not in training set "
                                    f"{training_set_id} ({', '.join(record.features)})")
        existing = self.model_versions_of(model)
        for mv in existing:
            if mv.version == version:
                if mv.training_set_id == training_set_id and mv.features == features:
                    return mv
                raise FeaturehouseError(f"model {model}@{version} is already bound to training set {mv.training_set_id}; "
                                        f"register a new version instead")
        mv = ModelVersion(model, version, training_set_id, features, utc_now(), source)
        self.catalog.insert(MODEL_VERSIONS_TABLE, {
            "model": model, "version": version, "training_set_id": training_set_id, "features": json.dumps(features),
            "registered_at": mv.registered_at, "source": source})
        return mv

    def model_versions_of(self, model: str | None = None) -> list[ModelVersion]:
        rows = self.catalog.rows(MODEL_VERSIONS_TABLE, {"model": model} if model else None, order_by=("registered_at",))
        return [ModelVersion(r["model"], r["version"], r["training_set_id"], json.loads(r["features"]),
                             r["registered_at"], r["source"]) for r in rows]

    def model_version(self, ref: str) -> ModelVersion:
        model, _, version = ref.partition("@")
        if not version:
            raise UnknownModelVersion(f"give a model version as NAME@VERSION, got '{ref}'")
        versions = self.model_versions_of(model)
        for mv in versions:
            if mv.version == version:
                return mv
        known = ", ".join(mv.ref for mv in versions) or "none"
        raise UnknownModelVersion(f"unknown model version '{ref}' (registered: {known}); "
                                  f"bind it with `featurehouse model register {ref} --training-set ID`")


def _training_set(r: dict) -> TrainingSetRecord:
    extra = json.loads(r["profile"] or "{}")
    return TrainingSetRecord(r["training_set_id"], r["created_at"], r["name"], r["spine_fingerprint"], r["row_count"],
                             r["entity_timestamp"], json.loads(r["features"]), json.loads(r["schemas"]),
                             json.loads(r["transforms"]), r["engine"], r["plan"], extra.get("profile", {}),
                             extra.get("columns"))


__all__ = ["LineageLog", "ModelVersion", "TrainingSetRecord", "UnknownModelVersion", "UnknownTrainingSet",
           "spine_fingerprint"]
