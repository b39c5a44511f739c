"""forget removes an entity everywhere; the retention pass removes online values past their TTL."""

from __future__ import annotations

from datetime import datetime, timedelta

import click
import pyarrow as pa
import pytest
from click.testing import CliRunner
from rich.console import Console

from featurehouse import UnknownEntity
from featurehouse.cli.commands_online import forget as forget_command
from featurehouse.cli.context import FeaturehouseGroup
from featurehouse.online.store import OnlineRow
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation
from featurehouse.sync.forget import integer_respelling
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
    with store_over(registry, warehouse, redis_url, ("featurehouse_deletions", "featurehouse_sync_runs", "featurehouse_tombstones")) as s:
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


class _Context:
    """What `forget` takes of the CLI context, over the test's store (which the group then leaves open)."""

    def __init__(self, store):
        self._the_store, self.console = store, Console(width=200)

    def store(self):
        return self._the_store


def forget_cli(store, *args: str):
    @click.group(cls=FeaturehouseGroup)
    def group() -> None:
        """The real group's error handling around the real `forget` command."""

    group.add_command(forget_command)
    return CliRunner().invoke(group, ["forget", *args, "--yes"], obj=_Context(store))


def test_a_key_written_differently_deletes_nothing_and_exits_2_naming_the_key_that_would_match(store):
    result = forget_cli(store, "user", "042")
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "error: user 042: nothing matched online or offline, nothing was deleted (did you mean 42? it matches where 042 does not)"]
    assert count(store, "profile", 42) == 1 and store.online.read(
        "user", [(42,)], [(store.registry.view("profile"), 1)])[0]["profile@1"] is not None


def test_a_key_matching_nothing_at_all_exits_2_without_a_hint(store):
    result = forget_cli(store, "user", "999")
    assert result.exit_code == 2
    assert result.output.strip() == "error: user 999: nothing matched online or offline, nothing was deleted"


def test_keys_that_matched_are_forgotten_and_the_ones_that_did_not_are_named(store):
    result = forget_cli(store, "user", "42", "0043", "7")
    assert result.exit_code == 2
    assert "forgot 1 user" in result.output and count(store, "profile", 42) == 0
    assert result.output.strip().splitlines()[-1] == (
        "error: user 0043, 7: nothing matched online or offline, nothing was deleted (did you mean 43? it matches where 0043 does not)")
    assert count(store, "profile", 43) == 1


def test_a_composite_key_hint_is_written_in_the_composite_form(store):
    result = forget_cli(store, "user_item", "user_id=041;item_id=02")
    assert result.exit_code == 2
    assert result.output.strip().endswith("(did you mean user_id=41;item_id=2? it matches where user_id=041;item_id=02 does not)")


def test_a_forget_that_deleted_something_exits_0(store):
    result = forget_cli(store, "user", "41")
    assert result.exit_code == 0, result.output
    assert "forgot 1 user" in result.output and "profile@1: 1" in result.output


@pytest.mark.parametrize("key, respelled", [
    (("03",), ("3",)), (("+7",), ("7",)), (("-007",), ("-7",)), (("3",), None), (("abc",), None),
    (("1e3",), None), (("0042", "x01"), ("42", "x01")), ((42,), None), (("-0",), ("0",)), (("000",), ("0",)),
    (("0" * 5000 + "5",), ("5",))])
def test_integer_respelling(key, respelled):
    assert integer_respelling(key) == respelled
