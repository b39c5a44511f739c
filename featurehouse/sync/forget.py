"""Forget an entity: its data leaves every place featurehouse keeps it, and a tombstone keeps it out.

What `forget` deletes (each count in ForgetResult and in the warehouse table featurehouse_deletions):

- online: the entity's hash, and those of entity types keyed by it (user 42 is also user_item 42|*);
- offline: its rows in PII views' relations, and in every view's stream landing table (featurehouse's
  own copy of pushed rows); rows of other views' relations are kept, but no longer synced (below);
- push streams: its entries in every view's stream, applied or still pending (acknowledged too);
- dead letters: entries naming it (a rejected push keeps the raw row and the reason, which may quote
  a value; an entry the consumer gave up on keeps the whole pushed row);
- the served-vector log: its rows of featurehouse_served_values and its entries of fh:served not
  landed yet.

Featurehouse records no training-set files (`training-set --out` writes where the caller says and
lineage keeps only fingerprints and per-feature profiles), so there are none to delete.

Deleting rows from a dbt-built relation lasts until that model is rebuilt from its sources, and a view
that is not PII keeps its rows. So forget leaves a tombstone: a row of featurehouse_tombstones, and its
mirror in the online store's hash fh:tombstones (field: the key text of stream/rows.py, `user_id=42`).
Sync (every mode) leaves out rows of a tombstoned entity, and of entity types keyed by it, in every
view; the stream consumer acknowledges and deletes their pushed entries without applying them (a push
is accepted, then dropped: counted in the consumer's `dropped_forgotten`). The mirror is written first
and both re-check it after writing, so a push or a sync racing the forget cannot bring the entity back.

`forget_status` says, place by place, where the entity still is. Once no view's relation or landing
table, push stream or online hash holds it (its sources forgot too), `lift` removes the tombstone:
never automatically, since a relation that is empty for a moment (a model being rebuilt) is not proof
that its sources forgot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping

import pyarrow as pa
from sqlglot import exp

from featurehouse.catalog import DELETIONS, SERVED_VALUES, Catalog, as_catalog
from featurehouse.catalog.catalog import CatalogWarehouse
from featurehouse.catalog.tables import TOMBSTONES
from featurehouse.errors import FeaturehouseError, UnknownEntity
from featurehouse.offline.warehouse import Warehouse, utc_now
from featurehouse.online.keys import TOMBSTONES as MIRROR
from featurehouse.online.keys import entity_key_pattern
from featurehouse.online.store import OnlineStore
from featurehouse.registry.model import Entity, FeatureView, Registry, Relation
from featurehouse.stream.rows import parse_tombstone_text, tombstone_text
from featurehouse.types import canonical_integer

TABLE = DELETIONS.name
LIFT_WHEN = "no view's relation, landing table, push stream or online hash holds it (forget --status), then forget --lift"
_SCAN = 1000  # stream entries read per XRANGE


class NothingMatched(FeaturehouseError):
    """Keys whose forgetting deleted nothing online or offline: a typo or a differently written key,
    which must not pass for a completed deletion (the CLI exits 2)."""


class TombstoneHeld(FeaturehouseError):
    """A tombstone that cannot be lifted yet: a place named in the message still holds the entity."""


@dataclass
class ForgetResult:
    entity_type: str
    key: tuple
    online_keys_deleted: int = 0
    offline_rows_deleted: dict[str, int] = field(default_factory=dict)  # view@N -> rows (relation and landing)
    stream_entries_deleted: int = 0  # entries of the views' push streams
    dead_letters_deleted: int = 0
    served_values_deleted: int = 0  # rows of featurehouse_served_values
    served_log_entries_deleted: int = 0  # entries of the served stream not landed yet
    offline_rows_kept: dict[str, int] = field(default_factory=dict)  # rows of views that are not PII: left out of sync
    forgotten_at: datetime | None = None  # the tombstone's (None: nothing matched, none was left)
    audit_refs_redacted: int = 0  # audit events whose pseudonym of the entity was replaced (store.forget)

    @property
    def deleted_nothing(self) -> bool:
        return not (self.online_keys_deleted or any(self.offline_rows_deleted.values()) or self.stream_entries_deleted
                    or self.dead_letters_deleted or self.served_values_deleted or self.served_log_entries_deleted)

    @property
    def matched_nothing(self) -> bool:
        """Nothing deleted and no view holding the key: a typo (the CLI's NothingMatched)."""
        return self.deleted_nothing and not any(self.offline_rows_kept.values())


def forget(warehouse: Warehouse, online: OnlineStore, registry: Registry, entity_type: str,
           key: tuple, catalog: Catalog | None = None) -> ForgetResult:
    entity = _entity(registry, entity_type, key)
    catalog = as_catalog(catalog or warehouse)
    key = tuple(key)
    wanted = dict(zip(entity.keys, map(str, key)))
    text = tombstone_text(entity.keys, key)
    client = _client(online)
    before = _active_tombstone(catalog, text)
    now = utc_now()
    if client is not None:  # first: from here on the consumer and sync leave the entity out
        client.hset(MIRROR, text, _mirror_value(entity_type, key, before["forgotten_at"] if before else now))
    result = ForgetResult(entity_type, key)
    if client is not None:
        for view in _views_keyed_by(registry, entity.keys):
            result.stream_entries_deleted += _delete_entries(client, _stream(view), _pushed_row_of(view, wanted),
                                                             acknowledge=True)
            result.dead_letters_deleted += _delete_entries(client, _dead_letters(view), _dead_letter_of(view, wanted))
    result.online_keys_deleted = _delete_online(online, registry, wanted)
    match = _match(wanted).sql(warehouse.dialect)
    for view in _views_keyed_by(registry, entity.keys):
        pii = view.sensitivity == "pii"
        count = 0
        for relation in _sources(warehouse, view, catalog) if pii else _landing_tables(warehouse, view, catalog):
            target = warehouse.relation_sql(relation)
            count += _count(warehouse, f"SELECT count(*) AS n FROM {target} WHERE {match}")
            warehouse.execute(f"DELETE FROM {target} WHERE {match}")
        if pii or count:
            result.offline_rows_deleted[view.versioned_name] = count
        if not pii:
            kept = _count_or_none(warehouse, view.relation, match)
            if kept:
                result.offline_rows_kept[view.versioned_name] = kept
    result.served_values_deleted, result.served_log_entries_deleted = _delete_served(client, catalog, registry, wanted)
    if result.matched_nothing and before is None:
        if client is not None:
            client.hdel(MIRROR, text)  # a typo leaves no tombstone behind
        _record(catalog, result)
        return result
    if before is None:
        catalog.insert(TOMBSTONES, {"entity_type": entity_type, "entity_key": _key_json(key), "key_text": text,
                                    "forgotten_at": now, "lift_when": LIFT_WHEN})
    result.forgotten_at = before["forgotten_at"] if before else now
    _record(catalog, result)
    return result


def _entity(registry: Registry, entity_type: str, key: tuple) -> Entity:
    if entity_type not in registry.entities:
        raise UnknownEntity(f"unknown entity '{entity_type}' (declared: {', '.join(sorted(registry.entities))})")
    keys = registry.entities[entity_type].keys
    if len(key) != len(keys):
        raise UnknownEntity(f"entity '{entity_type}' has key ({', '.join(keys)}): got {len(key)} value(s)")
    return registry.entities[entity_type]


def _client(online: OnlineStore) -> Any:
    """The online store's Redis client (streams, the served log and the tombstones' mirror live there)."""
    return getattr(online, "client", None)


def _delete_online(online: OnlineStore, registry: Registry, wanted: Mapping[str, object]) -> int:
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
    return [view for view in _views_keyed_by(registry, keys) if view.sensitivity == "pii"]


def _views_keyed_by(registry: Registry, keys: Iterable[str]) -> list[FeatureView]:
    """Every view (every version) whose entity's key holds these columns."""
    return [view for _, view in sorted(registry.views.items()) if set(keys) <= set(view.entity.keys)]


def _landing_tables(warehouse: Warehouse, view: FeatureView, catalog: Catalog) -> list[Relation]:
    """The view's stream landing table, if rows were ever pushed to it."""
    from featurehouse.stream.log import landing_relation

    landing = landing_relation(view, catalog.schema)
    found = list(view.extra_relations)
    if landing not in found and warehouse.describe(landing):
        found.append(landing)
    return found


def _sources(warehouse: Warehouse, view: FeatureView, catalog: Catalog) -> list[Relation]:
    """The view's relation (the dbt model) and its landing table."""
    return [view.relation, *_landing_tables(warehouse, view, catalog)]


def _match(wanted: Mapping[str, object]) -> exp.Expr:
    """Key columns equal to the given values, compared as text (as the online store's keys are)."""
    return exp.and_(*[
        exp.EQ(this=exp.cast(exp.column(k, quoted=True), "VARCHAR"), expression=exp.Literal.string(str(v)))
        for k, v in wanted.items()])


def _count(warehouse: Warehouse | CatalogWarehouse, sql: str, params: tuple | None = None) -> int:
    return int(warehouse.fetch_arrow(sql, params).column(0)[0].as_py() or 0)


# -- streams: pushed entries, dead letters, the served log -------------------------------------------


def _stream(view: FeatureView) -> str:
    from featurehouse.stream.log import stream_key

    return stream_key(view)


def _dead_letters(view: FeatureView) -> str:
    from featurehouse.stream.log import dead_letter_key

    return dead_letter_key(view)


def _same_key(columns: Iterable[str], values: Iterable[Any], wanted: dict[str, str]) -> bool:
    """Whether a key (its columns' values) has the wanted columns' values, compared as text."""
    parts = dict(zip(columns, values))
    return all(k in parts and parts[k] is not None and str(parts[k]) == v for k, v in wanted.items())


Match = Callable[[dict], bool]  # an entry's fields -> whether it holds the entity


def _field(fields: dict, name: str) -> Any:
    """A stream entry's field, whether the client decodes responses or not."""
    value = fields.get(name.encode(), fields.get(name))
    return value.decode(errors="replace") if isinstance(value, bytes) and name != "r" else value


def _pushed_row_of(view: FeatureView, wanted: dict[str, str]) -> Match:
    from featurehouse.stream.log import decode_entry

    def match(fields: dict) -> bool:
        payload = _field(fields, "r")
        if payload is None:
            return False
        try:
            return _same_key(view.entity.keys, decode_entry(payload).key, wanted)
        except Exception:  # noqa: BLE001 - an entry that is not a pushed row names no entity
            return False

    return match


def _dead_letter_of(view: FeatureView, wanted: dict[str, str]) -> Match:
    """A rejected push (`row`: the row as sent, whose key may be spelled `042` or `" 42"`) or an entry
    the consumer gave up on (`r`: the pushed row)."""
    pushed = _pushed_row_of(view, wanted)

    def loose(value: Any, want: str) -> bool:
        text = str(value).strip() if value is not None and not isinstance(value, (dict, list)) else None
        return text is not None and (text == want or canonical_integer(text) == want)

    def match(fields: dict) -> bool:
        if pushed(fields):
            return True
        raw = _field(fields, "row")
        try:
            row = json.loads(raw) if raw is not None else None
        except ValueError:
            return False
        return isinstance(row, dict) and all(loose(row.get(k), v) for k, v in wanted.items())

    return match


def _matching_entries(client: Any, stream: str, match: Match) -> list[bytes]:
    """Ids of the stream's entries that `match`, read a batch at a time (applied entries stay in a
    push stream until trimmed, so all of them, not only pending ones)."""
    found: list[bytes] = []
    start: bytes | str = "-"
    while True:
        entries = client.xrange(stream, start, "+", count=_SCAN)
        found += [entry_id for entry_id, fields in entries if fields and match(fields)]
        if len(entries) < _SCAN:
            return found
        last = entries[-1][0]
        start = b"(" + (last if isinstance(last, bytes) else last.encode())


def _delete_entries(client: Any, stream: str, match: Match, acknowledge: bool = False) -> int:
    """XDEL the matching entries; `acknowledge` (a push stream): also XACK them for the consumer
    group, so a consumer holding one pending finds nothing left to apply."""
    import redis

    from featurehouse.stream.log import GROUP

    ids = _matching_entries(client, stream, match)
    deleted = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        deleted += int(client.xdel(stream, *chunk))
        if acknowledge:
            try:
                client.xack(stream, GROUP, *chunk)
            except redis.ResponseError as e:  # a stream no consumer ever read: no group
                if "NOGROUP" not in str(e):
                    raise
    return deleted


def _served_of(registry: Registry, wanted: dict[str, str]) -> Callable[[str, str], bool]:
    """Whether a served vector's (entity type, entity id as requested) is the entity, or keyed by it."""
    from featurehouse.registry.model import parse_entity_key

    types = {e.name: e for e in registry.entities.values() if set(wanted) <= set(e.keys)}

    def match(entity_type: str, entity_id: str) -> bool:
        entity = types.get(entity_type)
        if entity is None:
            return False
        try:
            return _same_key(entity.keys, parse_entity_key(entity, entity_id), wanted)
        except FeaturehouseError:  # an id serving could not read either
            return False

    return match


def _served_stream_match(registry: Registry, wanted: dict[str, str]) -> Match:
    served = _served_of(registry, wanted)

    def match(fields: dict) -> bool:
        kind, ident = _field(fields, "entity_type"), _field(fields, "entity_id")
        return kind is not None and ident is not None and served(kind, ident)

    return match


def _served_rows(catalog: Catalog, registry: Registry, wanted: dict[str, str]) -> tuple[int, list[exp.Expr], list]:
    """How many rows of featurehouse_served_values are of the entity, and the conditions (with their
    parameters) that select them: entity ids are matched as serving parsed them, in Python."""
    served = _served_of(registry, wanted)
    types = sorted(e.name for e in registry.entities.values() if set(wanted) <= set(e.keys))
    if not types or not catalog.exists(SERVED_VALUES):
        return 0, [], []
    kind, ident = exp.column("entity_type", quoted=True), exp.column("entity_id", quoted=True)
    ids = catalog.warehouse.fetch_arrow(
        exp.select(kind, ident).distinct().from_(exp.table_(SERVED_VALUES.name, db=catalog.schema, quoted=True))
        .where(exp.In(this=kind.copy(), expressions=[exp.Placeholder() for _ in types])).sql(catalog.dialect),
        tuple(types)).to_pylist()
    hits = [(r["entity_type"], r["entity_id"]) for r in ids if r["entity_id"] is not None
            and served(r["entity_type"], r["entity_id"])]
    conditions, params, total = [], [], 0
    for start in range(0, len(hits), 200):
        chunk = hits[start:start + 200]
        cond = exp.or_(*[exp.and_(kind.copy().eq(exp.Placeholder()), ident.copy().eq(exp.Placeholder()))
                         for _ in chunk])
        values = [v for pair in chunk for v in pair]
        total += _count(catalog.warehouse, exp.select(exp.Count(this=exp.Star())).from_(
            exp.table_(SERVED_VALUES.name, db=catalog.schema, quoted=True)).where(cond).sql(catalog.dialect), tuple(values))
        conditions.append(cond)
        params.append(values)
    return total, conditions, params


def _delete_served(client: Any, catalog: Catalog, registry: Registry, wanted: dict[str, str]) -> tuple[int, int]:
    """The entity's served values: landed rows, and entries of the served stream not landed yet."""
    from featurehouse.serving.served_log import SERVED_STREAM

    rows, conditions, params = _served_rows(catalog, registry, wanted)
    table = exp.table_(SERVED_VALUES.name, db=catalog.schema, quoted=True)
    for cond, values in zip(conditions, params):
        catalog.warehouse.execute_dml(exp.delete(table.copy(), where=cond), tuple(values))
    entries = _delete_entries(client, SERVED_STREAM, _served_stream_match(registry, wanted)) if client is not None else 0
    return rows, entries


# -- tombstones ------------------------------------------------------------------------------------


def _key_json(key: tuple) -> str:
    return json.dumps(list(map(str, key)))


def _mirror_value(entity_type: str, key: tuple, forgotten_at: datetime) -> str:
    return json.dumps({"entity_type": entity_type, "key": list(map(str, key)), "forgotten_at": forgotten_at.isoformat()})


def active_tombstones(catalog: Catalog) -> dict[str, dict]:
    """The warehouse's tombstones not lifted, by key text."""
    rows = catalog.rows(TOMBSTONES, {"lifted_at": None},
                        columns=("entity_type", "entity_key", "key_text", "forgotten_at"))
    return {r["key_text"]: r for r in rows if r["key_text"]}


def _active_tombstone(catalog: Catalog, text: str) -> dict | None:
    rows = catalog.rows(TOMBSTONES, {"key_text": text, "lifted_at": None}, order_by=("forgotten_at",), limit=1)
    return rows[0] if rows else None


def _mirrored(client: Any) -> set[str]:
    return {f.decode() if isinstance(f, bytes) else f for f in client.hkeys(MIRROR)}


def mirror_tombstones(catalog: Catalog, client: Any) -> set[str]:
    """Write the warehouse's tombstones missing from the online store's mirror (a wiped store, or one
    restored from an older state); returns the key texts now mirrored. Never removes one: only `lift` does,
    so a forget under way (mirror first, warehouse last) is never undone."""
    kept = active_tombstones(catalog)
    seen = _mirrored(client)
    missing = {text: row for text, row in kept.items() if text not in seen}
    if missing:
        client.hset(MIRROR, mapping={
            text: _mirror_value(row["entity_type"], tuple(json.loads(row["entity_key"] or "[]")), row["forgotten_at"])
            for text, row in missing.items()})
    return seen | set(missing)


class Tombstones:
    """What a sync leaves out: the warehouse's tombstones and the online store's mirror of them (a forget
    under way has written the mirror, not yet the warehouse)."""

    def __init__(self, texts: Iterable[str]):
        self.texts = frozenset(texts)
        self._of_view: dict[str, dict[tuple[str, ...], set[tuple[str, ...]]]] = {}

    @classmethod
    def load(cls, catalog: Catalog, online: OnlineStore) -> "Tombstones":
        client = _client(online)
        if client is None:
            return cls(active_tombstones(catalog))
        return cls(mirror_tombstones(catalog, client))

    def of_view(self, view: FeatureView, texts: Iterable[str] | None = None) -> dict[tuple[str, ...], set[tuple[str, ...]]]:
        """Key columns -> values of the tombstones that concern a view: its entity's, and those of the
        entity types its key holds (a user_item view is left out for a forgotten user)."""
        if texts is None:
            cached = self._of_view.get(view.versioned_name)
            if cached is None:
                cached = self._of_view[view.versioned_name] = self.of_view(view, self.texts)
            return cached
        found: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        for text in texts:
            parts = parse_tombstone_text(text)
            if parts and set(parts) <= set(view.entity.keys):
                columns = tuple(sorted(parts))
                found.setdefault(columns, set()).add(tuple(parts[c] for c in columns))
        return found

    def keep(self, view: FeatureView, batch: pa.Table) -> pa.Array | None:
        """False for rows of forgotten entities (by the key columns of the batch); None: no tombstone
        concerns the view."""
        concerned = self.of_view(view)
        if not concerned or not batch.num_rows:
            return None
        text = {k: [None if v is None else str(v) for v in batch.column(k).to_pylist()]
                for k in {c for columns in concerned for c in columns}}
        drop = [False] * batch.num_rows
        for columns, values in concerned.items():
            for i, row in enumerate(zip(*(text[c] for c in columns))):
                if row in values:
                    drop[i] = True
        return pa.array([not d for d in drop], pa.bool_())

    def forget_late(self, online: OnlineStore, view: FeatureView) -> int:
        """Delete online, for this view's entity type, the entities forgotten while a sync of the view
        ran (in the mirror now, not when it started): what it wrote of them is gone again."""
        client = _client(online)
        if client is None:
            return 0
        late = _mirrored(client) - self.texts
        deleted = 0
        for columns, values in self.of_view(view, late).items():
            for value in values:
                wanted = dict(zip(columns, value))
                deleted += online.delete_matching(
                    entity_key_pattern(view.entity.name, [wanted.get(k) for k in view.entity.keys]))
        return deleted


# -- where an entity still is, and lifting its tombstone ----------------------------------------------


@dataclass(frozen=True)
class Place:
    kind: str  # relation | landing table | online | push stream | dead letters | served values | served log
    where: str
    count: int | None  # None: it could not be read (a relation not built)
    holds_back: bool  # whether the entity being there keeps the tombstone


@dataclass
class ForgetStatus:
    entity_type: str
    key: tuple
    forgotten_at: datetime | None  # the active tombstone's; None: the entity is not tombstoned
    places: list[Place] = field(default_factory=list)

    @property
    def holding(self) -> list[Place]:
        """Places that keep the tombstone: they hold the entity, or could not be read."""
        return [p for p in self.places if p.holds_back and (p.count is None or p.count > 0)]

    @property
    def liftable(self) -> bool:
        return self.forgotten_at is not None and not self.holding


def forget_status(warehouse: Warehouse, online: OnlineStore, registry: Registry, entity_type: str, key: tuple,
                  catalog: Catalog | None = None) -> ForgetStatus:
    """Where the entity still is, place by place (reads only)."""
    from featurehouse.serving.served_log import SERVED_STREAM

    entity = _entity(registry, entity_type, key)
    catalog = as_catalog(catalog or warehouse)
    key = tuple(key)
    wanted = dict(zip(entity.keys, map(str, key)))
    active = _active_tombstone(catalog, tombstone_text(entity.keys, key))
    status = ForgetStatus(entity_type, key, active["forgotten_at"] if active else None)
    match = _match(wanted).sql(warehouse.dialect)
    views = _views_keyed_by(registry, entity.keys)
    for view in views:
        status.places.append(Place("relation", f"{view.versioned_name} ({'.'.join(view.relation.parts())})",
                                   _count_or_none(warehouse, view.relation, match), True))
        for landing in _landing_tables(warehouse, view, catalog):
            status.places.append(Place("landing table", f"{view.versioned_name} ({'.'.join(landing.parts())})",
                                       _count_or_none(warehouse, landing, match), True))
    client = _client(online)
    if client is not None:
        for other in registry.entities.values():
            if set(wanted) <= set(other.keys):
                pattern = entity_key_pattern(other.name, [wanted.get(k) for k in other.keys])
                status.places.append(Place("online", other.name, sum(1 for _ in client.scan_iter(match=pattern,
                                                                                                count=1000)), True))
        for view in views:
            status.places.append(Place("push stream", view.versioned_name,
                                       len(_matching_entries(client, _stream(view), _pushed_row_of(view, wanted))), True))
            status.places.append(Place("dead letters", view.versioned_name, len(_matching_entries(
                client, _dead_letters(view), _dead_letter_of(view, wanted))), False))
    status.places.append(Place("served values", SERVED_VALUES.name, _served_rows(catalog, registry, wanted)[0], False))
    if client is not None:
        status.places.append(Place("served log", SERVED_STREAM, len(_matching_entries(
            client, SERVED_STREAM, _served_stream_match(registry, wanted))), False))
    return status


def _count_or_none(warehouse: Warehouse, relation: Relation, match: str) -> int | None:
    try:
        return _count(warehouse, f"SELECT count(*) AS n FROM {warehouse.relation_sql(relation)} WHERE {match}")
    except Exception:  # noqa: BLE001 - a relation not built (or dropped): unknown, which keeps the tombstone
        return None


def lift(warehouse: Warehouse, online: OnlineStore, registry: Registry, entity_type: str, key: tuple,
         catalog: Catalog | None = None) -> ForgetStatus:
    """Lift the entity's tombstone, once no place that could bring it back holds it; raises
    TombstoneHeld naming the places that still do."""
    catalog = as_catalog(catalog or warehouse)
    status = forget_status(warehouse, online, registry, entity_type, key, catalog)
    entity = registry.entities[entity_type]
    shown = _shown_key(entity, tuple(key))
    if status.forgotten_at is None:
        raise FeaturehouseError(f"{entity_type} {shown} has no tombstone to lift")
    if not status.liftable:
        raise TombstoneHeld(f"{entity_type} {shown}: the tombstone stays, still held by " + "; ".join(
            f"{p.kind} {p.where}: " + ("unreadable" if p.count is None else f"{p.count}") for p in status.holding))
    text = tombstone_text(entity.keys, tuple(key))
    catalog.update(TOMBSTONES, {"lifted_at": utc_now()}, {"key_text": text, "lifted_at": None})
    client = _client(online)
    if client is not None:
        client.hdel(MIRROR, text)
    status.forgotten_at = None
    return status


# -- the deletions record, and keys that matched nothing ----------------------------------------------


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
        "entity_type": result.entity_type, "entity_key": _key_json(result.key),
        "deleted_at": utc_now(), "online_keys_deleted": result.online_keys_deleted,
        "offline_rows_deleted": json.dumps(result.offline_rows_deleted),
        "stream_entries_deleted": result.stream_entries_deleted, "dead_letters_deleted": result.dead_letters_deleted,
        "served_values_deleted": result.served_values_deleted,
        "served_log_entries_deleted": result.served_log_entries_deleted})


