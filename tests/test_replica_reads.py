"""Reads from Redis Cluster replicas (issue 13): a replica is read only while a probe has proven it at
most `max_lag_s` behind its primary, and every vector says how far behind it may be (`behind_s`). The
contract tested here on a real 3+3 cluster, in process and over HTTP: no read misses a write that its
primary acknowledged more than `behind_s` before the read; a stalled replica is passed over for its
primary within the bound; the option is refused where there are no replicas."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from starlette.testclient import TestClient

from featurehouse import FeatureStore
from featurehouse.offline.warehouse import DuckDBWarehouse
from featurehouse.online.local_cluster import LocalRedisCluster
from featurehouse.online.replicas import (
    ReplicaLag,
    ReplicaReadsConfig,
    ReplicaReadsSettingError,
    ReplicaRouter,
    replica_client,
    replica_reads_config,
)
from featurehouse.online.store import OnlineRow, RedisOnlineStore
from featurehouse.serving.app import ServeConfig, create_app
from featurehouse.serving.vectors import utcnow
from tests.test_serving import registry

USERS = [str(u) for u in range(1, 31)]  # spread over the three shards


# -- what a probe proves ---------------------------------------------------------------------------------

def test_a_replica_is_proven_as_of_the_newest_primary_probe_it_has_applied():
    lag = ReplicaLag()
    assert lag.behind("r", "p", 10.0) is None  # nothing proven: never read
    lag.primary_at("p", 1.0, 100)
    lag.primary_at("p", 2.0, 150)
    lag.primary_at("p", 3.0, 400)
    lag.replica_applied("r", "p", 160)  # has what p had at 2.0, not yet what it had at 3.0
    assert lag.behind("r", "p", 3.5) == pytest.approx(1.5)
    lag.replica_applied("r", "p", 120)  # an older report never moves the proof back
    assert lag.behind("r", "p", 3.5) == pytest.approx(1.5)
    lag.replica_applied("r", "p", 400)
    assert lag.behind("r", "p", 3.5) == pytest.approx(0.5)
    assert lag.behind("r", "other-primary", 3.5) is None  # a proof holds for the primary it was made against
    lag.replica_applied("r2", "p", 99)  # behind every probe kept: unproven
    assert lag.behind("r2", "p", 3.5) is None


def test_offsets_of_another_replication_history_prove_nothing():
    """A primary restarted without persistence starts a new history at offset 0; its replica still holds
    the old data at a large offset of the old history. Offsets compare only within one history."""
    lag = ReplicaLag()
    lag.primary_at("p", 1.0, 50, "new-history")
    lag.replica_applied("r", "p", 208_261, "old-history")
    assert lag.behind("r", "p", 1.5) is None
    lag.replica_applied("r", "p", 60, "new-history")  # resynced: proven in the new history
    assert lag.behind("r", "p", 1.5) == pytest.approx(0.5)


def test_a_cached_replica_reply_is_as_old_as_its_replica_was_behind_plus_its_time_in_the_cache():
    from featurehouse.serving.near_cache import NearCache, NearCacheConfig
    from featurehouse.serving.vectors import plan_request

    class Clock:
        now = 100.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    near = NearCache(NearCacheConfig(max_age_s=0.5), clock=clock)
    plan = plan_request(registry(), "user", ("txn.count_1h",))
    replies, missing, _ = near.lookup_aged(plan, ["k1", "k2"])
    near.fill(plan, ["k1", "k2"], replies, missing, ["a", "b"], clock(), [0.3, 0.0])  # k1 from a replica 0.3 s behind
    clock.now += 0.1
    replies, missing, ages = near.lookup_aged(plan, ["k1", "k2"])
    assert replies == ["a", "b"] and ages == pytest.approx([0.4, 0.1])
    clock.now += 0.15  # k1 is now 0.55 s behind the primary: past the 0.5 s bound, read again
    replies, missing, _ = near.lookup_aged(plan, ["k1", "k2"])
    assert missing == [0] and replies[1] == "b"


def test_the_setting_is_off_on_or_a_mapping_and_says_what_is_wrong():
    assert replica_reads_config(None) is None and replica_reads_config("false") is None
    assert replica_reads_config(True) == ReplicaReadsConfig()
    assert replica_reads_config('{"max_lag_s": 0.25, "probe_every_s": 0.05}') == ReplicaReadsConfig(0.25, 0.05)
    for value, says in [({"max_lag": 1}, "unknown setting 'max_lag'"),
                        ({"max_lag_s": "soon"}, "max_lag_s must be a number"),
                        ({"max_lag_s": 0}, "max_lag_s must be more than 0"),
                        ({"max_lag_s": 120}, "at most 60"),
                        ({"max_lag_s": 0.1, "probe_every_s": 0.2}, "less than max_lag_s"),
                        ("{oops", "JSON mapping")]:
        with pytest.raises(ReplicaReadsSettingError, match=says):
            replica_reads_config(value)


def test_a_single_redis_has_no_replicas_to_read(embedded_redis):
    with pytest.raises(ReplicaReadsSettingError, match="needs a Redis Cluster"):
        replica_client(embedded_redis.url, 0.5)
    store = FeatureStore.from_registry(registry(), DuckDBWarehouse())
    store.use_online_store(RedisOnlineStore.from_url(embedded_redis.url))
    with pytest.raises(ReplicaReadsSettingError, match="needs a Redis Cluster"):
        store.use_replica_reads(True)
    store.close()


# -- on a real cluster -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A cluster of this module's own: one test stalls a replica, which no other module should see."""
    with LocalRedisCluster(tmp_path_factory.mktemp("replica-cluster"), primaries=3, replicas=1) as c:
        yield c


