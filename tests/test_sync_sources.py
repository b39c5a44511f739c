"""Incremental sync under the faults an operator meets: pushes beside batch rows, rows that land late,
and an online store that went back in time. After each, the online store equals the oracle's latest
over everything the warehouse holds (docs/online-store.md, "Late rows and reconciliation")."""

from __future__ import annotations

from datetime import timedelta

import pytest

from featurehouse.clock import utc_now
from featurehouse.guard.freshness import view_freshness
from featurehouse.serving.reader import OnlineReader
from featurehouse.stream.log import landing_relation
from featurehouse.sync.batch import SyncPolicy, sync_view
from featurehouse.sync.runs import SyncRunLog
from tests.test_sync import T0, assert_online_equals_latest, feature_store, history, load, online  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def no_pushed_rows(feature_store, warehouse):  # noqa: F811 - the fixture imported above
    """Landing tables persist on PostgreSQL: each test starts without another's pushed rows."""
    landing = landing_relation(feature_store.registry.view("card_stats"), feature_store.catalog.schema)
    warehouse.execute(f'DROP TABLE IF EXISTS "{landing.schema}"."{landing.identifier}"')


def _landing_rows(store) -> list[dict]:
    view = store.registry.view("card_stats")
    landing = landing_relation(view, store.catalog.schema)
    sql = f'select card_id, merchant, event_time, created_at, amount, label from "{landing.schema}"."{landing.identifier}"'
    return store.warehouse.fetch_arrow(sql).to_pylist()


def test_a_push_does_not_hide_batch_rows_that_land_after_it(feature_store, warehouse):
    first = history(1)
    load(warehouse, first)
    feature_store.sync()
    now = utc_now()
    pushed = {"card_id": 1, "merchant": "x", "event_time": now - timedelta(minutes=10), "amount": 5.0, "label": "p"}
    assert feature_store.push("card_stats", [pushed]).accepted == 1
    assert feature_store.stream_consumer().run_once() == 1
    feature_store.sync()
    # batch rows whose ingestion (a minute ago) precedes the push, landing after the last sync
    landed = [dict(r, created_at=now - timedelta(seconds=60), event_time=now - timedelta(seconds=120), amount=77.0)
              for r in first[:20]]
    rows = first + landed
    load(warehouse, rows)
    [run] = feature_store.sync()
    assert run.mode == "incremental"
    assert run.rows_read >= len({(r["card_id"], r["merchant"]) for r in landed})
    assert_online_equals_latest(feature_store, rows + _landing_rows(feature_store))


def test_a_row_landing_late_within_the_bound_is_read_by_the_next_run(feature_store, warehouse):
    now = utc_now()
    rows = [dict(r, created_at=now - timedelta(minutes=10), event_time=now - timedelta(minutes=20)) for r in history(2)]
    load(warehouse, rows)
    [first] = feature_store.sync()
    assert first.mode == "full"
    # ingested 30 minutes ago (before the newest row already synced), visible only now
    late = [dict(r, created_at=now - timedelta(minutes=30), event_time=now - timedelta(minutes=5), amount=12.5)
            for r in rows[:15]]
    load(warehouse, rows + late)
    [run] = feature_store.sync()
    assert run.mode == "incremental"
    assert run.rows_written >= 1
    assert_online_equals_latest(feature_store, rows + late)


def test_a_row_later_than_the_bound_is_caught_by_the_reconciliation(feature_store, warehouse, online):
    now = utc_now()
    rows = [dict(r, created_at=now - timedelta(minutes=10), event_time=now - timedelta(minutes=20)) for r in history(3)]
    load(warehouse, rows)
    log = SyncRunLog(feature_store.catalog)
    view = feature_store.registry.view("card_stats")
    strict = SyncPolicy(late_arrival=timedelta(0), reconcile_every=None)
    sync_view(warehouse, online, log, view, policy=strict)
    very_late = [dict(r, created_at=now - timedelta(hours=5), event_time=now - timedelta(minutes=1), amount=-8.0)
                 for r in rows[:10]]
    load(warehouse, rows + very_late)
    missed = sync_view(warehouse, online, log, view, policy=strict)
    assert (missed.mode, missed.rows_read) == ("incremental", 0)  # past the late-arrival bound
    reconcile = sync_view(warehouse, online, log, view, policy=SyncPolicy(late_arrival=timedelta(0),
                                                                          reconcile_every=timedelta(0)))
    assert reconcile.mode == "reconcile"
    assert_online_equals_latest(feature_store, rows + very_late)


