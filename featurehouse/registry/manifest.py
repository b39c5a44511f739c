"""Build the registry from dbt's manifest: the one place feature views are declared.

A feature view is a dbt model with a `meta.featurehouse` block; entity types are declared once in
the project's vars (`vars: {featurehouse: {entities: {user: [user_id]}}}`).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator, Mapping

from featurehouse import types
from featurehouse.durations import parse_duration
from featurehouse.errors import InvalidDuration, InvalidFeatureMetadata
from featurehouse.registry.model import (
    SENSITIVITIES,
    Entity,
    Feature,
    FeatureRef,
    FeatureView,
    Grant,
    ModelSpec,
    Registry,
    Relation,
    Team,
)

META_KEY = "featurehouse"
# an ML model, as a dbt exposure declares it: its features, where its labels are, the version it describes
EXPOSURE_FIELDS = {"features", "spine", "entity_timestamp", "timestamp", "version", "training_set", "team"}
KNOWN_FIELDS = {
    "entity", "event_time", "created_at", "owner", "version", "freshness_slo", "ttl",
    "serving_delay", "as_known_at", "sensitivity", "online", "tags", "description", "restatement",
    "shared_with", "retention", "partial_push",
}

# Describes a built relation: {column: data_type}, or None when it does not exist yet.
Describe = Callable[[Relation], "dict[str, str] | None"]


def parse_entities(declared: Mapping[str, Any] | None) -> dict[str, Entity]:
    """Entity types from the project's vars, e.g. {user: [user_id], card_merchant: [card_id, merchant_id]}."""
    entities: dict[str, Entity] = {}
    for name, keys in (declared or {}).items():
        if isinstance(keys, str):
            keys = [keys]
        if isinstance(keys, Mapping):  # {keys: [...]} is accepted too
            keys = keys.get("keys") or keys.get("key_columns") or []
        if not keys or not all(isinstance(k, str) and k for k in keys):
            raise InvalidFeatureMetadata("dbt_project.yml", f"vars.featurehouse.entities.{name}",
                                         "needs a list of key columns, e.g. [user_id]")
        entities[str(name)] = Entity(str(name), tuple(keys))
    return entities


def parse_teams(declared: Any) -> dict[str, Team]:
    """Teams from the project's vars: {risk: {members: [alice, svc-fraud], description: ...}} or {risk: [alice]}."""
    if declared is None:
        return {}
    if not isinstance(declared, Mapping):
        raise InvalidFeatureMetadata("dbt_project.yml", "vars.featurehouse.teams",
                                     "must map team names to their members, e.g. {risk: {members: [alice, svc-fraud]}}")
    teams: dict[str, Team] = {}
    for name, spec in declared.items():
        where = f"vars.featurehouse.teams.{name}"
        description = ""
        if isinstance(spec, Mapping):
            unknown = sorted(set(spec) - {"members", "description"})
            if unknown:
                raise InvalidFeatureMetadata("dbt_project.yml", where,
                                             f"unknown setting '{unknown[0]}' (known: description, members)")
            description = str(spec.get("description") or "")
            spec = spec.get("members")
        members = [spec] if isinstance(spec, str) else (spec or [])
        if not isinstance(members, list) or not all(isinstance(m, str) and m.strip() for m in members):
            raise InvalidFeatureMetadata("dbt_project.yml", where, "members must be a list of principal names")
        teams[str(name)] = Team(str(name), tuple(m.strip() for m in members), description)
    return teams


