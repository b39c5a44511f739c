"""Benchmark: serving feature vectors over HTTP and in-process, against the floors of the same stack.

On the example project (run `featurehouse demo` first, or let this script run it), one user's vector
of 6 features (user_txn_stats) is served:

  featurehouse HTTP         `featurehouse serve` (granian, 1 worker) with a bearer token (its default), wrk -t2 -c32
                            -d10s; then paced at 80% of that peak (bench/paced.lua) for the p99 a loaded, not
                            saturated, server gives
  featurehouse HTTP, no auth the same server with `auth: none` (loopback), alternated with the token runs: what
                            authentication and the access decision cost
  featurehouse HTTP batch   POST :batchGet of 100 users, wrk -t2 -c32 -d10s
  minimal HTTP handler      granian + Starlette + redis.asyncio, one HMGET, same server stack (the Python floor)
  featurehouse in-process   FeatureStore.online_features, one user and 100 users (p50 / p99 of 20,000 / 2,000 calls)
  raw redis-py              HMGET of the same fields, and a pipeline of 100 (the floor)
  Feast 0.67                its Python feature server (`feast serve`, 1 worker) and get_online_features on the
                            same user_txn_stats rows, materialised into the machine's Redis (database 12),
                            from a virtual environment of its own (bench/feast_env.sh, bench/feast_serve_driver.py)

    python bench/serve.py [--duration 10] [--connections 32] [--skip-feast]

wrk, the server and Redis share the machine's cores: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from featurehouse import FeatureStore  # noqa: E402
from featurehouse.online.keys import entity_key, time_field, value_field  # noqa: E402

PROJECT = ROOT / "dbt_project"
NAMES = ["user_txn_stats.txn_count_1h", "user_txn_stats.txn_count_24h", "user_txn_stats.txn_count_7d",
         "user_txn_stats.amount_sum_24h", "user_txn_stats.amount_sum_7d", "user_txn_stats.amount_max_7d"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, method: str = "GET", body: bytes | None = None,
             token: str | None = None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for _ in range(400):
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-800:] if proc.stderr else ''}")
        try:
            urllib.request.urlopen(urllib.request.Request(url, data=body, method=method, headers=headers), timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer")


def wrk(url: str, duration: int, connections: int, script: Path | None = None, rate: float | None = None,
        token: str | None = None) -> dict:
    """wrk's req/s and latency percentiles; with `rate`, paced at that many requests/s (bench/paced.lua)."""
    if rate is not None:
        script = ROOT / "bench" / "paced.lua"
    cmd = (["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"] + (["-s", str(script)] if script else [])
           + (["-H", f"Authorization: Bearer {token}"] if token else [])
           + [url] + (["--", str(rate / 2)] if rate is not None else []))
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50_ms": pct(50), "p99_ms": pct(99), "non_2xx": int(errors.group(1)) if errors else 0}


