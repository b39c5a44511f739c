"""Batch sync: the online store equals the warehouse's latest rows, incrementally, through failures and kills."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta

import pyarrow as pa
import pytest

from featurehouse import FeatureStore
from featurehouse.offline.warehouse import DuckDBWarehouse
from featurehouse.online.store import RedisOnlineStore
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation
from tests.oracle import OracleView, latest_row

pytestmark = pytest.mark.spark_ready  # on Spark too: the warehouse fixture runs each test there

T0 = datetime(2026, 5, 1)
PAIR = Entity("card_merchant", ("card_id", "merchant"))
SCHEMA = pa.schema([("card_id", pa.int64()), ("merchant", pa.string()), ("event_time", pa.timestamp("us")),
                    ("created_at", pa.timestamp("us")), ("amount", pa.float64()), ("label", pa.string())])
FAR_FUTURE = datetime(2100, 1, 1)


def history(seed: int, n: int = 600, created_from: datetime = T0, keys: int = 40) -> list[dict]:
    rnd = random.Random(seed)
    rows = []
    for _ in range(n):
        et = T0 + timedelta(minutes=rnd.randint(0, 300))
        rows.append({"card_id": rnd.randint(0, keys // 4), "merchant": rnd.choice(["ü", "a|b", "x"]),
                     "event_time": et,
                     "created_at": None if rnd.random() < 0.05 else max(et, created_from) + timedelta(minutes=rnd.randint(0, 5)),
                     "amount": None if rnd.random() < 0.1 else rnd.choice([1.5, 2.0, -3.25]),
                     "label": rnd.choice(["a", "b", None, "日本"])})
    return rows


def make_registry() -> tuple[Registry, FeatureView]:
    view = FeatureView("card_stats", 1, PAIR, Relation(None, None, "card_stats"), "event_time",
                       (Feature("card_stats", "amount", "double", 1), Feature("card_stats", "label", "varchar", 1)),
                       created_at="created_at")
    registry = Registry(entities={"card_merchant": PAIR})
    registry.add(view)
    return registry, view


@pytest.fixture
def online(redis_url):
    store = RedisOnlineStore.from_url(redis_url)
    store.client.flushdb()
    yield store
    store.close()


@pytest.fixture
def feature_store(warehouse, online):
    registry, _ = make_registry()
    store = FeatureStore.from_registry(registry, warehouse)
    store.use_online_store(online)
    for table in ("featurehouse_sync_runs", "featurehouse_deletions", "featurehouse_tombstones"):  # PostgreSQL keeps them between tests
        warehouse.execute(f"DROP TABLE IF EXISTS featurehouse.{table}")
    return store


def load(warehouse, rows):
    warehouse.load_table("card_stats", pa.Table.from_pylist(rows, schema=SCHEMA))


def assert_online_equals_latest(store, rows):
    """Parity: for every entity, the online values and event time are the warehouse's latest row."""
    _, view = make_registry()
    oracle = OracleView(PAIR.keys, "event_time", "created_at", ("amount", "label"), rows)
    keys = sorted({(r["card_id"], r["merchant"]) for r in rows})
    got = store.online.read("card_merchant", keys, [(view, 1)])
    for key, records in zip(keys, got):
        best = latest_row(oracle, key, FAR_FUTURE)
        record = records["card_stats@1"]
        assert record is not None, key
        assert (record.event_time, record.values) == (best["event_time"], {"amount": best["amount"], "label": best["label"]}), key


def test_sync_makes_the_online_store_equal_the_warehouse_latest(feature_store, warehouse):
    rows = history(1)
    load(warehouse, rows)
    [run] = feature_store.sync()
    assert run.status == "success" and run.mode == "full"
    assert run.rows_read == len({(r["card_id"], r["merchant"]) for r in rows})
    assert_online_equals_latest(feature_store, rows)


