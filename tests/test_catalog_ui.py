"""The web catalog (issue 14, first slice): search over views and features, a page per view with its
owner, SLO, version and live freshness, served under /ui behind the API's authentication, and the same
catalog exported as static files. (Real-browser tests: tests/test_catalog_browser.py.)"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from featurehouse.online.store import RedisOnlineStore
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation
from featurehouse.serving.app import ServeConfig, create_app
from featurehouse.ui.catalog import CatalogIndex
from featurehouse.ui.export import export_site
from featurehouse.ui.pages import FreshnessPanel
from featurehouse.ui.routes import catalog_pages

MERCHANT = Entity("merchant", ("merchant_id",))


def shop_registry(extra_views: int = 0) -> Registry:
    r = Registry(entities={"merchant": MERCHANT})
    r.add(FeatureView("merchant_risk", 1, MERCHANT, Relation(None, None, "merchant_risk"), "event_time",
                      (Feature("merchant_risk", "chargeback_rate_30d", "double", 1, "Chargebacks / transactions"),
                       Feature("merchant_risk", "txn_count_30d", "bigint", 1)),
                      owner="risk-team", freshness_slo=timedelta(minutes=15), ttl=timedelta(days=30),
                      tags=("fraud", "daily"), description="Merchant <b>risk</b> signals"))
    r.add(FeatureView("merchant_risk", 2, MERCHANT, Relation(None, None, "merchant_risk_v2"), "event_time",
                      (Feature("merchant_risk", "chargeback_rate_30d", "double", 2),), owner="risk-team"))
    r.add(FeatureView("merchant_profile", 1, MERCHANT, Relation(None, None, "merchant_profile"), "updated_at",
                      (Feature("merchant_profile", "country", "varchar", 1),), owner="growth-team"))
    for i in range(extra_views):
        r.add(FeatureView(f"v{i:04d}", 1, MERCHANT, Relation(None, None, f"v{i:04d}"), "event_time",
                          tuple(Feature(f"v{i:04d}", f"f{j}", "bigint", 1) for j in range(50)), owner=f"team-{i % 7}"))
    return r


# -- search -------------------------------------------------------------------------------------------------

def test_every_word_must_appear_in_the_feature_or_its_view():
    index = CatalogIndex(shop_registry())
    names = lambda q: [f.name for f in index.search(q).items]  # noqa: E731
    assert names("chargeback") == ["merchant_risk.chargeback_rate_30d"]
    # by owner: the features of the active version (1), not those of version 2
    assert names("risk-team") == ["merchant_risk.chargeback_rate_30d", "merchant_risk.txn_count_30d"]
    assert names("fraud count") == ["merchant_risk.txn_count_30d"]  # a tag and a word of the name
    assert names("growth country") == ["merchant_profile.country"]
    assert names("CHARGEBACK transactions") == ["merchant_risk.chargeback_rate_30d"]  # its description, any case
    assert names("chargeback growth") == []
    assert [v.name for v in index.matching_views("risk")] == ["merchant_risk"]


def test_a_view_is_listed_at_its_active_version_with_every_version_it_has():
    index = CatalogIndex(shop_registry())
    risk = index.views["merchant_risk"]
    assert (risk.version, risk.versions) == (1, (1, 2))  # the registry's active version (none promoted: 1)
    assert (risk.freshness_slo, risk.ttl) == ("15m", "30d")


def test_listings_are_paged_on_the_server():
    index = CatalogIndex(shop_registry(extra_views=200))
    assert index.feature_count == 3 + 200 * 50
    page = index.search("team-3", page=2, per_page=50)
    assert (page.total, page.pages, page.page, len(page.items)) == (29 * 50, 29, 2, 50)
    assert index.search("team-3", page=99).page == 29  # past the end: the last page
    assert index.view_page(1, per_page=50).pages == 5


# -- served under /ui -----------------------------------------------------------------------------------------

@pytest.fixture
def online(embedded_redis):
    store = RedisOnlineStore.from_url(embedded_redis.url)
    store.client.flushdb()
    yield store
    store.close()


def ui_client(online, auth: str = "none") -> TestClient:
    registry = shop_registry()
    url = online.client.connection_pool.connection_kwargs
    app = create_app(registry, ServeConfig(redis_url=f"unix://{url['path']}", auth=auth, log_sample_rate=0.0),
                     pages=catalog_pages(registry, "shop"))
    return TestClient(app)


def test_the_catalog_lists_views_and_finds_features(online):
    with ui_client(online) as http:
        home = http.get("/ui")
        found = http.get("/ui", params={"q": "chargeback"})
        api = http.get("/ui/api/search", params={"q": "merchant", "per_page": 2}).json()
    assert home.status_code == 200 and "merchant_risk" in home.text and "merchant_profile" in home.text
    assert 'href="/ui/views/merchant_risk#f-chargeback_rate_30d"' in found.text
    assert "merchant_profile.country" not in found.text
    assert (api["total"], api["pages"], len(api["features"])) == (3, 2, 2)
    assert home.headers["content-security-policy"].startswith("default-src 'none'")


def test_the_json_search_pages_to_an_empty_end_and_refuses_a_page_out_of_range(online):
    with ui_client(online) as http:
        last = http.get("/ui/api/search", params={"q": "merchant", "per_page": 2, "page": 2}).json()
        past = http.get("/ui/api/search", params={"q": "merchant", "per_page": 2, "page": 3}).json()
        bad = [http.get("/ui/api/search", params=p) for p in ({"page": 0}, {"page": "abc"}, {"per_page": 0},
                                                              {"per_page": 100_000})]
    assert (len(last["features"]), last["pages"]) == (1, 2)
    assert past["features"] == [] and past["page"] == 3
    assert [r.status_code for r in bad] == [422] * 4 and "per_page must be from 1 to 500" in bad[3].text


def test_a_view_page_shows_owner_slo_version_and_live_freshness(online):
    registry = shop_registry()
    view = registry.view("merchant_risk")
    with ui_client(online) as http:
        never = http.get("/ui/views/merchant_risk").text
        online.mark_synced("merchant_risk", 1, time.time() - 3600)  # an hour ago: the sync stopped
        time.sleep(1.05)  # the worker reads the marks again at most once a second
        stale = http.get("/ui/views/merchant_risk").text
        online.mark_synced("merchant_risk", 1, time.time() - 60)  # a minute ago: within the 15m SLO
        time.sleep(1.05)
        fresh = http.get("/ui/views/merchant_risk").text
    assert re.search(r'id="owner">risk-team<', fresh) and re.search(r'id="slo">15m<', fresh)
    assert re.search(r'id="version">1 \(versions: 1, 2\)<', fresh)
    status = lambda html: re.search(r'id="freshness-status">([a-z-]+)<', html).group(1)  # noqa: E731
    assert (status(never), status(fresh), status(stale)) == ("breach", "ok", "breach")
    assert "sync lags 1.0h (SLO 15.0m)" in stale  # the words of `featurehouse freshness`
    assert view.description and "Merchant &lt;b&gt;risk&lt;/b&gt; signals" in fresh  # text, never markup


def test_live_freshness_judges_the_age_of_the_newest_event_written_as_the_guard_does(online):
    """A sync that runs on time but finds only old data: its lag is fine, the data is not. The live page
    says breach with the guard's own words, from the newest event time the sync wrote."""
    with ui_client(online) as http:
        online.mark_synced("merchant_risk", 1, time.time() - 30)
        online.mark_newest_event("merchant_risk", 1, time.time() - 7200)  # two hours old, SLO 15 minutes
        time.sleep(1.05)
        page = http.get("/ui/views/merchant_risk").text
    assert 'id="freshness-status">breach<' in page
    assert "newest event is 2.0h old (SLO 15.0m)" in page


