"""Beyond one Redis (issue 13): sync, stream, serving (in-process and a real `featurehouse serve`) and the
guardrails on a real Redis Cluster of 3 primaries and 3 replicas on loopback, and a primary lost during
serving load: a bounded error window, and never a wrong value.

The clusters are real redis-server processes (featurehouse.online.local_cluster), as on a fresh machine
with only the redis-server binary; nothing here needs the machine's Redis."""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timedelta

import pytest

from featurehouse import FeatureStore
from featurehouse.online.local_cluster import LocalRedisCluster
from featurehouse.online.store import OnlineRow, RedisOnlineStore
from featurehouse.registry.model import Entity, Feature, FeatureView, Relation
from featurehouse.serving.client import ServingClient
from featurehouse.serving.reader import OnlineReader
from tests.shop_project import now, serving, write_project
from tests.test_one_truth import NAMES, warehouse_latest

CUSTOMERS = 300


@pytest.fixture(scope="module")
def shop_on_cluster(tmp_path_factory, redis_cluster):
    """The shop project with 300 customers, built, and synced into the 3+3 cluster."""
    from tests.shop_project import load_raw, orders

    project = write_project(tmp_path_factory.mktemp("cluster-shop"))
    load_raw(project, orders(CUSTOMERS))
    store = FeatureStore(project)
    store.use_online_store(RedisOnlineStore.from_url(redis_cluster.url))
    store.online.client.flushall()
    store.build(quiet=True)
    store.sync()
    yield project, store, redis_cluster
    store.close()


def expected(store: FeatureStore) -> dict[str, dict]:
    """id -> {feature: value}: the warehouse's latest rows, ranked by hand."""
    by_id: dict[str, dict] = {}
    for view in ("customer_orders", "customer_scores"):
        for key, row in warehouse_latest(store, view).items():
            by_id.setdefault(key, {}).update(row)
    return by_id


def test_every_entity_lives_in_one_slot_spread_over_every_primary(shop_on_cluster):
    _, store, cluster = shop_on_cluster
    client = store.online.client
    keys = list(client.scan_iter(match="fh:{customer:*", count=1000))
    assert len(keys) == CUSTOMERS  # one hash per entity, both views' fields in it
    owners = {client.nodes_manager.get_node_from_slot(client.keyslot(k)).port for k in keys}
    assert owners == {n.port for n in cluster.primaries()}


def test_in_process_reads_across_slots_equal_the_warehouse(shop_on_cluster):
    _, store, _ = shop_on_cluster
    want = expected(store)
    ids = [str(c) for c in range(1, CUSTOMERS + 1)]
    vectors = store.online_features("customer", ids, NAMES)
    assert {v.entity_id: {n: f.value for n, f in v.features.items()} for v in vectors} == want
    reader = OnlineReader(store.registry, store.online.client)
    for batch in (ids[:1], ids[:100], ids):  # one HMGET; a pipeline grouped per node
        got = reader.get("customer", batch, NAMES)
        assert [{n: f.value for n, f in v.features.items()} for v in got] == [want[i] for i in batch]


def test_a_real_serve_on_the_cluster_answers_what_the_warehouse_holds(shop_on_cluster):
    project, store, cluster = shop_on_cluster
    want = expected(store)
    ids = [str(c) for c in range(1, CUSTOMERS + 1)]
    store.close_warehouse()
    with serving(project, cluster.url) as base:
        client = ServingClient(base)
        vectors = client.online_features("customer", ids, NAMES)
        one = client.online_features("customer", ["7"], NAMES)
    assert {v.entity_id: {n: f.value for n, f in v.features.items()} for v in vectors} == want
    assert {n: f.value for n, f in one[0].features.items()} == want["7"]


def test_a_real_serve_reading_replicas_answers_the_warehouse_and_says_how_far_behind(shop_on_cluster, monkeypatch):
    """`replica_reads` on `featurehouse serve`: the workers read proven replicas (behind_s > 0 on their
    vectors, counted in /metrics), and every value is the warehouse's."""
    import json
    import urllib.request

    project, store, cluster = shop_on_cluster
    want = expected(store)
    ids = [str(c) for c in range(1, CUSTOMERS + 1)]
    store.close_warehouse()
    monkeypatch.setenv("FEATUREHOUSE_REPLICA_READS", json.dumps({"max_lag_s": 1.0, "probe_every_s": 0.05}))
    with serving(project, cluster.url) as base:
        client = ServingClient(base)
        deadline = time.monotonic() + 20
        while True:  # the worker's first probes prove the replicas; until then its primaries answer
            vectors = client.online_features("customer", ids, NAMES)
            assert {v.entity_id: {n: f.value for n, f in v.features.items()} for v in vectors} == want
            if sum(v.behind_s > 0 for v in vectors) > CUSTOMERS // 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        metrics = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    on_replica = [v.behind_s for v in vectors if v.behind_s > 0]
    assert len(on_replica) > CUSTOMERS // 2 and max(on_replica) <= 1.0
    assert float(next(line.split()[-1] for line in metrics.splitlines()
                      if line.startswith("featurehouse_replica_reads_total"))) >= len(on_replica)