def parse_grants(model: str, declared: Any, teams: Mapping[str, Team]) -> tuple[Grant, ...]:
    """`shared_with: [{team: growth, purpose: "churn model", until: 2027-06-30}]`: each grant names a declared
    team and a purpose; `until` (a date, inclusive) is optional."""
    from datetime import date

    if declared is None:
        return ()
    if not isinstance(declared, list):
        raise InvalidFeatureMetadata(model, "shared_with", "must be a list of {team, purpose, until} grants")
    grants = []
    for i, item in enumerate(declared):
        fld = f"shared_with[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidFeatureMetadata(model, fld, "must be a mapping {team: ..., purpose: ..., until: YYYY-MM-DD}")
        unknown = sorted(set(item) - {"team", "purpose", "until"})
        if unknown:
            raise InvalidFeatureMetadata(model, fld, f"unknown setting '{unknown[0]}' (known: purpose, team, until)")
        team, purpose, until = item.get("team"), item.get("purpose"), item.get("until")
        if not isinstance(team, str) or not team:
            raise InvalidFeatureMetadata(model, f"{fld}.team", "names the team the view is shared with")
        if teams and team not in teams:
            declared = ", ".join(sorted(teams))
            raise InvalidFeatureMetadata(model, f"{fld}.team",
                                         f"unknown team '{team}' (declared in vars.featurehouse.teams: {declared})")
        if not isinstance(purpose, str) or not purpose.strip():
            raise InvalidFeatureMetadata(model, f"{fld}.purpose", f"say what team '{team}' uses the view for")
        if until is not None and not isinstance(until, date):
            # only YYYY-MM-DD: the dbt macros compare the text, so 20270630 would mean another day there
            try:
                if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(until)):
                    raise ValueError
                until = date.fromisoformat(str(until))
            except ValueError:
                raise InvalidFeatureMetadata(model, f"{fld}.until", f"must be a date YYYY-MM-DD, got {until!r}") from None
        grants.append(Grant(team, purpose.strip(), until))
    return tuple(grants)


def is_timestamp_type(data_type: str | None) -> bool:
    """An event_time or created_at type: a timestamp with or without a zone (not a date)."""
    return types.is_timestamp(data_type)


def feature_nodes(manifest: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], Any]]:
    """Every model node with a `meta.featurehouse` block, with the block."""
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "model":
            continue
        meta = (node.get("config") or {}).get("meta") or node.get("meta") or {}
        block = meta.get(META_KEY)
        if block is not None:
            yield node, block


def node_relation(node: Mapping[str, Any]) -> Relation:
    """Where dbt builds a node (model, seed, snapshot) or finds a source table."""
    return Relation(node.get("database"), node.get("schema"), node.get("alias") or node["name"])


def registry_from_manifest(
    manifest: Mapping[str, Any], entities: Mapping[str, Entity], describe: Describe | None = None,
    teams: Mapping[str, Team] | None = None,
) -> Registry:
    """Every model with `meta.featurehouse` becomes a FeatureView; bad metadata raises naming model and field.
    With teams declared, every view's owner and every model's team must be one of them."""
    registry = Registry(entities=dict(entities), teams=dict(teams or {}))
    seen: dict[tuple[str, int], str] = {}
    for node, block in feature_nodes(manifest):
        view = view_from_node(node, block, registry.entities, describe, registry.teams)
        key = (view.name, view.version)
        if key in seen:
            raise InvalidFeatureMetadata(
                view.model, "version",
                f"duplicate feature view '{view.versioned_name}' (also declared by model '{seen[key]}'); bump the version",
            )
        seen[key] = view.model
        registry.add(view)
    for exposure in manifest.get("exposures", {}).values():
        spec = model_from_exposure(exposure, registry)
        if spec is not None:
            registry.models[spec.name] = spec
    return registry


def model_from_exposure(exposure: Mapping[str, Any], registry: Registry) -> ModelSpec | None:
    """An exposure with `meta.featurehouse.features` is an ML model; every feature it lists must exist."""
    meta = (exposure.get("config") or {}).get("meta") or exposure.get("meta") or {}
    block = meta.get(META_KEY)
    if not isinstance(block, Mapping):
        return None
    name = exposure["name"]
    unknown = sorted(set(block) - EXPOSURE_FIELDS)
    if unknown:
        raise InvalidFeatureMetadata(f"exposure {name}", unknown[0],
                                     f"unknown setting (known: {', '.join(sorted(EXPOSURE_FIELDS))})")
    features = block.get("features") or []
    if not isinstance(features, list) or not features:
        raise InvalidFeatureMetadata(f"exposure {name}", "features", "must be a non-empty list of view.column names")
    for text in features:
        try:
            registry.resolve(FeatureRef.parse(text))
        except Exception as e:  # noqa: BLE001 - re-raised naming the exposure
            raise InvalidFeatureMetadata(f"exposure {name}", "features", str(e)) from None
    owner = exposure.get("owner") or {}
    team = block.get("team")
    if registry.teams:
        if team is None:
            raise InvalidFeatureMetadata(f"exposure {name}", "team",
                                         f"is required when teams are declared: the team the model belongs to "
                                         f"(declared: {', '.join(sorted(registry.teams))})")
        if team not in registry.teams:
            raise InvalidFeatureMetadata(f"exposure {name}", "team",
                                         f"unknown team '{team}' (declared: {', '.join(sorted(registry.teams))})")
    return ModelSpec(
        name=name,
        features=tuple(features),
        spine=block.get("spine"),
        timestamp=block.get("entity_timestamp") or block.get("timestamp"),
        owner=owner.get("email") or owner.get("name"),
        description=exposure.get("description") or "",
        unique_id=exposure.get("unique_id", ""),
        version=str(block["version"]) if block.get("version") is not None else None,
        training_set=block.get("training_set"),
        depends_on=tuple((exposure.get("depends_on") or {}).get("nodes", [])),
        team=str(team) if team is not None else None,
    )


