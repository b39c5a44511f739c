"""Parity: the online store's values and event times against the warehouse's latest rows."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pyarrow as pa
import pytest

from featurehouse.guard.parity import check_parity, same
from featurehouse.offline.warehouse import utc_now
from featurehouse.online.codec import encode_values
from featurehouse.online.keys import entity_key, value_field
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation
from tests.stores import store_over

USER = Entity("user", ("user_id",))
NOW = utc_now().replace(microsecond=0)


def risk_view(ttl=None) -> FeatureView:
    return FeatureView("risk", 1, USER, Relation(None, None, "risk"), "event_time",
                       (Feature("risk", "score", "double", 1), Feature("risk", "band", "varchar", 1)),
                       created_at="created_at", ttl=ttl)


def rows(n: int = 50, age=timedelta(hours=1)) -> list[dict]:
    return [{"user_id": u, "event_time": NOW - age, "created_at": NOW - age, "score": u / 7, "band": f"b{u % 3}"}
            for u in range(n)]


@pytest.fixture
def store(warehouse, redis_url):
    warehouse.load_table("risk", pa.Table.from_pylist(rows()))
    registry = Registry(entities={"user": USER})
    registry.add(risk_view())
    with store_over(registry, warehouse, redis_url, ("featurehouse_sync_runs", "featurehouse_published_schemas")) as s:
        yield s


def parity(store, sample=None):
    return check_parity(store.warehouse, store.online, store.registry.view("risk"), sample)


def test_a_fresh_sync_has_full_parity(store):
    result = parity(store)
    assert (result.compared, result.mismatched, result.rate) == (50, 0, 0.0)


def test_a_corrupted_online_value_is_named_by_feature_and_entity(store):
    store.online.client.hset(entity_key("user", ("7",)), value_field("risk", 1), encode_values([99.0, "b1"]))
    result = parity(store)
    assert (result.mismatched, result.per_feature) == (1, {"risk.score": 1})
    (example,) = result.examples["risk.score"]
    assert (example.entity_id, example.online, example.warehouse, example.kind) == ("7", 99.0, 1.0, "value")


def test_an_entity_missing_online_is_a_mismatch(store):
    store.online.client.delete(entity_key("user", ("3",)))
    result = parity(store)
    assert (result.missing_online, result.mismatched) == (1, 1)
    assert result.examples["risk.<entity>"][0].entity_id == "3"


def test_rows_newer_than_the_last_sync_are_pending_not_mismatches(store):
    newer = [{**r, "event_time": NOW, "created_at": NOW, "score": -1.0} for r in rows(5)]
    store.warehouse.load_table("risk", pa.Table.from_pylist(rows() + newer))
    result = parity(store)
    assert (result.pending, result.mismatched, result.compared) == (5, 0, 45)
    store.sync()
    assert (parity(store).pending, parity(store).mismatched) == (0, 0)


def test_a_sample_compares_that_many_entities_the_same_ones_each_run(store):
    a, b = parity(store, sample=10), parity(store, sample=10)
    assert a.compared == b.compared == 10
    store.online.client.delete(*[entity_key("user", (str(u),)) for u in range(50)])
    assert parity(store, sample=10).missing_online == 10


def test_values_past_the_ttl_that_retention_removed_are_not_compared(store):
    store.registry.add(risk_view(ttl=timedelta(minutes=30)))
    store.retention()
    result = parity(store)
    assert (result.expired, result.compared, result.mismatched) == (50, 0, 0)


def test_equality_is_exact_with_nan_equal_and_bools_not_ints():
    assert same(float("nan"), float("nan")) and same(1.5, 1.5) and same(None, None)
    assert not same(True, 1) and not same(1.0, 1.0000001) and not same(None, 0)
    assert not same(1, 1.0) and not same(1.0, 1)  # one Python type per feature on every path


def test_a_backfilled_candidate_version_is_compared_in_its_own_namespace(store):
    store.warehouse.load_table("risk_v2", pa.Table.from_pylist([{**r, "score": r["score"] * 2} for r in rows()]))
    store.registry.add(dataclasses.replace(risk_view(), version=2, relation=Relation(None, None, "risk_v2"),
                                           features=tuple(dataclasses.replace(f, version=2) for f in risk_view().features)))
    store.backfill("risk", 2)
    v2 = store.registry.view("risk", 2)
    assert check_parity(store.warehouse, store.online, v2, None).mismatched == 0
    store.online.client.hset(entity_key("user", ("4",)), value_field("risk", 2), encode_values([0.5, "b1"]))
    candidate = check_parity(store.warehouse, store.online, v2, None)
    assert (candidate.mismatched, candidate.examples["risk.score"][0].entity_id) == (1, "4")
    assert parity(store).mismatched == 0  # the active version is untouched
