"""Feast reference half of bench/sync.py (batch sync to the online store).  Runs INSIDE the Feast venv
(see bench/feast_env.sh, which installs feast[duckdb,redis]):

    $FEAST_PY bench/feast_sync_driver.py --data FILE.parquet --redis-url redis://127.0.0.1:P/1 --out OUT.json

FILE.parquet: the rows bench/sync.py syncs -- user_id (int64), event_time, created_at (timestamps; naive
ones are taken as UTC), 3 int features, 2 float features, 1 string feature, several rows per user.
The driver

1. FLUSHES the database at --redis-url and writes a throwaway Feast repo in a temp dir: Entity ``user``
   (join key user_id), FeatureView ``user_stats`` with the 6 features (ttl 3650 days, which covers the
   data) over a FileSource of a UTC-normalised copy of FILE (timestamp_field event_time,
   created_timestamp_column created_at), Redis online store at --redis-url with Feast's defaults
   (read-then-write staleness check on, ``skip_dedup: false``), file offline store, local file registry,
   provider local; ``fs.apply`` of it;
2. runs ``fs.materialize(start, end)`` over the whole time range in a CHILD process (this script with
   --materialize-child) that does nothing else: imports feast, opens the store, materialises, and reports
   its own peak resident set (VmHWM) -- so the peak is materialize's, not apply's or
   this check's (the child's peak still includes importing feast; its RSS just before materialize is
   reported too);
3. checks that Redis holds one key per user, and that get_online_features for a sample of users (first,
   last and --sample random ones) equals the latest row per user (greatest event_time, then
   created_at) -- exits non-zero, saying which user and feature differ, otherwise;
4. writes --out: {"feast_version", "entities", "rows", "materialize_s", "entities_per_s", "peak_rss_mb",
   "rss_before_materialize_mb", "children_peak_rss_mb", "checked_entities", "write_batch_size"}.

All Feast output goes to stderr; stdout stays empty.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from feast_redis_repo import redis_connection_string, write_repo  # bench/, beside this script

VIEW = "user_stats"
INT_FEATURES = ("txn_count_1h", "txn_count_24h", "txn_count_7d")
FLOAT_FEATURES = ("amount_sum_24h", "amount_max_7d")
STRING_FEATURES = ("country",)
FEATURES = INT_FEATURES + FLOAT_FEATURES + STRING_FEATURES
FEATURE_REFS = [f"{VIEW}:{f}" for f in FEATURES]
TTL = timedelta(days=3650)


def log(msg: str) -> None:
    print(f"[feast_sync_driver] {msg}", file=sys.stderr, flush=True)


def normalise_data(src: Path, dst: Path):
    """Copy FILE with the types Feast's FileSource expects (int64 ids/counts, float64 amounts, string
    country, UTC timestamps) and return that table: naive timestamps would be read in local time."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t = pq.read_table(src, columns=["user_id", "event_time", "created_at", *FEATURES])
    cols = {}
    for name in t.column_names:
        col = t[name]
        if name in ("event_time", "created_at"):
            if not pa.types.is_timestamp(col.type):
                raise SystemExit(f"{name} must be a timestamp column, got {col.type}")
            if col.type.tz is None:
                col = pc.assume_timezone(col, "UTC")
            col = col.cast(pa.timestamp("us", tz="UTC"))
        elif name == "user_id" or name in INT_FEATURES:
            col = col.cast(pa.int64())
        elif name in FLOAT_FEATURES:
            col = col.cast(pa.float64())
        else:
            col = col.cast(pa.string())
        cols[name] = col
    t = pa.table(cols)
    pq.write_table(t, dst)
    return t


def latest_rows(table) -> dict[int, dict]:
    """The expected online row per user: greatest event_time, then created_at (Feast's and featurehouse's
    rule). Computed with numpy in one sort, not with Feast, so the check does not trust what it checks."""
    import numpy as np

    uid = table["user_id"].to_numpy()
    et = table["event_time"].cast("int64").to_numpy()
    ca = table["created_at"].cast("int64").to_numpy()
    order = np.lexsort((ca, et, uid))  # last key is primary: by user, then event_time, then created_at
    last = order[np.r_[uid[order][1:] != uid[order][:-1], True]]
    cols = {f: table[f].take(last).to_pylist() for f in FEATURES}
    return {u: {f: cols[f][i] for f in FEATURES} for i, u in enumerate(uid[last].tolist())}


def objects(parquet: Path):
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64, String

    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name=VIEW,
        entities=[user],
        ttl=TTL,
        schema=[Field(name=f, dtype=Int64) for f in INT_FEATURES]
        + [Field(name=f, dtype=Float64) for f in FLOAT_FEATURES]
        + [Field(name=f, dtype=String) for f in STRING_FEATURES],
        source=FileSource(name=f"{VIEW}_src", path=str(parquet), timestamp_field="event_time",
                          created_timestamp_column="created_at"),
        online=True,
    )
    return [user, view]


