"""The web catalog in a real browser (issue 14): headless Chromium (Debian's package, driven by Playwright
without any browser download) against a real `featurehouse serve` and against the static export opened
from disk. Search finds a feature; its page shows the owner, SLO and version, and the freshness that
`featurehouse freshness --json` reports; a deliberately broken guard turns the view red; the export's
search gives the server's results; every page passes axe's accessibility rules. Screenshots of every page
go to $FEATUREHOUSE_TEST_ARTIFACTS (default .test-artifacts/ui)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from featurehouse import FeatureStore
from featurehouse.online.keys import MATERIALIZER, entity_key
from featurehouse.online.store import RedisOnlineStore
from tests.shop_project import serving, write_project

REPO = Path(__file__).resolve().parent.parent


def _chromium() -> str | None:
    return os.environ.get("FEATUREHOUSE_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _skip_reason() -> str | None:
    try:
        import axe_playwright_python  # noqa: F401
        import playwright  # noqa: F401
    except ImportError:
        return "browser tests skipped: pip install -e '.[test]' (playwright, axe-playwright-python)"
    if _chromium() is None:
        return "browser tests skipped: no Chromium (apt-get install chromium, or set FEATUREHOUSE_TEST_CHROMIUM)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")

QUERIES = ["customer", "orders n_small", "shop-team", "score", "no-such-feature"]


@pytest.fixture(scope="module")
def artifacts() -> Path:
    out = Path(os.environ.get("FEATUREHOUSE_TEST_ARTIFACTS") or REPO / ".test-artifacts" / "ui")
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def shop(tmp_path_factory, embedded_redis):
    """The shop project, built and synced into the embedded Redis (database of its own)."""
    project = write_project(tmp_path_factory.mktemp("ui-shop"))
    url = embedded_redis.url
    store = FeatureStore(project)
    store.use_online_store(RedisOnlineStore.from_url(url))
    store.online.client.flushdb()
    store.build(quiet=True)
    store.sync()
    store.close()
    return project, url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        yield b
        b.close()


def featurehouse(project: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FEATUREHOUSE_REDIS_URL": url}
    return subprocess.run([sys.executable, "-m", "featurehouse.cli.main", "--project-dir", str(project), *args],
                          env=env, capture_output=True, text=True, timeout=300)


RED = "rgb(163, 19, 27)"  # the stylesheet's --bad


def colour(locator) -> str:
    return locator.evaluate("e => getComputedStyle(e).color")


def accessible(page) -> None:
    """axe-core's rules (WCAG 2 A and AA: labels, contrast, landmarks, names...) find nothing on the page."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    violations = results.response["violations"]
    assert not violations, "; ".join(f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes)" for v in violations)


def test_search_finds_a_feature_whose_page_shows_owner_slo_version_and_the_freshness_check(shop, browser, artifacts):
    project, url = shop
    checked = featurehouse(project, url, "freshness", "--json")
    assert checked.returncode == 0, checked.stderr
    statuses = {row["view"]: row["status"].replace(" ", "-") for row in json.loads(checked.stdout)}
    with serving(project, url) as base:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(f"{base}/ui")
        page.screenshot(path=str(artifacts / "live-catalog.png"), full_page=True)
        accessible(page)
        page.get_by_label("Search features").fill("n_small")
        page.get_by_role("button", name="Search").click()
        page.wait_for_url("**/ui?q=n_small")
        page.screenshot(path=str(artifacts / "live-search.png"), full_page=True)
        accessible(page)
        page.get_by_role("link", name="customer_orders.n_small").click()
        page.wait_for_url("**/ui/views/customer_orders#f-n_small")
        page.screenshot(path=str(artifacts / "live-view.png"), full_page=True)
        accessible(page)
        assert page.locator("#owner").inner_text() == "shop-team"
        assert page.locator("#slo").inner_text() == "1d"
        assert page.locator("#version").inner_text() == "1"
        assert page.locator("#freshness-status").inner_text() == statuses["customer_orders"] == "ok"
        page.goto(f"{base}/ui/views/customer_scores")
        assert page.locator("#freshness-status").inner_text() == statuses["customer_scores"] == "no-slo"
        page.close()


