"""The web catalog's health beyond freshness and its model pages (issue 14): a view's last parity check,
the deploy-check gates of the model versions trained on it, its lag over time, what serving counted; a page
per model version (training set, spine fingerprint, features at their versions, verdict gate by gate);
lineage down to model versions and back; and what promoting a candidate version would break. Built on a
real dbt project (DuckDB), a real online store (the embedded Redis) and the served app."""

from __future__ import annotations

import contextlib
import json
import re

import pyarrow as pa
import pytest
from starlette.testclient import TestClient

from featurehouse import FeatureStore
from featurehouse.online.codec import encode_values
from featurehouse.online.history import KEEP_SAMPLES, LagSample, parse_lag_history, profile_summary, record_lag_sample
from featurehouse.online.keys import DEPLOY_CHECKS, GUARD_RESULTS, LAG_HISTORY, MODEL_RECORDS, entity_key, value_field
from featurehouse.online.store import RedisOnlineStore
from featurehouse.serving.app import ServeConfig, create_app
from featurehouse.ui.catalog import CatalogIndex
from featurehouse.ui.observed import GateResult, ModelVersionEntry, Observed, Verdict
from featurehouse.ui.pages import Renderer, ServerLinks
from featurehouse.ui.routes import catalog_pages
from featurehouse.ui.sparkline import lag_points, sparkline_svg
from featurehouse.ui.verdicts import impacts, judge
from tests.shop_project import now, write_project
from tests.test_catalog_ui import shop_registry


@pytest.fixture(scope="module")
def shop(tmp_path_factory, embedded_redis):
    """The shop project with customer_orders at v1 (active) and v2 (a candidate), synced; a training set
    recorded from v1 and bound to model churn@1, whose deploy check ran."""
    project = write_project(tmp_path_factory.mktemp("ui-guards"), versions=2)
    store = FeatureStore(project)
    store.use_online_store(RedisOnlineStore.from_url(embedded_redis.url + "?db=7"))
    store.online.client.flushdb()
    store.build(quiet=True)
    store.sync()
    spine = pa.table({"customer_id": list(range(1, 21)), "ts": [now()] * 20})
    ts = store.build_training_set(spine, ["customer_orders.n_small", "customer_orders.n_large"], "ts", name="churn-2026-12")
    store.register_model("churn@1", ts.record.training_set_id)
    store.deploy_check("churn@1")
    yield store, ts.record
    store.close()


@contextlib.contextmanager
def ui(store: FeatureStore):
    client = store.online.client.connection_pool.connection_kwargs
    url = f"unix://{client['path']}?db={client.get('db', 0)}" if "path" in client else None
    assert url, "the embedded Redis listens on a socket"
    app = create_app(store.registry, ServeConfig(redis_url=url, auth="none", log_sample_rate=0.0),
                     pages=catalog_pages(store.registry, "shop"))
    with TestClient(app) as http:
        yield http


def test_a_model_version_page_shows_its_training_set_features_and_verdict(shop):
    store, record = shop
    with ui(store) as http:
        listing = http.get("/ui/models").text
        page = http.get("/ui/models/churn@1").text
        missing = http.get("/ui/models/churn@9")
    assert re.search(r'href="/ui/models/churn@1">churn@1</a>.*?class="verdict m-passed">passed<', listing, re.S)
    assert f'id="training-set">{record.training_set_id}<' in page and "churn-2026-12" in page
    assert f'id="spine-fingerprint">{record.spine_fingerprint}<' in page  # the record's, as lineage reports it
    assert 'id="verdict">passed<' in page
    gates = re.findall(r'<tr class="g-(\w+)"><th scope="row">(\w+)</th>', page)
    assert ("pass", "schema") in gates and ("pass", "parity") in gates and ("pass", "freshness") in gates
    for feature in ("customer_orders.n_small@1", "customer_orders.n_large@1"):
        assert f"<code>{feature}</code>" in page  # features at the versions trained on
    assert 'href="/ui/views/customer_orders"' in page  # click through to the view
    assert "If customer_orders moves to v2: the same features and types: retrain on v2 to move" in page
    assert missing.status_code == 404 and "There is no registered model version churn@9" in missing.text
    with ui(store) as http:
        by_name = http.get("/ui/models/churn", follow_redirects=False)
        view_at = http.get("/ui/views/customer_orders@2", follow_redirects=False)
    assert by_name.status_code == 303 and by_name.headers["location"] == "/ui/models/churn@1"
    assert view_at.status_code == 303 and view_at.headers["location"] == "/ui/views/customer_orders#versions"


