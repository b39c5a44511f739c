"""Serving: vectors with freshness over HTTP (the ASGI app on a real Redis) and in-process."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from featurehouse import FeatureStore
from featurehouse.online.embedded import EmbeddedRedis
from featurehouse.online.store import OnlineRow, RedisOnlineStore
from featurehouse.registry.model import Entity, Feature, FeatureView, ModelSpec, Registry, Relation
from featurehouse.serving.app import ServeConfig, create_app
from featurehouse.serving.vectors import utcnow
from featurehouse.online.keys import MATERIALIZER

USER = Entity("user", ("user_id",))
PAIR = Entity("card_merchant", ("card_id", "merchant_id"))


def registry() -> Registry:
    r = Registry(entities={"user": USER, "card_merchant": PAIR})
    r.add(FeatureView("txn", 1, USER, Relation(None, None, "txn"), "event_time",
                      (Feature("txn", "count_1h", "bigint", 1), Feature("txn", "amount", "double", 1)),
                      freshness_slo=timedelta(minutes=5), ttl=timedelta(days=1)))
    r.add(FeatureView("profile", 1, USER, Relation(None, None, "profile"), "updated_at",
                      (Feature("profile", "country", "varchar", 1),)))
    r.add(FeatureView("pair", 1, PAIR, Relation(None, None, "pair"), "event_time",
                      (Feature("pair", "n", "bigint", 1),)))
    r.models["fraud"] = ModelSpec("fraud", ("txn.count_1h", "profile.country", "pair.n"))
    return r


@pytest.fixture
def online(redis_url):
    store = RedisOnlineStore.from_url(redis_url)
    store.client.flushdb()
    now = utcnow()
    reg = registry()
    store.write(reg.view("txn"), [OnlineRow((1,), now - timedelta(seconds=30), None, (3, 12.5)),   # fresh
                                  OnlineRow((2,), now - timedelta(hours=2), None, (7, 1.0)),      # past the 5 min SLO
                                  OnlineRow((3,), now - timedelta(days=2), None, (9, 9.0))])      # past the 1 day TTL
    store.write(reg.view("profile"), [OnlineRow((1,), now - timedelta(days=400), None, ("日本",))])
    store.write(reg.view("pair"), [OnlineRow((7, "m;1"), now, None, (42,))])
    yield store
    store.close()


@pytest.fixture
def client(online, redis_url):
    app = create_app(registry(), ServeConfig(auth="none", push=True, redis_url=redis_url, max_ids=50))
    app.state.reader.refresh_s = 0  # see materializer changes at once
    with TestClient(app) as c:
        yield c


def get(client, entity, key, **params):
    return client.get(f"/v1/features/{entity}/{key}", params=params)


def test_a_vector_carries_values_event_times_ages_and_status(client):
    body = get(client, "user", "1", names="txn.count_1h,txn.amount,profile.country").json()
    f = body["features"]
    assert (f["txn.count_1h"]["value"], f["txn.amount"]["value"], f["profile.country"]["value"]) == (3, 12.5, "日本")
    assert f["txn.count_1h"]["status"] == "ok" and 29 < f["txn.count_1h"]["age_seconds"] < 120
    assert f["profile.country"]["status"] == "ok"  # no SLO, no TTL: never stale
    assert body["stale"] is False and body["entity_id"] == "1" and body["served_at"].endswith("Z")
    assert list(f) == ["txn.count_1h", "txn.amount", "profile.country"]  # request order


def test_a_value_older_than_its_slo_is_stale(client):
    body = get(client, "user", "2", names="txn.count_1h").json()
    assert body["features"]["txn.count_1h"] == {**body["features"]["txn.count_1h"], "value": 7, "stale": True, "status": "stale"}
    assert body["stale"] is True


def test_a_value_past_its_ttl_is_withheld_as_expired(client):
    value = get(client, "user", "3", names="txn.count_1h").json()["features"]["txn.count_1h"]
    assert (value["value"], value["status"], value["stale"]) == (None, "expired", True)


def test_a_never_written_value_is_missing_not_stale(client):
    body = get(client, "user", "99", names="txn.count_1h").json()
    assert body["features"]["txn.count_1h"]["status"] == "missing" and body["stale"] is False


def test_a_lagging_stream_makes_fresh_values_stale(client, online):
    import time

    online.client.hset(MATERIALIZER, mapping={"txn@1:stream_lag_s": "600", "txn@1:stream_checked_at": time.time()})
    value = get(client, "user", "1", names="txn.count_1h").json()["features"]["txn.count_1h"]
    assert (value["value"], value["status"]) == (3, "stale")  # 10 min behind, SLO 5 min
    online.client.hset(MATERIALIZER, mapping={"txn@1:stream_lag_s": "0", "txn@1:stream_checked_at": time.time()})
    assert get(client, "user", "1", names="txn.count_1h").json()["features"]["txn.count_1h"]["status"] == "ok"


def test_a_stopped_stream_consumer_makes_values_stale_before_they_age(client, online):
    """A consumer that stopped reports no lag at all: the silence since its last report counts as lag."""
    import time

    online.client.hset(MATERIALIZER, mapping={"txn@1:stream_lag_s": "0", "txn@1:stream_checked_at": time.time() - 900})
    value = get(client, "user", "1", names="txn.count_1h").json()["features"]["txn.count_1h"]
    assert (value["value"], value["status"], value["age_seconds"] < 300) == (3, "stale", True)


def test_an_id_holding_a_slash_is_served_when_percent_encoded(client, online):
    online.write(registry().view("profile"), [OnlineRow(("a/b",), utcnow(), None, ("FR",))])
    body = client.get("/v1/features/user/a%2Fb?names=profile.country").json()
    assert (body["entity_id"], body["features"]["profile.country"]["value"]) == ("a/b", "FR")


def test_a_vector_request_with_extra_path_segments_is_not_found(client):
    response = client.get("/v1/features/user/1/extra?names=profile.country")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_composite_keys_use_the_documented_form(client):
    body = get(client, "card_merchant", "merchant_id=m;1;card_id=7", names="pair.n")
    assert body.status_code == 422  # ';' inside a value cannot be written in this form
    ok = get(client, "card_merchant", "card_id=7;merchant_id=m%253B1", names="pair.n")  # ';' encoded twice
    assert ok.status_code == 200 and ok.json()["features"]["pair.n"]["value"] == 42


def test_batch_returns_vectors_in_request_order(client):
    r = client.post("/v1/features/user:batchGet", json={"ids": ["3", "1", 2, "99"], "names": ["txn.count_1h"]})
    assert [v["entity_id"] for v in r.json()["vectors"]] == ["3", "1", "2", "99"]
    assert [v["features"]["txn.count_1h"]["status"] for v in r.json()["vectors"]] == ["expired", "ok", "stale", "missing"]


def test_a_model_serves_its_features_of_the_entity_type(client):
    body = get(client, "user", "1", model="fraud").json()
    assert list(body["features"]) == ["txn.count_1h", "profile.country"]


@pytest.mark.parametrize("path, params, status, fragment", [
    ("/v1/features/usr/1", {"names": "txn.count_1h"}, 404, "unknown entity type 'usr'"),
    ("/v1/features/user/1", {"names": "txn.count_2h"}, 404, "no feature column 'count_2h'"),
    ("/v1/features/user/1", {"names": "nope.x"}, 404, "unknown feature view 'nope'"),
    ("/v1/features/user/1", {"model": "nope"}, 404, "unknown model 'nope'"),
    ("/v1/features/user/1", {"names": "count_1h"}, 422, "bad feature name"),
    ("/v1/features/user/1", {"names": "pair.n"}, 422, "belongs to entity type 'card_merchant'"),
    ("/v1/features/user/1", {}, 422, "give names="),
    ("/v1/features/card_merchant/7", {"names": "pair.n"}, 422, "bad key '7'"),
    ("/v1/nothing", {}, 404, "GET /v1/nothing"),
])
def test_every_user_error_is_a_json_4xx_naming_the_problem(client, path, params, status, fragment):
    r = client.get(path, params=params)
    assert r.status_code == status and fragment in r.json()["detail"], r.text


def test_batch_input_errors(client):
    assert client.post("/v1/features/user:batchGet", content=b"{").status_code == 400
    assert client.post("/v1/features/user:batchGet", json={"names": ["txn.count_1h"]}).status_code == 422
    too_many = client.post("/v1/features/user:batchGet", json={"ids": [str(i) for i in range(51)], "names": ["txn.amount"]})
    assert too_many.status_code == 422 and "too many ids: 51" in too_many.json()["detail"]
    assert client.post("/v1/features/user:batchGet", json={"ids": [], "names": ["txn.amount"]}).status_code == 422


def test_health_metrics_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    get(client, "user", "1", names="txn.count_1h")
    get(client, "user", "1", names="nope.x")
    metrics = client.get("/metrics").text
    assert 'featurehouse_values_served_total{view="txn"}' in metrics
    assert 'featurehouse_errors_total{error="UnknownFeature"}' in metrics
    assert "featurehouse_request_seconds_bucket" in metrics
    spec = client.get("/openapi.json").json()
    assert "/v1/features/{entityType}/{entityId}" in spec["paths"]


def test_in_process_sdk_gives_what_http_gives(client, online, redis_url):
    store = FeatureStore.from_registry(registry(), None)
    store.use_online_store(online)
    [vector] = store.online_features("user", ["1"], names=["txn.count_1h", "profile.country"])
    http = get(client, "user", "1", names="txn.count_1h,profile.country").json()["features"]
    assert {n: (v.value, v.status, v.version) for n, v in vector.features.items()} == \
        {n: (v["value"], v["status"], v["version"]) for n, v in http.items()}


def test_an_unreachable_store_is_a_503_and_serving_recovers_without_restart(tmp_path):
    server = EmbeddedRedis(tmp_path / "r", persist=False).start()
    url = server.url
    RedisOnlineStore.from_url(url).write(registry().view("txn"), [OnlineRow((1,), utcnow(), None, (1, 1.0))])
    app = create_app(registry(), ServeConfig(auth="none", push=True, redis_url=url, timeout_s=0.2))
    with TestClient(app) as c:
        assert get(c, "user", "1", names="txn.count_1h").status_code == 200
        server.stop()
        down = get(c, "user", "1", names="txn.count_1h")
        assert down.status_code == 503 and down.headers["Retry-After"] == "1"
        assert down.json()["error"] == "online_store_unavailable"
        assert c.get("/readyz").status_code == 503
        server.start()
        RedisOnlineStore.from_url(url).write(registry().view("txn"), [OnlineRow((1,), utcnow(), None, (2, 1.0))])
        back = get(c, "user", "1", names="txn.count_1h")
        assert back.status_code == 200 and back.json()["features"]["txn.count_1h"]["value"] == 2
    server.stop()


def test_a_sync_that_has_not_run_within_the_slo_makes_values_stale(client, online):
    import time

    online.mark_synced("txn", 1, time.time() - 900)  # last successful sync 15 min ago, SLO 5 min
    assert get(client, "user", "1", names="txn.count_1h").json()["features"]["txn.count_1h"]["status"] == "stale"
    online.mark_synced("txn", 1, time.time())
    assert get(client, "user", "1", names="txn.count_1h").json()["features"]["txn.count_1h"]["status"] == "ok"


def definition(**overrides):
    return {"name": "txn", "entity": "user", "version": 1, "schema": {"count_1h": "bigint", "amount": "double"},
            "owner": "risk", "freshnessSlo": "5m", **overrides}


def test_a_definition_identical_to_the_registry_is_200(client):
    r = client.post("/v1/feature-definitions", json=definition(schema={"count_1h": "BIGINT", "amount": "double precision"}))
    assert r.status_code == 200 and r.json()["status"] == "unchanged"


def test_a_schema_change_to_a_published_version_is_409_naming_columns_and_the_bump(client):
    r = client.post("/v1/feature-definitions", json=definition(schema={"count_1h": "varchar", "amount_eur": "double"}))
    body = r.json()
    assert r.status_code == 409
    assert (body["removed"], body["added"], body["changed"]) == (["amount"], ["amount_eur"],
                                                                 {"count_1h": {"from": "bigint", "to": "varchar"}})
    assert "publish it as version 2" in body["detail"]


def test_a_new_definition_is_201_pending_then_200_and_listed(client, online):
    online.client.delete("fh:pending_definitions")
    new = definition(name="device", schema={"os": "varchar"})
    assert client.post("/v1/feature-definitions", json=new).status_code == 201
    assert client.post("/v1/feature-definitions", json=new).status_code == 200
    assert client.post("/v1/feature-definitions", json={**new, "schema": {"os": "bigint"}}).status_code == 409
    listed = client.get("/v1/feature-definitions/device").json()["definitions"]
    assert [(d["version"], d["status"]) for d in listed] == [(1, "pending")]
    assert {d["name"] for d in client.get("/v1/feature-definitions").json()["definitions"]} >= {"txn", "profile", "device"}
    assert client.get("/v1/feature-definitions/nope").status_code == 404


@pytest.mark.parametrize("body, field", [
    (definition(entity="customer"), "entity"), (definition(name="bad name"), "name"),
    (definition(schema={}), "schema"), (definition(version=0), "version"),
    (definition(freshnessSlo="soon"), "freshnessSlo"), ({**definition(), "colour": 1}, "colour"), ([1], "body"),
])
def test_an_invalid_definition_is_422_naming_the_field(client, body, field):
    r = client.post("/v1/feature-definitions", json=body)
    assert r.status_code == 422 and r.json()["field"] == field, r.text


def test_the_serving_app_accepts_pushed_rows(client):
    r = client.post("/v1/push/txn", json=[{"user_id": 5, "event_time": "2026-11-27T10:00:00", "count_1h": 1, "amount": 1.0}])
    assert r.status_code == 202 and r.json()["accepted"] == 1
    bad = client.post("/v1/push/txn", json=[{"user_id": 5, "event_time": "2026-11-27T10:00:00", "count_1h": "x", "amount": 1.0}])
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "count_1h"


def test_a_pushed_event_time_from_the_future_is_a_422_naming_the_field(client):
    """The guard keeps the newest event: a row from 2999 would outrank every real one for good."""
    far = client.post("/v1/push/txn", json=[{"user_id": 5, "event_time": "2999-01-01T00:00:00", "count_1h": 1, "amount": 1.0}])
    assert far.status_code == 422
    [problem] = far.json()["detail"]
    assert problem["field"] == "event_time" and "ahead of the server's clock" in problem["detail"]
    soon = (utcnow() + timedelta(minutes=1)).isoformat()  # within the default 5 minutes of clock skew
    assert client.post("/v1/push/txn", json=[{"user_id": 5, "event_time": soon, "count_1h": 1, "amount": 1.0}]).status_code == 202


def test_metrics_export_each_views_materializer_lag_and_breach(client, online):
    import time

    online.client.hset(MATERIALIZER, mapping={"txn@1:stream_lag_s": "600", "txn@1:stream_checked_at": time.time()})
    text = client.get("/metrics").text
    lag = next(line for line in text.splitlines() if line.startswith('featurehouse_view_materializer_lag_seconds{view="txn@1"}'))
    assert 599 < float(lag.split()[-1]) < 700
    assert 'featurehouse_view_materializer_breach{view="txn@1"} 1.0' in text  # SLO 5 min


def test_a_serving_worker_loads_no_warehouse_libraries(tmp_path, embedded_redis):
    """The package root imports lazily and a worker gets its registry from the parent's snapshot: a
    worker process holds no pyarrow, sqlglot, dbt, duckdb or pandas it does not use."""
    import subprocess
    import sys

    from featurehouse.registry.snapshot import save_snapshot

    snapshot = save_snapshot(registry(), tmp_path / "registry.pickle")
    script = ("import sys, featurehouse.serving.asgi as a; assert a.app is not None; "
              "print(sorted(m for m in ('pyarrow', 'sqlglot', 'dbt', 'duckdb', 'pandas', 'psycopg2') if m in sys.modules))")
    env = {"PATH": "/usr/bin:/bin", "FEATUREHOUSE_SERVING_WORKER": "1", "FEATUREHOUSE_REGISTRY_SNAPSHOT": str(snapshot),
           "FEATUREHOUSE_REDIS_URL": embedded_redis.url}
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_method_not_allowed_says_which_are(client):
    r = client.delete("/v1/features/user:batchGet")
    assert r.status_code == 405 and r.headers["allow"] == "POST" and r.json()["error"] == "http_error"


@pytest.mark.parametrize("row, field", [
    ({"user_id": 5, "event_time": 1e20, "count_1h": 1, "amount": 1.0}, "event_time"),
    ({"user_id": 5, "event_time": "0001-01-01T00:00:00+01:00", "count_1h": 1, "amount": 1.0}, "event_time"),
    ({"user_id": 5, "event_time": "2026-11-27T10:00:00", "count_1h": 2**64 + 1, "amount": 1.0}, "count_1h"),
    ({"user_id": 2**70, "event_time": "2026-11-27T10:00:00", "count_1h": 1, "amount": 1.0}, "user_id"),
])
def test_hostile_pushed_values_are_a_422_naming_the_field_never_a_500(client, row, field):
    r = client.post("/v1/push/txn", json=[row])
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == field


def test_a_push_nested_too_deeply_is_a_400(client):
    depth = 100_000
    r = client.post("/v1/push/txn", content=b"[" * depth + b"]" * depth, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "bad_json"
