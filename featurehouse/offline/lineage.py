"""Lineage records in the warehouse: every recorded training set, and the model versions bound to one.

A training set's record is what it takes to answer "what was this model trained on": the features at
their versions and types, the dbt nodes (unique_id@checksum) that computed them, a fingerprint of the
spine, the engine, the row count, and a profile of each feature's distribution (for drift checks).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
from sqlglot import exp

from featurehouse.errors import FeaturehouseError
from featurehouse.offline.profile import profile_table
from featurehouse.offline.warehouse import Warehouse, utc_now
from featurehouse.registry.model import Registry

SCHEMA = "featurehouse"
TRAINING_SETS = "featurehouse_training_sets"
TRAINING_SET_COLUMNS = [
    ("training_set_id", "VARCHAR"), ("created_at", "TIMESTAMP"), ("name", "VARCHAR"),
    ("spine_fingerprint", "VARCHAR"), ("row_count", "BIGINT"), ("entity_timestamp", "VARCHAR"),
    ("features", "VARCHAR"), ("schemas", "VARCHAR"), ("transforms", "VARCHAR"), ("engine", "VARCHAR"),
    ("plan", "VARCHAR"), ("profile", "VARCHAR"),
]
MODEL_VERSIONS = "featurehouse_model_versions"
MODEL_VERSION_COLUMNS = [
    ("model", "VARCHAR"), ("version", "VARCHAR"), ("training_set_id", "VARCHAR"), ("features", "VARCHAR"),
    ("registered_at", "TIMESTAMP"), ("source", "VARCHAR"),
]


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


def insert_row(warehouse: Warehouse, table: str, columns: Sequence[str], values: Sequence[Any]) -> None:
    """INSERT one row into featurehouse's own table `table` (already quoted SQL).

    Column names are quoted by sqlglot and values travel as driver parameters (placeholders in the
    engine's style: `?` on DuckDB, `%s` on PostgreSQL), so no name or value is ever pasted into SQL."""
    d = warehouse.dialect
    names = ", ".join(exp.to_identifier(c, quoted=True).sql(d) for c in columns)
    marks = ", ".join(exp.Placeholder().sql(d) for _ in values)
    warehouse.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(values))


def equals(column: str, value: Any, dialect: str) -> str:
    """`"column" = <value>` for a WHERE clause: the name quoted, the value a sqlglot literal
    (fetch_arrow takes no parameters)."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    literal = exp.Literal.number(value) if is_int else exp.Literal.string(str(value))
    return exp.column(column, quoted=True).eq(literal).sql(dialect)


def _versioned_feature(name: str) -> tuple[str, str, int]:
    """'view.column@N' -> (view, column, N)."""
    base, _, version = name.rpartition("@")
    view, _, column = base.partition(".")
    return view, column, int(version)


class LineageLog:
    def __init__(self, warehouse: Warehouse):
        self.wh = warehouse
        self.training_sets = warehouse.ensure_table(SCHEMA, TRAINING_SETS, TRAINING_SET_COLUMNS)
        self.model_versions = warehouse.ensure_table(SCHEMA, MODEL_VERSIONS, MODEL_VERSION_COLUMNS)

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
        values = [ident, created, name, fingerprint, table.num_rows, timestamp, json.dumps(record.features),
                  json.dumps(schemas), json.dumps(transforms), training_set.engine, training_set.plan,
                  json.dumps({"profile": profile, "columns": feature_columns})]
        insert_row(self.wh, self.training_sets, [c for c, _ in TRAINING_SET_COLUMNS], values)
        return record

    def training_set(self, ident: str) -> TrainingSetRecord:
        rows = self.wh.fetch_arrow(f"SELECT * FROM {self.training_sets} "
                                   f"WHERE {equals('training_set_id', ident, self.wh.dialect)}").to_pylist()
        if not rows:
            known = [r.training_set_id for r in self.list_training_sets()[:5]]
            raise UnknownTrainingSet(f"unknown training set '{ident}' (recent: {', '.join(known) or 'none recorded'})")
        return _training_set(rows[0])

    def list_training_sets(self) -> list[TrainingSetRecord]:
        rows = self.wh.fetch_arrow(f"SELECT * FROM {self.training_sets} ORDER BY created_at DESC").to_pylist()
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
        values = [model, version, training_set_id, json.dumps(features), mv.registered_at, source]
        insert_row(self.wh, self.model_versions, [c for c, _ in MODEL_VERSION_COLUMNS], values)
        return mv

    def model_versions_of(self, model: str | None = None) -> list[ModelVersion]:
        where = f"WHERE {equals('model', model, self.wh.dialect)}" if model else ""
        rows = self.wh.fetch_arrow(f"SELECT * FROM {self.model_versions} {where} ORDER BY registered_at").to_pylist()
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
           "equals", "insert_row", "spine_fingerprint"]