def test_the_health_page_puts_failing_views_first_and_counts_each_status(online):
    with ui_client(online) as http:
        before = http.get("/ui/health").text
        online.mark_synced("merchant_risk", 1, time.time() - 60)
        time.sleep(1.05)
        after = http.get("/ui/health").text
    tiles = lambda html: re.findall(r'<span class="tile-status" data-view="([a-z_]+)">([a-z-]+)<', html)  # noqa: E731
    assert tiles(before) == [("merchant_risk", "failing"), ("merchant_profile", "unwatched")]  # never synced
    assert re.search(r'<span class="tally t-failing">1 failing</span>', before)
    assert tiles(after) == [("merchant_risk", "ok"), ("merchant_profile", "unwatched")]


def test_an_unknown_view_is_a_404_that_searches_for_it(online):
    with ui_client(online) as http:
        page = http.get("/ui/views/merchant")
    assert page.status_code == 404 and "merchant_risk" in page.text


@pytest.fixture
def tokens(online) -> tuple[str, str]:
    """(a read token, a push-only token), live in the online store as `featurehouse token create` leaves them."""
    from featurehouse.access.tokens import new_token
    from featurehouse.clock import utc_now

    reader, record = new_token("analyst", "read", timedelta(hours=1), utc_now())
    pusher, push_record = new_token("loader", "push", timedelta(hours=1), utc_now())
    for r in (record, push_record):
        online.client.hset("fh:tokens", r.token_id, r.online_value())
    return reader, pusher


