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
from featurehouse.online.history import KEEP_SAMPLES, LagSample, parse_lag_history, record_lag_sample
from featurehouse.online.keys import DEPLOY_CHECKS, LAG_HISTORY, entity_key
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


def test_the_stored_deploy_check_keeps_every_gate_but_no_entity_s_values(shop):
    store, _ = shop
    store.online.client.delete(entity_key("customer", (5,)))
    try:
        report = store.deploy_check("churn@1")
        assert not report.ok and any("of entity" in g.detail for g in report.gates if g.gate == "parity")
        stored = json.loads(store.online.client.hget(DEPLOY_CHECKS, "churn@1"))
        assert [g[:3] for g in stored["gates"]] == [[g.gate, g.subject, g.status] for g in report.gates]
        assert not any("of entity" in g[3] for g in stored["gates"])
        with ui(store) as http:
            page = http.get("/ui/models/churn@1").text
        assert 'id="verdict">failed<' in page and re.search(r'<tr class="g-fail"><th scope="row">parity</th>', page)
    finally:
        store.sync(full_refresh=True)
        store.deploy_check("churn@1")


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
    assert re.search(r"churn@1</a> trained on v1: the same features and types in v2: retrain to move", view)
    for page in out.rglob("*.html"):  # every link of the export leads to one of its files
        for target in re.findall(r'(?:href|src)="(?!data:)([^"#?]+)', page.read_text()):
            from urllib.parse import unquote

            assert (page.parent / unquote(target)).resolve().is_file(), f"{page.name} links to missing {target}"


def test_a_promoted_version_shows_in_the_catalog_after_the_registry_reloads(shop):
    store, _ = shop
    index = CatalogIndex(store.load_registry(refresh=True))
    assert index.views["customer_orders"].version == 2 and index.views["customer_orders"].candidates == ()


def test_a_model_page_shows_training_profiles_of_internal_views_only():
    """Every reader of the catalog sees every page: a pii view's distribution (mean, decile edges) is withheld."""
    from dataclasses import replace

    from featurehouse.ui.observed import TrainingSetSummary

    feature = "merchant_risk.chargeback_rate_30d@1"
    summary = TrainingSetSummary("ts_1", "2026-12-01T10:00:00", "fraud", "abc123", 100, "ts", "duckdb",
                                 {feature: "double"}, {}, {feature: {"kind": "numeric", "count": 100, "null_rate": 0.0,
                                                                     "mean": 0.123456, "edges": [0.01, 0.9]}})
    model = ModelVersionEntry("fraud", "3", (feature,), "ts_1", training_set=summary)
    observed = Observed(models={"fraud@3": model})
    index = CatalogIndex(shop_registry())
    shown = Renderer(index).model(ServerLinks(), model, observed)
    assert "0.1235" in shown and "0.01 – 0.9" in shown
    index.views["merchant_risk"] = replace(index.views["merchant_risk"], sensitivity="pii")
    withheld = Renderer(index).model(ServerLinks(), model, observed)
    assert "0.1235" not in withheld and "0.01 – 0.9" not in withheld
    assert "Its training profile is not shown: merchant_risk is pii" in withheld


def test_a_long_history_is_thinned_to_its_envelope():
    from featurehouse.ui.sparkline import BUCKETS, thinned

    samples = [LagSample(60.0 * i, 60.0, 0.0) for i in range(1, 2000)]  # a sync a minute, for a day and more
    points = lag_points(samples, 60.0 * 2000, 30.0)
    kept = thinned(points)
    assert len(kept) <= 2 * BUCKETS + 1 and kept[-1] == points[-1]
    assert max(p[1] for p in kept) == 60.0 and min(p[1] for p in kept) == 0.0  # every peak and drop still drawn
    assert kept == sorted(kept, key=lambda p: p[0])
