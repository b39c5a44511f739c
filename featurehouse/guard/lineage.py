"""Lineage: sources -> dbt models -> feature@version -> training sets -> model versions.

Upstream comes from dbt's manifest (each node's depends_on), downstream from the lineage records
(offline/lineage.py). `lineage_tree` returns plain nested dicts, which the CLI draws as a tree or
prints as JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import redis

from featurehouse.catalog import Catalog
from featurehouse.offline.lineage import LineageLog, ModelVersion, TrainingSetRecord
from featurehouse.online.history import profile_summary
from featurehouse.registry.model import RESTRICTED, FeatureRef, FeatureView, ModelSpec, Registry

logger = logging.getLogger(__name__)
Node = dict[str, Any]  # {"kind", "name", "detail", "children": [...]}


def node(kind: str, name: str, detail: str = "", children: list[Node] | None = None) -> Node:
    return {"kind": kind, "name": name, "detail": detail, "children": children or []}


def upstream(manifest: Mapping[str, Any], unique_id: str, seen: set[str] | None = None) -> list[Node]:
    """The dbt nodes a node is computed from, down to sources and seeds."""
    seen = set() if seen is None else seen
    nodes = {**manifest.get("nodes", {}), **manifest.get("sources", {})}
    this = nodes.get(unique_id) or {}
    out = []
    for parent in (this.get("depends_on") or {}).get("nodes", []):
        info = nodes.get(parent, {})
        kind = info.get("resource_type", parent.split(".")[0])
        name = f"{info.get('source_name')}.{info.get('name')}" if kind == "source" else info.get("name", parent)
        relation = info.get("relation_name") or ""
        if parent in seen:
            out.append(node(kind, name, "(shown above)"))
            continue
        seen.add(parent)
        out.append(node(kind, name, relation, upstream(manifest, parent, seen)))
    return out


def _view_node(manifest: Mapping[str, Any], view: FeatureView, record_ref: str | None = None) -> Node:
    detail = f"{view.unique_id}@{view.checksum[:12]}" if view.checksum else view.unique_id
    # the SQL is the checksum's: a model that became a dbt versioned model keeps its SQL under a new node id
    if record_ref and record_ref.rpartition("@")[2] != view.checksum:
        detail += f" (trained on {record_ref.rpartition('@')[2][:12]}: the model's SQL changed since)"
    return node("dbt model", view.model or view.name, detail, upstream(manifest, view.unique_id) if manifest else [])


def _training_set_node(ts: TrainingSetRecord, children: list[Node] | None = None) -> Node:
    label = f" '{ts.name}'" if ts.name else ""
    return node("training set", ts.training_set_id,
                f"{ts.row_count:,} rows, {ts.engine}, {ts.created_at:%Y-%m-%d %H:%M}{label}, spine {ts.spine_fingerprint}",
                children)


def feature_lineage(registry: Registry, catalog: Catalog, manifest: Mapping[str, Any], text: str) -> Node:
    """FEATURE (view.column[@N]): its dbt model and sources, the training sets using it, their models.
    `manifest` is dbt's (for the sources upstream of the view's model; empty without a dbt project)."""
    view, feature = registry.resolve(FeatureRef.parse(text))
    versioned = f"{view.name}.{feature.column}@{view.version}"
    log = LineageLog(catalog)
    models = log.model_versions_of()
    sets = []
    for ts in log.list_training_sets():
        if versioned in ts.features:
            bound = [node("model version", mv.ref, f"registered {mv.registered_at:%Y-%m-%d %H:%M} ({mv.source})")
                     for mv in models if mv.training_set_id == ts.training_set_id and versioned in mv.features]
            sets.append(_training_set_node(ts, bound))
    return node("feature", versioned, f"{feature.data_type}, owner {view.owner or '-'}", [
        node("computed by", "", "", [_view_node(manifest, view)]),
        node("used by", f"{len(sets)} training set(s)", "", sets),
    ])


def model_lineage(registry: Registry, catalog: Catalog, manifest: Mapping[str, Any], ref: str) -> Node:
    """MODEL@VERSION (or MODEL: every registered version): training set, features, dbt models, sources."""
    log = LineageLog(catalog)
    if "@" in ref:
        versions = [log.model_version(ref)]
    else:
        versions = log.model_versions_of(ref)
        if not versions:
            from featurehouse.offline.lineage import UnknownModelVersion

            registered = sorted({mv.model for mv in log.model_versions_of()})
            raise UnknownModelVersion(f"model '{ref}' has no registered versions (models with versions: "
                                      f"{', '.join(registered) or 'none'}); bind one with "
                                      f"`featurehouse model register {ref}@VERSION --training-set ID`")
    children = [_model_version_node(registry, manifest, log, mv) for mv in versions]
    return children[0] if len(children) == 1 else node("model", ref, f"{len(children)} versions", children)


def _model_version_node(registry: Registry, manifest: Mapping[str, Any], log: LineageLog, mv: ModelVersion) -> Node:
    """The version's training set, then its features grouped by view@version, each with its dbt model."""
    ts = log.training_set(mv.training_set_id)
    by_view: dict[tuple[str, int], list[str]] = {}
    for versioned in mv.features:
        base, _, version = versioned.rpartition("@")
        by_view.setdefault((base.partition(".")[0], int(version)), []).append(versioned)
    views = []
    for (view_name, version), features in by_view.items():
        columns = ", ".join(f"{f.rpartition('@')[0].partition('.')[2]} ({ts.schemas.get(f, '?')})" for f in features)
        try:
            view = registry.view(view_name, version)
        except Exception as e:  # noqa: BLE001 - a version no longer declared is part of the story
            views.append(node("features of", f"{view_name}@{version}", f"{columns}; not declared any more: {e}"))
            continue
        views.append(node("features of", f"{view_name}@{version}", columns,
                          [_view_node(manifest, view, ts.transforms.get(view.versioned_name))]))
    return node("model version", mv.ref, f"registered {mv.registered_at:%Y-%m-%d %H:%M} ({mv.source})",
                [_training_set_node(ts, views)])