def rss_mb() -> float:
    """Current resident set (VmRSS) in MB: the baseline the peak is read against."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """This process's own peak resident set (VmHWM) in MB. Not ru_maxrss: Linux keeps that across
    fork and exec, so a child started by a large parent reports the parent's size (measured: a 500 MB
    parent, a child of 11 MB reporting 511)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def materialize_child(repo: str, start: str, end: str) -> None:
    """The measured process: nothing here but what `feast materialize` itself would do, so its
    peak (VmHWM) is materialize's (plus the interpreter and feast's imports)."""
    with contextlib.redirect_stdout(sys.stderr):
        from feast import FeatureStore

        fs = FeatureStore(repo_path=repo)
        before = rss_mb()
        t0 = time.perf_counter()
        fs.materialize(start_date=datetime.fromisoformat(start), end_date=datetime.fromisoformat(end),
                       feature_views=[VIEW])
        seconds = time.perf_counter() - t0
    peak = peak_rss_mb()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"materialize_s": seconds, "peak_rss_mb": peak, "rss_before_materialize_mb": before,
                      "children_peak_rss_mb": children}))


def run_child(repo: Path, start: datetime, end: datetime) -> dict:
    """Materialise in a fresh process of this interpreter; its last stdout line is its JSON report."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--materialize-child", str(repo),
           start.isoformat(), end.isoformat()]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"materialize child failed with exit code {proc.returncode} (its stderr is above)")
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise SystemExit("materialize child printed no report")
    return json.loads(lines[-1])


def check_online(fs, expected: dict[int, dict], sample: int, client) -> int:
    """Fail loudly unless Redis holds one key per user and a sample read back equals the latest rows."""
    keys = client.dbsize()
    if keys != len(expected):
        raise SystemExit(f"Redis holds {keys} keys after materialize, expected one per user ({len(expected)})")
    users = sorted(expected)
    chosen = sorted({users[0], users[-1], *random.Random(7).sample(users, min(sample, len(users)))})
    for i in range(0, len(chosen), 500):
        chunk = chosen[i:i + 500]
        got = fs.get_online_features(features=FEATURE_REFS, entity_rows=[{"user_id": u} for u in chunk]).to_dict()
        for j, u in enumerate(chunk):
            if got["user_id"][j] != u:
                raise SystemExit(f"get_online_features returned user {got['user_id'][j]} in place of {u}")
            for f in FEATURES:
                if got[f][j] != expected[u][f]:
                    raise SystemExit(f"user {u}, {f}: online {got[f][j]!r} != latest row {expected[u][f]!r}")
    return len(chosen)


def main(argv=None) -> None:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--materialize-child"]:
        if len(argv) != 4:
            raise SystemExit("usage: --materialize-child REPO START END")
        materialize_child(*argv[1:])
        return
    ap = argparse.ArgumentParser(description="Feast materialize (Redis online store): entities/s and peak RSS")
    ap.add_argument("--data", required=True, help="parquet: user_id, event_time, created_at + 6 features")
    ap.add_argument("--redis-url", required=True, help="redis://host:port/db (the database is FLUSHED)")
    ap.add_argument("--out", required=True, help="where to write the JSON report")
    ap.add_argument("--sample", type=int, default=1000, help="users read back and compared")
    ap.add_argument("--write-batch-size", type=int, default=None,
                    help="materialization.online_write_batch_size (default: Feast's, one batch)")
    a = ap.parse_args(argv)

    repo = Path(tempfile.mkdtemp(prefix="fh-feast-sync-"))
    try:
        with contextlib.redirect_stdout(sys.stderr):
            import feast
            import pyarrow.compute as pc
            import redis
            from feast import FeatureStore

            client = redis.Redis.from_url(a.redis_url)
            client.flushdb()
            log(f"flushed {a.redis_url}; feast {feast.__version__}; repo {repo}")
            parquet = repo / "data" / f"{VIEW}.parquet"
            write_repo(repo, redis_connection_string(a.redis_url), "fh_bench_sync", a.write_batch_size)
            table = normalise_data(Path(a.data).resolve(), parquet)
            expected = latest_rows(table)
            bounds = pc.min_max(table["event_time"]).as_py()  # tz-aware (UTC) datetimes
            start, end = bounds["min"] - timedelta(seconds=1), bounds["max"] + timedelta(seconds=1)
            if datetime.now(timezone.utc) - start > TTL:  # noqa: UP017 (runs on any 3.x)
                raise SystemExit(f"the data starts at {start}, beyond the view's ttl of {TTL} from now")

            fs = FeatureStore(repo_path=str(repo))
            fs.apply(objects(parquet))
            report = run_child(repo, start, end)
            log(f"materialised {len(expected)} users ({start} .. {end}) in {report['materialize_s']:.2f} s, "
                f"peak RSS {report['peak_rss_mb']:.0f} MB")
            checked = check_online(fs, expected, a.sample, client)
            log(f"checked {checked} users against the latest rows: equal")

        report.update(feast_version=feast.__version__, entities=len(expected), rows=table.num_rows,
                      entities_per_s=len(expected) / report["materialize_s"], checked_entities=checked,
                      write_batch_size=a.write_batch_size)
        Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    finally:
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
