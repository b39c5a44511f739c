"""Forget an entity: its values leave the online store and its rows leave the offline PII views.

What is deleted, and when, is recorded in the warehouse table featurehouse.featurehouse_deletions.
Deleting rows from a dbt-built relation lasts until that model is rebuilt from its sources, so the
sources must forget too; featurehouse names the views it cleaned so that can be checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlglot import exp

from featurehouse.catalog import DELETIONS, Catalog, as_catalog
from featurehouse.errors import FeaturehouseError, UnknownEntity
from featurehouse.offline.warehouse import Warehouse, utc_now
from featurehouse.online.keys import entity_key_pattern
from featurehouse.online.store import OnlineStore
from featurehouse.registry.model import FeatureView, Registry
from featurehouse.types import canonical_integer

TABLE = DELETIONS.name


class NothingMatched(FeaturehouseError):
    """Keys whose forgetting deleted nothing online or offline: a typo or a differently written key,
    which must not pass for a completed deletion (the CLI exits 2)."""


@dataclass
class ForgetResult:
    entity_type: str
    key: tuple
    online_keys_deleted: int = 0
    offline_rows_deleted: dict[str, int] = field(default_factory=dict)

    @property
    def deleted_nothing(self) -> bool:
        return self.online_keys_deleted == 0 and not any(self.offline_rows_deleted.values())


def forget(warehouse: Warehouse, online: OnlineStore, registry: Registry, entity_type: str,
           key: tuple, catalog: Catalog | None = None) -> ForgetResult:
    if entity_type not in registry.entities:
        raise UnknownEntity(f"unknown entity '{entity_type}' (declared: {', '.join(sorted(registry.entities))})")
    keys = registry.entities[entity_type].keys
    if len(key) != len(keys):
        raise UnknownEntity(f"entity '{entity_type}' has key ({', '.join(keys)}): got {len(key)} value(s)")
    wanted = dict(zip(keys, key))
    result = ForgetResult(entity_type, key)
    result.online_keys_deleted = _delete_online(online, registry, wanted)
    match = _match(wanted).sql(warehouse.dialect)
    for view in _pii_views(registry, keys):
        count = 0
        for relation in (view.relation, *view.extra_relations):  # the model and its pushed rows
            target = warehouse.relation_sql(relation)
            count += warehouse.fetch_arrow(f"SELECT count(*) AS n FROM {target} WHERE {match}").column(0)[0].as_py()
            warehouse.execute(f"DELETE FROM {target} WHERE {match}")
        result.offline_rows_deleted[view.versioned_name] = count
    _record(as_catalog(catalog or warehouse), result)
    return result


def _delete_online(online: OnlineStore, registry: Registry, wanted: dict[str, object]) -> int:
    """Every entity type whose key holds these columns: user 42 is also in user_item (42, *)."""
    deleted = 0
    for other in registry.entities.values():
        if set(wanted) <= set(other.keys):
            deleted += online.delete_matching(entity_key_pattern(other.name, [wanted.get(k) for k in other.keys]))
    return deleted


def forget_online_again(online: OnlineStore, registry: Registry, catalog: Catalog, since: datetime) -> int:
    """Delete online, again, every entity `forget` deleted after `since`: an online store restored from
    the state it had then holds them again (sync calls this after a repair). Returns the keys deleted."""
    deleted = 0
    recorded = catalog.select(DELETIONS, columns=("entity_type", "entity_key"),
                              condition=exp.column("deleted_at", quoted=True) >= exp.Placeholder(),
                              condition_params=(since,)).to_pylist()
    for row in recorded:
        entity = registry.entities.get(row["entity_type"])
        try:
            key = json.loads(row["entity_key"] or "[]")
        except ValueError:
            continue
        if entity is None or not isinstance(key, list) or len(key) != len(entity.keys):
            continue  # an entity type the project no longer declares
        deleted += _delete_online(online, registry, dict(zip(entity.keys, key)))
    return deleted


def _pii_views(registry: Registry, keys: tuple[str, ...]) -> list[FeatureView]:
    """The views whose offline rows forget deletes: PII views keyed by (at least) these columns."""
    return [view for _, view in sorted(registry.views.items())
            if view.sensitivity == "pii" and set(keys) <= set(view.entity.keys)]


def _match(wanted: dict[str, object]) -> exp.Expr:
    """Key columns equal to the given values, compared as text (as the online store's keys are)."""
    return exp.and_(*[
        exp.EQ(this=exp.cast(exp.column(k, quoted=True), "VARCHAR"), expression=exp.Literal.string(str(v)))
        for k, v in wanted.items()])


def integer_respelling(key: tuple) -> tuple | None:
    """The key with its integers written as the warehouse writes them (`03` -> `3`, `+7` -> `7`), or
    None when that changes nothing: keys are compared as text, so `03` never matches user 3."""
    respelled = tuple((canonical_integer(part) or part) if isinstance(part, str) else part for part in key)
    return respelled if respelled != key else None


def would_match(warehouse: Warehouse, online: OnlineStore, registry: Registry, entity_type: str, key: tuple) -> bool:
    """Whether forgetting `key` would delete something: a value of the entity type's online views, or a
    row of a PII view. Reads only (the existence check behind a "did you mean" hint)."""
    entity = registry.entities[entity_type]
    online_views = [(v, v.version) for v in registry.views.values() if v.online and v.entity.name == entity_type]
    if online_views and any(r is not None for r in online.read(entity_type, [key], online_views)[0].values()):
        return True
    match = _match(dict(zip(entity.keys, key))).sql(warehouse.dialect)
    for view in _pii_views(registry, entity.keys):
        for relation in (view.relation, *view.extra_relations):
            if warehouse.fetch_arrow(f"SELECT 1 FROM {warehouse.relation_sql(relation)} WHERE {match} LIMIT 1").num_rows:
                return True
    return False


def _record(catalog: Catalog, result: ForgetResult) -> None:
    catalog.insert(DELETIONS, {
        "entity_type": result.entity_type, "entity_key": json.dumps(list(map(str, result.key))),
        "deleted_at": utc_now(), "online_keys_deleted": result.online_keys_deleted,
        "offline_rows_deleted": json.dumps(result.offline_rows_deleted)})


def nothing_matched(warehouse: Warehouse, online: OnlineStore, registry: Registry, entity_type: str,
                    missed: list[tuple[str, tuple]]) -> NothingMatched:
    """The error for keys (as written, as parsed) that deleted nothing: one line naming them and, for
    an integer written differently, the spelling that would match."""
    keys = registry.entities[entity_type].keys
    hints = []
    for text, key in missed:
        respelled = integer_respelling(key)
        if respelled and would_match(warehouse, online, registry, entity_type, respelled):
            written = respelled[0] if len(keys) == 1 else ";".join(
                f"{k}={_escape(str(v))}" for k, v in zip(keys, respelled))
            hints.append(f"{written} would match {text}")
    return NothingMatched(f"{entity_type} {', '.join(text for text, _ in missed)}: nothing matched online or "
                          "offline, nothing was deleted" + (f" ({'; '.join(hints)})" if hints else ""))


def _escape(value: str) -> str:
    """A value of the `col=value;...` key form, escaped as `parse_entity_key` reads it back."""
    return value.replace("%", "%25").replace(";", "%3B").replace("=", "%3D")
