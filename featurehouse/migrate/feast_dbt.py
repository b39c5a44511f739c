"""A Feast repository as dbt files: sources, feature-view models with `meta.featurehouse`, exposures.

Feast's point-in-time contract is featurehouse's (docs/semantics.md): `event_time <= T`, a TTL cut
`event_time >= T - ttl`, ties to the newest created timestamp. So a FeatureView translates one to one:
its batch source becomes a dbt source, the view a model selecting the entity keys, the timestamps and
its features, its TTL and online flag the model's meta; a FeatureService becomes an exposure listing
the same features. Feast's `full_feature_names=True` columns (`view__feature`) are featurehouse's
column names, so training code keeps working.

What has no SQL equivalent (on-demand Python transforms, stream aggregations, request sources) is not
guessed at: each is a `Finding` in the report, with its file and line.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from featurehouse.durations import format_duration
from featurehouse.migrate.feast_repo import (
    Call,
    FeastRepo,
    OnDemandView,
    Projection,
    Renamed,
    Symbol,
    Unreadable,
    Where,
)
from featurehouse.types import declared_type

SOURCE_GROUP = "feast"

TRANSLATED, PARTIAL, NOT_TRANSLATED = "translated", "partly translated", "not translated"

# Feast's types (feast.types) as SQL column types. Map and Json hold strings: Feast's Map is str -> value.
_FEAST_TYPES = {"Int32": "integer", "Int64": "bigint", "Float32": "float", "Float64": "double",
                "String": "varchar", "Bool": "boolean", "Bytes": "blob", "UnixTimestamp": "timestamp",
                "Json": "json", "Map": "map(varchar, varchar)", "PdfBytes": "blob", "ImageBytes": "blob"}
# Feast's ValueType (entities' value_type) as SQL column types.
_VALUE_TYPES = {"INT32": "integer", "INT64": "bigint", "FLOAT": "float", "DOUBLE": "double", "STRING": "varchar",
                "BOOL": "boolean", "BYTES": "blob", "UNIX_TIMESTAMP": "timestamp"}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Finding:
    """One line of the import report: a Feast definition and what became of it."""

    kind: str  # Feast's class: FeatureView, FeatureService, OnDemandFeatureView, ...
    name: str
    where: Where | None
    outcome: str  # TRANSLATED, PARTIAL or NOT_TRANSLATED
    detail: str


@dataclass
class Translation:
    """The dbt files for a Feast repository and the report on what was and was not translated."""

    project: str
    entities: dict[str, list[str]] = field(default_factory=dict)  # entity type -> key columns
    sources: list[dict[str, Any]] = field(default_factory=list)  # dbt source tables (group SOURCE_GROUP)
    models: dict[str, str] = field(default_factory=dict)  # model name -> SQL
    model_yaml: list[dict[str, Any]] = field(default_factory=list)
    exposures: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def untranslated(self) -> list[Finding]:
        return [f for f in self.findings if f.outcome != TRANSLATED]

    def files(self) -> dict[str, str]:
        """Relative path (under the models directory) -> text."""
        out = {f"{name}.sql": sql for name, sql in self.models.items()}
        header = f"# Imported from the Feast repository `{self.project}` by `featurehouse import-feast`.\n"
        if self.sources:
            out["_feast_sources.yml"] = header + _dump({"version": 2, "sources": [
                {"name": SOURCE_GROUP, "description": f"Data sources of the Feast project {self.project}.",
                 "tables": self.sources}]})
        if self.model_yaml:
            out["_feast_models.yml"] = header + _dump({"version": 2, "models": self.model_yaml})
        if self.exposures:
            out["_feast_exposures.yml"] = header + _dump({"version": 2, "exposures": self.exposures})
        out["FEAST_IMPORT.md"] = self.report_markdown()
        return out

    def report_markdown(self) -> str:
        lines = [f"# Import of the Feast project `{self.project}`", "",
                 "Written by `featurehouse import-feast`. Each Feast definition and what became of it.", "",
                 "| Feast definition | Name | Where | Outcome | Detail |", "|---|---|---|---|---|"]
        for f in self.findings:
            lines.append(f"| {f.kind} | `{f.name}` | {f.where or ''} | {f.outcome} | {f.detail.replace('|', '/')} |")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Options:
    """How to translate: `rename` Feast entity names to the project's (a clash otherwise skips the views);
    `project_dir`, where the dbt project is, so the paths written into it are relative to it."""

    rename: dict[str, str] = field(default_factory=dict)
    project_dir: Path | None = None


def translate(repo: FeastRepo, existing_entities: dict[str, list[str]] | None = None,
              options: Options | None = None) -> Translation:
    """Translate every definition of `repo`; `existing_entities` are the project's own (names are reused
    when their keys agree, and a clash is a finding rather than a silent rename)."""
    options = options or Options()
    out = Translation(project=repo.project)
    known = dict(existing_entities or {})
    entity_keys: dict[str, list[str]] = {}
    for entity in repo.of_kind("Entity"):
        feast_name = str(entity.get("name", position=0) or entity.name_hint)
        name = options.rename.get(feast_name, feast_name)
        entity_keys[feast_name] = _join_keys(entity)
        detail = f"entity type `{name}` keyed by {', '.join(entity_keys[feast_name])}"
        if name != feast_name:
            detail += f" (renamed from Feast's `{feast_name}`)"
        kept = [k for k in ("description", "owner", "tags") if entity.get(k)]
        if kept:
            detail += f"; its {', '.join(kept)} not kept (an entity type declares only its keys)"
        out.findings.append(Finding("Entity", feast_name, entity.where, TRANSLATED, detail))
    unused = sorted(set(options.rename) - set(entity_keys))
    if unused:
        out.findings.append(Finding("--rename-entity", ", ".join(unused), None, NOT_TRANSLATED,
                                    f"no Feast entity is named {', '.join(unused)} (entities: "
                                    f"{', '.join(sorted(entity_keys)) or 'none'})"))
    sources_done: dict[str, dict[str, Any]] = {}
    views: dict[int, str] = {}  # id(Call) -> model name
    view_features: dict[str, list[str]] = {}
    for view in repo.of_kind("FeatureView", "BatchFeatureView", "StreamFeatureView", "LabelView"):
        name = _translate_view(repo, view, entity_keys, known, out, sources_done, options)
        if name is not None:
            views[id(view)] = name
            view_features[name] = [c["name"] for c in next(m for m in out.model_yaml if m["name"] == name)["columns"]
                                   if c.get("feature", True)]
    for model in out.model_yaml:
        for column in model["columns"]:
            column.pop("feature", None)
    for odfv in repo.on_demand:
        out.findings.append(Finding("OnDemandFeatureView", odfv.name, odfv.where, NOT_TRANSLATED,
                                    "a Python transform run at request time: write it as SQL in a dbt model over "
                                    "the imported views, or compute it in the model server"))
    for service in repo.of_kind("FeatureService"):
        _translate_service(service, views, view_features, out)
    for request in repo.of_kind("RequestSource"):
        out.findings.append(Finding("RequestSource", str(request.get("name") or request.name_hint), request.where,
                                    NOT_TRANSLATED, "values sent with each request have no history: pass them to "
                                                    "the model beside the feature vector"))
    for stream in repo.of_kind("KafkaSource", "KinesisSource", "PushSource"):
        out.findings.append(Finding(stream.kind, str(stream.get("name") or stream.name_hint), stream.where, PARTIAL,
                                    "live events: send them to `featurehouse push` / POST /v1/push/VIEW or run "
                                    "`featurehouse stream`; history is read from the batch source of the views "
                                    "that use it"))
    for other in repo.of_kind("Permission", "SavedDataset", "ValidationReference"):
        out.findings.append(Finding(other.kind, str(other.get("name") or other.name_hint), other.where,
                                    NOT_TRANSLATED, _NOT_TRANSLATED_KINDS[other.kind]))
    for bad in repo.unreadable:
        out.findings.append(Finding("definition", bad.text, bad.where, NOT_TRANSLATED,
                                    "not readable without running the repository's Python: translate it by hand"))
    _config_findings(repo, out)
    return out


_NOT_TRANSLATED_KINDS = {
    "Permission": "featurehouse's access policy lives in dbt: teams, sensitivity and shared_with (docs/security.md)",
    "SavedDataset": "featurehouse records training sets by spine fingerprint: `featurehouse training-set`",
    "ValidationReference": "use featurehouse's drift and skew guards (docs/guardrails.md)",
}


def _translate_view(repo: FeastRepo, view: Call, entity_keys: dict[str, list[str]], known: dict[str, list[str]],
                    out: Translation, sources_done: dict[str, dict[str, Any]], options: Options) -> str | None:
    name = str(view.get("name", position=0) or view.name_hint)
    kind = view.kind

    def skip(detail: str) -> None:
        out.findings.append(Finding(kind, name, view.where, NOT_TRANSLATED, detail))

    if not _IDENTIFIER.match(name):
        skip(f"`{name}` is not a valid dbt model name")
        return None
    if kind == "BatchFeatureView" and (view.get("udf") is not None or view.get("feature_transformation")):
        skip("a Python transformation (udf): write it as SQL in the model")
        return None
    if kind == "StreamFeatureView" and (view.get("aggregations") or view.get("udf") is not None):
        skip("stream aggregations run by Feast: write the aggregation as SQL over the batch source, and push "
             "fresh rows with `featurehouse push` or POST /v1/push/VIEW")
        return None
    notes: list[str] = []
    lost = False  # something of the view's meaning is not carried over: the finding says what
    source = view.get("source") or view.get("batch_source")
    batch, note = _batch_source(source)
    if note:
        notes.append(note)
    if batch is None:
        skip(note or "no batch source to read history from")
        return None

    entities = view.get("entities") or []
    entity_names: list[str] = []
    for e in entities if isinstance(entities, list) else [entities]:
        if isinstance(e, Call):
            entity_names.append(str(e.get("name", position=0) or e.name_hint))
        elif isinstance(e, str):
            entity_names.append(e)
    if not entity_names and kind != "LabelView":
        skip("an entity-less feature view: featurehouse views are keyed by an entity type")
        return None
    keys = [k for e in entity_names for k in entity_keys.get(e, [e])]
    entity = "_".join(options.rename.get(e, e) for e in entity_names)
    # the view's entity type, and each entity of a composite key, must mean here what it meant in Feast
    for ours, want, feast_name in [(entity, keys, None)] + [
            (options.rename.get(e, e), entity_keys.get(e, [e]), e) for e in entity_names if len(entity_names) > 1]:
        if entity_names and ours in known and known[ours] != want:
            clash = feast_name or next((e for e in entity_names if options.rename.get(e, e) in known), entity)
            skip(f"entity type `{ours}` is already declared with keys {known[ours]}, Feast's has {want}: import "
                 f"again with `--rename-entity {clash}=feast_{clash}` (or another name)")
            return None
    if entity_names:
        known[entity] = keys
        out.entities[entity] = keys

    source_name, table = _source_table(repo, batch, sources_done, out, name, options)
    mapping = {str(k): str(v) for k, v in (batch.get("field_mapping") or {}).items()}
    renamed = {v: k for k, v in mapping.items()}  # feature name -> column of the source
    event_time = str(batch.get("timestamp_field") or batch.get("event_timestamp_column") or "")
    created = batch.get("created_timestamp_column") or None
    if not event_time:
        skip(f"its source `{source_name}` names no timestamp_field")
        return None
    file_schema = _file_schema(repo, batch)

    # `features=[Feature(...)]` is how Feast before 0.20 spelled `schema=[Field(...)]`
    schema = [f for f in (view.get("schema") or view.get("features") or []) if isinstance(f, Call)]
    declared = {str(f.get("name", position=0)): f for f in schema}
    feature_names = [n for n in declared if n not in keys and n not in (event_time, created)]
    if not feature_names:
        if file_schema is None:
            skip("no schema: Feast infers the features from the source when applied; list them in `schema=`")
            return None
        feature_names = [c for c in (mapping.get(c, c) for c in file_schema.names)
                         if c not in keys and c not in (event_time, created)]
        notes.append("features taken from the source file (the view declares no schema)")

    columns: list[dict[str, Any]] = []
    select: list[str] = []
    roles: list[tuple[str, str]] = ([("key", k) for k in keys] + [("event_time", event_time)]
                                    + ([("created_at", str(created))] if created else [])
                                    + [("feature", str(f)) for f in feature_names])
    for role, col in roles:
        src = renamed.get(col, col)
        arrow = file_schema.field(src).type if file_schema is not None and src in file_schema.names else None
        expr = _quote(src)
        dtype = declared_type(arrow) if arrow is not None else None
        if role in ("event_time", "created_at") and dtype == "timestamptz":
            expr, dtype = f"timezone('UTC', {expr})", "timestamp"  # featurehouse's times are naive UTC
        if dtype is None:
            dtype = _feast_type(declared[col].get("dtype", position=1)) if col in declared else None
        if dtype is None and role == "key":
            dtype = _entity_type(col, repo)
        if dtype is None and role in ("event_time", "created_at"):
            dtype = "timestamp"
        if file_schema is not None and src not in file_schema.names:
            skip(f"column `{src}` is not in the source file {batch.get('path')}")
            return None
        select.append(expr if expr == _quote(col) else f"{expr} as {_quote(col)}")
        column: dict[str, Any] = {"name": col}
        if dtype:
            column["data_type"] = dtype
        description = declared[col].get("description") if col in declared else None
        if description:
            column["description"] = str(description)
        column["feature"] = role == "feature"
        columns.append(column)
        if dtype is None:
            notes.append(f"no type known for `{col}`: featurehouse reads it from the built model")

    tags = view.get("tags") or {}
    meta: dict[str, Any] = {}
    if kind != "LabelView":
        meta = {"entity": entity, "event_time": event_time}
        if created:
            meta["created_at"] = str(created)
        ttl = view.get("ttl")
        if isinstance(ttl, dt.timedelta) and ttl > dt.timedelta(0):
            meta["ttl"] = format_duration(ttl)
        elif ttl is not None and not isinstance(ttl, dt.timedelta):
            notes.append(f"ttl not readable ({view.where}): no TTL set, so older values match; set "
                         "meta.featurehouse.ttl by hand")
            lost = True
        owner = view.get("owner") or (tags.get("owner") if isinstance(tags, dict) else None)
        if owner:
            meta["owner"] = str(owner)
        meta["online"] = bool(view.get("online", True))
        if isinstance(tags, dict) and tags:
            meta["tags"] = [f"{k}:{v}" for k, v in tags.items()]
    description = view.get("description") or ""
    model: dict[str, Any] = {"name": name}
    if description:
        model["description"] = str(description)
    model_meta: dict[str, Any] = {"feast": {"kind": kind, "defined_at": str(view.where)}}
    if meta:
        model_meta["featurehouse"] = meta
    model["config"] = {"materialized": "table", "meta": model_meta}
    model["columns"] = columns
    out.model_yaml.append(model)
    sql_lines = [f"-- Feast {kind} `{name}` ({view.where}), imported by `featurehouse import-feast`.",
                 f"-- Its source: {batch.kind} `{source_name}`.", "select"]
    sql_lines += [f"    {s}," for s in select[:-1]] + [f"    {select[-1]}"]
    sql_lines.append(f"from {table}")
    out.models[name] = "\n".join(sql_lines) + "\n"
    if kind == "LabelView":
        notes.insert(0, "a label view: imported as a plain model (no meta.featurehouse), to use as a training spine")
    detail = f"model `{name}`" + (f" (entity `{entity}`, {len(feature_names)} features)" if meta else "")
    lost = lost or any(n.startswith(("pushes", "stream")) for n in notes)
    outcome = PARTIAL if lost else TRANSLATED
    out.findings.append(Finding(kind, name, view.where, outcome, "; ".join([detail, *notes])))
    return name


def _batch_source(source: Any) -> tuple[Call | None, str | None]:
    """The source a view's history is read from, and a note on what of the source is not translated."""
    if isinstance(source, Unreadable):
        return None, f"its source {source} is not readable without running the repository"
    if not isinstance(source, Call):
        return None, "no source"
    if source.kind == "PushSource":
        batch, _ = _batch_source(source.get("batch_source"))
        return batch, "pushes: send them to featurehouse's push API (`featurehouse push`, POST /v1/push/VIEW)"
    if source.kind in ("KafkaSource", "KinesisSource"):
        batch, _ = _batch_source(source.get("batch_source"))
        return batch, (f"stream source {source.kind}: history imported from its batch source; point the producer at "
                       "`featurehouse stream` or the push API")
    if source.kind == "RequestSource":
        return None, "a request source has no history: only on-demand views read it"
    return source, None