def view_from_node(
    node: Mapping[str, Any], block: Any, entities: Mapping[str, Entity], describe: Describe | None = None,
    teams: Mapping[str, Team] | None = None,
) -> FeatureView:
    model = node["name"] + (f".v{node['version']}" if node.get("version") is not None else "")
    if not isinstance(block, Mapping):
        raise InvalidFeatureMetadata(model, "", "must be a mapping of settings")

    def fail(fld: str, problem: str) -> InvalidFeatureMetadata:
        return InvalidFeatureMetadata(model, fld, problem)

    unknown = sorted(set(block) - KNOWN_FIELDS)
    if unknown:
        raise fail(unknown[0], f"unknown setting (known: {', '.join(sorted(KNOWN_FIELDS))})")

    entity_name = block.get("entity")
    if not entity_name:
        raise fail("entity", "is required (an entity type declared in vars.featurehouse.entities)")
    if entity_name not in entities:
        declared = ", ".join(sorted(entities)) or "none declared"
        raise fail("entity", f"unknown entity '{entity_name}' (declared: {declared})")
    entity = entities[entity_name]

    def duration(fld: str):
        try:
            return parse_duration(block.get(fld))
        except InvalidDuration as e:
            raise fail(fld, str(e)) from None

    version = block.get("version", node.get("version") if node.get("version") is not None else 1)
    try:
        if isinstance(version, bool) or int(str(version)) < 1:
            raise ValueError
        version = int(str(version))
    except ValueError:
        raise fail("version", f"must be a positive integer, got {version!r}") from None

    sensitivity = block.get("sensitivity", "internal")
    if sensitivity not in SENSITIVITIES:
        raise fail("sensitivity", f"must be one of {', '.join(SENSITIVITIES)}, got {sensitivity!r}")
    for flag in ("online", "as_known_at", "partial_push"):
        if flag in block and not isinstance(block[flag], bool):
            raise fail(flag, f"must be true or false, got {block[flag]!r}")
    teams = teams or {}
    owner = block.get("owner")
    if teams and owner not in teams:
        raise fail("owner", f"must be a team declared in vars.featurehouse.teams ({', '.join(sorted(teams))}), "
                            f"got {owner!r}")
    tags = block.get("tags", [])
    if isinstance(tags, str):
        tags = [tags]

    relation = node_relation(node)
    columns = _columns(model, node, relation, describe)

    event_time = block.get("event_time")
    if not event_time:
        raise fail("event_time", "is required (the column holding each row's event time)")
    created_at = block.get("created_at")
    for fld, col in (("event_time", event_time), ("created_at", created_at)):
        if col is None:
            continue
        if columns and col not in columns:
            raise fail(fld, f"column '{col}' is not a column of the model (columns: {', '.join(columns)})")
        if columns and columns[col] and not is_timestamp_type(columns[col]):
            raise fail(fld, f"column '{col}' has type '{columns[col]}', expected a timestamp")
    missing = [k for k in entity.keys if columns and k not in columns]
    if missing:
        raise fail("entity", f"key column(s) {', '.join(missing)} of entity '{entity.name}' are not columns of the model")

    skip = set(entity.keys) | {event_time, created_at}
    name = node["name"]
    declared = node.get("columns") or {}
    features = tuple(
        Feature(name, col, dtype, version, (declared.get(col) or {}).get("description", ""))
        for col, dtype in columns.items()
        if col not in skip and dtype
    )
    if not features:
        raise fail("columns", "no feature columns: declare the model's columns with a data_type in YAML, or build it first")

    return FeatureView(
        name=name,
        version=version,
        entity=entity,
        relation=relation,
        event_time=event_time,
        created_at=created_at,
        features=features,
        key_types=tuple(columns.get(k) for k in entity.keys),
        owner=owner,
        freshness_slo=duration("freshness_slo"),
        ttl=duration("ttl"),
        retention=_retention(duration("retention"), fail),
        serving_delay=duration("serving_delay"),
        as_known_at=bool(block.get("as_known_at", False)),
        sensitivity=sensitivity,
        online=bool(block.get("online", True)),
        tags=tuple(str(t) for t in tags),
        description=block.get("description") or node.get("description") or "",
        model=model,
        unique_id=node.get("unique_id", ""),
        checksum=(node.get("checksum") or {}).get("checksum", ""),
        depends_on=tuple((node.get("depends_on") or {}).get("nodes", [])),
        original_file_path=node.get("original_file_path", ""),
        restatement=_restatement(block, fail),
        logic_checksum=logic_checksum(node.get("raw_code") or ""),
        shared_with=parse_grants(model, block.get("shared_with"), teams),
        partial_push=bool(block.get("partial_push", False)),
        sql=node.get("compiled_code") or node.get("raw_code") or "",
        sql_compiled=bool(node.get("compiled_code")),
    )


