"""Model versions: lineage, the deploy check's gates (each broken on purpose), and serving by model@version."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from starlette.testclient import TestClient

from featurehouse.online.codec import encode_values
from featurehouse.online.keys import entity_key, value_field
from featurehouse.registry.model import FeatureView, ModelSpec, Registry
from featurehouse.serving.app import ServeConfig, create_app
from tests.risk_data import NOW, USER, risk_rows, risk_view as base_view
from tests.stores import store_over

USERS = range(120)
TABLES = ("featurehouse_sync_runs", "featurehouse_served_values", "featurehouse_training_sets",
          "featurehouse_model_versions", "featurehouse_published_schemas", "featurehouse_view_versions")


def risk_view(score_type: str = "double") -> FeatureView:
    return base_view(score_type, freshness_slo=timedelta(hours=6))


def rows(shift: float = 0.0, age=timedelta(hours=2)) -> list[dict]:
    return risk_rows(USERS, shift, age)


@pytest.fixture
def store(warehouse, redis_url):
    warehouse.load_table("risk", pa.Table.from_pylist(rows()))
    registry = Registry(entities={"user": USER})
    registry.add(risk_view())
    registry.models["fraud"] = ModelSpec("fraud", ("risk.score", "risk.band"))
    with store_over(registry, warehouse, redis_url, TABLES) as s:
        spine = pa.table({"user_id": list(USERS),
                          "ts": pa.array([NOW - timedelta(minutes=30)] * len(USERS), pa.timestamp("us"))})
        ts = s.build_training_set(spine, ["risk.score", "risk.band"], "ts", name="fraud-2026-11")
        s.register_model("fraud@1", ts.record.training_set_id)
        s.trained_on = ts.record.training_set_id
        yield s


def failed_gates(report) -> list[tuple[str, str]]:
    return [(g.gate, g.subject) for g in report.failures]


def serve(store, redis_url, path: str, **params):
    app = create_app(store.registry, ServeConfig(auth="none", push=True, redis_url=redis_url, log_sample_rate=1.0))
    with TestClient(app) as client:
        return client.get(path, params=params)


def serve_everyone(store, redis_url) -> None:
    app = create_app(store.registry, ServeConfig(auth="none", push=True, redis_url=redis_url, log_sample_rate=1.0))
    with TestClient(app) as client:
        for u in USERS:
            assert client.get(f"/v1/features/user/{u}", params={"model": "fraud@1"}).status_code == 200


def test_a_healthy_model_version_passes_with_skew_and_drift_skipped_until_served(store):
    report = store.deploy_check("fraud@1")
    assert report.ok, report.gates
    assert {g.gate: g.status for g in report.gates if g.gate in ("skew", "drift")} == {"skew": "skipped", "drift": "skipped"}


def test_it_passes_with_skew_and_drift_judged_once_served(store, redis_url):
    serve_everyone(store, redis_url)
    report = store.deploy_check("fraud@1")
    assert report.ok, report.failures
    assert {(g.gate, g.status) for g in report.gates if g.gate in ("skew", "drift")} == {("skew", "pass"), ("drift", "pass")}


def test_stale_features_fail_the_freshness_gate(store):
    store.warehouse.load_table("risk", pa.Table.from_pylist(rows(age=timedelta(hours=8))))
    store.online.client.flushdb()  # the whole pipeline is behind: warehouse and online agree on old values
    store.sync(full_refresh=True)
    store.register_model("fraud@1", store.trained_on)
    report = store.deploy_check("fraud@1")
    assert failed_gates(report) == [("freshness", "risk@1")]
    # the rows are 8h older than NOW, a time taken when the tests started: the age shown grows with the run
    found = re.search(r"newest event is ([0-9.]+)h old \(SLO 6\.0h\)", report.failures[0].detail)
    assert found, report.failures[0].detail
    since_now_h = (datetime.now(timezone.utc).replace(tzinfo=None) - NOW).total_seconds() / 3600
    assert 8.0 - 0.05 <= float(found.group(1)) <= 8.0 + since_now_h + 0.05


def test_a_corrupted_online_value_fails_the_parity_gate_naming_feature_and_entity(store):
    store.online.client.hset(entity_key("user", ("5",)), value_field("risk", 1), encode_values([-1.0, "low"]))
    report = store.deploy_check("fraud@1")
    assert failed_gates(report) == [("parity", "risk@1")]
    assert "risk.score of entity 5: online -1.0, warehouse 5.0" in report.failures[0].detail


def test_a_changed_type_since_training_fails_the_schema_gate(store):
    store.warehouse.load_table("risk", pa.Table.from_pylist([{**r, "score": str(r["score"])} for r in rows()]))
    store.registry.add(risk_view(score_type="varchar"))  # rebuilt without a version bump
    report = store.deploy_check("fraud@1")
    assert ("schema", "risk.score@1") in failed_gates(report)
    assert any("changed type double -> varchar" in g.detail for g in report.failures)


def test_serving_from_a_lagging_store_fails_the_skew_gate(store, redis_url):
    store.warehouse.load_table("risk", pa.Table.from_pylist(rows() + rows(shift=0.5, age=timedelta(minutes=1))))
    serve_everyone(store, redis_url)  # online still has the older values
    report = store.deploy_check("fraud@1")
    assert ("skew", "risk.score@1") in failed_gates(report)


def test_a_shifted_distribution_fails_the_drift_gate(store, redis_url):
    store.warehouse.load_table("risk", pa.Table.from_pylist(rows() + rows(shift=6.0, age=timedelta(minutes=1))))
    store.sync()
    serve_everyone(store, redis_url)
    report = store.deploy_check("fraud@1")
    assert set(failed_gates(report)) == {("drift", "risk.score@1"), ("drift", "risk.band@1")}


def test_serving_by_model_version_marks_vectors_of_a_version_that_failed_its_check(store, redis_url):
    body = serve(store, redis_url, "/v1/features/user/3", model="fraud@1").json()
    assert body["guardrails"] == {"ok": False, "violations": ["fraud@1 has not passed `featurehouse deploy-check` yet"]}
    assert store.deploy_check("fraud@1").ok
    body = serve(store, redis_url, "/v1/features/user/3", model="fraud@1").json()
    assert body["guardrails"] == {"ok": True, "violations": []} and list(body["features"]) == ["risk.score@1", "risk.band@1"]
    store.online.client.hset(entity_key("user", ("5",)), value_field("risk", 1), encode_values([-1.0, "low"]))
    assert not store.deploy_check("fraud@1").ok
    body = serve(store, redis_url, "/v1/features/user/3", model="fraud@1").json()
    assert body["guardrails"]["ok"] is False and body["guardrails"]["violations"][0].startswith("fraud@1 failed its deploy check: parity")


def test_an_unregistered_model_version_is_not_found(store, redis_url):
    response = serve(store, redis_url, "/v1/features/user/3", model="fraud@7")
    assert response.status_code == 404 and "registered: fraud@1" in response.json()["detail"]


def test_a_version_asked_for_that_no_one_registered_is_not_called_ok(store, redis_url):
    """An exposure with no registered versions serves `model=NAME@1` as the exposure, but no deploy check
    covers that version: its vectors say so instead of reading ok."""
    store.registry.models["scoring"] = ModelSpec("scoring", ("risk.score",))
    assert serve(store, redis_url, "/v1/features/user/3", model="scoring").json()["guardrails"]["ok"] is True
    body = serve(store, redis_url, "/v1/features/user/3", model="scoring@1").json()
    assert body["guardrails"] == {"ok": False, "violations": [
        "scoring@1 is not a registered model version (`featurehouse model register`), so no deploy check covers it"]}


def test_vectors_served_by_name_carry_no_guardrails(store, redis_url):
    assert serve(store, redis_url, "/v1/features/user/3", names="risk.score").json()["guardrails"] is None


def test_lineage_of_a_model_version_shows_its_training_set_and_features(store):
    tree = store.lineage("fraud@1")
    (ts,) = tree["children"]
    assert (tree["name"], ts["kind"], ts["name"]) == ("fraud@1", "training set", store.trained_on)
    assert "120 rows" in ts["detail"] and "'fraud-2026-11'" in ts["detail"]
    (view,) = ts["children"]
    assert (view["name"], view["detail"]) == ("risk@1", "score (double), band (varchar)")


def test_lineage_of_a_feature_shows_the_training_sets_and_model_versions_using_it(store):
    tree = store.lineage("risk.score")
    used_by = tree["children"][1]
    (ts,) = used_by["children"]
    assert ts["name"] == store.trained_on and [m["name"] for m in ts["children"]] == ["fraud@1"]


def test_rebinding_a_registered_model_version_is_refused(store):
    from featurehouse.errors import FeaturehouseError

    assert store.register_model("fraud@1", store.trained_on).ref == "fraud@1"  # same binding: no-op
    spine = pa.table({"user_id": [1], "ts": pa.array([NOW], pa.timestamp("us"))})
    other = store.build_training_set(spine, ["risk.score"], "ts").record.training_set_id
    with pytest.raises(FeaturehouseError, match="fraud@1 is already bound to training set"):
        store.register_model("fraud@1", other)


def test_an_unknown_model_version_is_a_clear_error(store):
    from featurehouse.offline.lineage import UnknownModelVersion

    with pytest.raises(UnknownModelVersion, match=r"unknown model version 'fraud@2' \(registered: fraud@1\)"):
        store.deploy_check("fraud@2")




def test_a_typo_in_the_model_s_name_is_not_registered_as_a_model_nobody_serves(store):
    """A training set built for exposure `fraud`, registered as `frued@1`: refused, naming the model meant."""
    from featurehouse.errors import FeaturehouseError

    spine = pa.table({"user_id": [1, 2], "ts": pa.array([NOW - timedelta(minutes=30)] * 2, pa.timestamp("us"))})
    for_fraud = store.build_training_set(spine, ["risk.score"], "ts", name="fraud").record.training_set_id
    with pytest.raises(FeaturehouseError, match=r"model 'frued' is no dbt exposure .* did you mean fraud@7\?"):
        store.register_model("frued@7", for_fraud)
    assert store.register_model("churn@1", store.trained_on).ref == "churn@1"  # not an exposure, an own label: fine


def test_a_model_version_can_be_bound_through_the_exposures_meta(store):
    store.registry.models["fraud"] = dataclasses.replace(store.registry.models["fraud"], version="2",
                                                         training_set=store.trained_on)
    mv = store.register_model("fraud@2")
    assert (mv.training_set_id, mv.source, mv.features) == (store.trained_on, "exposure", ["risk.score@1", "risk.band@1"])


def test_a_recorded_training_set_is_sent_as_an_openlineage_event_when_configured(store, tmp_path, monkeypatch):
    import json

    events = tmp_path / "openlineage.jsonl"
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "file")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", str(events))
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__APPEND", "true")
    spine = pa.table({"user_id": [1, 2], "ts": pa.array([NOW, NOW], pa.timestamp("us"))})
    ts = store.build_training_set(spine, ["risk.score", "risk.band"], "ts", name="fraud-weekly")
    (event,) = [json.loads(line) for line in events.read_text().splitlines()]
    assert (event["eventType"], event["job"]["name"]) == ("COMPLETE", "training_set.fraud-weekly")
    assert [d["name"].rpartition(".")[2] for d in event["inputs"]] == ["risk"]
    assert [f["name"] for f in event["inputs"][0]["facets"]["schema"]["fields"]] == ["score", "band"]
    assert event["outputs"][0]["name"] == f"training_sets/{ts.record.training_set_id}"


def test_no_openlineage_event_is_sent_unless_configured(store, tmp_path, monkeypatch):
    from featurehouse.offline.openlineage import configured

    for key in [k for k in __import__("os").environ if k.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert not configured()
