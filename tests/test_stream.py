"""The push path: validated rows, a durable stream, a consumer that loses nothing and feeds both stores."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pyarrow as pa
import pytest

from featurehouse.clock import utc_now
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation
from tests.stores import store_over
from featurehouse.stream.log import GROUP, dead_letter_key, decode_entry, landing_relation, stream_key, stream_lag

T0 = datetime(2026, 5, 1, 12)
CARD = Entity("card", ("card_id",))


def card_view() -> FeatureView:
    return FeatureView("card_velocity", 1, CARD, Relation(None, None, "card_velocity"), "event_time",
                       (Feature("card_velocity", "txn_count_1m", "bigint", 1),
                        Feature("card_velocity", "merchant", "varchar", 1)), created_at="created_at")


@pytest.fixture
def store(warehouse, redis_url):
    warehouse.load_table("card_velocity", pa.Table.from_pylist(
        [{"card_id": 1, "event_time": T0, "created_at": T0, "txn_count_1m": 1, "merchant": "batch"}]))
    registry = Registry(entities={"card": CARD})
    registry.add(card_view())
    with store_over(registry, warehouse, redis_url, (landing_relation(card_view()).identifier,), sync=False) as s:
        yield s


def pushed(i: int, card: int = 1) -> dict:
    return {"card_id": card, "event_time": (T0 + timedelta(seconds=i)).isoformat(), "txn_count_1m": i, "merchant": f"m{i}"}


def online_value(store, card=1):
    view = store.registry.view("card_velocity")
    record = store.online.read("card", [(card,)], [(view, 1)])[0]["card_velocity@1"]
    return record and (record.event_time, record.values)


def test_pushed_rows_reach_the_online_store_and_the_warehouse(store):
    assert store.push("card_velocity", [pushed(i) for i in range(1, 6)]).accepted == 5
    consumer = store.stream_consumer()
    assert consumer.run_once() == 5
    assert online_value(store) == (T0 + timedelta(seconds=5), {"txn_count_1m": 5, "merchant": "m5"})
    landing = landing_relation(store.registry.view("card_velocity"))
    assert store.warehouse.fetch_arrow(f'select count(*) from "featurehouse"."{landing.identifier}"').column(0)[0].as_py() == 5


def test_training_sets_see_the_rows_serving_saw(store):
    store.push("card_velocity", [pushed(i) for i in range(1, 4)])
    store.stream_consumer().run_once()
    spine = pa.table({"card_id": [1, 1], "ts": pa.array([T0 + timedelta(seconds=2), T0 + timedelta(hours=1)],
                                                        pa.timestamp("us"))})
    out = store.training_set_arrow(spine, ["card_velocity.txn_count_1m", "card_velocity.merchant"], timestamp="ts")
    assert out.column("card_velocity__txn_count_1m").to_pylist() == [2, 3]


def test_an_invalid_row_is_rejected_naming_the_field_and_parked(store):
    result = store.push("card_velocity", [pushed(1), {**pushed(2), "txn_count_1m": "two"}, {"card_id": 3}])
    assert result.accepted == 1
    assert [r for _, r in result.rejected] == [
        "view 'card_velocity': field 'txn_count_1m': expected bigint, got str 'two'",
        "view 'card_velocity': field 'event_time': event time is required"]
    dead = store.online.client.xrange(dead_letter_key(store.registry.view("card_velocity")))
    assert [e[1][b"reason"].decode() for e in dead] == [r for _, r in result.rejected]


def test_unknown_columns_are_rejected(store):
    [(_, reason)] = store.push("card_velocity", [{**pushed(1), "cvv": "123"}]).rejected
    assert reason.startswith("view 'card_velocity': field 'cvv': not a column of the view")


def test_a_restarted_consumer_applies_what_it_had_read_but_not_acknowledged(store):
    store.push("card_velocity", [pushed(i) for i in range(1, 8)])
    crashed = store.stream_consumer(name="c1")
    taken = crashed._new(store.registry.view("card_velocity"), None)  # read, then "crash" before applying
    assert len(taken) == 7 and online_value(store) is None
    restarted = store.stream_consumer(name="c1")
    assert restarted.run_once() == 7
    assert online_value(store)[1] == {"txn_count_1m": 7, "merchant": "m7"}
    view = store.registry.view("card_velocity")
    assert store.online.client.xpending(stream_key(view), GROUP)["pending"] == 0


def test_entries_of_a_dead_consumer_are_claimed_by_another(store):
    store.push("card_velocity", [pushed(i) for i in range(1, 4)])
    store.stream_consumer(name="dead")._new(store.registry.view("card_velocity"), None)
    other = store.stream_consumer(name="alive")
    other.claim_idle_ms = 0
    assert other.run_once() == 3
    assert online_value(store)[1]["txn_count_1m"] == 3


def test_replaying_a_batch_does_not_duplicate_offline_rows(store):
    store.push("card_velocity", [pushed(i) for i in range(1, 4)])
    view = store.registry.view("card_velocity")
    consumer = store.stream_consumer()
    entries = consumer._new(view, None)
    consumer._append_offline(view, [e[0] for e in entries], [decode_entry(e[1][b"r"]) for e in entries])
    consumer.run_once()  # applies the same (pending) entries again, then acknowledges
    landing = landing_relation(view)
    assert store.warehouse.fetch_arrow(f'select count(*) from "featurehouse"."{landing.identifier}"').column(0)[0].as_py() == 3


def test_lag_is_the_age_of_the_oldest_unapplied_entry(store):
    view = store.registry.view("card_velocity")
    consumer = store.stream_consumer()
    store.push("card_velocity", [pushed(1)])
    time.sleep(0.05)
    consumer._record_lag(view)
    assert stream_lag(store.online.client, view) >= 0.05
    consumer.run_once()
    assert stream_lag(store.online.client, view) == 0.0


def test_the_consumer_adds_its_lag_to_the_lag_history_once_a_minute(store):
    """The catalog's sparkline: a point per minute per view, whatever the consumer's loop rate."""
    from featurehouse.online.history import STREAM_SAMPLE_EVERY_S, parse_lag_history
    from featurehouse.online.keys import LAG_HISTORY

    view = store.registry.view("card_velocity")
    consumer = store.stream_consumer()
    store.online.client.hdel(LAG_HISTORY, view.versioned_name)
    store.push("card_velocity", [pushed(1)])
    consumer._record_lag(view)
    recorded = stream_lag(store.online.client, view)
    consumer.run_once()  # its own lag check, within the minute: no second point
    (point,) = parse_lag_history(store.online.client.hgetall(LAG_HISTORY))[view.versioned_name]
    assert point.before == point.after == recorded
    consumer._sampled[view.versioned_name] -= STREAM_SAMPLE_EVERY_S  # a minute later, as the clock would say
    consumer._record_lag(view)
    points = parse_lag_history(store.online.client.hgetall(LAG_HISTORY))[view.versioned_name]
    assert len(points) == 2 and points[-1].after == 0.0  # caught up


def test_http_push_accepts_rows_and_names_the_bad_field(store):
    from starlette.testclient import TestClient

    from featurehouse.stream.http import create_push_app

    client = TestClient(create_push_app(store, auth="none"))
    ok = client.post("/v1/push/card_velocity", json=[pushed(1), pushed(2)])
    assert ok.status_code == 202 and ok.json() == {"view": "card_velocity@1", "accepted": 2}
    bad = client.post("/v1/push/card_velocity", json={"rows": [pushed(3), {**pushed(4), "card_id": None}]})
    assert bad.status_code == 422
    assert bad.json()["detail"] == [{"row": 1, "field": "card_id", "detail":
                                     "view 'card_velocity': field 'card_id': entity key column is required "
                                     "(a string or an integer), got None"}]
    assert client.post("/v1/push/nope", json=[]).status_code == 404
    assert client.post("/v1/push/card_velocity", content=b"{not json").status_code == 400
    assert store.stream_consumer().run_once() == 2  # the rejected request appended nothing


def test_created_at_is_the_time_featurehouse_received_the_row_never_the_clients(store):
    [(_, reason)] = store.push("card_velocity", [{**pushed(1), "created_at": "2030-01-01T00:00:00"}]).rejected
    assert "field 'created_at': is set by featurehouse when the row arrives" in reason
    before = utc_now()
    store.push("card_velocity", [pushed(2)])
    store.stream_consumer().run_once()
    landing = landing_relation(store.registry.view("card_velocity"))
    [created] = store.warehouse.fetch_arrow(
        f'select created_at from "featurehouse"."{landing.identifier}"').column(0).to_pylist()
    assert before <= created <= utc_now()


def test_an_event_time_beyond_the_clock_skew_is_rejected_naming_the_field(store):
    far = {**pushed(1), "event_time": "2999-01-01T00:00:00"}
    [(_, reason)] = store.push("card_velocity", [far]).rejected
    assert "field 'event_time'" in reason and "allowed clock skew (0:05:00)" in reason