def register_model(registry: Registry, catalog: Catalog, online_client, ref: str, training_set_id: str | None = None,
                   features: list[str] | None = None):
    """Bind MODEL@VERSION to a training set, in the warehouse's lineage and in the online store (for
    serving by `?model=NAME@VERSION`, which then serves exactly those feature versions)."""
    import json

    from featurehouse.errors import FeaturehouseError
    from featurehouse.online.keys import MODEL_RECORDS, MODEL_VERSIONS

    name, _, version = ref.partition("@")
    if not name or not version:
        raise FeaturehouseError(f"'{ref}': write MODEL@VERSION, e.g. fraud_model@3")
    spec: ModelSpec | None = registry.models.get(name)
    source = "cli"
    if training_set_id is None:
        if spec is None or spec.training_set is None or (spec.version and spec.version != version):
            raise FeaturehouseError(f"model {ref}: pass --training-set ID, or declare `training_set` and "
                                    f"`version: {version}` in the exposure's meta.featurehouse")
        training_set_id, source = spec.training_set, "exposure"
    if training_set_id == "latest":  # the newest training set recorded for this model (`training-set --model NAME`)
        recorded = [r for r in LineageLog(catalog).list_training_sets() if r.name == name]
        if not recorded:
            raise FeaturehouseError(f"model {ref}: no training set was recorded for model '{name}' yet "
                                    f"(`featurehouse training-set --model {name}` records one)")
        training_set_id = recorded[0].training_set_id
    if spec is None:
        built_for = LineageLog(catalog).training_set(training_set_id).name
        if built_for in registry.models and built_for != name:  # a typo would register a model nobody serves
            raise FeaturehouseError(f"model '{name}' is no dbt exposure of this project, and training set "
                                    f"{training_set_id} was built for model '{built_for}': did you mean "
                                    f"{built_for}@{version}?")
    if features is None and spec is not None:
        record = LineageLog(catalog).training_set(training_set_id)
        wanted = {f.partition("@")[0] for f in spec.features}
        features = [f for f in record.features if f.rpartition("@")[0] in wanted] or None
    log = LineageLog(catalog)
    mv = log.register_model(name, version, training_set_id, features, source)
    online_client.hset(MODEL_VERSIONS, mv.ref, json.dumps({"features": mv.features,
                                                                 "training_set": mv.training_set_id}))
    # what the web catalog shows, apart (serving re-reads MODEL_VERSIONS every second): bookkeeping after the
    # binding is made, so a store that refuses it costs the catalog its summary, never the registration
    try:
        online_client.hset(MODEL_RECORDS, mv.ref, json.dumps({
            "registered_at": mv.registered_at.isoformat(), "source": mv.source,
            "training_set_record": training_set_summary(log.training_set(mv.training_set_id), registry)}))
    except redis.RedisError as e:
        logger.warning("model %s: registered, but its training set's summary was not kept for the catalog (%s)",
                       mv.ref, e)
    return mv


def training_set_summary(record: TrainingSetRecord, registry: Registry) -> dict[str, Any]:
    """What the web catalog shows of a model version's training set, kept with the version in the online
    store (a serving worker, which renders the live catalog, never opens the warehouse, where the record is):
    aggregates of each feature's profile, none of a confidential or pii view's (every catalog reader sees it)."""
    return {"created_at": record.created_at.isoformat(), "name": record.name,
            "spine_fingerprint": record.spine_fingerprint, "row_count": record.row_count,
            "entity_timestamp": record.entity_timestamp, "engine": record.engine, "schemas": record.schemas,
            "transforms": record.transforms,
            "profile": {f: profile_summary(p) for f, p in record.profile.items() if not _restricted(registry, f)}}


def _restricted(registry: Registry, versioned: str) -> bool:
    """Whether the feature's view, at the trained version or now, is confidential or pii (or unknown)."""
    base, _, version = versioned.rpartition("@")
    name = base.partition(".")[0]
    try:
        views = [registry.view(name, int(version)), registry.view(name)]
    except Exception:  # noqa: BLE001 - a view no longer declared: its sensitivity is unknown
        return True
    return any(v.sensitivity in RESTRICTED for v in views)
