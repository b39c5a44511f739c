"""Skew and drift: served vectors (logged by the HTTP app) against point-in-time values and training."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pytest
from starlette.testclient import TestClient

from featurehouse.guard.served import land_served, served_values
from featurehouse.registry.model import Registry
from featurehouse.serving.app import ServeConfig, create_app
from featurehouse.serving.served_log import SERVED_STREAM
from tests.risk_data import NOW, USER, risk_rows, risk_view
from tests.stores import store_over

USERS = range(200)


def rows(shift: float = 0.0, age=timedelta(hours=2)) -> list[dict]:
    return risk_rows(USERS, shift, age)


@pytest.fixture
def store(warehouse, redis_url):
    warehouse.load_table("risk", pa.Table.from_pylist(rows()))
    registry = Registry(entities={"user": USER})
    registry.add(risk_view())
    drop = ("featurehouse_sync_runs", "featurehouse_served_values", "featurehouse_training_sets")
    with store_over(registry, warehouse, redis_url, drop) as s:
        yield s


def serve_all(store, redis_url, rate: float = 1.0, model: str | None = None) -> None:
    app = create_app(store.registry, ServeConfig(auth="none", push=True, redis_url=redis_url, log_sample_rate=rate))
    with TestClient(app) as client:
        for u in USERS:
            params = {"names": "risk.score,risk.band"} | ({"model": model} if model else {})
            assert client.get(f"/v1/features/user/{u}", params=params).status_code in (200, 404, 422)
        client.post("/v1/features/user:batchGet", json={"ids": [0, 1], "names": ["risk.score"]})


def test_serving_logs_the_configured_share_of_vectors(store, redis_url):
    serve_all(store, redis_url, rate=0.0)
    assert store.online.client.xlen(SERVED_STREAM) == 0
    serve_all(store, redis_url, rate=0.25)
    assert 20 < store.online.client.xlen(SERVED_STREAM) < 90  # about 50 of 202


def test_a_crash_between_landing_and_trimming_lands_nothing_twice(store, redis_url, monkeypatch):
    serve_all(store, redis_url)
    client = store.online.client
    with monkeypatch.context() as m:
        m.setattr(client, "xtrim", lambda *a, **k: (_ for _ in ()).throw(SystemExit("killed")))
        with pytest.raises(SystemExit):
            land_served(client, store.warehouse)
    assert client.xlen(SERVED_STREAM) == 202  # landed, not trimmed
    assert land_served(client, store.warehouse, batch=50) == 202  # in five batches, each trimmed exactly
    assert client.xlen(SERVED_STREAM) == 0
    values = served_values(store.warehouse)
    assert values.num_rows == 200 * 2 + 2
    assert sorted(set(values.column("feature").to_pylist())) == ["risk.band", "risk.score"]


def test_serving_from_a_synced_store_shows_no_skew(store, redis_url):
    serve_all(store, redis_url)
    land_served(store.online.client, store.warehouse)
    skew = {s.feature: s for s in store.skew()}
    assert skew["risk.score@1"].compared == 202 and skew["risk.score@1"].mismatches == 0
    assert skew["risk.band@1"].mismatch_rate == 0.0 and skew["risk.score@1"].mean_abs_error == 0.0


def test_serving_from_a_lagging_store_is_flagged_as_skew(store, redis_url):
    newer = [{**r, "event_time": NOW - timedelta(minutes=5), "created_at": NOW - timedelta(minutes=5),
              "score": r["score"] + 100} for r in rows()]
    store.warehouse.load_table("risk", pa.Table.from_pylist(rows() + newer))  # landed, but not synced
    serve_all(store, redis_url)
    land_served(store.online.client, store.warehouse)
    skew = {s.feature: s for s in store.skew()}
    assert skew["risk.score@1"].mismatch_rate == 1.0 and skew["risk.score@1"].mean_abs_error == 100.0
    entity, _, served, offline = skew["risk.score@1"].examples[0]
    assert float(offline) == float(served) + 100


def test_skew_can_be_limited_to_one_model(store, redis_url):
    serve_all(store, redis_url)
    land_served(store.online.client, store.warehouse)
    assert store.skew(model="fraud") == []


def spine_at(times: int) -> pa.Table:
    return pa.table({"user_id": [u for u in USERS for _ in range(times)],
                     "ts": pa.array([NOW - timedelta(minutes=10)] * (len(USERS) * times), pa.timestamp("us"))})


def test_drift_is_small_when_serving_matches_training(store, redis_url):
    ts = store.build_training_set(spine_at(1), ["risk.score", "risk.band"], "ts")
    serve_all(store, redis_url)
    land_served(store.online.client, store.warehouse)
    drift = {d.feature: d for d in store.drift(ts.record.training_set_id)}
    assert drift["risk.score@1"].psi < 0.01 and drift["risk.band@1"].psi < 0.01


def test_a_shifted_distribution_is_flagged_as_drift(store, redis_url):
    ts = store.build_training_set(spine_at(1), ["risk.score", "risk.band"], "ts")
    store.warehouse.load_table("risk", pa.Table.from_pylist(rows() + rows(shift=5.0, age=timedelta(minutes=1))))
    store.sync()
    serve_all(store, redis_url)
    land_served(store.online.client, store.warehouse)
    drift = {d.feature: d for d in store.drift(ts.record.training_set_id)}
    assert drift["risk.score@1"].flagged(0.2) and drift["risk.band@1"].flagged(0.2)
    assert drift["risk.score@1"].mean_served == pytest.approx(drift["risk.score@1"].mean_training + 5, abs=0.1)


def test_in_process_vectors_are_logged_too_and_flushed_on_close(store):
    store.log_sample_rate = 1.0
    store.online_features("user", [str(u) for u in range(30)], ["risk.score"], model=None)
    assert store.online.client.xlen(SERVED_STREAM) == 0  # buffered: 30 < 100
    store.online_features("user", [str(u) for u in range(30, 110)], ["risk.score"])  # 110: handed to the writer
    store.online_features("user", ["1"], ["risk.score"])
    store._served_log.close(store.online.client)  # what FeatureStore.close() does: drain the writer, flush the rest
    assert store.online.client.xlen(SERVED_STREAM) == 111
    land_served(store.online.client, store.warehouse)
    skew = {s.feature: s for s in store.skew()}
    assert skew["risk.score@1"].compared == 111 and skew["risk.score@1"].mismatches == 0