def _source_table(repo: FeastRepo, batch: Call, done: dict[str, dict[str, Any]], out: Translation,
                  view: str, options: Options) -> tuple[str, str]:
    """The dbt source table for a batch source (declared once), and the SQL that reads it in a model."""
    name = str(batch.get("name") or batch.name_hint or f"{view}_source")
    if not _IDENTIFIER.match(name):
        name = re.sub(r"\W+", "_", name).strip("_") or f"{view}_source"
    query = batch.get("query")
    if isinstance(query, str) and query.strip():
        return name, f"(\n    {query.strip()}\n) as feast_query  -- the source's query: point it at source()/ref()"
    if name in done:
        return name, "{{ source('%s', '%s') }}" % (SOURCE_GROUP, name)
    table: dict[str, Any] = {"name": name}
    description = batch.get("description")
    if description:
        table["description"] = str(description)
    path = batch.get("path")
    ident = batch.get("table") or batch.get("table_ref")
    if isinstance(path, (str, Path)) and not ident:
        location = Path(_data_path(repo, path))
        if location.is_dir():  # a directory of Parquet files, as Feast's file store reads it
            location = location / "*.parquet"
        table["meta"] = {"external_location": _portable(location, options.project_dir)}
        table["description"] = table.get("description") or (f"Feast {batch.kind} {Path(str(path)).name} "
                                                             "(read in place by dbt-duckdb).")
    elif isinstance(ident, str):
        parts = ident.replace("`", "").split(".")
        table["identifier"] = parts[-1]
        if len(parts) >= 2:
            table["schema"] = parts[-2]
        if len(parts) >= 3:
            table["database"] = parts[-3]
        for key in ("database", "schema"):
            if isinstance(batch.get(key), str):
                table[key] = batch.get(key)
    else:
        computed = next((v for v in (ident, path, query) if isinstance(v, Unreadable)), None)
        out.findings.append(Finding(batch.kind, name, batch.where, PARTIAL,
                                    f"its table or path {computed} is computed by code: point the dbt source at "
                                    "the data" if computed else "neither a table nor a path: point the dbt source "
                                                                "at the data"))
    if batch.get("owner") or batch.get("tags"):
        meta = table.setdefault("meta", {})
        if batch.get("owner"):
            meta["owner"] = str(batch.get("owner"))
        if isinstance(batch.get("tags"), dict) and batch.get("tags"):
            meta["feast_tags"] = {str(k): str(v) for k, v in batch.get("tags").items()}
    done[name] = table
    out.sources.append(table)
    return name, "{{ source('%s', '%s') }}" % (SOURCE_GROUP, name)