_CONFIG_CALL = re.compile(r"\{\{-?\s*config\s*\(.*?\)\s*-?\}\}", re.DOTALL)
_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
_SQL_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


def logic_checksum(raw_code: str) -> str:
    """The model's SQL as logic: its config() call, comments and spacing taken out, then hashed."""
    import hashlib

    text = _SQL_COMMENT.sub(" ", _JINJA_COMMENT.sub(" ", _CONFIG_CALL.sub(" ", raw_code)))
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()[:16]


def _retention(value, fail: Callable[[str, str], InvalidFeatureMetadata]):
    """`retention: 400d`: featurehouse's own offline copies older than that are deleted; 0 would delete them all."""
    if value is not None and not value:
        raise fail("retention", "must be longer than 0 (leave it out to keep featurehouse's offline copies)")
    return value


def _restatement(block: Mapping[str, Any], fail: Callable[[str, str], InvalidFeatureMetadata]) -> str | None:
    reason = block.get("restatement")
    if reason is None:
        return None
    if not isinstance(reason, str) or not reason.strip():
        raise fail("restatement", "give the reason the values are corrected in place, e.g. 'fix: amounts were "
                                  "doubled' (or declare a new version instead)")
    return reason.strip()


def _columns(model: str, node: Mapping[str, Any], relation: Relation, describe: Describe | None
             ) -> dict[str, str | None]:
    """Columns with types: declared data_type first, then the built relation's type for the rest.

    A declared type the built relation contradicts is an error: YAML without an enforced contract does
    not cast, so `data_type: bigint` over a `SUM` that DuckDB makes HUGEINT would describe a column
    that does not exist. Spellings of one logical type (int/INTEGER/int4, text/varchar, integers of
    any width up to 64 bits) agree; a type sqlglot cannot read is not judged."""
    declared = {name: (c.get("data_type") or None) for name, c in (node.get("columns") or {}).items()}
    built = describe(relation) if describe else None
    if not built:
        return declared
    for name, built_type in built.items():
        declared_type = declared.get(name)
        if declared_type and built_type and _contradicts(declared_type, built_type):
            where = ".".join(relation.parts())
            raise InvalidFeatureMetadata(
                model, f"columns.{name}.data_type",
                f"declared '{declared_type}' but the built relation {where} has '{built_type}' in column '{name}'; "
                f"cast the column in the model's SQL (e.g. cast(... as {declared_type})) or declare '{built_type}'")
    merged = {name: declared.get(name) or dtype for name, dtype in built.items()}
    return merged


def _contradicts(declared: str, built: str) -> bool:
    a, b = types.logical(declared), types.logical(built)
    return types.Kind.OTHER not in (a.kind, b.kind) and not types.same_type(declared, built)
