"""featurehouse's own warehouse tables, each specified once: its name, columns and types.

Every record featurehouse keeps in the warehouse (sync runs, version periods, published schemas,
training sets, model bindings, deletions, served values) is a table here, in one schema
(`vars.featurehouse.schema`, default `featurehouse`, which the dbt macros read too). A table made by
an older featurehouse gets the columns added since when it is next opened.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, SQL type) in order
    description: str = ""

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.columns)


SYNC_RUNS = TableSpec("featurehouse_sync_runs", (
    ("run_id", "VARCHAR"), ("view", "VARCHAR"), ("version", "INTEGER"), ("mode", "VARCHAR"),
    ("watermark_from", "TIMESTAMP"), ("watermark_to", "TIMESTAMP"), ("rows_read", "BIGINT"),
    ("rows_written", "BIGINT"), ("rows_skipped_older", "BIGINT"), ("started_at", "TIMESTAMP"),
    ("finished_at", "TIMESTAMP"), ("status", "VARCHAR"), ("error", "VARCHAR"),
    ("rows_restated", "BIGINT"), ("logic_ref", "VARCHAR"), ("watermarks", "VARCHAR"), ("online_store", "VARCHAR"),
), "every sync, backfill and restatement run: what it read and wrote, and its watermark per source")

VIEW_VERSIONS = TableSpec("featurehouse_view_versions", (
    ("view", "VARCHAR"), ("version", "INTEGER"), ("schema", "VARCHAR"), ("transform_ref", "VARCHAR"),
    ("active_from", "TIMESTAMP"), ("active_until", "TIMESTAMP"),
), "which version of each view was active when (promote, rollback)")

PUBLISHED_SCHEMAS = TableSpec("featurehouse_published_schemas", (
    ("view", "VARCHAR"), ("version", "INTEGER"), ("schema", "VARCHAR"), ("transform_ref", "VARCHAR"),
    ("published_at", "TIMESTAMP"), ("published_by", "VARCHAR"), ("logic_checksum", "VARCHAR"),
), "the contract of each view@version once something outside dbt relies on it")

TRAINING_SETS = TableSpec("featurehouse_training_sets", (
    ("training_set_id", "VARCHAR"), ("created_at", "TIMESTAMP"), ("name", "VARCHAR"),
    ("spine_fingerprint", "VARCHAR"), ("row_count", "BIGINT"), ("entity_timestamp", "VARCHAR"),
    ("features", "VARCHAR"), ("schemas", "VARCHAR"), ("transforms", "VARCHAR"), ("engine", "VARCHAR"),
    ("plan", "VARCHAR"), ("profile", "VARCHAR"),
), "recorded training sets: features at their versions, dbt checksums, spine fingerprint, profiles")

MODEL_VERSIONS = TableSpec("featurehouse_model_versions", (
    ("model", "VARCHAR"), ("version", "VARCHAR"), ("training_set_id", "VARCHAR"), ("features", "VARCHAR"),
    ("registered_at", "TIMESTAMP"), ("source", "VARCHAR"),
), "model versions bound to the training set they were trained on")

DELETIONS = TableSpec("featurehouse_deletions", (
    ("entity_type", "VARCHAR"), ("entity_key", "VARCHAR"), ("deleted_at", "TIMESTAMP"),
    ("online_keys_deleted", "BIGINT"), ("offline_rows_deleted", "VARCHAR"),
), "entities forgotten (featurehouse forget)")

SERVED_VALUES = TableSpec("featurehouse_served_values", (
    ("stream_id", "VARCHAR"), ("entity_type", "VARCHAR"), ("entity_id", "VARCHAR"), ("model", "VARCHAR"),
    ("served_at", "TIMESTAMP"), ("feature", "VARCHAR"), ("version", "BIGINT"), ("value_json", "VARCHAR"),
    ("value_num", "DOUBLE"), ("event_time", "TIMESTAMP"), ("status", "VARCHAR"),
), "a sample of served vectors, landed for skew and drift checks")

ALL = (SYNC_RUNS, VIEW_VERSIONS, PUBLISHED_SCHEMAS, TRAINING_SETS, MODEL_VERSIONS, DELETIONS, SERVED_VALUES)
DEFAULT_SCHEMA = "featurehouse"
