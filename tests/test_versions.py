"""Versions: a backfill builds beside the active version without touching it; promote switches; rollback."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
import pytest

from featurehouse import FeaturehouseError
from featurehouse.offline.versions import VersionLog
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation
from tests.stores import store_over

pytestmark = pytest.mark.spark_ready  # on Spark too: the warehouse fixture runs each test there

T0 = datetime(2026, 5, 1)
USER = Entity("user", ("user_id",))


def view(version: int, relation: str, column: str = "score") -> FeatureView:
    return FeatureView("risk", version, USER, Relation(None, None, relation), "event_time",
                       (Feature("risk", column, "double", version),), created_at="created_at")


def rows(factor: float, n: int = 30) -> pa.Table:
    return pa.Table.from_pylist([
        {"user_id": u, "event_time": T0 + timedelta(days=u % 10), "created_at": T0 + timedelta(days=u % 10),
         "score": factor * u} for u in range(n)])


@pytest.fixture
def store(warehouse, redis_url):
    warehouse.load_table("risk_v1", rows(1.0))
    warehouse.load_table("risk_v2", rows(2.0))
    registry = Registry(entities={"user": USER})
    registry.add(view(1, "risk_v1"))
    registry.add(view(2, "risk_v2"))
    drop = ("featurehouse_view_versions", "featurehouse_sync_runs", "featurehouse_published_schemas")
    with store_over(registry, warehouse, redis_url, drop, sync=False) as s:
        yield s


def online_scores(store, version):
    v = store.registry.view("risk", version)
    return [r[f"risk@{version}"] and r[f"risk@{version}"].values["score"]
            for r in store.online.read("user", [(u,) for u in range(30)], [(v, version)])]


def test_backfill_fills_its_own_namespace_and_leaves_the_active_version_untouched(store):
    store.sync()
    before = online_scores(store, 1)
    run = store.backfill("risk", 2)
    assert (run.mode, run.rows_written) == ("backfill", 30)
    assert online_scores(store, 1) == before == [float(u) for u in range(30)]
    assert online_scores(store, 2) == [2.0 * u for u in range(30)]
    assert store.registry.view("risk").version == 1  # still the active one


def test_backfill_refuses_the_active_version(store):
    with pytest.raises(FeaturehouseError, match="'risk@1' is the active version: a backfill never mutates it"):
        store.backfill("risk", 1)


def test_backfill_refuses_a_version_sharing_the_active_relation(store):
    store.registry.add(view(3, "risk_v1"))
    with pytest.raises(FeaturehouseError, match="same relation as active 'risk@1'"):
        store.backfill("risk", 3)


def test_backfill_of_a_time_range_replays_only_its_rows(store):
    run = store.backfill("risk", 2, start=T0 + timedelta(days=5), end=T0 + timedelta(days=6))
    assert run.rows_read == 6  # users whose event falls on day 5 or 6
    assert sum(s is not None for s in online_scores(store, 2)) == 6


def test_promote_switches_training_and_serving_and_promoting_back_rolls_back(store):
    store.backfill("risk", 2)
    assert store.promote("risk", 2) == 1
    assert store.registry.view("risk").version == 2
    assert store.online.active_versions() == {"risk": 2}
    spine = pa.table({"user_id": [3], "ts": pa.array([T0 + timedelta(days=20)], pa.timestamp("us"))})
    assert store.training_set_arrow(spine, ["risk.score"], timestamp="ts").column("risk__score").to_pylist() == [6.0]
    assert store.promote("risk", 1) == 2  # rollback
    assert store.online.active_versions() == {"risk": 1}
    assert store.training_set_arrow(spine, ["risk.score"], timestamp="ts").column("risk__score").to_pylist() == [3.0]


def test_the_version_log_keeps_every_schema_and_active_period(store, warehouse):
    store.promote("risk", 2)
    store.promote("risk", 1)
    history = VersionLog(warehouse).history("risk")
    assert [h.version for h in history] == [1, 2, 1]
    assert all(h.schema == {"score": "double"} for h in history)
    assert history[0].active_until == history[1].active_from and history[-1].active_until is None