def nothing_matched(warehouse: Warehouse, online: OnlineStore, registry: Registry, entity_type: str,
                    missed: list[tuple[str, tuple]], catalog: Catalog | None = None) -> NothingMatched:
    """The error for keys (as written, as parsed) that deleted nothing: one line naming them and, for
    an integer written differently, the spelling that would match; for a key forgotten before, when."""
    entity = registry.entities[entity_type]
    keys = entity.keys
    hints = []
    for text, key in missed:
        respelled = integer_respelling(key)
        if respelled and would_match(warehouse, online, registry, entity_type, respelled):
            written = respelled[0] if len(keys) == 1 else ";".join(
                f"{k}={_escape(str(v))}" for k, v in zip(keys, respelled))
            hints.append(f"did you mean {written}? it matches where {text} does not")
        active = _active_tombstone(as_catalog(catalog or warehouse), tombstone_text(keys, key))
        if active is not None:
            hints.append(f"{text} was forgotten at {active['forgotten_at']:%Y-%m-%d %H:%M:%S} UTC; "
                         "`forget --status` says where it still is")
    return NothingMatched(f"{entity_type} {', '.join(text for text, _ in missed)}: nothing matched online or "
                          "offline, nothing was deleted" + (f" ({'; '.join(hints)})" if hints else ""))


def _shown_key(entity: Entity, key: tuple) -> str:
    """A key as the CLI takes it: `42`, or `col=value;...` for a composite key."""
    return str(key[0]) if len(entity.keys) == 1 else ";".join(f"{k}={_escape(str(v))}" for k, v in zip(entity.keys, key))


def _escape(value: str) -> str:
    """A value of the `col=value;...` key form, escaped as `parse_entity_key` reads it back."""
    return value.replace("%", "%25").replace(";", "%3B").replace("=", "%3D")