def test_a_sync_marks_the_newest_event_it_wrote_for_serving_to_judge_the_data_s_age(feature_store, warehouse, online):
    from featurehouse.clock import epoch_seconds
    from featurehouse.online.keys import MATERIALIZER

    rows = history(3)
    load(warehouse, rows)
    feature_store.sync()
    newest = float(online.client.hget(MATERIALIZER, "card_stats@1:newest_event"))
    assert newest == pytest.approx(epoch_seconds(max(r["event_time"] for r in rows)))


def test_a_large_duckdb_table_is_read_in_parts_and_written_as_a_whole_read_would_be(feature_store, warehouse,
                                                                                      monkeypatch):
    """On DuckDB a sync ranks a large table in parts by key hash (its window then holds a part's rows,
    not all of them); every entity lands once, as the warehouse's latest row, and progress ends at the
    total. Here 50 source rows per part: 2,000 rows read in 40 parts."""
    if warehouse.dialect != "duckdb":
        pytest.skip("parts are DuckDB's (the engine in this process); other engines rank in their servers")
    import featurehouse.sync.batch as batch

    monkeypatch.setattr(batch, "ROWS_PER_PART", 50)
    rows = history(7, n=2000, keys=400)
    load(warehouse, rows)
    _, view = make_registry()
    assert batch.read_parts(warehouse, view) == 40
    seen: list[tuple[int, int]] = []
    [run] = feature_store.sync(progress=lambda _view, done, total: seen.append((done, total)))
    entities = len({(r["card_id"], r["merchant"]) for r in rows})
    assert run.status == "success" and run.rows_read == run.rows_written == entities
    assert_online_equals_latest(feature_store, rows)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] == entities
    assert all(done <= total for done, total in seen)
    newer = history(8, n=300, created_from=T0 + timedelta(days=1), keys=400)  # an incremental run, in parts too
    load(warehouse, rows + newer)
    feature_store.sync()
    assert_online_equals_latest(feature_store, rows + newer)


def test_incremental_sync_reads_only_new_rows_and_late_events_never_win(feature_store, warehouse):
    first = history(1)
    load(warehouse, first)
    feature_store.sync()
    watermark = max(r["created_at"] for r in first if r["created_at"])
    later = watermark + timedelta(hours=1)
    # new ingestions: fresh events for some keys, late-arriving old events for others
    new = [dict(r, created_at=later, amount=99.0, event_time=r["event_time"] + timedelta(days=1)) for r in first[:5]]
    late = [dict(r, created_at=later, amount=-1.0, event_time=T0 - timedelta(days=30)) for r in first[5:10]]
    rows = first + new + late
    load(warehouse, rows)
    [run] = feature_store.sync()
    assert run.mode == "incremental"
    assert run.rows_read == len({(r["card_id"], r["merchant"]) for r in new + late})
    assert run.rows_skipped_older >= 1  # a late old event met a newer stored value
    assert_online_equals_latest(feature_store, rows)


def test_a_failed_sync_is_recorded_and_the_next_run_converges(feature_store, warehouse, online):
    rows = history(2, n=3000, keys=400)
    load(warehouse, rows)

    class FailingAfterTwoBatches:
        def __init__(self, inner):
            self.inner, self.calls = inner, 0

        def __getattr__(self, name):  # everything else is the real store's
            return getattr(self.inner, name)

        def write_encoded(self, *args, **kwargs):
            self.calls += 1
            if self.calls > 2:
                raise ConnectionError("network cut")
            return self.inner.write_encoded(*args, **kwargs)

    feature_store.use_online_store(FailingAfterTwoBatches(online))
    from featurehouse.sync.batch import sync_view
    from featurehouse.sync.runs import SyncRunLog

    log = SyncRunLog(warehouse)
    view = feature_store.registry.view("card_stats")
    with pytest.raises(ConnectionError):
        sync_view(warehouse, feature_store.online, log, view, batch_size=50)
    assert log.history("card_stats")[0]["status"] == "failed"
    assert "network cut" in log.history("card_stats")[0]["error"]
    feature_store.use_online_store(online)
    [run] = feature_store.sync()
    assert run.mode == "full" and run.status == "success"  # no successful watermark yet: read it all again
    assert_online_equals_latest(feature_store, rows)


