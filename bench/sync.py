"""Benchmark: batch sync from the warehouse to Redis, against raw redis-py and redis-benchmark.

One view of N entities (default 200,000) with 6 features (3 ints, 2 floats, 1 string) in DuckDB, each
entity with 5 historical rows (1,000,000 rows), synced in full to a fresh Redis database. Measured in
one run, medians of --repeat runs:

  featurehouse sync      FeatureStore.sync: latest row per entity in the warehouse, guarded pipelined writes
  featurehouse encode    Arrow batch -> keys, microsecond timestamps, msgpack payloads (the Python half)
  featurehouse write     RedisOnlineStore.write_encoded of those items: guarded, batched (the Redis half)
  redis-py HSET          raw redis-py: the same payloads, pipelined HSET, no guard (the Python floor)
  redis-benchmark HSET   redis-benchmark -t hset -P 16 on the same server (the server's capacity)

Then, against Feast (skipped with --skip-feast), on a private redis-server of this run's own (a free
loopback TCP port: Feast's Redis store speaks TCP only), each in a process of its own so that peak
memory (VmHWM, which includes the interpreter and imports) is the sync's own:

  featurehouse sync      the same FeatureStore.sync (guard on), --repeat child processes: median time, largest peak
  Feast materialize      Feast 0.67 in its own venv (bench/feast_sync_driver.py) on the same rows written to
                         parquet: once with Feast's defaults (one write batch), once with
                         online_write_batch_size --feast-write-batch-size (its lighter-memory setting)

and the ratios against the goals of issue 13: featurehouse's rate >= 10x Feast's, its peak <= 1/3 of Feast's.

    python bench/sync.py [--entities 200000] [--redis-url redis://127.0.0.1:6379/14] [--skip-feast]
                         [--feast-entities N] [--feast-write-batch-size 10000]

Without --redis-url an embedded server (unix socket) is used for the first table. Feast's python is
$FEATUREHOUSE_FEAST_PYTHON, else what `bash bench/feast_env.sh` prints (it creates the venv once).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from featurehouse import Entity, Feature, FeatureStore, FeatureView, Registry, Relation  # noqa: E402
from featurehouse.catalog.tables import SYNC_RUNS  # noqa: E402
from featurehouse.offline.warehouse import DuckDBWarehouse  # noqa: E402
from featurehouse.online.embedded import EmbeddedRedis, server_binary  # noqa: E402
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


def forget_sync_runs(store: FeatureStore) -> None:
    """Each timed sync starts with no run history, as the first one did. Rows are deleted, not the table
    dropped: the store's catalog remembers the table it made and would insert into a dropped one."""
    store.catalog.delete(SYNC_RUNS, exp.true())


def timed(fn, repeat: int, before=None) -> list[float]:
    times = []
    for _ in range(repeat):
        if before:
            before()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


# -- against Feast: each sync in a process of its own, on a private TCP redis-server -----------------

GOAL_RATE, GOAL_MEMORY = 10.0, 1 / 3  # issue 13: >= 10x Feast's entities/s, <= 1/3 of its peak memory


def rss_mb() -> float:
    """Current resident set (VmRSS) in MB: what the process held before the sync began."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """This process's own peak resident set (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_store(warehouse: DuckDBWarehouse, url: str) -> tuple[FeatureStore, RedisOnlineStore]:
    registry = Registry(entities={"user": view().entity})
    registry.add(view())
    store = FeatureStore.from_registry(registry, warehouse)
    online = RedisOnlineStore.from_url(url)
    store.use_online_store(online)
    return store, online


