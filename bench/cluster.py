"""Benchmark: online reads on a Redis Cluster (3 primaries + 3 replicas on this machine) beside one Redis,
per core; and a Zipf(1.1) hot-key workload with and without the near-cache.

    python bench/cluster.py [--entities 1000000] [--features 6] [--seconds 5] [--workers 2]

Both stores are loaded with `--entities` users of one view (`--features` doubles, SLO 1 minute, so the
near-cache bound is min(1 s, 10% of 60 s) = 1 s) through featurehouse's guarded writer. Then, each run
by `--workers` processes for `--seconds`:

  raw redis-py HMGET / pipeline of 100      the floor, on one Redis and on the cluster
  featurehouse OnlineReader, 1 and 100 ids  the in-process read path (plan, HMGET or per-node pipeline, assembly)
  Zipf(1.1) single reads, near-cache off / on, on the cluster, while a writer updates the 100 hottest
  entities every 100 ms: reads/s, p50/p99, Redis CPU per read (all primaries' used_cpu_sys+user), the
  hit rate, and the staleness of every value served beyond the writer's period (must stay within 1 s).

Prints reads/s per client core (the workers' own CPU time) and memory per entity-feature pair on one Redis.
Everything shares the machine's cores: compare ratios within a run.
"""

from __future__ import annotations

import argparse
import bisect
import json
import multiprocessing
import random
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from featurehouse.online.embedded import EmbeddedRedis  # noqa: E402
from featurehouse.online.local_cluster import LocalRedisCluster  # noqa: E402
from featurehouse.online.store import OnlineRow, RedisOnlineStore  # noqa: E402
from featurehouse.registry.model import Entity, Feature, FeatureView, Registry, Relation  # noqa: E402

USER = Entity("user", ("user_id",))
HOT_WRITES = 100  # the hottest entities the writer keeps updating
WRITE_PERIOD_S = 0.1


def registry(features: int) -> Registry:
    r = Registry(entities={"user": USER})
    r.add(FeatureView("hot", 1, USER, Relation(None, None, "hot"), "event_time",
                      tuple(Feature("hot", f"f{i}", "double", 1) for i in range(features)),
                      freshness_slo=timedelta(minutes=1), ttl=timedelta(days=30)))
    return r


def names(features: int) -> list[str]:
    return [f"hot.f{i}" for i in range(features)]


def load(url: str, reg: Registry, entities: int, features: int) -> float:
    store = RedisOnlineStore.from_url(url)
    view = reg.view("hot")
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    t = time.perf_counter()
    for start in range(1, entities + 1, 20_000):
        rows = [OnlineRow((u,), now, None, tuple(float(u % 1000 + i) for i in range(features)))
                for u in range(start, min(entities, start + 19_999) + 1)]
        store.write(view, rows)
    took = time.perf_counter() - t
    store.close()
    return entities / took


def zipf_ids(entities: int, count: int, seed: int, s: float = 1.1) -> list[str]:
    cum, total = [], 0.0
    for k in range(1, entities + 1):
        total += 1.0 / k ** s
        cum.append(total)
    rng = random.Random(seed)
    return [str(bisect.bisect_left(cum, rng.random() * total) + 1) for _ in range(count)]