def test_a_view_links_to_the_model_versions_trained_on_it_and_says_what_a_candidate_would_break(shop):
    store, record = shop
    with ui(store) as http:
        page = http.get("/ui/views/customer_orders").text
    start = page.index('<svg class="lineage"')
    lineage = page[start:page.index("</svg>", start)]
    assert 'href="/ui/models/churn@1"' in lineage and "churn@1 (passed)" in lineage  # the picture links to it
    assert f"training set {record.training_set_id}" in lineage
    assert re.search(r'<ul id="model-versions"><li><a href="/ui/models/churn@1">churn@1</a>: deploy check '
                     r'<span class="verdict m-passed">passed</span>', page)
    assert "What would break if v2 were promoted" in page
    assert re.search(r'churn@1</a> \(trained on v1\): same features and types in v2', page)
    versions = page[page.index('id="versions"'):page.index("</table>", page.index('id="versions"'))]
    assert re.findall(r"<th scope=\"row\">v(\d)</th><td>([a-z ]+)", versions)[:2] == [("2", "candidate "), ("1", "active")]
    assert "Compiled SQL" in page and "n_small * 1 as n_small" in page  # dbt build compiled it


def test_a_version_that_removes_a_trained_feature_breaks_the_model():
    """merchant_risk v2 has no txn_count_30d: a model trained on v1's would break on promote."""
    index = CatalogIndex(shop_registry())
    risk = index.views["merchant_risk"]
    model = ModelVersionEntry("fraud", "3", ("merchant_risk.chargeback_rate_30d@1", "merchant_risk.txn_count_30d@1"),
                              "ts_1")
    (impact,) = impacts(risk, 2, [model])
    assert impact.status == "breaks" and impact.breaks == ("txn_count_30d: not in v2",)
    unrelated = ModelVersionEntry("growth", "1", ("merchant_profile.country@1",), "ts_2")
    assert impacts(risk, 2, [unrelated]) == []
    html = Renderer(index).view(ServerLinks(), risk, None, Observed(models={"fraud@3": model}))
    assert re.search(r"fraud@3</a> \(trained on v1\): <strong>breaks</strong>: txn_count_30d: not in v2", html)


def test_a_failed_parity_check_turns_the_view_failing_until_a_sync_repairs_it(shop):
    store, _ = shop
    key = entity_key("customer", (3,))
    store.online.client.delete(key)  # the online store lost an entity
    try:
        (result,) = store.parity(["customer_orders"])
        assert result.mismatched == 1
        with ui(store) as http:
            page = http.get("/ui/views/customer_orders").text
            health = http.get("/ui/health").text
        assert 'id="health-status">failing<' in page
        assert f"parity: 1 of {result.compared} entities differ" in page
        assert "of entity" not in page and "customer_id" not in page.split('id="health-reasons"')[1][:400]  # no ids
        tiles = re.findall(r'<span class="tile-status" data-view="([a-z_]+)">([a-z]+)<', health)
        assert tiles[0] == ("customer_orders", "failing")
    finally:
        store.sync(full_refresh=True)
    (result,) = store.parity(["customer_orders"])
    assert result.mismatched == 0
    with ui(store) as http:
        page = http.get("/ui/views/customer_orders").text
    assert 'id="health-status">ok<' in page and re.search(r'id="parity"><span class="gate gs-pass">pass</span> 0 of', page)


def test_a_failed_deploy_gate_on_its_features_is_the_view_s_failure_and_drift_only_a_warning(shop):
    store, _ = shop
    index = CatalogIndex(store.registry)
    view = index.views["customer_orders"]
    def model(gate: str) -> ModelVersionEntry:
        failed = GateResult(gate, "customer_orders.n_small@1", "fail", "2 of 40 served values differ")
        return ModelVersionEntry("churn", "2", ("customer_orders.n_small@1",), "ts_1",
                                 verdict=Verdict(False, 0.0, (), (failed,)))
    skew = judge(view, None, Observed(models={"churn@2": model("skew")}))
    drift = judge(view, None, Observed(models={"churn@2": model("drift")}))
    assert skew.status == "failing"
    assert skew.reasons == ("skew (churn@2): customer_orders.n_small@1: 2 of 40 served values differ",)
    assert drift.status == "warning"
    other = judge(index.views["customer_scores"], None, Observed(models={"churn@2": model("skew")}))
    assert other.status == "unwatched"  # another view's gate is not its own