def test_a_broken_guard_turns_its_view_red(shop, browser, artifacts):
    """The view's sync mark removed from the online store (as if it had never synced, or was wiped): its
    materializers are behind its SLO, and the page says so, in red, with the reason."""
    project, url = shop
    online = RedisOnlineStore.from_url(url)
    field = "customer_orders@1:synced_at"
    mark = online.client.hget(MATERIALIZER, field)
    online.client.hdel(MATERIALIZER, field)
    try:
        checked = featurehouse(project, url, "freshness", "--json", "-s", "customer_orders")
        assert checked.returncode == 1  # the guard's own verdict: a breach
        with serving(project, url) as base:
            page = browser.new_page()
            page.goto(f"{base}/ui/views/customer_orders")
            status = page.locator("#freshness-status")
            assert status.inner_text() == "breach"
            assert colour(status) == RED
            assert "never synced or streamed to the online store" in page.locator(".health").inner_text()
            page.screenshot(path=str(artifacts / "live-view-breach.png"), full_page=True)
            accessible(page)
            page.get_by_role("link", name="Health").click()
            page.wait_for_url("**/ui/health")
            first = page.locator(".tile").first
            assert first.locator(".tile-name").inner_text() == "customer_orders"  # breaches first
            assert colour(first.locator(".tile-status")) == RED
            page.screenshot(path=str(artifacts / "live-health-breach.png"), full_page=True)
            accessible(page)
            page.close()
    finally:
        if mark is not None:
            online.client.hset(MATERIALIZER, field, mark)
        online.close()


@pytest.fixture(scope="module")
def churn(shop):
    """A training set recorded from customer_orders and bound to model churn@1, whose deploy check ran."""
    import pyarrow as pa

    from tests.shop_project import now

    project, url = shop
    store = FeatureStore(project)
    store.use_online_store(RedisOnlineStore.from_url(url))
    spine = pa.table({"customer_id": list(range(1, 21)), "ts": [now()] * 20})
    ts = store.build_training_set(spine, ["customer_orders.n_small", "customer_orders.n_large"], "ts", name="churn")
    store.register_model("churn@1", ts.record.training_set_id)
    assert store.deploy_check("churn@1").ok
    store.close()
    return ts.record


def test_lineage_leads_from_a_view_to_its_model_version_and_back_and_a_failed_parity_turns_it_red(
        shop, churn, browser, artifacts):
    project, url = shop
    with serving(project, url) as base:
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(f"{base}/ui/views/customer_orders")
        assert page.locator("#health-status").inner_text() == "ok"
        page.screenshot(path=str(artifacts / "live-view-lineage.png"), full_page=True)
        accessible(page)
        page.locator("svg.lineage").get_by_role("link", name="churn@1 (passed)").click()  # the picture's box links
        page.wait_for_url("**/ui/models/churn@1")
        assert page.locator("#verdict").inner_text() == "passed"
        assert page.locator("#spine-fingerprint").inner_text() == churn.spine_fingerprint
        page.screenshot(path=str(artifacts / "live-model.png"), full_page=True)
        accessible(page)
        page.get_by_role("link", name="customer_orders", exact=True).first.click()  # and back
        page.wait_for_url("**/ui/views/customer_orders")
        page.get_by_role("link", name="Models").click()
        page.wait_for_url("**/ui/models")
        page.screenshot(path=str(artifacts / "live-models.png"), full_page=True)
        accessible(page)

        made = featurehouse(project, url, "parity", "-s", "customer_orders")
        assert made.returncode == 0, made.stderr
        online = RedisOnlineStore.from_url(url)
        online.client.delete(entity_key("customer", (4,)))  # the online store lost an entity
        try:
            broken = featurehouse(project, url, "parity", "-s", "customer_orders")
            assert broken.returncode == 1, broken.stdout  # the guard's own verdict
            page.goto(f"{base}/ui/views/customer_orders")
            status = page.locator("#health-status")
            assert status.inner_text() == "failing"
            assert colour(status) == RED
            assert "parity: 1 of" in page.locator("#health-reasons").inner_text()
            page.screenshot(path=str(artifacts / "live-view-parity-failing.png"), full_page=True)
            accessible(page)
            page.goto(f"{base}/ui/health")
            tile = page.locator('.tile-status[data-view="customer_orders"]')
            assert tile.inner_text().lower() == "failing"
            assert colour(tile) == RED
            page.screenshot(path=str(artifacts / "live-health-parity-failing.png"), full_page=True)
        finally:
            featurehouse(project, url, "sync", "--full-refresh")
            featurehouse(project, url, "parity", "-s", "customer_orders")
            online.close()
        page.close()


