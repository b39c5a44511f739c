"""The registry reads feature views from dbt's manifest and rejects bad metadata in one line naming model and field."""

from __future__ import annotations

from datetime import timedelta

import pytest

from featurehouse.errors import InvalidFeatureMetadata, InvalidRequest, UnknownFeature
from featurehouse.registry.manifest import parse_entities, registry_from_manifest

ENTITIES = parse_entities({"user": ["user_id"], "card_merchant": ["card_id", "merchant_id"]})
COLUMNS = {"user_id": "bigint", "event_time": "timestamp", "created_at": "timestamp",
           "txn_count_1h": "bigint", "country": "varchar"}


def node(name="user_txn_stats", meta=None, columns=COLUMNS, version=None, checksum="abc"):
    block = {"entity": "user", "event_time": "event_time"} if meta is None else meta
    return {
        "unique_id": f"model.demo.{name}", "resource_type": "model", "name": name, "version": version,
        "database": "warehouse", "schema": "main", "alias": name, "original_file_path": f"models/{name}.sql",
        "config": {"meta": {"featurehouse": block}}, "checksum": {"name": "sha256", "checksum": checksum},
        "columns": {c: {"name": c, "data_type": t, "description": ""} for c, t in columns.items()},
        "depends_on": {"nodes": ["source.demo.raw.transactions"]},
    }


def load(*nodes, exposures=()):
    manifest = {"nodes": {n["unique_id"] + str(i): n for i, n in enumerate(nodes)},
                "exposures": {e["unique_id"]: e for e in exposures}}
    return registry_from_manifest(manifest, ENTITIES)


def error_of(*nodes) -> str:
    with pytest.raises(InvalidFeatureMetadata) as info:
        load(*nodes)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_model_with_featurehouse_meta_is_a_feature_view():
    view = load(node(meta={"entity": "user", "event_time": "event_time", "created_at": "created_at",
                           "ttl": "7d", "freshness_slo": "1h", "serving_delay": "90s", "owner": "risk",
                           "sensitivity": "pii", "online": False, "tags": ["fraud"]})).view("user_txn_stats")
    assert view.features[0].name == "user_txn_stats.txn_count_1h"
    assert [f.column for f in view.features] == ["txn_count_1h", "country"]
    assert (view.ttl, view.freshness_slo, view.serving_delay) == (timedelta(days=7), timedelta(hours=1), timedelta(seconds=90))
    assert (view.owner, view.sensitivity, view.online, view.tags) == ("risk", "pii", False, ("fraud",))
    assert view.unique_id == "model.demo.user_txn_stats" and view.checksum == "abc"


def test_models_without_featurehouse_meta_are_not_views():
    plain = node("orders")
    plain["config"]["meta"] = {}
    assert load(plain).views == {}


def test_columns_without_data_type_are_not_features():
    columns = dict(COLUMNS, country=None)
    # created_at is not declared as the view's created_at here, so it is a (timestamp) feature like any other
    assert load(node(columns=columns)).view("user_txn_stats").feature_columns == ("created_at", "txn_count_1h")


def test_version_pins_a_feature_and_defaults_to_one():
    registry = load(node(), node("user_txn_stats", meta={"entity": "user", "event_time": "event_time", "version": 2}))
    assert registry.versions("user_txn_stats") == [1, 2]
    assert registry.resolve("user_txn_stats.country@1")[0].version == 1
    assert registry.resolve("user_txn_stats.country")[0].version == 1  # unpinned: the active version
    registry.active["user_txn_stats"] = 2  # after `featurehouse promote user_txn_stats@2`
    assert registry.resolve("user_txn_stats.country")[0].version == 2


def test_dbt_model_versions_become_feature_versions():
    registry = load(node(version=1), node(version=3))
    assert registry.versions("user_txn_stats") == [1, 3]


def test_unknown_entity_names_model_and_field():
    msg = error_of(node(meta={"entity": "customer", "event_time": "event_time"}))
    assert msg.startswith("model 'user_txn_stats': meta.featurehouse.entity: unknown entity 'customer'")
    assert "card_merchant, user" in msg


def test_missing_event_time_names_the_field():
    assert "meta.featurehouse.event_time: is required" in error_of(node(meta={"entity": "user"}))


def test_event_time_not_a_column_names_the_column():
    msg = error_of(node(meta={"entity": "user", "event_time": "ts"}))
    assert "meta.featurehouse.event_time: column 'ts' is not a column of the model" in msg


def test_non_timestamp_event_time_is_rejected():
    msg = error_of(node(meta={"entity": "user", "event_time": "country"}))
    assert "column 'country' has type 'varchar', expected a timestamp" in msg


def test_bad_duration_names_field_and_value():
    msg = error_of(node(meta={"entity": "user", "event_time": "event_time", "ttl": "7 days please"}))
    assert msg.startswith("model 'user_txn_stats': meta.featurehouse.ttl: bad duration '7 days please'")


