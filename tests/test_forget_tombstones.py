"""forget leaves nothing behind in the streams and the served log, and its tombstone keeps the entity
out: a push still pending, a view that still holds it, a full refresh, a wiped online store."""

from __future__ import annotations

import json
from datetime import timedelta

import click
import pyarrow as pa
import pytest
from click.testing import CliRunner
from rich.console import Console

from featurehouse.catalog.tables import TOMBSTONES as TOMBSTONE_TABLE
from featurehouse.cli.commands_online import forget as forget_command
from featurehouse.cli.context import FeaturehouseGroup
from featurehouse.clock import utc_now
from featurehouse.guard.served import land_served
from featurehouse.online.codec import encode_values, to_micros
from featurehouse.online.keys import TOMBSTONES
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation
from featurehouse.serving.served_log import SERVED_STREAM, ServedLog
from featurehouse.serving.vectors import FeatureValue, FeatureVector
from featurehouse.stream.log import dead_letter_key, decode_entry, landing_relation, stream_key
from tests.stores import store_over

USER = Entity("user", ("user_id",))
USER_ITEM = Entity("user_item", ("user_id", "item_id"))
T = (utc_now() - timedelta(hours=2)).replace(microsecond=0)
CATALOG_TABLES = ("featurehouse_deletions", "featurehouse_sync_runs", "featurehouse_tombstones",
                  "featurehouse_served_values")


def view(name, entity, column, sensitivity="internal", version=1, created_at=None):
    relation = name if version == 1 else f"{name}_v{version}"
    return FeatureView(name, version, entity, Relation(None, None, relation), "event_time",
                       (Feature(name, column, "varchar", version),), sensitivity=sensitivity, created_at=created_at)


def profile_rows(users, email="u{u}@secret.io", at=T, created=T):
    return pa.Table.from_pylist([{"user_id": u, "event_time": at, "created_at": created, "email": email.format(u=u)}
                                 for u in users])


def make_registry() -> Registry:
    registry = Registry(entities={"user": USER, "user_item": USER_ITEM})
    registry.add(view("profile", USER, "email", "pii", created_at="created_at"))
    registry.add(view("stats", USER, "bucket"))
    registry.add(view("affinity", USER_ITEM, "last_action", "pii"))
    return registry


@pytest.fixture
def store(warehouse, redis_url):
    registry = make_registry()
    warehouse.load_table("profile", profile_rows((41, 42, 43)))
    warehouse.load_table("stats", pa.Table.from_pylist(
        [{"user_id": u, "event_time": T, "bucket": "b"} for u in (41, 42, 43)]))
    warehouse.load_table("affinity", pa.Table.from_pylist(
        [{"user_id": u, "item_id": i, "event_time": T, "last_action": "click"} for u in (41, 42, 43) for i in (1, 2)]))
    landing = tuple(landing_relation(v).identifier for v in registry.views.values())
    with store_over(registry, warehouse, redis_url, CATALOG_TABLES + landing) as s:
        yield s
    for table in CATALOG_TABLES + landing:  # PostgreSQL keeps them: no tombstone may reach another test
        warehouse.execute(f"DROP TABLE IF EXISTS featurehouse.{table}")


def online_value(store, name, entity, key, version=1):
    """The online record of one view for one entity, or None."""
    v = store.registry.view(name, version)
    return store.online.read(entity, [key], [(v, version)])[0][f"{name}@{version}"]


def landed(store, name, user) -> int:
    table = landing_relation(store.registry.view(name))
    if not store.warehouse.describe(table):
        return 0
    return store.warehouse.fetch_arrow(
        f'select count(*) from "featurehouse"."{table.identifier}" where user_id = {user}').column(0)[0].as_py()


def stream_users(store, stream: str) -> list:
    """The user id of every entry left in a push stream."""
    return [decode_entry(fields[b"r"]).key[0] for _, fields in store.online.client.xrange(stream)]


def tombstone_rows(store) -> list[dict]:
    """The warehouse's tombstones (none when the table was never made)."""
    return store.catalog.rows(TOMBSTONE_TABLE, columns=("entity_type", "entity_key", "key_text", "lifted_at"))


def push_email(user, email, at=None):
    return {"user_id": user, "event_time": (at or utc_now() - timedelta(minutes=30)).isoformat(), "email": email}


# -- the push path ---------------------------------------------------------------------------------


def test_a_push_pending_at_forget_is_deleted_and_a_push_after_it_is_dropped_by_the_consumer(store):
    profile = store.registry.view("profile")
    assert store.push("profile", [push_email(42, "new42@secret.io"), push_email(41, "new41@x.io")]).accepted == 2
    result = store.forget("user", (42,))
    assert result.stream_entries_deleted == 1
    assert stream_users(store, stream_key(profile)) == [41]  # 42's pending entry is gone from the stream
    # accepted after the forget, then dropped by the consumer: its own key, and a key holding it
    assert store.push("profile", [push_email(42, "again42@secret.io")]).accepted == 1
    assert store.push("affinity", [{"user_id": 42, "item_id": 7, "event_time": utc_now().isoformat(),
                                    "last_action": "buy"}]).accepted == 1
    consumer = store.stream_consumer()
    consumer.run_once()
    assert (consumer.stats.dropped_forgotten, consumer.stats.processed, consumer.stats.written) == (2, 1, 1)
    assert not store.warehouse.describe(landing_relation(store.registry.view("affinity")))  # never landed at all
    assert online_value(store, "profile", "user", (42,)) is None
    assert online_value(store, "affinity", "user_item", (42, 7)) is None
    assert online_value(store, "profile", "user", (41,)).values == {"email": "new41@x.io"}
    assert (landed(store, "profile", 42), landed(store, "affinity", 42), landed(store, "profile", 41)) == (0, 0, 1)
    assert stream_users(store, stream_key(profile)) == [41]  # dropped entries are deleted, not only acknowledged
    assert stream_users(store, stream_key(store.registry.view("affinity"))) == []
    assert store.online.client.xpending(stream_key(profile), "featurehouse")["pending"] == 0


def test_an_entry_applied_while_its_entity_is_forgotten_is_undone(store, monkeypatch):
    """A forget between the consumer's check and its write: the write is deleted again."""
    store.push("profile", [push_email(42, "race42@secret.io")])
    consumer = store.stream_consumer(select=("profile",))
    write = consumer.online.write

    def forget_then_write(view, rows, *args, **kwargs):
        store.forget("user", (42,))
        return write(view, rows, *args, **kwargs)

    monkeypatch.setattr(consumer.online, "write", forget_then_write)
    consumer.run_once()
    monkeypatch.undo()
    assert consumer.stats.dropped_forgotten == 1
    assert online_value(store, "profile", "user", (42,)) is None
    assert landed(store, "profile", 42) == 0


# -- sync ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["full_refresh", "incremental", "restate", "wiped", "backfill"])
def test_no_sync_brings_a_forgotten_entity_back(store, mode):
    if mode == "backfill":
        store.registry.add(view("profile", USER, "email", "pii", version=2, created_at="created_at"))
        store.warehouse.load_table("profile_v2", profile_rows((41, 42)))
    store.forget("user", (42,))
    # the PII model rebuilt from sources that still hold user 42; `stats` (not PII) kept it all along
    later = utc_now() - timedelta(minutes=30)
    store.warehouse.load_table("profile", pa.concat_tables([
        profile_rows((41, 43)), profile_rows((41, 42), email="v2-{u}@secret.io", at=later, created=later)]))
    if mode == "full_refresh":
        runs = store.sync(full_refresh=True)
    elif mode == "incremental":
        runs = store.sync()
        assert {r.view: r.mode for r in runs}["profile"] == "incremental"
    elif mode == "restate":
        runs = store.sync(restate=("profile", "stats", "affinity"))
    elif mode == "wiped":
        store.online.client.flushdb()  # the online store lost everything, the tombstones' mirror too
        runs = store.sync()
        assert store.online.client.hexists(TOMBSTONES, "user_id=42")  # made whole from the warehouse
    else:
        store.warehouse.load_table("profile_v2", profile_rows((41, 42), email="v2-{u}@secret.io", at=later,
                                                              created=later))
        runs = [store.backfill("profile", 2)]
        assert online_value(store, "profile", "user", (42,), version=2) is None
        assert online_value(store, "profile", "user", (41,), version=2).values == {"email": "v2-41@secret.io"}
    assert all(r.status == "success" for r in runs)
    assert online_value(store, "profile", "user", (42,)) is None
    assert online_value(store, "stats", "user", (42,)) is None
    assert online_value(store, "affinity", "user_item", (42, 1)) is None
    assert online_value(store, "stats", "user", (41,)) is not None
    if mode in ("incremental", "full_refresh", "restate", "wiped"):
        assert online_value(store, "profile", "user", (41,)).values == {"email": "v2-41@secret.io"}


def test_an_entity_forgotten_while_a_sync_writes_is_deleted_again_at_its_end(store, monkeypatch):
    store.online.client.flushdb()  # the next sync writes every entity
    write_encoded = store.online.write_encoded
    forgotten = []

    def write_then_forget(view, items, *args, **kwargs):
        result = write_encoded(view, items, *args, **kwargs)
        if not forgotten:  # a forget that wrote its tombstone now, its online deletion done before our write
            store.online.client.hset(TOMBSTONES, "user_id=43", json.dumps({"entity_type": "user", "key": ["43"]}))
            forgotten.append(view.name)
        return result

    monkeypatch.setattr(store.online, "write_encoded", write_then_forget)
    store.sync()
    monkeypatch.undo()
    assert forgotten  # the first view synced wrote 43, then learnt of the forget
    assert online_value(store, "profile", "user", (43,)) is None
    assert online_value(store, "stats", "user", (43,)) is None
    assert online_value(store, "affinity", "user_item", (43, 2)) is None
    assert online_value(store, "stats", "user", (41,)) is not None


# -- dead letters and the served log ---------------------------------------------------------------


def served(user_id: str, entity_type="user", feature="profile.email@1", value="u@secret.io"):
    return FeatureVector(entity_type, user_id, {feature: FeatureValue(value, T, 1.0, False, 1, "ok")}, False, utc_now())


def test_forget_deletes_dead_letters_and_served_values_landed_or_not(store):
    client = store.online.client
    profile = store.registry.view("profile")
    rejected = store.push("profile", [{"user_id": 42, "event_time": "yesterday", "email": "u42@secret.io"},
                                      {"user_id": 41, "event_time": "yesterday", "email": "u41@x.io"}])
    assert len(rejected.rejected) == 2
    # an entry the consumer gave up on keeps the whole pushed row
    client.xadd(stream_key(profile), {"r": encode_values([[42], to_micros(T), to_micros(T), []])})
    consumer = store.stream_consumer(select=("profile",), max_deliveries=1)
    consumer.run_once()
    assert consumer.stats.dead_lettered == 1 and client.xlen(dead_letter_key(profile)) == 3
    log = ServedLog(1.0)
    log.append(client, [served("42"), served("41"), served("user_id=42;item_id=1", "user_item")], "m")
    assert land_served(client, store.catalog) == 3
    log.append(client, [served("42"), served("43")], "m")  # not landed yet

    result = store.forget("user", (42,))
    assert (result.dead_letters_deleted, result.served_values_deleted, result.served_log_entries_deleted) == (2, 2, 1)
    dead = client.xrange(dead_letter_key(profile))
    assert len(dead) == 1 and b"u41@x.io" in dead[0][1][b"row"]
    assert not any(b"u42" in value for _, fields in dead for value in fields.values())
    rows = store.warehouse.fetch_arrow(
        "select entity_id from featurehouse.featurehouse_served_values order by entity_id").to_pylist()
    assert [r["entity_id"] for r in rows] == ["41"]
    assert [fields[b"entity_id"] for _, fields in client.xrange(SERVED_STREAM)] == [b"43"]
    [record] = store.warehouse.fetch_arrow(
        "select dead_letters_deleted, served_values_deleted, served_log_entries_deleted, stream_entries_deleted "
        "from featurehouse.featurehouse_deletions").to_pylist()
    assert record == {"dead_letters_deleted": 2, "served_values_deleted": 2, "served_log_entries_deleted": 1,
                      "stream_entries_deleted": 1}  # the dead-lettered entry, still in the push stream too
    assert client.xlen(stream_key(profile)) == 0


# -- status, lifting, keys that match nothing -----------------------------------------------------


class _Context:
    def __init__(self, store):
        self._the_store, self.console = store, Console(width=250)

    def store(self):
        return self._the_store


def forget_cli(store, *args: str):
    @click.group(cls=FeaturehouseGroup)
    def group() -> None:
        """The real group's error handling around the real `forget` command."""

    group.add_command(forget_command)
    return CliRunner().invoke(group, ["forget", *args], obj=_Context(store))


def status_rows(output: str) -> dict[tuple[str, str], str]:
    """(place, where) -> count, from the status table."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) == 6 and cells[3] not in ("rows or entries", ""):
            rows[(cells[1], cells[2])] = cells[3]
    return rows


def test_status_names_every_place_and_the_tombstone_is_lifted_only_once_no_view_holds_the_entity(store):
    assert forget_cli(store, "user", "42", "--yes").exit_code == 0
    result = forget_cli(store, "user", "42", "--status")
    assert result.exit_code == 0, result.output
    places = status_rows(result.output)
    assert places[("relation", "stats@1 (stats)")] == "1"  # not PII: kept offline, left out of sync
    assert places[("relation", "profile@1 (profile)")] == "0" and places[("online", "user_item")] == "0"
    assert {kind for kind, _ in places} == {"relation", "online", "push stream", "dead letters", "served values",
                                           "served log"}
    assert "cannot be lifted yet, held by: relation stats@1 (stats)" in result.output
    refused = forget_cli(store, "user", "42", "--lift")
    assert refused.exit_code == 2
    assert "the tombstone stays, still held by relation stats@1 (stats): 1" in refused.output
    assert store.online.client.hexists(TOMBSTONES, "user_id=42")

    store.warehouse.load_table("stats", pa.Table.from_pylist([{"user_id": 41, "event_time": T, "bucket": "b"}]))
    assert "can be lifted" in forget_cli(store, "user", "42", "--status").output
    lifted = forget_cli(store, "user", "42", "--lift")
    assert lifted.exit_code == 0, lifted.output
    assert [r["lifted_at"] is not None for r in tombstone_rows(store)] == [True]
    assert not store.online.client.hexists(TOMBSTONES, "user_id=42")
    store.push("profile", [push_email(42, "back42@x.io")])  # a new user 42 is applied again
    store.stream_consumer(select=("profile",)).run_once()
    assert online_value(store, "profile", "user", (42,)).values == {"email": "back42@x.io"}


def test_a_key_matching_nothing_exits_2_and_leaves_no_tombstone(store):
    result = forget_cli(store, "user", "999", "--yes")
    assert result.exit_code == 2
    assert "user 999: nothing matched online or offline, nothing was deleted" in result.output
    assert tombstone_rows(store) == [] and store.online.client.hlen(TOMBSTONES) == 0
    assert forget_cli(store, "user", "42", "--yes").exit_code == 0
    store.warehouse.load_table("stats", pa.Table.from_pylist([{"user_id": 41, "event_time": T, "bucket": "b"}]))
    again = forget_cli(store, "user", "42", "--yes")  # nothing left anywhere: still an error, saying why
    assert again.exit_code == 2
    assert "42 was forgotten at" in again.output and "`forget --status` says where it still is" in again.output
    assert [(r["entity_type"], r["entity_key"], r["key_text"]) for r in tombstone_rows(store)] == [
        ("user", '["42"]', "user_id=42")]  # kept: a forget matching nothing never removes a tombstone
    assert store.online.client.hexists(TOMBSTONES, "user_id=42")


def test_an_entity_only_a_view_that_is_not_pii_holds_is_tombstoned(store):
    store.warehouse.load_table("stats", pa.Table.from_pylist(
        [{"user_id": u, "event_time": T, "bucket": "b"} for u in (41, 42, 43, 44)]))  # 44: not synced yet
    result = forget_cli(store, "user", "44", "--yes")
    assert result.exit_code == 0, result.output
    assert "still in views that are not PII: stats@1: 1" in result.output
    store.sync()
    assert online_value(store, "stats", "user", (44,)) is None and online_value(store, "stats", "user", (43,))


def test_a_relation_that_cannot_be_read_keeps_the_tombstone(store):
    store.registry.add(view("orphan", USER, "note"))  # declared, its model never built
    assert store.forget("user", (42,)).online_keys_deleted == 3
    status = store.forget_status("user", (42,))
    [orphan] = [p for p in status.places if p.kind == "relation" and p.where.startswith("orphan@1")]
    assert orphan.count is None
    assert not status.liftable and orphan in status.holding