class Writer:
    """Writes count_1h = 1, 2, 3... for every user, and notes when each write was acknowledged."""

    def __init__(self, url: str):
        self.online = RedisOnlineStore.from_url(url)
        self.view = registry().view("txn")
        self.acked: list[tuple[float, int]] = []  # (monotonic time the write returned, sequence number)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def write(self, seq: int) -> None:
        self.online.write(self.view, [OnlineRow((int(u),), utcnow(), None, (seq, 1.0)) for u in USERS])
        self.acked.append((time.monotonic(), seq))

    def run(self) -> None:
        seq = len(self.acked)
        while not self.stop.is_set():
            seq += 1
            self.write(seq)
            self.stop.wait(0.002)

    def newest_before(self, at: float) -> int:
        """The newest sequence whose write was acknowledged before `at` (monotonic)."""
        return max((seq for when, seq in list(self.acked) if when < at), default=0)

    def __enter__(self) -> "Writer":
        self.write(1)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)
        self.online.close()


def reading_replicas(cluster: LocalRedisCluster, config: ReplicaReadsConfig) -> tuple[FeatureStore, ReplicaRouter]:
    """An SDK store on the cluster with replica reads on (and no sampled vectors logged)."""
    store = FeatureStore.from_registry(registry(), DuckDBWarehouse())
    store.use_online_store(RedisOnlineStore.from_url(cluster.url))
    store.log_sample_rate = 0.0
    store.use_replica_reads(config)
    assert store.replica_reads is not None
    return store, store.replica_reads


