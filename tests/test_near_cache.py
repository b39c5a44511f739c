"""The hot-key near-cache (issue 13): a worker keeps hot entities' replies for at most a share of their
views' freshness SLO (and never past max_age_s), never caches a view without an SLO, judges what it
serves at serve time, and says in /metrics how often it answered and how old its answers were."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from featurehouse import FeatureStore
from featurehouse.offline.warehouse import DuckDBWarehouse
from featurehouse.online.store import OnlineRow, RedisOnlineStore
from featurehouse.serving.app import ServeConfig, create_app
from featurehouse.serving.near_cache import NearCacheConfig, NearCacheSettingError, near_cache_config
from featurehouse.serving.vectors import utcnow
from tests.test_serving import registry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def online(embedded_redis):
    store = RedisOnlineStore.from_url(embedded_redis.url)
    store.client.flushdb()
    yield store
    store.close()


def write(online: RedisOnlineStore, view: str, user: int, ago: timedelta, *values) -> None:
    online.write(registry().view(view), [OnlineRow((user,), utcnow() - ago, None, values)])


def sdk(online: RedisOnlineStore, config: NearCacheConfig, clock: Clock) -> FeatureStore:
    store = FeatureStore.from_registry(registry(), DuckDBWarehouse())
    store.use_online_store(online)
    store.use_near_cache(config, clock=clock)
    return store


def test_a_hot_value_is_served_from_the_cache_only_within_its_bound(online):
    """txn's SLO is 5 minutes: 0.1 of it is 30 s, so max_age_s (1 s) bounds it."""
    clock = Clock()
    store = sdk(online, NearCacheConfig(slo_fraction=0.1, max_age_s=1.0), clock)
    write(online, "txn", 1, timedelta(seconds=30), 3, 12.5)
    assert store.online_features("user", ["1"], ["txn.count_1h"])[0].features["txn.count_1h"].value == 3
    write(online, "txn", 1, timedelta(seconds=10), 4, 13.5)  # a newer value lands
    clock.now += 0.9
    cached = store.online_features("user", ["1"], ["txn.count_1h"])[0].features["txn.count_1h"]
    assert cached.value == 3 and cached.status == "ok"  # within the bound: the cached reply
    assert cached.age_seconds is not None and cached.age_seconds >= 30  # judged now, from the value's own event time
    clock.now += 0.2  # 1.1 s after the read: past the bound
    assert store.online_features("user", ["1"], ["txn.count_1h"])[0].features["txn.count_1h"].value == 4
    assert (store.near_cache.hits, store.near_cache.misses) == (1, 2)


def test_the_bound_is_the_smaller_of_the_slo_share_and_max_age(online):
    clock = Clock()
    store = sdk(online, NearCacheConfig(slo_fraction=0.01, max_age_s=60.0), clock)  # 1% of 5 min: 3 s
    write(online, "txn", 1, timedelta(seconds=30), 3, 12.5)
    store.online_features("user", ["1"], ["txn.count_1h"])
    write(online, "txn", 1, timedelta(seconds=10), 4, 13.5)
    clock.now += 2.9
    assert store.online_features("user", ["1"], ["txn.count_1h"])[0].features["txn.count_1h"].value == 3
    clock.now += 0.2
    assert store.online_features("user", ["1"], ["txn.count_1h"])[0].features["txn.count_1h"].value == 4


def test_a_view_without_an_slo_is_never_cached_nor_is_a_read_that_includes_it(online):
    clock = Clock()
    store = sdk(online, NearCacheConfig(), clock)
    write(online, "profile", 1, timedelta(days=1), "FR")
    write(online, "txn", 1, timedelta(seconds=30), 3, 12.5)
    names = ["txn.count_1h", "profile.country"]
    assert store.online_features("user", ["1"], names)[0].features["profile.country"].value == "FR"
    write(online, "profile", 1, timedelta(hours=1), "DE")
    assert store.online_features("user", ["1"], names)[0].features["profile.country"].value == "DE"
    assert store.near_cache.hits == 0


def test_a_batch_mixes_cached_and_read_entities_in_request_order(online):
    clock = Clock()
    store = sdk(online, NearCacheConfig(), clock)
    for user in range(1, 6):
        write(online, "txn", user, timedelta(seconds=30), user, 1.0)
    store.online_features("user", ["2", "4"], ["txn.count_1h"])  # 2 and 4 are now hot
    got = store.online_features("user", ["5", "4", "3", "2", "1", "99"], ["txn.count_1h"])
    assert [v.features["txn.count_1h"].value for v in got] == [5, 4, 3, 2, 1, None]
    assert got[-1].features["txn.count_1h"].status == "missing"
    assert store.near_cache.hits == 2


def test_entries_are_bounded_least_recently_used_first(online):
    clock = Clock()
    store = sdk(online, NearCacheConfig(entries=2), clock)
    for user in (1, 2, 3):
        write(online, "txn", user, timedelta(seconds=30), user, 1.0)
    for user in ("1", "2", "1", "3"):  # 2 is the least recently used when 3 comes in
        store.online_features("user", [user], ["txn.count_1h"])
    hits = store.near_cache.hits
    store.online_features("user", ["1"], ["txn.count_1h"])
    store.online_features("user", ["2"], ["txn.count_1h"])
    assert store.near_cache.hits == hits + 1