def test_duplicate_name_and_version_is_rejected():
    a = node(meta={"entity": "user", "event_time": "event_time", "version": 2}, version=1)
    b = node(meta={"entity": "user", "event_time": "event_time", "version": 2}, version=2)
    assert "duplicate feature view 'user_txn_stats@2'" in error_of(a, b)


def test_missing_key_columns_are_named():
    msg = error_of(node(meta={"entity": "card_merchant", "event_time": "event_time"}))
    assert "key column(s) card_id, merchant_id of entity 'card_merchant'" in msg


def test_unknown_setting_is_rejected_as_a_typo():
    assert "meta.featurehouse.tll: unknown setting" in error_of(node(meta={"entity": "user", "event_time": "event_time", "tll": "1d"}))


def test_bad_sensitivity_and_version_are_rejected():
    assert "meta.featurehouse.sensitivity" in error_of(node(meta={"entity": "user", "event_time": "event_time", "sensitivity": "secret"}))
    assert "meta.featurehouse.version: must be a positive integer" in error_of(node(meta={"entity": "user", "event_time": "event_time", "version": "two"}))


def test_unknown_feature_and_version_name_the_culprit():
    registry = load(node())
    with pytest.raises(UnknownFeature, match="view 'user_txn_stats@1' has no feature column 'txn_count_2h'"):
        registry.resolve("user_txn_stats.txn_count_2h")
    with pytest.raises(UnknownFeature, match="feature view 'user_txn_stats' has no version 4"):
        registry.resolve("user_txn_stats.country@4")
    with pytest.raises(UnknownFeature, match="unknown feature view 'user_txn_stat'.*did you mean 'user_txn_stats'"):
        registry.resolve("user_txn_stat.country")
    with pytest.raises(InvalidRequest, match="bad feature name"):
        registry.resolve("country")


def test_exposure_with_features_is_a_model_and_its_features_must_exist():
    exposure = {"unique_id": "exposure.demo.fraud_model", "name": "fraud_model", "owner": {"email": "r@x.io"},
                "meta": {"featurehouse": {"features": ["user_txn_stats.country"], "spine": "labels",
                                          "entity_timestamp": "label_time"}}}
    spec = load(node(), exposures=[exposure]).model("fraud_model")
    assert (spec.features, spec.spine, spec.timestamp) == (("user_txn_stats.country",), "labels", "label_time")
    exposure["meta"]["featurehouse"]["features"] = ["user_txn_stats.nope"]
    with pytest.raises(InvalidFeatureMetadata, match="exposure fraud_model.*nope"):
        load(node(), exposures=[exposure])


def test_a_typo_in_an_exposures_featurehouse_block_is_an_error_naming_it():
    exposure = {"unique_id": "exposure.demo.churn", "name": "churn", "owner": {},
                "meta": {"featurehouse": {"features": ["user_txn_stats.country"], "timestmp": "label_time"}}}
    with pytest.raises(InvalidFeatureMetadata) as e:
        load(node(), exposures=[exposure])
    assert str(e.value).startswith("exposure churn: meta.featurehouse.timestmp: unknown setting (known: ")


def _views(n: int):
    import dataclasses

    from tests.risk_data import risk_view

    base = risk_view()
    return [dataclasses.replace(base, name=f"v{i % (n // 2 or 1)}", version=1 + i // (n // 2 or 1)) for i in range(n)]


def test_the_versions_of_a_view_follow_every_change_to_the_registry():
    import pickle

    from featurehouse.registry.model import Registry

    registry = Registry()
    for view in _views(6):  # v0..v2, each at versions 1 and 2
        registry.add(view)
    assert registry.versions("v1") == [1, 2] and registry.view_names() == ["v0", "v1", "v2"]
    del registry.views[("v1", 2)]
    assert registry.versions("v1") == [1]
    registry.views.pop(("v2", 1))
    registry.views.update({("v9", 3): registry.views[("v0", 1)]})
    assert (registry.versions("v2"), registry.versions("v9")) == ([2], [3])
    registry.views = {("w", 1): registry.views[("v0", 1)]}  # replaced wholesale
    assert registry.view_names() == ["w"] and registry.versions("v0") == []
    copy = pickle.loads(pickle.dumps(registry))  # how serving workers get theirs
    copy.add(_views(2)[1])
    assert copy.versions("v0") == [2] and registry.versions("v0") == []


def test_planning_a_request_does_not_scan_the_registry():
    """Serving plans every request: its cost must not grow with the number of views (10,000 features
    across 200 entity types). The versions index is built once and reused while the views do not change."""
    from featurehouse.registry.model import Registry
    from featurehouse.serving.vectors import plan_request
    from tests.risk_data import USER

    registry = Registry(entities={"user": USER})
    for view in _views(2000):
        registry.add(view)
    names = [f"v7.{f.column}" for f in registry.view("v7").features]
    plan_request(registry, "user", names, active=registry.active)
    built = registry._indexed_at
    for _ in range(50):
        plan_request(registry, "user", names, active=registry.active)
    assert registry._indexed_at == built == registry.views.generation  # not rebuilt, not rescanned