def _snapshot(client) -> dict[bytes, bytes]:
    return {key: client.dump(key) for key in client.scan_iter(count=1000)}


def _restore(client, snapshot: dict[bytes, bytes]) -> None:
    """What restoring an older RDB snapshot (or promoting a lagging replica) leaves behind."""
    client.flushdb()
    for key, payload in snapshot.items():
        client.restore(key, 0, payload)


def test_an_online_store_restored_from_an_older_state_is_detected_and_repaired(feature_store, warehouse, online):
    first = history(4)
    load(warehouse, first)
    feature_store.sync()
    older = _snapshot(online.client)
    newer = [dict(r, created_at=r["created_at"] + timedelta(days=2) if r["created_at"] else None,
                  event_time=r["event_time"] + timedelta(days=1), amount=42.0) for r in first[:60]]
    rows = first + newer
    load(warehouse, rows)
    feature_store.sync()
    assert_online_equals_latest(feature_store, rows)
    reader = OnlineReader(feature_store.registry, online.client, refresh_s=0)
    entity = f"card_id={first[0]['card_id']};merchant={first[0]['merchant']}"
    [before] = reader.get("card_merchant", [entity], ["card_stats.amount"])
    assert before.features["card_stats.amount"].status in ("ok", "stale")
    _restore(online.client, older)
    [restored] = reader.get("card_merchant", [entity], ["card_stats.amount"])
    assert restored.features["card_stats.amount"].status == "unverified"  # served, but not vouched for
    view = feature_store.registry.view("card_stats")
    [report] = view_freshness([view], warehouse, online.client, catalog=feature_store.catalog)
    assert report.status == "breach"
    assert any("behind the warehouse's sync log" in r for r in report.reasons), report.reasons
    [run] = feature_store.sync()
    assert run.mode == "repair" and run.warning and "restored from an older state" in run.warning
    assert_online_equals_latest(feature_store, rows)
    [report] = view_freshness([view], warehouse, online.client, catalog=feature_store.catalog)
    assert not any("behind" in r for r in report.reasons)
    [repaired] = reader.get("card_merchant", [entity], ["card_stats.amount"])
    assert repaired.features["card_stats.amount"].status == before.features["card_stats.amount"].status
    [again] = feature_store.sync()
    assert again.mode == "incremental"  # repaired once: the marks agree again


def test_marks_of_syncs_finishing_in_any_order_never_go_back(online):
    online.mark_synced("v", 1, 2000.5)
    online.mark_synced("v", 1, 1000.25)
    assert online.last_synced("v", 1) == 2000.5


def test_a_repair_forgets_again_the_entities_forgotten_since_the_backup(feature_store, warehouse, online):
    rows = history(5)
    load(warehouse, rows)
    feature_store.sync()
    older = _snapshot(online.client)
    card, merchant = rows[0]["card_id"], rows[0]["merchant"]
    assert feature_store.forget("card_merchant", (card, merchant)).online_keys_deleted == 1
    feature_store.sync(full_refresh=True)  # the log moves past the backup
    _restore(online.client, older)
    [run] = feature_store.sync()
    assert run.mode == "repair"
    view = feature_store.registry.view("card_stats")
    [records] = online.read("card_merchant", [(card, merchant)], [(view, 1)])
    assert records["card_stats@1"] is None  # forgotten, though the backup and the rows still hold it


def test_two_online_stores_fed_from_one_warehouse_keep_their_own_sync_history(feature_store, warehouse, online,
                                                                              tmp_path):
    from featurehouse.online.embedded import EmbeddedRedis
    from featurehouse.online.store import RedisOnlineStore

    rows = history(7)
    load(warehouse, rows)
    [first] = feature_store.sync()
    with EmbeddedRedis(tmp_path / "staging", persist=False) as server:
        staging = RedisOnlineStore.from_url(server.url)
        try:
            feature_store.use_online_store(staging)
            [other] = feature_store.sync()
            assert other.mode == "full" and other.online_store != first.online_store
            feature_store.use_online_store(online)
            [again] = feature_store.sync()  # staging's run is later in the log: not a sign this store went back
            assert again.mode == "incremental" and not again.warning
        finally:
            staging.close()