def test_no_page_shows_an_entity_s_values_from_a_failed_check(shop):
    """A corrupted online value (a number seen nowhere else) fails parity and the deploy check, whose own
    reports name the entity and both values; the catalog's pages and hashes carry counts only."""
    store, _ = shop
    store.online.client.hset(entity_key("customer", ("5",)), value_field("customer_orders", 1),
                             encode_values([987654321, 123456789]))
    try:
        (parity,) = store.parity(["customer_orders"])
        report = store.deploy_check("churn@1")
        assert not report.ok and any("987654321" in g.detail for g in report.gates if g.gate == "parity")
        assert parity.mismatched == 1
        check = json.loads(store.online.client.hget(DEPLOY_CHECKS, "churn@1"))
        assert set(check) == {"ok", "checked_at", "failures"}  # what serving re-reads each second stays small
        gates = json.loads(store.online.client.hget(GUARD_RESULTS, "deploy:churn@1"))["gates"]
        assert [g[:3] for g in gates] == [[g.gate, g.subject, g.status] for g in report.gates]
        with ui(store) as http:
            pages = [http.get(path).text for path in ("/ui/views/customer_orders", "/ui/health", "/ui/models",
                                                      "/ui/models/churn@1")]
        assert 'id="verdict">failed<' in pages[3] and re.search(r'<tr class="g-fail"><th scope="row">parity</th>', pages[3])
        assert "parity: 1 of" in pages[0]
        for text in [*pages, json.dumps(gates), store.online.client.hget(GUARD_RESULTS, "parity:customer_orders@1").decode()]:
            assert "987654321" not in text and "123456789" not in text
    finally:
        store.sync(full_refresh=True)
        store.deploy_check("churn@1")
        store.parity(["customer_orders"])


def test_a_deploy_check_kept_before_its_gates_were_shows_its_failures_without_values(shop):
    """A verdict written by an earlier featurehouse: failures only, the parity one with an entity's values."""
    store, _ = shop
    legacy = {"ok": False, "checked_at": 1.0, "failures": [
        "parity: customer_orders@1: 1 of 20 entities differ (5.00%); e.g. customer_orders.n_small of entity 5: "
        "online 987654321, warehouse 3"]}
    store.online.client.hset(DEPLOY_CHECKS, "churn@0", json.dumps(legacy))
    store.online.client.hset("fh:model_versions", "churn@0", json.dumps(
        {"features": ["customer_orders.n_small@1"], "training_set": "ts_legacy"}))
    try:
        with ui(store) as http:
            page = http.get("/ui/models/churn@0").text
        assert "parity: customer_orders@1: 1 of 20 entities differ (5.00%)" in page and "987654321" not in page
        assert "registered before featurehouse kept its training set" in page  # no record: said so
    finally:
        store.online.client.hdel(DEPLOY_CHECKS, "churn@0")
        store.online.client.hdel("fh:model_versions", "churn@0")


def test_a_registration_is_kept_when_the_catalog_s_summary_cannot_be(shop):
    """The binding is what serving needs; the catalog's summary after it is bookkeeping."""
    store, record = shop
    client = store.online.client
    saved = client.hgetall(MODEL_RECORDS)
    client.delete(MODEL_RECORDS)
    client.set(MODEL_RECORDS, "not a hash")  # every HSET of it now fails (WRONGTYPE)
    try:
        mv = store.register_model("churn@2", record.training_set_id)
        assert mv.ref == "churn@2" and client.hexists("fh:model_versions", "churn@2")
    finally:
        client.delete(MODEL_RECORDS)
        if saved:
            client.hset(MODEL_RECORDS, mapping=saved)
        client.hdel("fh:model_versions", "churn@2")


