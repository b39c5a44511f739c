"""Feast reference half of bench/serve.py (online serving).  Runs INSIDE the Feast venv
(see bench/feast_env.sh, which installs feast[duckdb,redis]):

    $FEAST_PY bench/feast_serve_driver.py --data FILE.parquet --redis-url redis://127.0.0.1:6379/12 \
        --port P [--serve-seconds 60]

FILE.parquet: user_id (int64), event_time, created_at (timestamps; naive ones are taken as UTC) and
the 6 features of user_txn_stats.  The driver

1. builds a throwaway Feast repo in a temp dir: Entity ``user`` (join key user_id), FeatureView
   ``user_txn_stats`` (ttl 3650 d) over a FileSource of a normalised copy of FILE (timestamp_field
   event_time, created_timestamp_column created_at), online store Redis at --redis-url (its
   database is FLUSHED first), offline store file, local file registry (cache never expires),
   provider local; applies it and materialises all of it (first event_time .. max(now, last
   event_time)) into Redis;
2. times in-process ``get_online_features(features=[6 refs], entity_rows=...).to_dict()``: 1 entity
   (user_id 1) over --calls-1 calls and 100 entities (user_id 1..100) over --calls-100 calls, each
   after a warm-up;
3. starts ``feast serve`` (its CLI, in the repo dir, own process group) on 127.0.0.1:P with the
   fastest single-worker settings 0.67 offers: ``--workers 1 --no-access-log --max-requests 0
   --max-requests-jitter 0`` (gunicorn worker recycling off; the default recycles the worker every
   ~1000 requests) ``--registry_ttl_sec 0`` (no periodic registry refresh), waits until
   ``POST /get-online-features`` answers 200 with values, and prints ONE JSON line on stdout:

    {"feast_version", "inproc_1_p50_ms", "inproc_1_p99_ms", "inproc_100_p50_ms", "inproc_100_p99_ms",
     "server_url", "server_pid", "request_body", "serve_cmd", "users", "materialize_s"}

   then keeps the server up for --serve-seconds or until SIGTERM/SIGINT, stops it (SIGTERM to its
   process group, SIGKILL after 10 s) and removes the temp repo.  All Feast output goes to stderr.

Feast's server uses the async Redis path (redis.asyncio + hiredis) for /get-online-features.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

from feast_redis_repo import redis_connection_string, write_repo  # bench/, beside this script

VIEW = "user_txn_stats"
INT_FEATURES = ("txn_count_1h", "txn_count_24h", "txn_count_7d")
FLOAT_FEATURES = ("amount_sum_24h", "amount_sum_7d", "amount_max_7d")
FEATURE_REFS = [f"{VIEW}:{f}" for f in INT_FEATURES + FLOAT_FEATURES]


def log(msg: str) -> None:
    print(f"[feast_serve_driver] {msg}", file=sys.stderr, flush=True)


def normalise_data(src: Path, dst: Path) -> tuple[int, datetime, datetime]:
    """Copy FILE with the types Feast expects (int64 ids/counts, float64 amounts, UTC timestamps)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t = pq.read_table(src, columns=["user_id", "event_time", "created_at", *INT_FEATURES, *FLOAT_FEATURES])
    cols = {}
    for name in t.column_names:
        col = t[name]
        if name in ("event_time", "created_at"):
            ty = col.type
            if not pa.types.is_timestamp(ty):
                raise SystemExit(f"{name} must be a timestamp column, got {ty}")
            if ty.tz is None:
                col = pc.assume_timezone(col, "UTC")
            col = col.cast(pa.timestamp("us", tz="UTC"))
        elif name == "user_id" or name in INT_FEATURES:
            col = col.cast(pa.int64())
        else:
            col = col.cast(pa.float64())
        cols[name] = col
    t = pa.table(cols)
    pq.write_table(t, dst)
    lo, hi = pc.min(t["event_time"]).as_py(), pc.max(t["event_time"]).as_py()
    return pc.count_distinct(t["user_id"]).as_py(), lo, hi


def objects(parquet: Path):
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name=VIEW,
        entities=[user],
        ttl=timedelta(days=3650),
        schema=[Field(name=f, dtype=Int64) for f in INT_FEATURES]
        + [Field(name=f, dtype=Float64) for f in FLOAT_FEATURES],
        source=FileSource(name=f"{VIEW}_src", path=str(parquet), timestamp_field="event_time",
                          created_timestamp_column="created_at"),
        online=True,
    )
    return [user, view]


