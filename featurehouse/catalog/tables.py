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
    ("stream_entries_deleted", "BIGINT"), ("dead_letters_deleted", "BIGINT"), ("served_values_deleted", "BIGINT"),
    ("served_log_entries_deleted", "BIGINT"),
), "entities forgotten (featurehouse forget): what was deleted where")

TOMBSTONES = TableSpec("featurehouse_tombstones", (
    ("entity_type", "VARCHAR"), ("entity_key", "VARCHAR"), ("key_text", "VARCHAR"), ("forgotten_at", "TIMESTAMP"),
    ("lift_when", "VARCHAR"), ("lifted_at", "TIMESTAMP"),
), "forgotten entities that sync and the stream consumer leave out until lifted (forget --status, --lift)")

SERVED_VALUES = TableSpec("featurehouse_served_values", (
    ("stream_id", "VARCHAR"), ("entity_type", "VARCHAR"), ("entity_id", "VARCHAR"), ("model", "VARCHAR"),
    ("served_at", "TIMESTAMP"), ("feature", "VARCHAR"), ("version", "BIGINT"), ("value_json", "VARCHAR"),
    ("value_num", "DOUBLE"), ("event_time", "TIMESTAMP"), ("status", "VARCHAR"),
), "a sample of served vectors, landed for skew and drift checks")

TOKENS = TableSpec("featurehouse_tokens", (
    ("token_id", "VARCHAR"), ("principal", "VARCHAR"), ("scopes", "VARCHAR"), ("salt", "VARCHAR"),
    ("secret_hash", "VARCHAR"), ("created_at", "TIMESTAMP"), ("expires_at", "TIMESTAMP"),
    ("revoked_at", "TIMESTAMP"), ("created_by", "VARCHAR"), ("description", "VARCHAR"),
), "API tokens: a salted hash of each secret (never the secret), its principal, scopes and expiry")

AUDIT = TableSpec("featurehouse_audit", (
    ("event_id", "VARCHAR"), ("at", "TIMESTAMP"), ("principal", "VARCHAR"), ("action", "VARCHAR"),
    ("path", "VARCHAR"), ("view", "VARCHAR"), ("sensitivity", "VARCHAR"), ("allowed", "BOOLEAN"),
    ("model", "VARCHAR"), ("purpose", "VARCHAR"), ("entity_type", "VARCHAR"), ("entity_ref", "VARCHAR"),
    ("reads", "BIGINT"), ("detail", "VARCHAR"),
), "who read or was denied which restricted feature, token changes and forgets (entity ids pseudonymised)")

ALL = (SYNC_RUNS, VIEW_VERSIONS, PUBLISHED_SCHEMAS, TRAINING_SETS, MODEL_VERSIONS, DELETIONS, TOMBSTONES, SERVED_VALUES, TOKENS,
       AUDIT)
DEFAULT_SCHEMA = "featurehouse"