def _portable(location: Path, project_dir: Path | None) -> str:
    """A path as the dbt project should hold it: relative to the project (dbt runs there), so the files
    work on a teammate's checkout with the same layout; absolute only when no project is given."""
    import os

    if "://" in str(location) or project_dir is None:
        return str(location)
    return os.path.relpath(location, project_dir.resolve())


def _data_path(repo: FeastRepo, path: str | Path) -> str:
    """Feast reads a relative path from the repository; dbt from the dbt project: keep it absolute."""
    text = str(path)
    if "://" in text:
        return text
    p = Path(text)
    return str(p if p.is_absolute() else (repo.root / p).resolve())


def _file_schema(repo: FeastRepo, batch: Call):
    """The Parquet schema of a file source, when the file is here to read (types, nested fields)."""
    path = batch.get("path")
    if not isinstance(path, (str, Path)) or "://" in str(path):
        return None
    file = Path(_data_path(repo, path))
    try:
        if file.is_dir():
            return pq.ParquetDataset(file).schema
        return pq.read_schema(file) if file.is_file() else None
    except Exception:  # noqa: BLE001 - not Parquet (CSV, Delta...): types then come from Feast's schema
        return None


def _feast_type(dtype: Any) -> str | None:
    if isinstance(dtype, Symbol):
        if dtype.name == "Array" and dtype.args:
            inner = _feast_type(dtype.args[0])
            return f"{inner}[]" if inner else None
        if dtype.name == "Struct" and dtype.args and isinstance(dtype.args[0], dict):
            fields = [(str(k), _feast_type(v)) for k, v in dtype.args[0].items()]
            if all(t for _, t in fields):
                return "struct(" + ", ".join(f"{_quote(k)} {t}" for k, t in fields) + ")"
            return None
        return _FEAST_TYPES.get(dtype.name) or _VALUE_TYPES.get(dtype.name)
    return None