def test_rerunning_a_sync_changes_nothing(feature_store, warehouse):
    rows = history(3)
    load(warehouse, rows)
    feature_store.sync()
    [again] = feature_store.sync(full_refresh=True)
    assert again.rows_written == 0 and again.rows_skipped_older == again.rows_read
    assert_online_equals_latest(feature_store, rows)


def test_a_killed_sync_process_is_picked_up_by_the_next_run(tmp_path, redis_url):
    """SIGKILL-like death (os._exit) after two batches: the run stays 'running', the next run redoes it."""
    db = tmp_path / "wh.duckdb"
    rows = history(4, n=3000, keys=400)
    with DuckDBWarehouse(db) as wh:
        wh.replace_table("main", "card_stats", pa.Table.from_pylist(rows, schema=SCHEMA))
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {os.getcwd()!r})
        from tests.test_sync import make_registry
        from featurehouse.offline.warehouse import DuckDBWarehouse
        from featurehouse.online.store import RedisOnlineStore
        from featurehouse.sync.batch import sync_view
        from featurehouse.sync.runs import SyncRunLog
        registry, view = make_registry()
        wh = DuckDBWarehouse({str(db)!r})
        online = RedisOnlineStore.from_url({redis_url!r})
        online.client.flushdb()
        batches = 0
        def progress(name, done, total):
            global batches
            batches += 1
            if batches == 2:
                os._exit(9)
        sync_view(wh, online, SyncRunLog(wh), view, batch_size=100, progress=progress)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    registry, _ = make_registry()
    with DuckDBWarehouse(db) as wh:
        store = FeatureStore.from_registry(registry, wh)
        online = RedisOnlineStore.from_url(redis_url)
        store.use_online_store(online)
        from featurehouse.sync.runs import SyncRunLog

        assert SyncRunLog(wh).history("card_stats")[0]["status"] == "running"
        [run] = store.sync()
        assert run.mode == "full" and run.status == "success"
        assert_online_equals_latest(store, rows)
        online.close()


def test_a_view_without_created_at_is_read_again_only_after_dbt_rebuilt_it(warehouse, online):
    from featurehouse.sync.batch import sync_view
    from featurehouse.sync.runs import SyncRunLog

    view = FeatureView("plain", 1, PAIR, Relation(None, None, "plain"), "event_time",
                       (Feature("plain", "amount", "double", 1),))
    warehouse.load_table("plain", pa.Table.from_pylist([{"card_id": 1, "merchant": "x", "event_time": T0, "amount": 1.0}]))
    warehouse.execute("DROP TABLE IF EXISTS featurehouse.featurehouse_sync_runs")
    log = SyncRunLog(warehouse)
    built = T0 + timedelta(days=1)
    first = sync_view(warehouse, online, log, view, rebuilt_at=built)
    assert (first.mode, first.rows_read, first.watermark_to) == ("full", 1, built)
    assert sync_view(warehouse, online, log, view, rebuilt_at=built).rows_read == 0  # not rebuilt since
    assert sync_view(warehouse, online, log, view, rebuilt_at=built + timedelta(hours=1)).rows_read == 1
    assert sync_view(warehouse, online, log, view, rebuilt_at=None).mode == "full"  # unknown: read it all


def test_a_wiped_online_store_is_filled_again_by_the_next_sync(feature_store, warehouse, online):
    rows = history(5)
    load(warehouse, rows)
    feature_store.sync()
    online.client.flushdb()  # a new or wiped Redis: the warehouse's watermark no longer tells the truth
    [run] = feature_store.sync()
    assert run.mode == "full" and run.rows_written == run.rows_read > 0
    assert_online_equals_latest(feature_store, rows)
