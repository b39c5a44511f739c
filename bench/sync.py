"""Benchmark: batch sync from the warehouse to Redis, against raw redis-py and redis-benchmark.

One view of N entities (default 200,000) with 6 features (3 ints, 2 floats, 1 string) in DuckDB, each
entity with 5 historical rows (1,000,000 rows), synced in full to a fresh Redis database. Measured in
one run, medians of --repeat runs:

  featurehouse sync      FeatureStore.sync: latest row per entity in the warehouse, guarded pipelined writes
  featurehouse encode    Arrow batch -> keys, microsecond timestamps, msgpack payloads (the Python half)
  featurehouse write     RedisOnlineStore.write_encoded of those items: guarded, batched (the Redis half)
  redis-py HSET          raw redis-py: the same payloads, pipelined HSET, no guard (the Python floor)
  redis-benchmark HSET   redis-benchmark -t hset -P 16 on the same server (the server's capacity)

    python bench/sync.py [--entities 200000] [--redis-url redis://127.0.0.1:6379/14]

Without --redis-url an embedded server (unix socket) is used.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from featurehouse import Entity, Feature, FeatureStore, FeatureView, Registry, Relation  # noqa: E402
from featurehouse.offline.warehouse import DuckDBWarehouse  # noqa: E402
from featurehouse.online.embedded import EmbeddedRedis  # noqa: E402
from featurehouse.online.keys import time_field, value_field  # noqa: E402
from featurehouse.online.store import RedisOnlineStore  # noqa: E402
from featurehouse.sync.batch import encode_batch  # noqa: E402
from featurehouse.sync.latest import latest_values_sql  # noqa: E402

COLUMNS = [("txn_count_1h", "bigint"), ("txn_count_24h", "bigint"), ("txn_count_7d", "bigint"),
           ("amount_sum_24h", "double"), ("amount_max_7d", "double"), ("country", "varchar")]


def make_data(entities: int, per_entity: int = 5, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = entities * per_entity
    t0 = np.datetime64("2026-05-01T00:00:00", "us")
    event = t0 + rng.integers(0, 30 * 86400 * 10**6, n).astype("timedelta64[us]")
    return pa.table({
        "user_id": np.repeat(np.arange(entities, dtype=np.int64), per_entity),
        "event_time": pa.array(event, pa.timestamp("us")),
        "created_at": pa.array(event + np.timedelta64(2, "s"), pa.timestamp("us")),
        "txn_count_1h": rng.integers(0, 10, n), "txn_count_24h": rng.integers(0, 50, n),
        "txn_count_7d": rng.integers(0, 300, n), "amount_sum_24h": rng.random(n) * 1000,
        "amount_max_7d": rng.random(n) * 500, "country": pa.array(rng.choice(["DE", "US", "FR", "日本"], n)),
    })


def view() -> FeatureView:
    user = Entity("user", ("user_id",))
    return FeatureView("user_stats", 1, user, Relation(None, None, "user_stats"), "event_time",
                       tuple(Feature("user_stats", c, t, 1) for c, t in COLUMNS), created_at="created_at")


def timed(fn, repeat: int, before=None) -> list[float]:
    times = []
    for _ in range(repeat):
        if before:
            before()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--redis-url", default=None, help="a server to use (its database is flushed!)")
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="fh-bench-sync-"))
    server = None
    if a.redis_url:
        url = a.redis_url
    else:
        server = EmbeddedRedis(tmp / "redis", persist=False).start()
        url = server.url
    try:
        v = view()
        wh = DuckDBWarehouse(tmp / "wh.duckdb")
        wh.replace_table("main", "user_stats", make_data(a.entities))
        registry = Registry(entities={"user": v.entity})
        registry.add(v)
        store = FeatureStore.from_registry(registry, wh)
        online = RedisOnlineStore.from_url(url)
        store.use_online_store(online)
        flush = online.client.flushdb

        def full_sync():
            wh.execute("DROP TABLE IF EXISTS featurehouse.featurehouse_sync_runs")
            [run] = store.sync(full_refresh=True)
            assert run.rows_written == a.entities, run

        results = {"featurehouse sync": timed(full_sync, a.repeat, flush)}
        latest = wh.fetch_arrow(latest_values_sql(v, "duckdb"))
        items: list = []
        results["featurehouse encode"] = timed(lambda: items.__setitem__(slice(None), encode_batch(v, latest)), a.repeat)
        results["featurehouse write"] = timed(lambda: online.write_encoded(v, items, batch_size=500), a.repeat, flush)

        payloads = [(key, payload) for key, _et, _ca, payload in items]
        vfield, tfield = value_field("user_stats", 1), time_field("user_stats", 1)

        def raw_hset():
            pipe = online.client.pipeline(transaction=False)
            for i, (key, payload) in enumerate(payloads):
                pipe.hset(key, mapping={vfield: payload, tfield: "1:1"})
                if i % 5000 == 4999:
                    pipe.execute()
            pipe.execute()

        results["redis-py HSET (pre-encoded)"] = timed(raw_hset, a.repeat, flush)
        online.close()

        bench_cmd = shutil.which("redis-benchmark") or shutil.which("valkey-benchmark")
        rb = None
        if bench_cmd:
            target = ["-s", str(server.socket)] if server else ["-u", url]
            out = subprocess.run([bench_cmd, *target, "-t", "hset", "-n", str(a.entities), "-P", "16", "-q",
                                  "-d", "60", "--csv"], capture_output=True, text=True).stdout
            for line in out.splitlines():
                if line.startswith('"HSET"'):
                    rb = float(line.split(",")[1].strip('"'))
        wh.close()

        print(f"\n{a.entities:,} entities (latest of {a.entities * 5:,} rows), 6 features, server: "
              f"{'embedded (unix socket)' if server else url}")
        print(f"{'variant':<32}{'median s':>10}{'entities/s':>14}")
        for name, times in results.items():
            med = statistics.median(times)
            print(f"{name:<32}{med:>10.2f}{a.entities / med:>14,.0f}")
        if rb:
            print(f"{'redis-benchmark HSET -P 16':<32}{'':>10}{rb:>14,.0f}")
        sync_rate = a.entities / statistics.median(results["featurehouse sync"])
        raw_rate = a.entities / statistics.median(results["redis-py HSET (pre-encoded)"])
        print(f"featurehouse sync / raw redis-py HSET: {sync_rate / raw_rate:.2f}x")
    finally:
        if server:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