def percentiles(fn, n: int, warmup: int) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    pc = time.perf_counter
    for _ in range(n):
        t = pc()
        fn()
        times.append(pc() - t)
    times.sort()
    return round(times[len(times) // 2] * 1000, 4), round(times[int(len(times) * 0.99)] * 1000, 4)


def post(url: str, body: bytes, timeout: float = 2.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def stop_server(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    log(f"stopping feast serve (pgid {proc.pid})")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Feast online serving: in-process latency + `feast serve` for wrk")
    ap.add_argument("--data", required=True, help="parquet with user_id, event_time, created_at + 6 features")
    ap.add_argument("--redis-url", required=True, help="redis://host:port/db (the database is FLUSHED)")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--serve-seconds", type=float, default=60)
    ap.add_argument("--calls-1", type=int, default=5000)
    ap.add_argument("--calls-100", type=int, default=500)
    ap.add_argument("--ready-timeout", type=float, default=120)
    a = ap.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    real_stdout = sys.stdout
    repo = Path(tempfile.mkdtemp(prefix="fh-feast-serve-"))
    proc: subprocess.Popen | None = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            import feast
            import redis
            from feast import FeatureStore

            conn = redis_connection_string(a.redis_url)
            redis.Redis.from_url(a.redis_url).flushdb()
            log(f"flushed {a.redis_url}; feast {feast.__version__}; repo {repo}")
            parquet = repo / "data" / f"{VIEW}.parquet"
            write_repo(repo, conn, "fh_bench_serve")
            users, lo, hi = normalise_data(Path(a.data).resolve(), parquet)

            fs = FeatureStore(repo_path=str(repo))
            fs.apply(objects(parquet))
            start = lo - timedelta(seconds=1)
            end = max(datetime.now(timezone.utc), hi + timedelta(seconds=1))  # noqa: UP017 (runs on any 3.x)
            t0 = time.perf_counter()
            fs.materialize(start_date=start, end_date=end, feature_views=[VIEW])
            materialize_s = round(time.perf_counter() - t0, 2)
            log(f"materialised {users} users ({start} .. {end}) in {materialize_s} s")

            one = [{"user_id": 1}]
            hundred = [{"user_id": u} for u in range(1, 101)]
            check = fs.get_online_features(features=FEATURE_REFS, entity_rows=one).to_dict()
            if any(check[f][0] is None for f in INT_FEATURES + FLOAT_FEATURES):
                raise SystemExit(f"user 1 has missing values after materialize: {check}")
            p1 = percentiles(lambda: fs.get_online_features(features=FEATURE_REFS, entity_rows=one).to_dict(),
                             a.calls_1, min(500, a.calls_1 // 5))
            p100 = percentiles(lambda: fs.get_online_features(features=FEATURE_REFS, entity_rows=hundred).to_dict(),
                               a.calls_100, min(50, a.calls_100 // 5))
            log(f"in-process p50/p99 ms: 1 entity {p1}, 100 entities {p100}")

            feast_bin = str(Path(sys.executable).parent / "feast")
            cmd = [feast_bin, "serve", "--host", a.host, "--port", str(a.port), "--workers", "1",
                   "--no-access-log", "--max-requests", "0", "--max-requests-jitter", "0",
                   "--registry_ttl_sec", "0"]
            log(f"starting: (cd {repo} && {shlex.join(cmd)})")
            proc = subprocess.Popen(cmd, cwd=str(repo), stdin=subprocess.DEVNULL, stdout=sys.stderr,
                                    stderr=sys.stderr, start_new_session=True)
            url = f"http://{a.host}:{a.port}/get-online-features"
            body = {"features": FEATURE_REFS, "entities": {"user_id": [1]}}
            raw = json.dumps(body).encode()
            deadline = time.monotonic() + a.ready_timeout
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"feast serve exited with {proc.returncode} before answering")
                if stop.is_set():
                    raise SystemExit("stopped before the server was ready")
                try:
                    status, resp = post(url, raw)
                    if status == 200:
                        break
                    log(f"server answered {status}: {resp[:300]!r}")
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"{url} did not answer 200 within {a.ready_timeout} s")
                time.sleep(0.1)
            values = json.loads(resp)["results"]
            if any(r["values"][0] is None for r in values[1:]):
                raise SystemExit(f"server returned missing values: {resp[:500]!r}")

        info = {
            "feast_version": feast.__version__,
            "inproc_1_p50_ms": p1[0], "inproc_1_p99_ms": p1[1],
            "inproc_100_p50_ms": p100[0], "inproc_100_p99_ms": p100[1],
            "server_url": url, "server_pid": proc.pid, "request_body": body,
            "serve_cmd": f"cd {shlex.quote(str(repo))} && {shlex.join(cmd)}",
            "users": users, "materialize_s": materialize_s,
        }
        real_stdout.write(json.dumps(info) + "\n")
        real_stdout.flush()
        log(f"serving on {url} for up to {a.serve_seconds} s (SIGTERM to stop)")
        deadline = time.monotonic() + a.serve_seconds
        while not stop.is_set() and proc.poll() is None and time.monotonic() < deadline:
            stop.wait(min(0.5, max(0.0, deadline - time.monotonic())))
        if proc.poll() is not None:
            log(f"feast serve exited early with {proc.returncode}")
    finally:
        stop_server(proc)
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