def _join_keys(entity: Call) -> list[str]:
    """An entity's join keys; Feast's default is the entity's name."""
    keys = entity.get("join_keys") or ([entity.get("join_key")] if entity.get("join_key") else None)
    return [str(k) for k in keys] if keys else [str(entity.get("name", position=0) or entity.name_hint)]


def _entity_type(key: str, repo: FeastRepo) -> str | None:
    for entity in repo.of_kind("Entity"):
        keys = _join_keys(entity)
        if key in keys:
            value_type = entity.get("value_type")
            if isinstance(value_type, Symbol):
                return _VALUE_TYPES.get(value_type.name)
    return None


def _translate_service(service: Call, views: dict[int, str], view_features: dict[str, list[str]],
                       out: Translation) -> None:
    name = str(service.get("name", position=0) or service.name_hint)
    features: list[str] = []
    dropped: list[str] = []
    depends: list[str] = []
    aliased: list[str] = []
    for item in service.get("features") or []:
        if isinstance(item, Renamed):
            inner = item.view.view if isinstance(item.view, Projection) else item.view
            label = inner.get("name") if isinstance(inner, Call) else "?"
            if item.how == "with_join_key_map":
                dropped.append(f"{label}.with_join_key_map({item.argument}) (featurehouse joins on the entity's own "
                               "key columns: rename the spine's columns instead)")
                continue
            aliased.append(f"{label}.with_name({item.argument!r}) is listed as `{label}` (columns are named after "
                           "the view)")
            item = item.view
        view, subset = (item.view, list(item.features)) if isinstance(item, Projection) else (item, None)
        if isinstance(view, OnDemandView):
            dropped.append(f"{view.name} (on-demand)")
            continue
        model = views.get(id(view)) if isinstance(view, Call) else None
        if model is None:
            label = view.get("name") if isinstance(view, Call) else str(view)
            dropped.append(f"{label} (not translated)")
            continue
        for feature in subset if subset is not None else view_features[model]:
            features.append(f"{model}.{feature}")
        if model not in depends:
            depends.append(model)
    if not features:
        out.findings.append(Finding("FeatureService", name, service.where, NOT_TRANSLATED,
                                    "none of its features could be translated: " + ", ".join(dropped)))
        return
    owner = service.get("owner")
    unowned = not owner
    if unowned:  # dbt requires an exposure's owner
        owner = "unknown (set me)"
    exposure: dict[str, Any] = {"name": name, "type": "ml", "owner": {"email" if "@" in str(owner) else "name": str(owner)}}
    if service.get("description"):
        exposure["description"] = str(service.get("description"))
    exposure["depends_on"] = [f"ref('{m}')" for m in depends]
    feast_meta: dict[str, Any] = {"kind": "FeatureService", "defined_at": str(service.where)}
    if isinstance(service.get("tags"), dict) and service.get("tags"):
        feast_meta["tags"] = {str(k): str(v) for k, v in service.get("tags").items()}
    exposure["meta"] = {"featurehouse": {"features": features}, "feast": feast_meta}
    out.exposures.append(exposure)
    detail = f"exposure `{name}` with {len(features)} features"
    if dropped:
        detail += "; left out: " + ", ".join(dropped)
    if unowned:
        detail += "; no owner in Feast: set the exposure's `owner` (dbt requires one)"
    if aliased:
        detail += "; " + "; ".join(aliased)
    out.findings.append(Finding("FeatureService", name, service.where, PARTIAL if dropped or unowned else TRANSLATED,
                                detail))


