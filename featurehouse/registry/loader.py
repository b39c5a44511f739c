"""The one registry loader: every process (CLI, SDK, serving workers, stream consumer) gets its
feature views from here, so feature columns, their types and the active versions come from one place.

The manifest says which models are feature views; the warehouse says the types of columns the YAML
does not declare and which version of each view is promoted. A serving worker does not open the
warehouse: `featurehouse serve` loads the registry here once and hands the result to its workers
(registry/snapshot.py), so a worker's registry is the parent's, byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

from featurehouse.errors import InvalidFeatureMetadata, ProjectError, WarehouseUnavailable
from featurehouse.project import DbtProject
from featurehouse.registry.manifest import (
    Describe,
    feature_nodes,
    node_relation,
    parse_entities,
    parse_teams,
    registry_from_manifest,
)
from featurehouse.registry.model import Registry, Relation

RELATION_TYPES = ("model", "seed", "snapshot", "source")
RELATIONS_FILE = "featurehouse_relations.json"  # under dbt's target dir: what the warehouse last described
COMPILED_FILE = "featurehouse_compiled_sql.json"  # under dbt's target dir: each view's last compiled SQL


DescribeMany = Callable[[Sequence[Relation]], Mapping[Relation, "dict[str, str] | None"]]


def load_registry(project: DbtProject, describe: Describe | None = None,
                  read_active: Callable[[], Mapping[str, int]] | None = None, refresh: bool = False,
                  describe_many: DescribeMany | None = None) -> Registry:
    """Parse the project when it changed, read its feature views, and type them from the warehouse.

    Every relation the warehouse described is remembered in `target/featurehouse_relations.json`: when
    the warehouse cannot be reached (a DuckDB file another process holds, a server that is down), the
    columns it last described stand in, so `featurehouse serve` starts while a notebook holds the
    DuckDB file. A view the warehouse never described and cannot describe now fails naming the view
    and the warehouse's error (declared types alone do not say which columns a relation-typed view has).
    With `describe_many`, every view is described in one round trip; if that fails, one by one as above."""
    manifest = project.manifest(refresh=refresh)
    failures: list[str] = []
    remembered = _read_relations(project.target_dir / RELATIONS_FILE)
    described_now: dict[str, dict[str, str] | None] = {}
    prefetched: dict[Relation, dict[str, str] | None] = {}
    unavailable: str | None = None  # the warehouse cannot be had now: every view's remembered columns stand in
    if describe is not None and describe_many is not None:
        try:
            prefetched = dict(describe_many([node_relation(node) for node, _ in feature_nodes(manifest)]))
        except WarehouseUnavailable as e:
            unavailable = str(e).strip().splitlines()[0]
        except ProjectError:
            raise  # the profile or target is wrong: that is the error
        except Exception:  # noqa: BLE001 - each view is then described, and judged, on its own below
            prefetched = {}

    def described(relation: Relation):
        if describe is None:
            return None
        key = ".".join(relation.parts())
        if unavailable is not None:
            failures.append(f"{key}: {unavailable}")
            return remembered.get(key)
        if relation in prefetched:
            described_now[key] = prefetched[relation]
            return prefetched[relation]
        try:
            columns = describe(relation)
        except WarehouseUnavailable as e:
            failures.append(f"{key}: {str(e).strip().splitlines()[0]}")
            return remembered.get(key)
        except ProjectError:
            raise  # the profile or target is wrong: that is the error, not any one view
        except Exception as e:  # noqa: BLE001 - kept, and reported when a view needed it
            failures.append(f"{key}: {str(e).strip().splitlines()[0] if str(e) else type(e).__name__}")
            return remembered.get(key)
        described_now[key] = columns
        return columns

    entities = parse_entities(project.featurehouse_vars.get("entities"))
    teams = parse_teams(project.featurehouse_vars.get("teams"))
    try:
        registry = registry_from_manifest(manifest, entities, describe=described, teams=teams)
    except InvalidFeatureMetadata as e:
        if failures and e.field == "columns":
            raise ProjectError(f"model '{e.model}': its columns are typed by the built relation, but the warehouse "
                               f"could not be read ({failures[-1]})") from None
        raise
    registry.relations = {
        node["name"]: node_relation(node)
        for node in list(manifest.get("nodes", {}).values()) + list(manifest.get("sources", {}).values())
        if node.get("resource_type") in RELATION_TYPES
    }
    if read_active is not None:
        registry.active = dict(read_active())
    if described_now:
        _write_relations(project.target_dir / RELATIONS_FILE, {**remembered, **described_now})
    _keep_compiled_sql(registry, project.target_dir / COMPILED_FILE)
    return registry


def _keep_compiled_sql(registry: Registry, path: Path) -> None:
    """A model's compiled SQL stays known while its SQL does not change: dbt's manifest holds compiled code
    only for the nodes its last command ran (`featurehouse backfill` builds one model), so each view's is
    remembered by its dbt checksum and given back to a view whose manifest entry has none."""
    remembered = _read_relations(path)  # unique_id -> {"checksum", "sql"}
    kept = dict(remembered)
    for key, view in list(registry.views.items()):
        if view.sql_compiled:
            kept[view.unique_id] = {"checksum": view.checksum, "sql": view.sql}
            continue
        known = remembered.get(view.unique_id)
        if isinstance(known, dict) and view.checksum and known.get("checksum") == view.checksum and known.get("sql"):
            registry.views[key] = dataclasses.replace(view, sql=str(known["sql"]), sql_compiled=True)
    if kept != remembered:
        _write_relations(path, kept)  # the same best-effort JSON file writer


def _read_relations(path: Path) -> dict[str, dict[str, str] | None]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_relations(path: Path, relations: dict[str, dict[str, str] | None]) -> None:
    """Best effort (a read-only checkout still loads): written whole, then moved into place."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(relations, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass
