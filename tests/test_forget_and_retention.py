"""forget removes an entity everywhere; the retention pass removes online values past their TTL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
import pytest

from featurehouse import UnknownEntity
from featurehouse.online.store import OnlineRow
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation
from tests.stores import store_over

NOW = datetime(2026, 6, 1, 12)
USER = Entity("user", ("user_id",))
USER_ITEM = Entity("user_item", ("user_id", "item_id"))


def fv(name, entity, column, sensitivity="internal", ttl=None):
    return FeatureView(name, 1, entity, Relation(None, None, name), "event_time",
                       (Feature(name, column, "varchar", 1),), sensitivity=sensitivity, ttl=ttl)


@pytest.fixture
def store(warehouse, redis_url):
    registry = Registry(entities={"user": USER, "user_item": USER_ITEM})
    registry.add(fv("profile", USER, "email", "pii"))
    registry.add(fv("stats", USER, "bucket"))
    registry.add(fv("affinity", USER_ITEM, "last_action", "pii"))
    ts = NOW - timedelta(hours=1)
    warehouse.load_table("profile", pa.Table.from_pylist(
        [{"user_id": u, "event_time": ts, "email": f"u{u}@x.io"} for u in (41, 42, 43)]))
    warehouse.load_table("stats", pa.Table.from_pylist(
        [{"user_id": u, "event_time": ts, "bucket": "b"} for u in (41, 42, 43)]))
    warehouse.load_table("affinity", pa.Table.from_pylist(
        [{"user_id": u, "item_id": i, "event_time": ts, "last_action": "click"} for u in (41, 42, 43) for i in (1, 2)]))
    with store_over(registry, warehouse, redis_url, ("featurehouse_deletions", "featurehouse_sync_runs")) as s:
        yield s


def count(store, table, user):
    return store.warehouse.fetch_arrow(f'select count(*) from "{table}" where user_id = {user}').column(0)[0].as_py()


def test_forget_removes_the_entity_and_entities_keyed_by_it_from_the_online_store(store):
    result = store.forget("user", (42,))
    assert result.online_keys_deleted == 3  # user 42, and (42, 1), (42, 2)
    profile, affinity = store.registry.view("profile"), store.registry.view("affinity")
    assert store.online.read("user", [(42,), (41,)], [(profile, 1)]) [0]["profile@1"] is None
    assert store.online.read("user", [(41,)], [(profile, 1)])[0]["profile@1"] is not None
    got = store.online.read("user_item", [(42, 1), (43, 1)], [(affinity, 1)])
    assert got[0]["affinity@1"] is None and got[1]["affinity@1"] is not None


def test_forget_deletes_offline_rows_of_pii_views_only_and_records_it(store):
    result = store.forget("user", ("42",))
    assert result.offline_rows_deleted == {"affinity@1": 2, "profile@1": 1}
    assert (count(store, "profile", 42), count(store, "affinity", 42), count(store, "stats", 42)) == (0, 0, 1)
    assert count(store, "profile", 41) == 1
    log = store.warehouse.fetch_arrow('select * from featurehouse.featurehouse_deletions').to_pylist()
    assert [(r["entity_type"], r["entity_key"], r["online_keys_deleted"]) for r in log] == [("user", '["42"]', 3)]


def test_forget_with_an_unknown_entity_or_wrong_key_is_refused(store):
    with pytest.raises(UnknownEntity, match="unknown entity 'usr'"):
        store.forget("usr", (1,))
    with pytest.raises(UnknownEntity, match=r"has key \(user_id, item_id\): got 1 value"):
        store.forget("user_item", (1,))


def test_retention_removes_values_past_their_ttl_and_keeps_fresh_ones(store):
    store.online.client.flushdb()
    stats = fv("stats", USER, "bucket", ttl=timedelta(days=1))
    store.registry.add(stats)  # stats@1 now has a one-day TTL
    store.online.write(stats, [OnlineRow((41,), NOW - timedelta(days=2), None, ("old",)),
                               OnlineRow((43,), NOW - timedelta(hours=2), None, ("new",))])
    assert store.retention(now=NOW) == {"stats@1": 1}  # views without a TTL are kept
    got = store.online.read("user", [(41,), (43,)], [(stats, 1)])
    assert got[0]["stats@1"] is None and got[1]["stats@1"].values == {"bucket": "new"}
    assert store.retention(now=NOW) == {"stats@1": 0}