def test_each_sync_adds_a_point_to_the_lag_history_the_view_page_draws(shop):
    store, _ = shop
    client = store.online.client
    before = parse_lag_history(client.hgetall(LAG_HISTORY)).get("customer_orders@1", [])
    store.sync(["customer_orders"])
    after = parse_lag_history(client.hgetall(LAG_HISTORY))["customer_orders@1"]
    assert len(after) == min(len(before) + 1, KEEP_SAMPLES)
    newest = after[-1]
    synced = store.online.last_synced("customer_orders", 1)
    assert synced is not None and abs(newest.at - synced) < 0.01 and newest.after == 0.0
    assert newest.before is not None and 0 <= newest.before <= newest.at - before[-1].at + 0.01
    with ui(store) as http:
        page = http.get("/ui/views/customer_orders").text
    assert '<svg class="sparkline' in page and "Materializer lag of customer_orders@1" in page
    from datetime import datetime, timezone

    shown = f"{datetime.fromtimestamp(synced, timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
    assert f"<dt>Last sync</dt><dd>{shown}</dd>" in page  # what the verdict was judged from, listed
    assert "<dt>SLO</dt><dd>1.0d</dd>" in page


def test_the_lag_history_keeps_the_newest_points_whoever_writes_them(embedded_redis):
    online = RedisOnlineStore.from_url(embedded_redis.url + "?db=8")
    try:
        online.client.delete(LAG_HISTORY)
        for i in range(KEEP_SAMPLES + 10):
            record_lag_sample(online.client, "v@1", 1000.0 + i, None if i == 0 else 60.0, 0.0)
        kept = parse_lag_history(online.client.hgetall(LAG_HISTORY))["v@1"]
        assert len(kept) == KEEP_SAMPLES and kept[0].at == 1010.0 and kept[-1].at == 1000.0 + KEEP_SAMPLES + 9
    finally:
        online.client.delete(LAG_HISTORY)
        online.close()


def test_a_sparkline_is_a_sawtooth_from_each_sync_s_peak_to_zero_and_ends_at_the_live_lag():
    samples = [LagSample(100.0, None, 0.0), LagSample(160.0, 60.0, 0.0), LagSample(220.0, 60.0, 0.0)]
    assert lag_points(samples, 250.0, 30.0) == [(100.0, 0.0), (160.0, 60.0), (160.0, 0.0), (220.0, 60.0),
                                                (220.0, 0.0), (250.0, 30.0)]
    svg = sparkline_svg(lag_points(samples, 250.0, 30.0), 45.0, "lag of v@1")
    assert 'class="slo"' in svg and "highest 1.0m" in svg and "now 30.0s" in svg and 'class="sparkline"' in svg
    assert 'class="sparkline over"' in sparkline_svg(lag_points(samples, 400.0, 180.0), 45.0, "lag")  # past the SLO
    assert sparkline_svg([(1.0, 0.0)], None, "one point") == ""
    far = sparkline_svg(lag_points(samples, 250.0, 30.0), 86400.0, "lag")  # a 1-day SLO would flatten the line
    assert 'class="slo"' not in far and "SLO 1.0d, far above, not drawn" in far


def test_the_view_page_counts_what_this_server_served(shop):
    store, _ = shop
    with ui(store) as http:
        for customer in (1, 2, 999):  # 999: no such customer, its values are nulls
            assert http.get(f"/v1/features/customer/{customer}",
                            params={"names": "customer_orders.n_small,customer_orders.n_large"}).status_code == 200
        page = http.get("/ui/views/customer_orders").text
    served = re.search(r'id="served">([\d,]+) values since the server started; nulls: (.*?)</dd>', page)
    assert served and served.group(1) == "6"
    for feature in ("customer_orders.n_large", "customer_orders.n_small"):
        assert f"<code>{feature}</code> 1" in served.group(2)