def sync_child(warehouse: str, url: str, entities: int) -> None:
    """The measured process: open the store, flush, sync in full, print one JSON line. Nothing else runs
    here, so its peak resident set is the sync's (plus interpreter and imports, as Feast's child has too).
    VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork and exec, so this child would report its
    parent's size (the parent holds the data: 482 MB reported for a 260 MB sync)."""
    wh = DuckDBWarehouse(Path(warehouse))
    store, online = open_store(wh, url)
    online.client.flushdb()
    forget_sync_runs(store)
    before = rss_mb()
    t = time.perf_counter()
    [run] = store.sync(full_refresh=True)
    seconds = time.perf_counter() - t
    peak = peak_rss_mb()
    keys = sum(1 for _ in online.client.scan_iter(match="fh:{user:*", count=10_000))  # besides fh:store_id etc.
    if run.rows_written != entities or keys != entities:
        raise SystemExit(f"sync wrote {run.rows_written} rows, Redis holds {keys} user keys; expected {entities}")
    online.close()
    wh.close()
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "rss_before_mb": before}))


def run_sync_child(warehouse: Path, url: str, entities: int) -> dict:
    """featurehouse's sync in a fresh interpreter (this script, --sync-child): a peak comparable to Feast's."""
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--sync-child", str(warehouse), url,
                           str(entities)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"featurehouse sync child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ping(proc: subprocess.Popen, port: int, log: Path, timeout_s: float = 15.0) -> bool:
    """Poll until the server answers PING (True) or exits (False: e.g. another process took the port)."""
    import redis

    client = redis.Redis(port=port, socket_connect_timeout=0.2, socket_timeout=1)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                return bool(client.ping())
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(0.02)
    finally:
        client.close()
    raise SystemExit(f"redis-server on port {port} did not answer within {timeout_s} s:\n{log.read_text()[-2000:]}")


@contextlib.contextmanager
def private_redis(directory: Path, attempts: int = 3) -> Iterator[int]:
    """A redis-server of this run's own on a free loopback port (never the machine's Redis: its
    databases are flushed); yields the port and stops the server on the way out."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "redis.log"
    for _ in range(attempts):
        port = free_port()
        with log.open("w") as out:
            proc = subprocess.Popen([server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                     "--appendonly", "no", "--dir", str(directory)],
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if _wait_ping(proc, port, log):
            break
        proc.wait()
    else:
        raise SystemExit(f"redis-server would not start on a free port ({attempts} tries):\n{log.read_text()[-2000:]}")
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def feast_python() -> str:
    """$FEATUREHOUSE_FEAST_PYTHON, else the venv bench/feast_env.sh keeps (creating it the first time)."""
    py = os.environ.get("FEATUREHOUSE_FEAST_PYTHON")
    if py:
        if not os.access(py, os.X_OK):
            raise SystemExit(f"FEATUREHOUSE_FEAST_PYTHON={py!r} is not an executable")
        return py
    out = subprocess.run(["bash", str(ROOT / "bench" / "feast_env.sh")], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        raise SystemExit(f"could not set up Feast's venv (bench/feast_env.sh):\n{out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


def run_feast(python: str, data: Path, url: str, out: Path, write_batch_size: int | None) -> dict:
    """Feast's materialize on `data` through bench/feast_sync_driver.py in Feast's venv; its JSON report."""
    cmd = [python, str(ROOT / "bench" / "feast_sync_driver.py"), "--data", str(data), "--redis-url", url,
           "--out", str(out)]
    if write_batch_size:
        cmd += ["--write-batch-size", str(write_batch_size)]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"Feast's sync driver failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def compare_with_feast(a, tmp: Path, warehouse: Path, table: pa.Table) -> None:
    """featurehouse's sync and Feast's materialize on the same rows and the same private server, each
    in a child process: entities/s, peak memory, and the ratios against issue 13's goals."""
    n = a.feast_entities or a.entities
    if n != a.entities:  # both sides on the same (smaller) rows, so the peaks compare
        warehouse = tmp / f"cmp{n}.duckdb"
        table = make_data(n)
        wh = DuckDBWarehouse(warehouse)
        wh.replace_table("main", "user_stats", table)
        wh.close()
    data = tmp / "user_stats.parquet"
    pq.write_table(table, data)
    python = feast_python()
    with private_redis(tmp / "tcp-redis") as port:
        print(f"\nagainst Feast: {n:,} entities (latest of {table.num_rows:,} rows), private redis-server on "
              f"127.0.0.1:{port} (TCP); each sync in a child process of its own", flush=True)
        fh = [run_sync_child(warehouse, f"redis://127.0.0.1:{port}/0", n) for _ in range(a.repeat)]
        print("  featurehouse sync children: " + ", ".join(f"{r['seconds']:.2f} s, peak {r['peak_rss_mb']:.0f} MB"
                                                         for r in fh), flush=True)
        variants = {"featurehouse sync (guard on)": {
            "seconds": statistics.median(r["seconds"] for r in fh), "peak_rss_mb": max(r["peak_rss_mb"] for r in fh),
            "rss_before_mb": max(r["rss_before_mb"] for r in fh)}}
        batch_sizes = [None] + ([a.feast_write_batch_size] if a.feast_write_batch_size else [])
        for size in batch_sizes:
            r = run_feast(python, data, f"redis://127.0.0.1:{port}/1", tmp / f"feast-{size}.json", size)
            if r["entities"] != n:
                raise SystemExit(f"Feast saw {r['entities']} entities in the parquet, expected {n}")
            name = f"Feast {r['feast_version']} materialize, " + (f"write batch {size:,}" if size else "defaults")
            variants[name] = {"seconds": r["materialize_s"], "peak_rss_mb": r["peak_rss_mb"],
                              "rss_before_mb": r["rss_before_materialize_mb"]}
    print_comparison(variants, n, a)