def test_replica_reads_on_a_single_redis_is_refused_before_serving(shop_on_cluster, embedded_redis):
    import os
    import subprocess
    import sys

    project, store, _ = shop_on_cluster
    store.close_warehouse()
    env = {**os.environ, "FEATUREHOUSE_REDIS_URL": embedded_redis.url, "FEATUREHOUSE_REPLICA_READS": "true",
           "FEATUREHOUSE_AUTH": "none"}
    done = subprocess.run([sys.executable, "-m", "featurehouse.cli.main", "--project-dir", str(project), "serve",
                           "--port", "1"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "replica_reads needs a Redis Cluster URL" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_pushed_rows_reach_the_cluster_through_the_stream_and_the_guards_stay_green(shop_on_cluster):
    _, store, _ = shop_on_cluster
    parity = store.parity(sample=None)
    assert [(p.view, p.compared, p.mismatched, p.missing_online) for p in parity] == [
        ("customer_orders", CUSTOMERS, 0, 0), ("customer_scores", CUSTOMERS, 0, 0)]
    fresh = now() + timedelta(seconds=1)
    rows = [{"customer_id": c, "event_time": fresh.isoformat(),
             "n_small": 1000 + c, "n_large": 2000 + c} for c in range(1, 51)]
    assert store.push("customer_orders", rows).accepted == 50
    assert store.stream_consumer().run_once() == 50
    got = store.online_features("customer", [str(c) for c in range(1, 51)], ["customer_orders.n_small"])
    assert [v.features["customer_orders.n_small"].value for v in got] == [1000 + c for c in range(1, 51)]
    assert {f.view: f.status for f in store.freshness()} == {"customer_orders": "ok", "customer_scores": "no slo"}


def test_a_cluster_nobody_answers_exits_3_and_a_node_given_as_one_server_exits_2_saying_what_to_write(
        shop_on_cluster):
    """Misaddressed or down, the CLI says so in one line, as for a single server (no traceback)."""
    from click.testing import CliRunner

    from featurehouse.cli.main import cli

    project, store, cluster = shop_on_cluster
    store.close_warehouse()
    runner = CliRunner()
    down = runner.invoke(cli, ["--project-dir", str(project), "parity"],
                         env={"FEATUREHOUSE_REDIS_URL": f"redis+cluster://127.0.0.1:{dead_port()}"})
    assert down.exit_code == 3, down.output
    assert down.output.strip().startswith("error: online store unreachable: Redis Cluster at 127.0.0.1:"), down.output
    one_node = f"redis://127.0.0.1:{cluster.nodes[0].port}/0"
    for command in ("parity", "sync"):
        wrong = runner.invoke(cli, ["--project-dir", str(project), command], env={"FEATUREHOUSE_REDIS_URL": one_node})
        assert wrong.exit_code == 2, wrong.output
        assert wrong.output.strip().splitlines()[-1] == (
            "error: the online store answered as a Redis Cluster node (MOVED): give its URL as "
            "redis+cluster://host:port (or add ?cluster=true); docs/online-store.md"), wrong.output


def dead_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- a primary lost under load ---------------------------------------------------------------------------


def test_a_primary_killed_during_serving_load_costs_a_bounded_window_and_no_wrong_value(tmp_path):
    """Readers run in process (single, 10 and 100-id vectors, redis-py's cluster client) and over HTTP
    (a real `featurehouse serve`, redis-py's asyncio cluster client) while a primary is SIGKILLed; its
    replica is promoted (node timeout 1 s). Reads that fail in the window fail loudly; every read that
    answers is right; once promoted, every read on every path answers again."""
    from tests.shop_project import load_raw, orders

    project = write_project(tmp_path)
    load_raw(project, orders(CUSTOMERS))
    with LocalRedisCluster(tmp_path / "cluster", primaries=3, replicas=1, node_timeout_ms=1000) as cluster:
        store = FeatureStore(project)
        store.use_online_store(RedisOnlineStore.from_url(cluster.url))
        store.build(quiet=True)
        store.sync()
        want, registry = expected(store), store.registry
        store.close()  # the serve process opens the warehouse itself
        ids = [str(c) for c in range(1, CUSTOMERS + 1)]
        for node in cluster.primaries():  # every write is on its replica before the kill
            with node.client() as c:
                assert c.execute_command("WAIT", 1, 5000) == 1
        stop = threading.Event()
        results: list[tuple[str, float, bool, int]] = []  # (path, when, answered, wrong values)
        lock = threading.Lock()

        def read_forever(batch: int, base: str | None) -> None:
            reader = OnlineReader(registry, RedisOnlineStore.from_url(cluster.url).client)
            http = ServingClient(base) if base else None
            rng = random.Random(batch)
            while not stop.is_set():
                asked = rng.sample(ids, batch)
                try:
                    got = (http.online_features("customer", asked, NAMES) if http is not None
                           else reader.get("customer", asked, NAMES))
                    wrong = sum({n: f.value for n, f in v.features.items()} != want[i] for v, i in zip(got, asked))
                    outcome = (time.monotonic(), True, wrong)
                except Exception:  # noqa: BLE001 - a failed read is what the window counts
                    outcome = (time.monotonic(), False, 0)
                with lock:
                    results.append(("http" if http else "sdk", *outcome))

        with serving(project, cluster.url) as base:
            threads = [threading.Thread(target=read_forever, args=(b, url))
                       for b, url in ((1, None), (10, None), (100, None), (1, base), (100, base))]
            for t in threads:
                t.start()
            try:
                time.sleep(1.0)  # load before the loss
                killed_at = time.monotonic()
                cluster.kill(cluster.primaries()[1])
                cluster.wait_healthy(30)
                healed_at = time.monotonic()
                time.sleep(3.0)  # load goes on while the clients learn the new slot map
            finally:
                stop.set()
                for t in threads:
                    t.join(30)
    assert sum(r[3] for r in results) == 0  # no wrong value, on any path, at any moment
    for path in ("sdk", "http"):
        mine = [r for r in results if r[0] == path]
        assert len([r for r in mine if r[1] < killed_at]) > 10, f"{path}: no load before the kill"
        after = [ok for _, when, ok, _ in mine if when > healed_at + 2]
        assert after and all(after), f"{path}: reads still fail 2 s after the replica was promoted"
    failed = [when for _, when, ok, _ in results if not ok]
    window = (max(failed) - killed_at) if failed else 0.0
    assert window < 10, f"reads failed for {window:.1f} s after the kill"
    print(f"failover: {len(failed)} of {len(results)} reads failed, for {window:.2f} s after the kill; "
          f"healthy {healed_at - killed_at:.2f} s after it")


@pytest.mark.parametrize("url, plain, cluster", [
    ("redis+cluster://h:7000", "redis://h:7000", True),
    ("rediss+cluster://u:p@h:7000/0", "rediss://u:p@h:7000/0", True),
    ("redis://h:7000/0?cluster=true", "redis://h:7000/0", True),
    ("redis://h:7000/0?cluster=true&socket_timeout=1", "redis://h:7000/0?socket_timeout=1", True),
    ("redis://h:7000/0?socket_timeout=1&cluster=true", "redis://h:7000/0?socket_timeout=1", True),
    ("redis://h:7000/0?cluster=True", "redis://h:7000/0", True),
    ("redis://h:6379/15", "redis://h:6379/15", False),
    ("unix:///run/redis.sock", "unix:///run/redis.sock", False),
])
def test_one_reading_of_a_redis_url_for_every_process(url, plain, cluster):
    from featurehouse.online.connect import parse_url

    address = parse_url(url)
    assert (address.url, address.cluster) == (plain, cluster)


def test_a_slot_that_moved_since_the_client_looked_is_followed_on_writes_and_reads(tmp_path):
    """The per-node fast path sends commands by the client's slot map; a slot handed to another primary
    since (a resharding) answers MOVED there, and the command goes again through redis-py's routing."""
    from featurehouse.online.cluster_calls import on_node, per_node
    from featurehouse.online.keys import entity_key

    with LocalRedisCluster(tmp_path / "cluster", primaries=3, replicas=0) as cluster:
        store = RedisOnlineStore.from_url(cluster.url)
        client = store.client
        key = entity_key("user", (7,))
        slot = client.keyslot(key)
        owner = client.get_node_from_key(key)
        new_owner = next(n for n in cluster.primaries() if n.port != owner.port)
        target_id = new_owner.node_id()
        for node in cluster.primaries():  # an empty slot handed over on every node: the client is not told
            node.command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        assert client.get_node_from_key(key).port == owner.port  # the client's map is stale
        assert per_node(client, [(key, ("HSET", key, "v", "1"))]) == [1]
        assert new_owner.command("HGET", key, "v") == b"1"  # it landed where the slot now lives
        assert per_node(client, [(key, ("HGET", key, "v"))]) == [b"1"]
        assert on_node(client, key, ("HGET", key, "v")) == b"1"

        # a guarded write (the sync's FCALL) into a slot that moved back since: followed, and guarded there
        client.delete(key)
        back_id = next(n for n in cluster.primaries() if n.port == owner.port).node_id()
        for node in cluster.primaries():
            node.command("CLUSTER", "SETSLOT", slot, "NODE", back_id)
        assert client.get_node_from_key(key).port == new_owner.port  # stale again
        view = FeatureView("u", 1, Entity("user", ("user_id",)), Relation(None, None, "u"), "event_time",
                           (Feature("u", "x", "bigint", 1),))
        t0 = datetime(2026, 5, 1)
        assert store.write(view, [OnlineRow((7,), t0, None, (5,))]).written == 1
        assert store.write(view, [OnlineRow((7,), t0 - timedelta(days=1), None, (4,))]).skipped_older == 1
        assert store.read("user", [(7,)], [(view, 1)])[0]["u@1"].values == {"x": 5}
        assert next(n for n in cluster.primaries() if n.port == owner.port).command("EXISTS", key) == 1
        store.close()