def test_a_model_page_shows_training_profiles_of_internal_views_only():
    """Every reader of the catalog sees every page: a pii view's distribution (mean, decile edges) is withheld."""
    from dataclasses import replace

    from featurehouse.ui.observed import TrainingSetSummary

    feature = "merchant_risk.chargeback_rate_30d@1"
    summary = TrainingSetSummary("ts_1", "2026-12-01T10:00:00", "fraud", "abc123", 100, "ts", "duckdb",
                                 {feature: "double"}, {}, {feature: profile_summary(
                                     {"kind": "numeric", "count": 100, "null_rate": 0.0, "mean": 0.123456,
                                      "edges": [0.01, 0.5, 0.9], "shares": [0.5, 0.5]})})
    model = ModelVersionEntry("fraud", "3", (feature,), "ts_1", training_set=summary)
    observed = Observed(models={"fraud@3": model})
    index = CatalogIndex(shop_registry())
    shown = Renderer(index).model(ServerLinks(), model, observed)
    assert "0.1235" in shown and "0.01 – 0.9" in shown
    index.views["merchant_risk"] = replace(index.views["merchant_risk"], sensitivity="pii")
    withheld = Renderer(index).model(ServerLinks(), model, observed)
    assert "0.1235" not in withheld and "0.01 – 0.9" not in withheld
    categorical = profile_summary({"kind": "categorical", "count": 9, "null_rate": 0.0, "shares": {"gold": 0.5, "tin": 0.5}})
    assert categorical == {"kind": "categorical", "count": 9, "null_rate": 0.0, "categories": 2}  # never the values
    summary = replace(summary, profile={feature: categorical})
    model = replace(model, training_set=summary)
    index.views["merchant_risk"] = replace(index.views["merchant_risk"], sensitivity="internal")
    assert "2 values counted" in Renderer(index).model(ServerLinks(), model, Observed(models={"fraud@3": model}))
    assert "built-in method" not in withheld
    assert "Its training profile is not shown: merchant_risk is confidential or pii (at v1 or now)" in withheld


def test_a_long_history_is_thinned_to_its_envelope():
    from featurehouse.ui.sparkline import BUCKETS, thinned

    samples = [LagSample(60.0 * i, 60.0, 0.0) for i in range(1, 2000)]  # a sync a minute, for a day and more
    points = lag_points(samples, 60.0 * 2000, 30.0)
    kept = thinned(points)
    assert len(kept) <= 2 * BUCKETS + 1 and kept[-1] == points[-1]
    assert max(p[1] for p in kept) == 60.0 and min(p[1] for p in kept) == 0.0  # every peak and drop still drawn
    assert kept == sorted(kept, key=lambda p: p[0])


def test_a_profile_is_withheld_when_the_trained_version_was_pii_even_if_the_active_one_is_not():
    from dataclasses import replace

    index = CatalogIndex(shop_registry())
    risk = index.views["merchant_risk"]
    index.views["merchant_risk"] = replace(risk, sensitivities=((1, "pii"), (2, "internal")))
    assert index.views["merchant_risk"].restricted(1) and not replace(risk, sensitivities=((1, "internal"),)).restricted(1)
    feature = "merchant_risk.chargeback_rate_30d@1"
    from featurehouse.ui.observed import TrainingSetSummary

    summary = TrainingSetSummary("ts_1", "", None, "f", 1, "ts", "duckdb", {feature: "double"}, {},
                                 {feature: {"kind": "numeric", "null_rate": 0.0, "mean": 0.123456, "low": 0.01, "high": 0.9}})
    model = ModelVersionEntry("fraud", "3", (feature,), "ts_1", training_set=summary)
    page = Renderer(index).model(ServerLinks(), model, Observed(models={"fraud@3": model}))
    assert "0.1235" not in page and "is confidential or pii (at v1 or now)" in page


def test_only_models_trained_on_an_earlier_version_are_listed_as_behind():
    index = CatalogIndex(shop_registry())
    risk = index.views["merchant_risk"]  # active v1, candidate v2
    on_candidate = ModelVersionEntry("fraud", "4", ("merchant_risk.chargeback_rate_30d@2",), "ts_4")
    page = Renderer(index).view(ServerLinks(), risk, None, Observed(models={"fraud@4": on_candidate}))
    assert "Model versions trained on an earlier version" not in page