def print_comparison(variants: dict[str, dict], n: int, a) -> None:
    print(f"{'variant':<46}{'s':>8}{'entities/s':>12}{'peak MB':>10}{'before MB':>11}")
    for name, v in variants.items():
        print(f"{name:<46}{v['seconds']:>8.2f}{n / v['seconds']:>12,.0f}{v['peak_rss_mb']:>10,.0f}"
              f"{v['rss_before_mb']:>11,.0f}")
    print(f"(featurehouse: median time of {a.repeat} runs, largest peak; peak = VmHWM of the child, including"
          " interpreter and imports; 'before' = its RSS just before the sync began)")
    if n != a.entities:
        print(f"NOTE: Feast ran on --feast-entities {n:,}, not {a.entities:,}; featurehouse's figures in this "
              "table are on those same rows, its rates above on the full set")
    [(_, fh), *feasts] = variants.items()
    for name, v in feasts:
        rate, memory = v["seconds"] / fh["seconds"], fh["peak_rss_mb"] / v["peak_rss_mb"]
        print(f"featurehouse / {name}: rate {rate:.1f}x (goal >= {GOAL_RATE:.0f}x: "
              f"{'met' if rate >= GOAL_RATE else 'NOT met'}), peak memory {memory:.2f}x (goal <= 0.33x: "
              f"{'met' if memory <= GOAL_MEMORY else 'NOT met'})")


def main() -> None:
    if sys.argv[1:2] == ["--sync-child"]:  # internal: the measured process of compare_with_feast
        warehouse, url, entities = sys.argv[2:]
        sync_child(warehouse, url, int(entities))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--redis-url", default=None, help="a server to use (its database is flushed!)")
    ap.add_argument("--skip-feast", action="store_true", help="skip the comparison with Feast's materialize")
    ap.add_argument("--feast-entities", type=int, default=None,
                    help="entities for the Feast comparison (default: --entities); both sides sync those rows")
    ap.add_argument("--feast-write-batch-size", type=int, default=10_000,
                    help="also run Feast with materialization.online_write_batch_size N (0: only its defaults)")
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
        table = make_data(a.entities)
        wh.replace_table("main", "user_stats", table)
        store, online = open_store(wh, url)
        flush = online.client.flushdb

        def full_sync():
            forget_sync_runs(store)
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
        if not a.skip_feast:
            compare_with_feast(a, tmp, tmp / "wh.duckdb", table)
    finally:
        if server:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
