"""Guardrails from the command line on the example project: each guard fires with a clear message."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from featurehouse import FeatureStore
from featurehouse.cli.main import cli
from featurehouse.online.codec import encode_values
from featurehouse.online.keys import entity_key, value_field
from featurehouse.online.store import open_online_store
from tests.test_demo import SCALE, copy_example


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo with its history ending three days ago: its hourly and daily views are past their SLOs
    whatever the time of day the tests run at (with today's history, just after midnight UTC the
    newest events are minutes old)."""
    from datetime import date, timedelta

    project = copy_example(tmp_path_factory.mktemp("guardrails"))
    end = (date.today() - timedelta(days=3)).isoformat()
    result = CliRunner().invoke(cli, ["demo", "--project-dir", str(project), "--scale", SCALE, "--end", end,
                                      "--no-serve"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return project


def invoke(project, *args):
    return CliRunner().invoke(cli, ["--project-dir", str(project), *args], catch_exceptions=False)


def test_lineage_of_a_demo_model_shows_its_sources_and_training_set(demo):
    result = invoke(demo, "lineage", "fraud_model@1")
    assert result.exit_code == 0, result.output
    assert re.search(r"training set ts_[0-9a-f]{12} [\d,]+ rows, duckdb", result.output)
    for text in ("features of user_txn_stats@1", "dbt model user_txn_stats", "model stg_transactions",
                 "source raw.transactions", "source raw.users"):
        assert text in result.output, text


def test_lineage_json_is_a_nested_tree(demo):
    tree = json.loads(invoke(demo, "lineage", "user_profile.country", "--json").output)
    assert tree["kind"] == "feature" and tree["name"] == "user_profile.country@1"
    used_by = tree["children"][1]["children"]
    assert any(m["name"] == "fraud_model@1" for ts in used_by for m in ts["children"])


def test_parity_passes_after_the_demo_and_fails_naming_feature_and_entity_on_a_corrupt_value(demo):
    assert invoke(demo, "parity", "--all").exit_code == 0
    fs = FeatureStore(demo)
    user = fs.warehouse.fetch_arrow("select min(user_id) as u from user_txn_stats").column(0)[0].as_py()
    fs.close()
    store = open_online_store(demo)
    try:
        key = entity_key("user", (str(user),))
        field = value_field("user_txn_stats", 1)
        original = store.client.hget(key, field)
        store.client.hset(key, field, encode_values([999, 999, 999, -1.0, -1.0, -1.0]))
        result = invoke(demo, "parity", "--all", "--select", "user_txn_stats")
        assert result.exit_code == 1, result.output
        assert "user_txn_stats.txn_count_1h@1: 1 of" in result.output and f"entity {user}: online 999" in result.output
        store.client.hset(key, field, original)
    finally:
        store.close()


def test_freshness_exits_1_naming_the_views_past_their_slo(demo):
    result = invoke(demo, "freshness")
    assert result.exit_code == 1  # the demo's history ended three days ago: every view is behind
    assert re.search(r"user_txn_stats@1: newest event is [\d.]+[hd] old \(SLO 1\.0h\)", result.output)


def test_deploy_check_fails_a_demo_model_on_freshness_with_a_readable_report(demo):
    result = invoke(demo, "deploy-check", "fraud_model@1")
    assert result.exit_code == 1
    assert "deploy check: fraud_model@1" in result.output and "do not deploy" in result.output
    rows = json.loads(invoke(demo, "deploy-check", "fraud_model@1", "--json").output)["gates"]
    assert {(g["gate"], g["status"]) for g in rows} >= {("schema", "pass"), ("freshness", "fail"), ("parity", "pass")}


def test_check_passes_on_the_demo_project(demo):
    result = invoke(demo, "check")
    assert result.exit_code == 0, result.output


def log_served_vectors(demo, n: int = 120) -> None:
    """Vectors for fraud_model as serving would log them (every one sampled)."""
    from featurehouse.serving.served_log import ServedLog

    store = FeatureStore(demo)
    try:
        users = store.warehouse.fetch_arrow(f"select user_id from user_profile order by user_id limit {n}").column(0).to_pylist()
        vectors = store.online_features("user", [str(u) for u in users], model="fraud_model")
        ServedLog(1.0).append(store.online.client, vectors, "fraud_model@1")
    finally:
        store.close()


def test_skew_of_served_vectors_is_zero_when_serving_reads_a_synced_store(demo):
    log_served_vectors(demo)
    result = invoke(demo, "skew", "--model", "fraud_model@1", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {r["feature"] for r in rows} >= {"user_txn_stats.txn_count_1h@1", "user_profile.country@1"}
    assert all(r["compared"] >= 120 and r["mismatches"] == 0 for r in rows), rows


def test_drift_reports_a_psi_per_feature_of_the_training_set(demo):
    log_served_vectors(demo)
    training_set = json.loads(invoke(demo, "lineage", "fraud_model@1", "--json").output)["children"][0]["name"]
    result = invoke(demo, "drift", "--training-set", training_set, "--json")
    assert result.exit_code in (0, 1), result.output
    rows = {r["feature"]: r for r in json.loads(result.output)}
    assert rows["user_txn_stats.txn_count_1h@1"]["served"] >= 120 and rows["user_txn_stats.txn_count_1h@1"]["psi"] is not None
    assert all(r["flagged"] == (r["psi"] is not None and r["psi"] > 0.2) for r in rows.values())