def test_a_model_whose_name_holds_a_slash_has_a_page(shop):
    store, _ = shop
    client = store.online.client
    client.hset("fh:model_versions", "team/churn@1", json.dumps({"features": ["customer_orders.n_small@1"],
                                                                 "training_set": "ts_x"}))
    try:
        with ui(store) as http:
            listing = http.get("/ui/models").text
            link = re.search(r'href="(/ui/models/team[^"]*)"', listing)
            assert link, listing
            page = http.get(link.group(1))
        assert page.status_code == 200 and "<h1>team/churn@1" in page.text
    finally:
        client.hdel("fh:model_versions", "team/churn@1")


def test_a_serving_user_without_the_catalog_s_keys_still_gets_pages_that_say_what_is_missing(shop):
    """A serving Redis user made by an earlier `featurehouse online acl` (no read of the new hashes)."""
    store, _ = shop
    client = store.online.client
    client.execute_command("ACL", "SETUSER", "old-serving", "on", ">pw", "-@all", "+ping", "+hmget", "+fcall_ro",
                           "+hgetall", "+get", "+xadd", "+select", "%R~fh:{*",
                           "%R~fh:active_versions", "%R~fh:layouts", "%R~fh:materializer", "%R~fh:model_versions",
                           "%R~fh:deploy_checks", "%R~fh:tokens", "%R~fh:audit_key", "~fh:served", "~fh:audit")
    try:
        kwargs = client.connection_pool.connection_kwargs
        url = f"unix://old-serving:pw@{kwargs['path']}?db={kwargs.get('db', 0)}"
        app = create_app(store.registry, ServeConfig(redis_url=url, auth="none", log_sample_rate=0.0),
                         pages=catalog_pages(store.registry, "shop"))
        with TestClient(app) as http:
            view = http.get("/ui/views/customer_orders")
            health = http.get("/ui/health")
            vector = http.get("/v1/features/customer/1", params={"names": "customer_orders.n_small"})
        assert vector.status_code == 200
        for page in (view, health):
            assert page.status_code == 200
            assert "Redis user: apply `featurehouse online acl` again" in page.text and 'role="alert"' in page.text
        assert re.search(r"id=\"freshness-status\">ok<", view.text), view.text[view.text.find("Freshness"):][:600]
    finally:
        client.execute_command("ACL", "DELUSER", "old-serving")


def test_the_consumer_keeps_running_when_an_older_library_lacks_the_lag_history_function(shop):
    from featurehouse.online.store import FUNCTIONS

    store, _ = shop
    client = store.online.client
    start = FUNCTIONS.index("redis.register_function('fh_sample'")
    end = FUNCTIONS.index("end)\n", start) + len("end)\n")
    client.function_load(FUNCTIONS[:start] + FUNCTIONS[end:], replace=True)  # as an older writer loads it
    try:
        consumer = store.stream_consumer()
        consumer.run_once()  # records the lag; its history point is lost, the consumer is not
        assert consumer.stats is not None
    finally:
        client.function_load(FUNCTIONS, replace=True)


def test_compiled_sql_survives_a_dbt_command_that_compiled_only_other_models(shop):
    """As `featurehouse backfill` runs dbt on one model: the manifest then holds no compiled SQL for the others."""
    store, _ = shop
    store.close_warehouse()
    store.project.run_dbt(["build", "--select", "customer_scores"])
    nodes = store.project.manifest(refresh=True)["nodes"]
    orders = next(n for n in nodes.values() if n.get("name") == "customer_orders" and n.get("version") == 1)
    assert not orders.get("compiled_code")  # what dbt left: the case this guards against
    view = store.load_registry(refresh=True).view("customer_orders", 1)
    assert view.sql_compiled and "n_small * 1 as n_small" in view.sql and "{{" not in view.sql