def _config_findings(repo: FeastRepo, out: Translation) -> None:
    config = repo.config
    offline = config.get("offline_store") or {}
    offline_type = offline.get("type", "file") if isinstance(offline, dict) else str(offline)
    adapter = {"file": "dbt-duckdb", "duckdb": "dbt-duckdb", "dask": "dbt-duckdb", "postgres": "dbt-postgres",
               "bigquery": "dbt-bigquery", "snowflake.offline": "dbt-snowflake", "snowflake": "dbt-snowflake",
               "redshift": "dbt-redshift", "spark": "dbt-spark", "trino": "dbt-trino"}.get(offline_type)
    out.findings.append(Finding("feature_store.yaml", "offline_store", None, TRANSLATED if adapter else PARTIAL,
                                f"`{offline_type}`: " + (f"run the dbt project on {adapter}" if adapter
                                                         else "choose the dbt adapter for this warehouse")))
    online = config.get("online_store") or {}
    online_type = online.get("type", "sqlite") if isinstance(online, dict) else str(online)
    out.findings.append(Finding("feature_store.yaml", "online_store", None, PARTIAL,
                                f"`{online_type}`: featurehouse serves from Redis (embedded by default); "
                                "`featurehouse sync` fills it from the built models"))


def _quote(name: str) -> str:
    return name if _IDENTIFIER.match(name) and name.lower() == name else '"' + name.replace('"', '""') + '"'


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False):  # lists indented under their key
        return super().increase_indent(flow, False)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110, default_flow_style=False)