def test_serving_reports_hits_misses_and_ages_in_metrics(online, embedded_redis):
    write(online, "txn", 1, timedelta(seconds=30), 3, 12.5)
    app = create_app(registry(), ServeConfig(auth="none", redis_url=embedded_redis.url,
                                             near_cache=NearCacheConfig(max_age_s=30.0)))
    with TestClient(app) as client:
        for _ in range(5):
            body = client.get("/v1/features/user/1", params={"names": "txn.count_1h"}).json()
            assert body["features"]["txn.count_1h"]["value"] == 3
        metrics = client.get("/metrics").text
    assert "featurehouse_near_cache_hits_total 4.0" in metrics
    assert "featurehouse_near_cache_misses_total 1.0" in metrics
    assert "featurehouse_near_cache_age_seconds_count 4.0" in metrics


@pytest.mark.parametrize("value, wanted", [
    (None, None), (False, None), ("false", None), ("off", None),
    (True, NearCacheConfig()), ("true", NearCacheConfig()),
    ({"entries": 50, "max_age_s": 0.5}, NearCacheConfig(entries=50, max_age_s=0.5)),
    ('{"slo_fraction": 0.2}', NearCacheConfig(slo_fraction=0.2)),
])
def test_the_setting_reads_as_serve_documents_it(value, wanted):
    assert near_cache_config(value) == wanted


@pytest.mark.parametrize("value, message", [
    ({"entrys": 5}, "near_cache: unknown setting 'entrys'"),
    ({"slo_fraction": 2}, "near_cache: slo_fraction must be in (0, 1]"),
    ({"max_age_s": "soon"}, "near_cache: max_age_s must be a number, got 'soon'"),
    ({"max_age_s": None}, "near_cache: max_age_s must be a number, got None"),
    ("{max_age_s: 0.5}", "a JSON mapping"),
    ({"max_age_s": 3600}, "near_cache: max_age_s must be more than 0 and at most 60"),
    ({"entries": 2.7}, "near_cache: entries must be a whole number, 1 or more, got 2.7"),
    ("maybe", "give true, false, or a JSON mapping"),
])
def test_a_bad_setting_is_refused_naming_it(value, message):
    with pytest.raises(NearCacheSettingError, match="near_cache") as e:
        near_cache_config(value)
    assert message in str(e.value)


def test_a_forgotten_entity_is_not_served_from_the_cache_of_the_process_that_forgot_it(online):
    clock = Clock()
    store = sdk(online, NearCacheConfig(max_age_s=60.0, slo_fraction=1.0), clock)
    write(online, "txn", 42, timedelta(seconds=30), 3, 12.5)
    assert store.online_features("user", ["42"], ["txn.count_1h"])[0].features["txn.count_1h"].value == 3
    store.forget("user", (42,))
    got = store.online_features("user", ["42"], ["txn.count_1h"])[0].features["txn.count_1h"]
    assert (got.value, got.status) == (None, "missing")


def test_an_older_reply_never_replaces_a_newer_one(online):
    """Two reads in flight (the HTTP worker's event loop): the one that began later answers first; the
    earlier one's reply, older, must not replace it."""
    from featurehouse.serving.near_cache import NearCache
    from featurehouse.serving.vectors import plan_request

    reg = registry()
    plan = plan_request(reg, "user", ["txn.count_1h"])
    clock = Clock()
    near = NearCache(NearCacheConfig(), clock=clock)
    near.store(plan, ["k"], ["newer"], fetched_at=1000.5)
    near.store(plan, ["k"], ["older"], fetched_at=1000.2)
    clock.now = 1000.6
    assert near.lookup(plan, ["k"]) == (["newer"], [])


def test_threads_reading_through_one_cache_never_break_it(online):
    """An SDK store shared by a threaded web server's threads: lookups, stores and evictions at once."""
    import threading

    from featurehouse.serving.near_cache import NearCache
    from featurehouse.serving.vectors import plan_request

    plan = plan_request(registry(), "user", ["txn.count_1h"])
    near = NearCache(NearCacheConfig(entries=4))
    errors: list[BaseException] = []

    def churn(seed: int) -> None:
        try:
            for i in range(20_000):
                key = str((i * seed) % 9)
                replies, missing = near.lookup(plan, [key])
                if missing:
                    near.store(plan, [key], [key], near.clock())
                else:
                    assert replies == [key]
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=churn, args=(s,)) for s in (1, 3, 5, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_the_sdk_takes_what_serve_takes(online):
    store = FeatureStore.from_registry(registry(), DuckDBWarehouse())
    store.use_online_store(online)
    store.use_near_cache({"max_age_s": 0.5})
    assert store.near_cache.config == NearCacheConfig(max_age_s=0.5)
    store.use_near_cache(False)
    assert store.near_cache is None
    with pytest.raises(NearCacheSettingError, match="unknown setting 'entrys'"):
        store.use_near_cache({"entrys": 3})