def test_the_static_export_opens_from_disk_and_its_search_gives_the_server_s_results(shop, browser, artifacts,
                                                                                    tmp_path):
    from starlette.testclient import TestClient

    from featurehouse.serving.app import ServeConfig, create_app
    from featurehouse.ui.routes import catalog_pages

    project, url = shop
    out = tmp_path / "site"
    made = featurehouse(project, url, "docs", "generate", "--out", str(out))
    assert made.returncode == 0, made.stderr
    registry = FeatureStore(project).registry
    app = create_app(registry, ServeConfig(redis_url=url, auth="none", log_sample_rate=0.0),
                     pages=catalog_pages(registry))
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto((out / "index.html").as_uri())
    page.screenshot(path=str(artifacts / "static-catalog.png"), full_page=True)
    accessible(page)
    assert page.get_by_role("link", name="customer_orders").count() == 1
    with TestClient(app) as http:
        for query in QUERIES:
            served = [f["name"] for f in http.get("/ui/api/search", params={"q": query, "per_page": 500}).json()["features"]]
            page.goto((out / "index.html").as_uri())
            page.get_by_label("Search features").fill(query)
            page.get_by_role("button", name="Search").click()
            page.wait_for_load_state()
            shown = page.locator("#results tbody th a").all_inner_texts()
            assert shown == served, query
    page.screenshot(path=str(artifacts / "static-search.png"), full_page=True)
    accessible(page)
    page.goto((out / "health.html").as_uri())
    page.screenshot(path=str(artifacts / "static-health.png"), full_page=True)
    accessible(page)
    assert page.locator('.tile-status[data-view="customer_orders"]').text_content() == "ok"
    page.goto((out / "views" / "customer_orders.html").as_uri())
    page.screenshot(path=str(artifacts / "static-view.png"), full_page=True)
    accessible(page)
    assert page.locator("#owner").inner_text() == "shop-team"
    assert page.locator("#freshness-status").inner_text() == "ok"
    assert "from the same check as featurehouse freshness" in page.locator(".health").inner_text()
    if (out / "models" / "churn@1.html").exists():  # the model pages, when a model version is registered
        page.locator("svg.lineage a").last.click()
        page.wait_for_load_state()
        assert page.url.endswith("/models/churn@1.html")
        page.screenshot(path=str(artifacts / "static-model.png"), full_page=True)
        accessible(page)
    page.close()


def test_a_catalog_of_10000_features_renders_a_page_in_well_under_a_second():
    """Server time for the views page and a search over 200 views x 50 features (the bench gives figures)."""
    from featurehouse.ui.catalog import CatalogIndex
    from featurehouse.ui.pages import Renderer, ServerLinks
    from tests.test_catalog_ui import shop_registry

    renderer = Renderer(CatalogIndex(shop_registry(extra_views=200)))
    renderer.catalog(ServerLinks(), "")  # templates compiled once, as in a worker
    started = time.perf_counter()
    renderer.catalog(ServerLinks(), "")
    renderer.catalog(ServerLinks(), "team-3 f4")
    assert time.perf_counter() - started < 1.0


def test_a_token_protected_server_asks_a_browser_to_sign_in(shop, browser, artifacts, monkeypatch):
    """With tokens on (serve's default), a browser is sent to the sign-in page, and a read token pasted
    there opens the catalog at the page it asked for."""
    project, url = shop
    made = featurehouse(project, url, "token", "create", "--principal", "ana", "--scopes", "read", "--ttl", "1d")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    monkeypatch.setenv("FEATUREHOUSE_AUTH", "token")
    with serving(project, url) as base:
        page = browser.new_page()
        page.goto(f"{base}/ui/views/customer_orders")
        page.wait_for_url("**/ui/login?next=%2Fui%2Fviews%2Fcustomer_orders")
        page.screenshot(path=str(artifacts / "live-sign-in.png"), full_page=True)
        accessible(page)
        page.get_by_label("API token").fill("fht_wrong_" + "A" * 43)
        page.get_by_role("button", name="Sign in").click()
        assert page.get_by_role("alert").is_visible()
        page.get_by_label("API token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/ui/views/customer_orders")
        assert page.locator("#owner").inner_text() == "shop-team"
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/ui/login")
        page.close()