def latencies_ab(fn_a, fn_b, n: int) -> tuple[dict, dict]:
    """Two callables timed alternately, call by call, so both see the same machine at the same moment."""
    for _ in range(min(n // 10, 500)):
        fn_a()
        fn_b()
    a, b = [], []
    for _ in range(n):
        t = time.perf_counter()
        fn_a()
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        fn_b()
        b.append(time.perf_counter() - t)
    out = []
    for times in (a, b):
        times.sort()
        out.append({"p50_ms": times[len(times) // 2] * 1000, "p99_ms": times[int(len(times) * 0.99)] * 1000,
                    "per_s": n / sum(times)})
    return out[0], out[1]


def run_feast(store, tmp: Path, a) -> dict[str, dict]:
    """Feast on the same rows: in-process get_online_features, and its feature server under the same wrk."""
    import pyarrow.parquet as pq

    env_out = subprocess.run(["bash", str(ROOT / "bench" / "feast_env.sh")], capture_output=True, text=True)
    if env_out.returncode != 0:
        raise SystemExit(f"could not set up Feast's venv:\n{env_out.stderr[-2000:]}")
    feast_python = env_out.stdout.strip().splitlines()[-1]
    view = store.registry.view("user_txn_stats")
    rows = store.warehouse.fetch_arrow(f"SELECT * FROM {store.warehouse.relation_sql(view.relation)}")
    pq.write_table(rows.select(["user_id", "event_time", "created_at", *view.feature_columns]), tmp / "user_txn_stats.parquet")
    port = free_port()
    driver = subprocess.Popen([feast_python, str(ROOT / "bench" / "feast_serve_driver.py"), "--data",
                               str(tmp / "user_txn_stats.parquet"), "--redis-url", a.feast_redis_url, "--port", str(port),
                               "--serve-seconds", str(4 * a.duration + 60)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        info = json.loads(driver.stdout.readline())
        script = tmp / "feast.lua"
        script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(info["request_body"]))}\n'
                          'wrk.headers["Content-Type"] = "application/json"\n')
        server = wrk(info["server_url"], a.duration, a.connections, script)
    finally:
        driver.terminate()
        driver.wait(timeout=30)
    version = info.get("feast_version", "?")
    return {
        f"Feast {version} feature server, 1 entity": server,
        f"Feast {version} get_online_features, 1 entity": {
            "per_s": 1000 / info["inproc_1_p50_ms"], "p50_ms": info["inproc_1_p50_ms"], "p99_ms": info["inproc_1_p99_ms"]},
        f"Feast {version} get_online_features, 100 entities": {
            "per_s": 1000 / info["inproc_100_p50_ms"], "p50_ms": info["inproc_100_p50_ms"],
            "p99_ms": info["inproc_100_p99_ms"]},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--skip-feast", action="store_true")
    ap.add_argument("--feast-redis-url", default="redis://127.0.0.1:6379/12",
                    help="where Feast's online store lives (its database is flushed)")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (Debian: apt-get install wrk)")
    if not (PROJECT / ".featurehouse" / "warehouse.duckdb").exists():
        subprocess.run([sys.executable, "-m", "featurehouse.cli.main", "demo", "--no-serve"], check=True)

    store = FeatureStore(PROJECT)
    store.sync()
    url = store.online.embedded.url if store.online.embedded else os.environ["FEATUREHOUSE_REDIS_URL"]
    users = [str(u) for u in range(1, 101)]
    view = store.registry.view("user_txn_stats")
    env = dict(os.environ, FEATUREHOUSE_REDIS_URL=url, BENCH_KEY=entity_key("user", ("1",)),
               BENCH_FIELDS=",".join([value_field(view.name, view.version), time_field(view.name, view.version)]))
    results: dict[str, dict] = {}
    tmp = Path(tempfile.mkdtemp(prefix="fh-bench-serve-"))
    from datetime import timedelta

    from featurehouse.access.tokens import create_token, new_token, revoke_token
    from featurehouse.clock import utc_now

    token, record = new_token("bench", "read", timedelta(hours=1), utc_now(), description="bench/serve.py")
    create_token(store.catalog, store.online.client, record)
    store.close_warehouse()
    try:
        # featurehouse over HTTP: with a bearer token (the default), and with auth: none, alternated
        servers = {}
        for auth in ("token", "none"):
            port = free_port()
            servers[auth] = (subprocess.Popen([sys.executable, "-m", "featurehouse.cli.main", "--project-dir", str(PROJECT),
                                               "serve", "--port", str(port)], env={**env, "FEATUREHOUSE_AUTH": auth},
                                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), f"http://127.0.0.1:{port}")
        try:
            query = f"/v1/features/user/1?names={','.join(NAMES)}"
            for auth, (proc, base) in servers.items():
                wait_for(base + query, proc, token=token if auth == "token" else None)
            base = servers["token"][1]
            single = base + query
            request = urllib.request.Request(single, headers={"Authorization": f"Bearer {token}"})
            body = json.loads(urllib.request.urlopen(request).read())
            assert all(f["status"] != "missing" for f in body["features"].values()), body
            rounds = {"token": [], "none": []}
            for _ in range(2):  # alternated, so both see the same machine
                for auth, (_, server) in servers.items():
                    rounds[auth].append(wrk(server + query, a.duration, a.connections,
                                            token=token if auth == "token" else None))
            peak = results["featurehouse HTTP, 1 entity"] = max(rounds["token"], key=lambda r: r["rps"])
            results["featurehouse HTTP, 1 entity, auth: none"] = max(rounds["none"], key=lambda r: r["rps"])
            results["featurehouse HTTP, 1 entity, paced at 80% of peak"] = wrk(
                single, a.duration, a.connections, rate=0.8 * peak["rps"], token=token)
            script = tmp / "batch.lua"
            payload = json.dumps({"ids": users, "names": NAMES})
            script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(payload)}\n'
                              'wrk.headers["Content-Type"] = "application/json"\n')
            results["featurehouse HTTP, batch of 100"] = wrk(f"{base}/v1/features/user:batchGet", a.duration,
                                                             a.connections, script, token=token)
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=10)
            revoke_token(store.catalog, store.online.client, record.token_id, utc_now())
            store.close_warehouse()

        # the minimal handler on the same stack
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "granian", "--interface", "asgi", "--port", str(port),
                                 "--workers", "1", "--no-ws", "--loop", "uvloop", "--http", "1", "minimal_app:app"], env=env, cwd=str(ROOT / "bench"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(f"http://127.0.0.1:{port}/v", proc)
            results["minimal granian+starlette HMGET"] = wrk(f"http://127.0.0.1:{port}/v", a.duration, a.connections)
        finally:
            proc.terminate()
            proc.wait(timeout=10)

        # in-process, each against its floor, call by call
        client = store.online.client
        key, fields = env["BENCH_KEY"], env["BENCH_FIELDS"].split(",")
        keys = [entity_key("user", (u,)) for u in users]

        def pipeline_100():
            pipe = client.pipeline(transaction=False)
            for k in keys:
                pipe.hmget(k, fields)
            pipe.execute()

        (results["featurehouse in-process, 1 entity"],
         results["raw redis-py HMGET, 1 entity"]) = latencies_ab(
            lambda: store.online_features("user", ["1"], NAMES), lambda: client.hmget(key, fields), 20000)
        (results["featurehouse in-process, 100 entities"],
         results["raw redis-py HMGET pipeline, 100"]) = latencies_ab(
            lambda: store.online_features("user", users, NAMES), pipeline_100, 2000)
        if not a.skip_feast:
            results.update(run_feast(store, tmp, a))
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{'variant':<52}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, r in results.items():
        rate = r.get("rps", r.get("per_s"))
        print(f"{name:<52}{rate:>10,.0f}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}"
              + (f"  ({r['non_2xx']} non-2xx)" if r.get("non_2xx") else ""))
    http, floor = results["featurehouse HTTP, 1 entity"], results["minimal granian+starlette HMGET"]
    sdk, raw = results["featurehouse in-process, 1 entity"], results["raw redis-py HMGET, 1 entity"]
    paced = results["featurehouse HTTP, 1 entity, paced at 80% of peak"]
    print(f"\nHTTP vs minimal handler: {http['rps'] / floor['rps']:.0%} (goal >= 60%)")
    open_http = results["featurehouse HTTP, 1 entity, auth: none"]
    print(f"HTTP with a bearer token vs auth: none, same run: {http['rps'] / open_http['rps']:.0%} of the throughput, "
          f"p99 {http['p99_ms']:.2f} vs {open_http['p99_ms']:.2f} ms (goal: within 10%)")
    print(f"HTTP p99 at {paced['rps']:,.0f} req/s ({paced['rps'] / http['rps']:.0%} of peak): "
          f"{paced['p99_ms']:.2f} ms (goal < 10 ms)")
    feast_server = next((r for n, r in results.items() if n.startswith("Feast") and "server" in n), None)
    if feast_server:
        print(f"HTTP vs Feast's feature server, same run: {http['rps'] / feast_server['rps']:.1f}x (goal >= 5x)")
    else:
        print(f"HTTP vs Feast's best measured before we began (1.7k req/s): {http['rps'] / 1700:.1f}x (goal >= 5x)")
    print(f"in-process p50 vs raw HMGET p50: {sdk['p50_ms'] / raw['p50_ms']:.2f}x (goal <= 1.5x); "
          f"in-process p99 {sdk['p99_ms']:.3f} ms (goal < 0.3 ms)")
    print(f"batch of 100 in-process p50: {results['featurehouse in-process, 100 entities']['p50_ms']:.2f} ms (goal <= 1.5 ms)")


if __name__ == "__main__":
    main()
