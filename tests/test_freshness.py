"""Freshness: newest warehouse event and materializer lag against each view's SLO, as serving sees it."""

from __future__ import annotations

import time
from datetime import timedelta

import pyarrow as pa
import pytest

from featurehouse.guard.freshness import prometheus_text, view_freshness
from featurehouse.offline.warehouse import utc_now
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation
from featurehouse.stream.log import landing_relation
from tests.stores import store_over

pytestmark = pytest.mark.spark_ready  # on Spark too: the warehouse fixture runs each test there

CARD = Entity("card", ("card_id",))


def card_view(slo: timedelta) -> FeatureView:
    return FeatureView("card_velocity", 1, CARD, Relation(None, None, "card_velocity"), "event_time",
                       (Feature("card_velocity", "txn_count_1m", "bigint", 1),), created_at="created_at",
                       freshness_slo=slo)


def make_store(warehouse, redis_url, newest_age: timedelta, slo: timedelta):
    """A store over card_velocity whose newest event is `newest_age` old; nothing synced yet."""
    now = utc_now()
    warehouse.load_table("card_velocity", pa.Table.from_pylist(
        [{"card_id": c, "event_time": now - newest_age - timedelta(minutes=c), "created_at": now - newest_age,
          "txn_count_1m": c} for c in range(5)]))
    registry = Registry(entities={"card": CARD})
    registry.add(card_view(slo))
    drop = (landing_relation(card_view(slo)).identifier, "featurehouse_sync_runs")
    return store_over(registry, warehouse, redis_url, drop, sync=False)


@pytest.fixture
def fresh(warehouse, redis_url):
    with make_store(warehouse, redis_url, newest_age=timedelta(seconds=5), slo=timedelta(hours=1)) as store:
        yield store


def freshness_of(store):
    (row,) = view_freshness(store.online_views(), store.warehouse, store.online.client)
    return row


def test_a_recently_synced_view_with_new_events_is_fresh(fresh):
    fresh.sync()
    row = freshness_of(fresh)
    assert (row.status, row.reasons) == ("ok", [])
    assert 4 < row.data_age_s < 60 and row.materializer_lag_s < 30 and row.last_sync_at is not None
    assert row.sync_watermark is not None


def test_a_view_never_synced_online_breaches(fresh):
    row = freshness_of(fresh)
    assert row.status == "breach" and row.reasons == ["never synced or streamed to the online store"]


def test_old_warehouse_data_breaches_and_every_served_value_is_stale(warehouse, redis_url):
    with make_store(warehouse, redis_url, newest_age=timedelta(hours=3), slo=timedelta(hours=1)) as store:
        store.sync()
        row = freshness_of(store)
        assert row.status == "breach" and row.reasons[0].startswith("newest event is 3.0h old (SLO 1.0h)")
        vectors = store.online_features("card", [str(c) for c in range(5)], ["card_velocity.txn_count_1m"])
        assert all(v.stale for v in vectors)


def test_a_stopped_stream_consumer_breaches_and_serving_flags_the_same_values_stale(warehouse, redis_url):
    with make_store(warehouse, redis_url, newest_age=timedelta(0), slo=timedelta(seconds=1)) as store:
        store.push("card_velocity", [{"card_id": 9, "event_time": utc_now().isoformat(), "txn_count_1m": 1}])
        store.stream_consumer().run_once()  # then the consumer stops
        assert freshness_of(store).status == "ok"
        assert not store.online_features("card", ["9"], ["card_velocity.txn_count_1m"])[0].stale
        time.sleep(1.3)
        row = freshness_of(store)
        assert row.status == "breach" and any(r.startswith("stream consumer lags") for r in row.reasons)
        store._reader.refresh_s = 0
        assert store.online_features("card", ["9"], ["card_velocity.txn_count_1m"])[0].stale


def test_the_figures_are_prometheus_gauges(fresh):
    fresh.sync()
    text = prometheus_text([freshness_of(fresh)])
    assert 'featurehouse_view_freshness_breach{view="card_velocity",version="1"} 0' in text
    assert 'featurehouse_view_freshness_slo_seconds{view="card_velocity",version="1"} 3600' in text
    assert "# TYPE featurehouse_view_materializer_lag_seconds gauge" in text


def test_instant_typed_event_and_ingestion_times_sync_and_are_judged_like_naive_ones(warehouse, redis_url):
    """TIMESTAMPTZ columns (Spark's TIMESTAMP) come back as aware values; the sync's watermark, freshness and
    parity take them as the same instants in naive UTC, the warehouse's convention."""
    from datetime import timezone

    now = utc_now()
    warehouse.load_table("card_velocity", pa.Table.from_pylist(
        [{"card_id": c, "event_time": (now - timedelta(minutes=c)).replace(tzinfo=timezone.utc),
          "created_at": (now - timedelta(days=1)).replace(tzinfo=timezone.utc), "txn_count_1m": c}
         for c in range(5)]))
    registry = Registry(entities={"card": CARD})
    view = card_view(timedelta(hours=1))
    registry.add(view)
    drop = (landing_relation(view).identifier, "featurehouse_sync_runs")
    with store_over(registry, warehouse, redis_url, drop, sync=False) as store:
        first, = store.sync()
        again, = store.sync()  # incremental, from the instant read back as its watermark: nothing new
        assert (first.rows_written, again.mode, again.rows_read) == (5, "incremental", 0)
        row = freshness_of(store)
        assert row.status == "ok" and 0 <= row.data_age_s < 60
        parity, = store.parity(sample=None)
        assert (parity.compared, parity.mismatched) == (5, 0)
        vector = store.online_features("card", ["3"], ["card_velocity.txn_count_1m"])[0]
        assert vector.features["card_velocity.txn_count_1m"].event_time == now - timedelta(minutes=3)