def proven(router: ReplicaRouter, timeout_s: float = 10.0) -> None:
    """Wait (a deadline poll) until every replica has been proven within the bound."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shards = router.shards()
        if shards and all(replicas and all(
                (lag := router.lag.behind(r.name, p, time.monotonic())) is not None and lag <= router.config.max_lag_s
                for r in replicas) for p, (_, replicas) in shards.items()):
            return
        time.sleep(0.02)
    raise AssertionError("the replicas were not proven close within the deadline")


def check_reads(read, writer: Writer, seconds: float) -> tuple[int, int, float]:
    """Read every user again and again for `seconds` (once at least): each value must be at least the newest
    write acknowledged `behind_s` before the read began. Returns (reads, read from a replica, largest behind_s)."""
    reads = on_replica = 0
    worst = 0.0
    end = time.monotonic() + seconds
    while not reads or time.monotonic() < end:
        began = time.monotonic()
        for vector in read(USERS):
            got = vector.features["txn.count_1h"].value
            must_have = writer.newest_before(began - vector.behind_s)
            assert got >= must_have, (f"user {vector.entity_id}: read {got}, but {must_have} was acknowledged "
                                      f"more than behind_s={vector.behind_s:.3f} s before the read")
            reads += 1
            on_replica += vector.behind_s > 0
            worst = max(worst, vector.behind_s)
    return reads, on_replica, worst


def test_in_process_reads_from_replicas_are_never_further_behind_than_they_say(cluster):
    config = ReplicaReadsConfig(max_lag_s=0.5, probe_every_s=0.05)
    store, router = reading_replicas(cluster, config)
    with Writer(cluster.url) as writer:
        proven(router)
        reads, on_replica, worst = check_reads(lambda ids: store.online_features("user", ids, ["txn.count_1h"]),
                                               writer, 2.0)
        single, _, _ = check_reads(lambda ids: [store.online_features("user", [i], ["txn.count_1h"])[0] for i in ids],
                                   writer, 0.5)
    store.close()
    assert reads > 300 and single > 30
    assert on_replica > reads * 0.8, f"only {on_replica} of {reads} reads were answered by a replica"
    assert worst <= config.max_lag_s
    print(f"in process: {reads} reads, {on_replica} from replicas, behind_s at most {worst:.3f} s")


def test_http_reads_from_replicas_report_behind_s_and_keep_the_bound(cluster):
    config = ServeConfig(redis_url=cluster.url, auth="none", log_sample_rate=0.0,
                         replica_reads=ReplicaReadsConfig(max_lag_s=0.5, probe_every_s=0.05))
    app = create_app(registry(), config)
    with TestClient(app) as http, Writer(cluster.url) as writer:
        router = app.metrics.replicas
        assert router is not None
        proven(router)

        def read(ids):
            from featurehouse.serving.client import _vector

            body = http.post("/v1/features/user:batchGet", json={"ids": ids, "names": ["txn.count_1h"]}).json()
            return [_vector(v) for v in body["vectors"]]

        reads, on_replica, worst = check_reads(read, writer, 2.0)
        metrics = http.get("/metrics").text
    assert reads > 100 and on_replica > reads * 0.8 and worst <= 0.5
    # a replica that stalls must be given up within the request's own timeout, leaving the primary time
    assert router.timeout_s <= config.timeout_s / 2
    assert router._thread is not None and not router._thread.is_alive()  # the app's end stopped its probe
    assert "featurehouse_replica_reads_total" in metrics
    replica_total = next(float(line.split()[-1]) for line in metrics.splitlines()
                         if line.startswith("featurehouse_replica_reads_total"))
    assert replica_total >= on_replica


def test_a_key_whose_slot_is_migrating_is_read_from_its_primary_not_taken_as_missing(cluster):
    """A replica does not know its primary marked the slot MIGRATING: for a key already moved it answers
    nothing, where the primary answers ASK and is followed. An empty answer from a replica is never
    taken for a missing entity."""
    online = RedisOnlineStore.from_url(cluster.url)
    online.write(registry().view("txn"), [OnlineRow((424242,), utcnow(), None, (42, 1.0))])
    store, router = reading_replicas(cluster, ReplicaReadsConfig(max_lag_s=0.5, probe_every_s=0.05))
    proven(router)
    key = "fh:{user:424242}"
    client = store.online.client
    slot = client.keyslot(key)
    source = next(n for n in cluster.nodes if n.port == client.nodes_manager.slots_cache[slot][0].port)
    target = next(n for n in cluster.primaries() if n.port != source.port)
    try:
        target.command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id())
        source.command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id())
        source.command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", key)
        for _ in range(3):
            vector = store.online_features("user", ["424242"], ["txn.count_1h"])[0]
            assert vector.features["txn.count_1h"].value == 42 and vector.behind_s == 0.0
    finally:
        for node in cluster.primaries():  # the slot goes to where the key now is
            node.command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id())
        store.close()
        online.close()


def test_a_stalled_replica_is_passed_over_for_its_primary_within_the_bound(cluster):
    """A replica frozen (SIGSTOP) falls behind; once its proof is older than max_lag_s its slots are read
    from their primary (behind_s 0), and every read stays right; thawed, it is read again."""
    config = ReplicaReadsConfig(max_lag_s=2.0, probe_every_s=0.05)  # a read times out after 1 s
    store, router = reading_replicas(cluster, config)
    frozen = cluster.replicas()[0]
    with Writer(cluster.url) as writer:
        proven(router)
        assert frozen.process is not None
        frozen.process.send_signal(signal.SIGSTOP)
        try:
            stopped_at = time.monotonic()
            primary_before = router.primary_reads
            for _ in range(10):  # still proven: the first read waits out the replica's timeout, then its primary
                check_reads(lambda ids: store.online_features("user", ids, ["txn.count_1h"]), writer, 0.0)
            took = time.monotonic() - stopped_at  # without giving it up: a timeout per read until its proof aged out
            assert took < 1.8 * router.timeout_s, f"reads paid the frozen replica's timeout again ({took:.2f} s)"
            assert router.primary_reads > primary_before  # a read the replica failed is counted as the primary's
            time.sleep(config.max_lag_s + 0.1)  # past the bound: its proof has aged out
            reads, on_replica, worst = check_reads(
                lambda ids: store.online_features("user", ids, ["txn.count_1h"]), writer, 1.0)
            passed_over = time.monotonic() - stopped_at
        finally:
            frozen.process.send_signal(signal.SIGCONT)
        frozen_name = f"127.0.0.1:{frozen.port}"
        assert all(router.lag.behind(frozen_name, p, time.monotonic()) is None
                   or router.lag.behind(frozen_name, p, time.monotonic()) > config.max_lag_s
                   for p in router.shards()), "the frozen replica still looks close"
        assert 0 < on_replica < reads  # two shards still read from replicas, the frozen one's from its primary
        assert worst <= config.max_lag_s
        proven(router)  # thawed: proven again
        _, again, _ = check_reads(lambda ids: store.online_features("user", ids, ["txn.count_1h"]), writer, 0.5)
    store.close()
    assert again > 0
    print(f"a frozen replica: {reads} reads in {passed_over:.2f} s after the freeze, {on_replica} from the "
          "other replicas, none wrong")


def test_a_replica_that_answers_but_stopped_applying_writes_is_read_only_within_its_proof(cluster):
    """CLIENT PAUSE WRITE on a replica: it goes on answering reads, with old values, while it applies
    nothing from its primary. Its values may be served only while its proof is younger than max_lag_s,
    and each says so in behind_s; after that its slots are read from their primary. A router that
    ignored the bound, or reported less than it proved, fails the check on the values."""
    config = ReplicaReadsConfig(max_lag_s=0.3, probe_every_s=0.05)
    store, router = reading_replicas(cluster, config)
    paused = cluster.replicas()[1]
    with Writer(cluster.url) as writer:
        proven(router)
        with paused.client() as c:
            c.execute_command("CLIENT", "PAUSE", 1500, "WRITE")
        reads, on_replica, worst = check_reads(lambda ids: store.online_features("user", ids, ["txn.count_1h"]),
                                               writer, 1.2)
        with paused.client() as c:
            c.execute_command("CLIENT", "UNPAUSE")
    store.close()
    assert reads > 100 and 0 < on_replica < reads and worst <= config.max_lag_s