def test_the_catalog_is_behind_the_api_s_tokens(online, tokens):
    reader, pusher = tokens
    with ui_client(online, auth="token") as http:
        refused = http.get("/ui", follow_redirects=False)
        allowed = http.get("/ui", headers={"Authorization": f"Bearer {reader}"})
        no_read = http.get("/ui/views/merchant_risk", headers={"Authorization": f"Bearer {pusher}"})
    assert refused.status_code == 303 and refused.headers["location"] == "/ui/login?next=%2Fui"  # a browser: sign in
    assert allowed.status_code == 200
    assert no_read.status_code == 403 and "needs scope read" in no_read.text


def test_a_browser_signs_in_with_a_token_kept_in_a_cookie_that_only_the_catalog_accepts(online, tokens):
    reader, pusher = tokens
    with ui_client(online, auth="token") as http:
        assert http.get("/ui/api/search", params={"q": "x"}, follow_redirects=False).status_code == 401  # JSON: no redirect
        form = http.get("/ui/login", params={"next": "/ui/views/merchant_risk"})
        assert form.status_code == 200 and 'name="next" value="/ui/views/merchant_risk"' in form.text
        assert "merchant" not in form.text.replace("/ui/views/merchant_risk", "")  # nothing of the catalog before sign-in
        wrong = http.post("/ui/login", data={"token": "fht_nope_" + "A" * 43, "next": "/ui"}, follow_redirects=False)
        assert wrong.status_code == 401 and 'id="login-error"' in wrong.text
        push_only = http.post("/ui/login", data={"token": pusher}, follow_redirects=False)
        assert push_only.status_code == 401 and "needs scope read" in push_only.text
        forged = http.post("/ui/login", data={"token": reader}, headers={"origin": "https://evil.example"},
                           follow_redirects=False)
        assert forged.status_code == 403
        for elsewhere, lands in [("https://evil.example/", "/ui"), ("//evil.example/ui", "/ui"),  # never another site
                                 ("/ui/../docs", "/ui"), ("/ui/views/%2e%2e/%2e%2e/openapi.json", "/ui"),  # nor route
                                 ("/ui/views/merchant_risk?x=1#f-txn_count_30d", "/ui/views/merchant_risk?x=1#f-txn_count_30d")]:
            away = http.post("/ui/login", data={"token": reader, "next": elsewhere}, follow_redirects=False)
            assert away.status_code == 303 and away.headers["location"] == lands, elsewhere
        signed = http.post("/ui/login", data={"token": reader, "next": "/ui/views/merchant_risk"},
                           follow_redirects=False)
        assert signed.status_code == 303 and signed.headers["location"] == "/ui/views/merchant_risk"
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith("fh_ui=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Path=/ui" in cookie
        page = http.get("/ui/views/merchant_risk")  # the client keeps the cookie, as a browser does
        assert page.status_code == 200 and "Sign out" in page.text
        api = http.get("/v1/features/merchant/1", params={"names": "merchant_risk.txn_count_30d"})
        assert api.status_code == 401  # the cookie opens the catalog, never the API
        assert http.post("/ui/logout", headers={"origin": "https://evil.example"}, follow_redirects=False).status_code == 403
        out = http.post("/ui/logout", follow_redirects=False)
        assert out.status_code == 303 and 'fh_ui=""' in out.headers["set-cookie"]


# -- exported -------------------------------------------------------------------------------------------------

def test_the_export_is_files_that_link_to_each_other(tmp_path):
    index = CatalogIndex(shop_registry(extra_views=60))
    panel = FreshnessPanel("breach", "newest event 2.0h old; SLO 15.0m", ("newest event is 2.0h old (SLO 15.0m)",),
                           "as of 2026-12-02 10:00 UTC")
    written = export_site(index, tmp_path, {"merchant_risk": panel}, "shop", "2026-12-02 10:00 UTC", per_page=50)
    files = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert {"index.html", "index-2.html", "search.html", "health.html", "views/merchant_risk.html", "static/ui.css",
            "static/search.js", "static/search-index.js"} <= files
    assert written == 2 + 3 + 62  # index pages; search, health and models; a page per view
    assert 'class="tile v-failing"' in (tmp_path / "health.html").read_text()
    home = (tmp_path / "index.html").read_text()
    assert 'href="views/merchant_risk.html"' in home and 'href="index-2.html"' in home
    risk = (tmp_path / "views" / "merchant_risk.html").read_text()
    assert 'href="../static/ui.css"' in risk and 'id="freshness-status">breach<' in risk
    assert "as of 2026-12-02 10:00 UTC" in risk
    for page in tmp_path.rglob("*.html"):  # every link in the site leads to a file of the site
        for target in re.findall(r'(?:href|src)="(?!data:)([^"#?]+)', page.read_text()):
            assert (page.parent / target).resolve().is_file(), f"{page.name} links to missing {target}"
    (tmp_path / "views" / "ghost.html").write_text("a view since removed")
    export_site(CatalogIndex(shop_registry()), tmp_path, {}, "shop", "later", per_page=50)  # a smaller catalog
    files = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.html")}
    assert "views/ghost.html" not in files and "index-2.html" not in files and "views/v0001.html" not in files



def test_a_view_page_draws_its_lineage_from_dbt_sources_to_the_models_using_it(online):
    from featurehouse.registry.model import ModelSpec
    from featurehouse.ui.graph import Node, flow_svg

    registry = shop_registry()
    registry.models["chargeback_model"] = ModelSpec("chargeback_model", ("merchant_risk.chargeback_rate_30d",))
    index = CatalogIndex(registry)
    assert index.views["merchant_risk"].used_by == ("chargeback_model",)
    assert index.views["merchant_profile"].used_by == ()
    picture = flow_svg([[Node("<script>alert(1)</script> (source)", "source")], [Node("v", "view")],
                        [Node("m & n (model)", "exposure", '/ui/models/m"n')]], [((0, 0), (1, 0)), ((1, 0), (2, 0))],
                       "Lineage of v")
    assert "<script>" not in picture and "&lt;script&gt;" in picture and "m &amp; n" in picture
    assert 'href="/ui/models/m&quot;n"' in picture  # a quote cannot end the attribute
    assert picture.count('marker-end="url(#arrow)"') == 2  # one edge into the view, one out of it
    url = online.client.connection_pool.connection_kwargs["path"]
    app = create_app(registry, ServeConfig(redis_url=f"unix://{url}", auth="none", log_sample_rate=0.0),
                     pages=catalog_pages(registry))
    with TestClient(app) as http:
        page = http.get("/ui/views/merchant_risk").text
    assert '<svg class="lineage"' in page and "chargeback_model (exposure)" in page
    assert re.search(r'<ul id="used-by"><li>chargeback_model</li></ul>', page)