def uniform_ids(entities: int, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [str(rng.randint(1, entities)) for _ in range(count)]


def worker(job: dict, out) -> None:
    """One client process: reads until the deadline; reports count, latency sample, CPU time and staleness."""
    import redis

    from featurehouse.online.connect import client_from_url
    from featurehouse.online.keys import entity_key, time_field, value_field
    from featurehouse.serving.near_cache import NearCache, NearCacheConfig
    from featurehouse.serving.reader import OnlineReader

    reg = registry(job["features"])
    client = client_from_url(job["url"])
    ids, batch, kind = job["ids"], job["batch"], job["kind"]
    reader = OnlineReader(reg, client)
    if job.get("near_cache"):
        reader.near_cache = NearCache(NearCacheConfig())
    if job.get("replica_reads"):
        from featurehouse.online.replicas import ReplicaReadsConfig, ReplicaRouter

        reader.replicas = ReplicaRouter(client, ReplicaReadsConfig())
        ready = time.monotonic() + 10
        while time.monotonic() < ready and not reader.replicas.lag._proven:  # the first probes
            time.sleep(0.02)
    fields = [value_field("hot", 1), time_field("hot", 1)]
    keys = [entity_key("user", (int(i),)) for i in ids] if kind == "raw" else []
    wanted = names(job["features"])
    count, lat, served, behind = 0, [], [], 0.0
    cpu0 = time.process_time()
    deadline = time.perf_counter() + job["seconds"]
    i = 0
    while True:
        t, t_wall = time.perf_counter(), time.time()
        if t > deadline:
            break
        if kind == "raw":
            if batch == 1:
                client.hmget(keys[i % len(keys)], fields)
            else:
                pipe = client.pipeline(transaction=False)
                for k in range(batch):
                    pipe.hmget(keys[(i + k) % len(keys)], fields)
                pipe.execute()
        else:
            asked = ids[i % len(ids):i % len(ids) + batch] if batch > 1 else [ids[i % len(ids)]]
            got = reader.get("user", asked, wanted)
            behind = max(behind, max(v.behind_s for v in got))
            if job.get("check_staleness") and len(served) < 200_000:
                for v in got:
                    f0 = v.features["hot.f0"].value
                    if f0 is not None and f0 > 1e9:  # a hot entity: f0 is the stamp of the write we served
                        served.append((t_wall, f0))
        took = time.perf_counter() - t
        if count % 10 == 0:
            lat.append(took)
        count += 1
        i += batch
    near = reader.near_cache
    out.put({"count": count * batch, "calls": count, "lat": lat, "cpu": time.process_time() - cpu0,
             "hits": near.hits if near else 0, "misses": near.misses if near else 0, "served": served,
             "behind": behind, "on_replica": reader.replicas.replica_reads if reader.replicas else 0})
    del redis


def redis_cpu(servers: list[dict]) -> float:
    """CPU seconds the servers have used (each given as redis.Redis keyword arguments)."""
    import redis

    total = 0.0
    for server in servers:
        info = redis.Redis(**server).info("cpu")
        total += float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    return total


def run(label: str, url: str, servers: list[dict], workers: int, every_node: list[dict] | None = None, **job) -> dict:
    """`servers`: the nodes whose CPU is counted per read (the primaries); `every_node` adds all of them."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=worker, args=({**job, "url": url, "ids": job["ids"][w::workers]}, out))
             for w in range(workers)]
    all0 = redis_cpu(every_node) if every_node else 0.0
    cpu0, t = redis_cpu(servers), time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    wall = time.perf_counter() - t
    redis_s = redis_cpu(servers) - cpu0
    all_s = redis_cpu(every_node) - all0 if every_node else 0.0
    reads = sum(r["count"] for r in results)
    lat = sorted(x for r in results for x in r["lat"])
    client_cpu = sum(r["cpu"] for r in results)
    hits, misses = sum(r["hits"] for r in results), sum(r["misses"] for r in results)
    row = {"label": label, "reads_per_s": reads / job["seconds"], "reads_per_client_core_s": reads / client_cpu,
           "p50_ms": lat[len(lat) // 2] * 1e3, "p99_ms": lat[int(len(lat) * 0.99)] * 1e3,
           "redis_cpu_us_per_read": redis_s / reads * 1e6, "wall_s": wall}
    if hits or misses:
        row["hit_rate"] = hits / (hits + misses)
    if every_node:
        row["all_nodes_cpu_us_per_read"] = all_s / reads * 1e6
    if job.get("replica_reads"):
        row["replica_share"] = sum(r["on_replica"] for r in results) / reads
        row["max_behind_s"] = max(r["behind"] for r in results)
    if job.get("check_staleness"):
        row["worst_staleness_s"] = worst_staleness([x for r in results for x in r["served"]], job["writes"])
    return row


def worst_staleness(served: list[tuple[float, float]], writes: list[tuple[float, float]]) -> float:
    """How long, at most, a served value had been superseded when the read began: for each (read start,
    stamp served), the first write with a newer stamp had become visible (its write returned) at some
    moment; if that is before the read began, the read served a value that old past its replacement."""
    stamps = [stamp for stamp, _ in writes]
    worst = 0.0
    for started, stamp in served:
        nxt = bisect.bisect_right(stamps, stamp)
        if nxt < len(writes) and writes[nxt][1] < started:
            worst = max(worst, started - writes[nxt][1])
    return worst


def hot_writer(url: str, reg: Registry, hot: list[int], features: int, stop: threading.Event,
               log: list[tuple[float, float]]) -> None:
    """Updates the hottest entities every WRITE_PERIOD_S; f0 carries the write's wall-clock stamp, and
    `log` gets (stamp, when the write had returned: visible to every reader)."""
    store = RedisOnlineStore.from_url(url)
    view = reg.view("hot")
    while not stop.is_set():
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        stamp = time.time()
        store.write(view, [OnlineRow((u,), now, None, (stamp,) + tuple(0.0 for _ in range(features - 1))) for u in hot])
        log.append((stamp, time.time()))
        stop.wait(WRITE_PERIOD_S)
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    a = parser.parse_args()
    reg = registry(a.features)
    work = Path(tempfile.mkdtemp(prefix="fh_cluster_"))
    rows: list[dict] = []
    with EmbeddedRedis(work / "single", persist=False) as single, \
            LocalRedisCluster(work / "cluster", primaries=3, replicas=1) as cluster:
        import redis

        single_client = redis.Redis(unix_socket_path=str(single.socket))
        mem0 = int(single_client.info("memory")["used_memory"])
        print(f"loading {a.entities:,} entities x {a.features} features into one Redis and a 3+3 cluster ...",
              flush=True)
        single_rate = load(single.url, reg, a.entities, a.features)
        pair_bytes = (int(single_client.info("memory")["used_memory"]) - mem0) / (a.entities * a.features)
        cluster_rate = load(cluster.url, reg, a.entities, a.features)
        print(f"  written: one Redis {single_rate:,.0f} entities/s, cluster {cluster_rate:,.0f} entities/s; "
              f"{pair_bytes:.1f} bytes per entity-feature pair", flush=True)
        one = [{"unix_socket_path": str(single.socket)}]
        primaries = [{"port": n.port} for n in cluster.primaries()]
        uniform = uniform_ids(a.entities, 200_000, 1)
        common = dict(features=a.features, seconds=a.seconds)
        plan = [
            ("one Redis, raw redis-py HMGET", single.url, one, dict(kind="raw", batch=1)),
            ("one Redis, featurehouse 1 id", single.url, one, dict(kind="fh", batch=1)),
            ("one Redis, featurehouse 100 ids", single.url, one, dict(kind="fh", batch=100)),
            ("cluster, raw redis-py HMGET", cluster.url, primaries, dict(kind="raw", batch=1)),
            ("cluster, featurehouse 1 id", cluster.url, primaries, dict(kind="fh", batch=1)),
            ("cluster, raw redis-py pipeline of 100", cluster.url, primaries, dict(kind="raw", batch=100)),
            ("cluster, featurehouse 100 ids", cluster.url, primaries, dict(kind="fh", batch=100)),
        ]
        for label, url, servers, job in plan:
            row = run(label, url, servers, a.workers, ids=uniform, **common, **job)
            rows.append(row)
            print(f"  {label:40s} {row['reads_per_s']:>10,.0f} reads/s  {row['reads_per_client_core_s']:>10,.0f} "
                  f"per client core  p99 {row['p99_ms']:.2f} ms", flush=True)
        every = [{"port": n.port} for n in cluster.nodes]
        for replicas in (False, True):
            label = f"cluster, featurehouse 100 ids, {'replica reads' if replicas else 'primaries only'}"
            row = run(label, cluster.url, primaries, a.workers, every_node=every, ids=uniform, kind="fh", batch=100,
                      replica_reads=replicas, **common)
            rows.append(row)
            print(f"  {label:40s} {row['reads_per_s']:>10,.0f} reads/s  primaries' CPU "
                  f"{row['redis_cpu_us_per_read']:.2f} µs/read, every node's {row['all_nodes_cpu_us_per_read']:.2f}"
                  + (f"  {row['replica_share']:.0%} from replicas, behind_s at most {row['max_behind_s']:.3f} s"
                     if replicas else ""), flush=True)
        primaries_only, from_replicas = rows[-2], rows[-1]
        zipf = zipf_ids(a.entities, 200_000, 2)
        stop, writes = threading.Event(), []
        writer = threading.Thread(target=hot_writer, args=(cluster.url, reg, list(range(1, HOT_WRITES + 1)),
                                                           a.features, stop, writes))
        writer.start()
        try:
            for near in (False, True):
                label = f"cluster, Zipf(1.1), near-cache {'on' if near else 'off'}"
                row = run(label, cluster.url, primaries, a.workers, ids=zipf, kind="fh", batch=1, near_cache=near,
                          check_staleness=True, writes=writes, **common)
                rows.append(row)
                print(f"  {label:40s} {row['reads_per_s']:>10,.0f} reads/s  p99 {row['p99_ms']:.2f} ms  Redis CPU "
                      f"{row['redis_cpu_us_per_read']:.1f} µs/read  hit rate {row.get('hit_rate', 0):.0%}  served at most "
                      f"{row['worst_staleness_s']:.3f} s past its replacement",
                      flush=True)
        finally:
            stop.set()
            writer.join()
    off, on = rows[-2], rows[-1]
    summary = {"entities": a.entities, "features": a.features, "workers": a.workers,
               "single_write_entities_per_s": single_rate, "cluster_write_entities_per_s": cluster_rate,
               "bytes_per_entity_feature": pair_bytes,
               "near_cache_redis_cpu_ratio": on["redis_cpu_us_per_read"] / off["redis_cpu_us_per_read"],
               "near_cache_bound_s": 1.0, "near_cache_bound_held": on["worst_staleness_s"] <= 1.0,
               "replica_reads_primary_cpu_ratio": (from_replicas["redis_cpu_us_per_read"]
                                                   / primaries_only["redis_cpu_us_per_read"]),
               "runs": rows}
    print(json.dumps(summary, default=lambda x: round(x, 3) if isinstance(x, float) else x))


if __name__ == "__main__":
    main()
