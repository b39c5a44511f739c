"""Forget an entity: its values leave the online store and its rows leave the offline PII views.

What is deleted, and when, is recorded in the warehouse table featurehouse.featurehouse_deletions.
Deleting rows from a dbt-built relation lasts until that model is rebuilt from its sources, so the
sources must forget too; featurehouse names the views it cleaned so that can be checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlglot import exp

from featurehouse.catalog import DELETIONS, Catalog, as_catalog
from featurehouse.errors import UnknownEntity
from featurehouse.offline.warehouse import Warehouse, utc_now
from featurehouse.online.keys import entity_key_pattern
from featurehouse.online.store import OnlineStore
from featurehouse.registry.model import Registry

TABLE = DELETIONS.name


@dataclass
class ForgetResult:
    entity_type: str
    key: tuple
    online_keys_deleted: int = 0
    offline_rows_deleted: dict[str, int] = field(default_factory=dict)


def forget(warehouse: Warehouse, online: OnlineStore, registry: Registry, entity_type: str,
           key: tuple, catalog: Catalog | None = None) -> ForgetResult:
    if entity_type not in registry.entities:
        raise UnknownEntity(f"unknown entity '{entity_type}' (declared: {', '.join(sorted(registry.entities))})")
    keys = registry.entities[entity_type].keys
    if len(key) != len(keys):
        raise UnknownEntity(f"entity '{entity_type}' has key ({', '.join(keys)}): got {len(key)} value(s)")
    wanted = dict(zip(keys, key))
    result = ForgetResult(entity_type, key)
    # every entity type whose key holds these columns: user 42 is also in user_item (42, *)
    for other in registry.entities.values():
        if set(keys) <= set(other.keys):
            parts = [wanted.get(k) for k in other.keys]
            result.online_keys_deleted += online.delete_matching(entity_key_pattern(other.name, parts))
    d = warehouse.dialect
    for (name, version), view in sorted(registry.views.items()):
        if view.sensitivity != "pii" or not set(keys) <= set(view.entity.keys):
            continue
        match = exp.and_(*[
            exp.EQ(this=exp.cast(exp.column(k, quoted=True), "VARCHAR"), expression=exp.Literal.string(str(v)))
            for k, v in wanted.items()])
        count = 0
        for relation in (view.relation, *view.extra_relations):  # the model and its pushed rows
            target = warehouse.relation_sql(relation)
            count += warehouse.fetch_arrow(f"SELECT count(*) AS n FROM {target} WHERE {match.sql(d)}").column(0)[0].as_py()
            warehouse.execute(f"DELETE FROM {target} WHERE {match.sql(d)}")
        result.offline_rows_deleted[f"{name}@{version}"] = count
    _record(as_catalog(catalog or warehouse), result)
    return result


def _record(catalog: Catalog, result: ForgetResult) -> None:
    catalog.insert(DELETIONS, {
        "entity_type": result.entity_type, "entity_key": json.dumps(list(map(str, result.key))),
        "deleted_at": utc_now(), "online_keys_deleted": result.online_keys_deleted,
        "offline_rows_deleted": json.dumps(result.offline_rows_deleted)})