def test_the_export_has_the_model_pages_and_each_view_s_promote_history(shop, tmp_path):
    """Last in this module: it promotes customer_orders v2."""
    from click.testing import CliRunner

    from featurehouse.cli.main import cli

    store, record = shop
    store.promote("customer_orders", 2)
    out = tmp_path / "site"
    url = store.online.client.connection_pool.connection_kwargs
    env = {"FEATUREHOUSE_REDIS_URL": f"unix://{url['path']}?db={url.get('db', 0)}"}
    store.close_warehouse()
    result = CliRunner().invoke(cli, ["--project-dir", str(store.project.dir), "docs", "generate", "--out", str(out)],
                                env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    model = (out / "models" / "churn@1.html").read_text()
    assert f'id="spine-fingerprint">{record.spine_fingerprint}<' in model and 'href="../views/customer_orders.html"' in model
    assert 'href="models/churn@1.html"' in (out / "models.html").read_text()
    view = (out / "views" / "customer_orders.html").read_text()
    assert re.search(r'<ul id="promotions"><li>v2 active from [\d: -]+ \(now\)</li>', view)
    assert 'href="../models/churn@1.html"' in view
    (row,) = store.freshness(["customer_orders@2"])  # the page is the active version's, v2 since the promote
    expected = "never" if row.last_sync_at is None else f"{row.last_sync_at:%Y-%m-%d %H:%M:%S} UTC"
    assert f"<dt>Last sync</dt><dd>{expected}</dd>" in view  # the check's own
    assert re.search(r"churn@1</a> trained on v1: the same features and types in v2: retrain to move", view)
    listed = CliRunner().invoke(cli, ["--project-dir", str(store.project.dir), "versions", "customer_orders", "--json"],
                                env=env, catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    versions = json.loads(listed.output)  # what the live page points to for the promote history
    assert versions["active"] == 2 and [p["version"] for p in versions["promotions"]] == [1, 2]
    assert versions["promotions"][-1]["active_until"] is None
    table = CliRunner().invoke(cli, ["--project-dir", str(store.project.dir), "versions", "customer_orders"], env=env)
    assert table.exit_code == 0 and "promote history" in table.output
    unknown = CliRunner().invoke(cli, ["--project-dir", str(store.project.dir), "versions", "customer_order"], env=env)
    assert unknown.exit_code != 0 and "customer_orders" in unknown.output  # the views it knows, named
    index = CatalogIndex(store.load_registry(refresh=True))  # the catalog, once the registry is loaded again
    assert index.views["customer_orders"].version == 2 and index.views["customer_orders"].candidates == ()
    for page in out.rglob("*.html"):  # every link of the export leads to one of its files
        for target in re.findall(r'(?:href|src)="(?!data:)([^"#?]+)', page.read_text()):
            from urllib.parse import unquote

            assert (page.parent / unquote(target)).resolve().is_file(), f"{page.name} links to missing {target}"


def test_lineage_says_the_sql_changed_only_when_its_checksum_did():
    """A model that became a dbt versioned model keeps its SQL under a new node id."""
    from dataclasses import replace

    from featurehouse.guard.lineage import _view_node

    view = replace(shop_registry().view("merchant_risk"), unique_id="model.shop.merchant_risk.v1", checksum="abc")
    assert "changed" not in _view_node({}, view, "model.shop.merchant_risk@abc")["detail"]
    assert "the model's SQL changed since" in _view_node({}, view, "model.shop.merchant_risk.v1@abd")["detail"]


def test_a_view_page_names_each_grant_with_its_purpose_and_end():
    from dataclasses import replace
    from datetime import date

    from featurehouse.registry.model import Grant

    registry = shop_registry()
    risk = registry.view("merchant_risk")
    registry.add(replace(risk, sensitivity="confidential",
                         shared_with=(Grant("fraud-ops", "chargeback review", date(2027, 1, 1)),)))
    index = CatalogIndex(registry)
    page = Renderer(index).view(ServerLinks(), index.views["merchant_risk"])
    assert "confidential</span>; shared with fraud-ops for &#39;chargeback review&#39; until 2027-01-01" in page


def test_the_exported_freshness_lists_the_check_s_own_times_in_utc():
    from datetime import datetime, timedelta, timezone

    from featurehouse.guard.freshness import ViewFreshness
    from featurehouse.ui.health import from_check

    naive = datetime(2026, 12, 2, 9, 30, 5)  # the warehouse's naive UTC
    aware = datetime(2026, 12, 2, 10, 0, 0, tzinfo=timezone(timedelta(hours=2)))  # 08:00 UTC
    row = ViewFreshness("v", 1, True, 900.0, naive, 60.0, aware, None, 12.5, 30.0, "ok", [])
    facts = dict(from_check(row, "now").facts)
    assert facts == {"Newest event": "2026-12-02 09:30:05 UTC", "Last sync": "2026-12-02 08:00:00 UTC",
                     "Stream lag": "12.5s", "SLO": "15.0m"}
