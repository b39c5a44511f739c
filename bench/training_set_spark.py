"""Benchmark: the same training set on Spark (local[2], dbt-spark's session) beside DuckDB, and how Spark's cost
grows with the spine.

The data of bench/training_set.py (two views, ~5,050,000 and ~303,000 rows, 100,000 users) with spines of
1,000,000 rows and more; each engine runs in its own process (peak RSS is its own, Spark's JVM included). Spark's point-in-time
query is a key-equality join with a range condition, then a ranking: the plan it chose is printed (a
sort-merge or hash join on user_id, never a cartesian product), and the run fails if it holds one.

    python bench/training_set_spark.py --spark-python .ci-spark-venv/bin/python            # 1M spine
    python bench/training_set_spark.py --spark-python ... --spines 1000000,10000000        # how it grows

Spark needs a venv with `pip install -e '.[spark]'` and Java 17 (`--spark-python`); DuckDB runs in this one.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_data  # noqa: E402
import reference_sql  # noqa: E402

FEATURES = [f"big_view.{c}" for c in reference_sql.BIG_FEATURES] + [f"small_view.{c}" for c in reference_sql.SMALL_FEATURES]


def store_on(engine: str, data: Path, scratch: Path):
    """A store whose two views are the Parquet files, read by `engine`."""
    from featurehouse import Entity, Feature, FeatureStore, FeatureView, Registry, Relation

    if engine == "spark":
        from featurehouse.offline.warehouse import SPARK_METASTORE_URL, SPARK_WAREHOUSE_DIR, SparkWarehouse

        wh = SparkWarehouse({SPARK_WAREHOUSE_DIR: str(scratch / "warehouse"), "spark.driver.memory": "4g",
                             SPARK_METASTORE_URL: f"jdbc:derby:;databaseName={scratch / 'metastore_db'};create=true"})
        wh.spark.sparkContext.setLogLevel("ERROR")
        for name in ("big_view", "small_view"):
            wh.spark.read.parquet(str(data / f"{name}.parquet")).createOrReplaceTempView(name)
    else:
        from featurehouse.offline.warehouse import DuckDBWarehouse

        wh = DuckDBWarehouse(":memory:")
        wh.execute("SET enable_progress_bar = false")
        for name in ("big_view", "small_view"):
            path = str(data / f"{name}.parquet").replace("'", "''")
            wh.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
    user = Entity("user", ("user_id",))
    registry = Registry(entities={"user": user})
    for name, cols, ttl in (("big_view", reference_sql.BIG_FEATURES, reference_sql.BIG_TTL_DAYS),
                            ("small_view", reference_sql.SMALL_FEATURES, reference_sql.SMALL_TTL_DAYS)):
        types = wh.describe(Relation(None, None, name))
        assert types is not None, name
        registry.add(FeatureView(name, 1, user, Relation(None, None, name), "event_time",
                                 tuple(Feature(name, c, types[c], 1) for c in cols),
                                 created_at="created_at", ttl=timedelta(days=ttl)))
    return FeatureStore.from_registry(registry, wh), wh


def record_plans(wh) -> dict:
    """Keep the physical plan Spark chooses for each query the warehouse fetches (the training set's is the
    longest): planned, not run, before the query runs."""
    plans: dict[str, str] = {}
    fetch = wh.fetch_arrow

    def fetch_and_plan(sql, params=None):
        if not params:
            plans[sql] = wh.spark.sql(sql)._jdf.queryExecution().executedPlan().toString()
        return fetch(sql, params)

    wh.fetch_arrow = fetch_and_plan
    return plans


def tree_rss_peak(stop) -> list[float]:
    """Sample the RSS of this process and its children (Spark's JVM is one) until `stop` is set; the peak in MB."""
    import psutil

    peak = [0.0]
    me = psutil.Process()

    def sample() -> None:
        while not stop.wait(0.2):
            try:
                rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error:
                continue
            peak[0] = max(peak[0], rss / 2**20)

    import threading

    threading.Thread(target=sample, daemon=True).start()
    return peak


def run_variant(engine: str, data: Path, spine: str, repeat: int) -> dict:
    import threading

    stop = threading.Event()
    peak = tree_rss_peak(stop)
    with tempfile.TemporaryDirectory(prefix="fh-bench-spark-") as scratch:
        store, wh = store_on(engine, data, Path(scratch))
        plans = record_plans(wh) if engine == "spark" else {}
        times, rows = [], None
        for _ in range(repeat):
            t = time.perf_counter()
            result = store.build_training_set(spine, FEATURES, timestamp="label_time", keep_order=False, record=False)
            times.append(time.perf_counter() - t)
            rows = result.rows
        plan = plans[max(plans, key=len)] if plans else ""
    stop.set()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"engine": engine, "times_s": [round(t, 2) for t in times], "median_s": round(statistics.median(times), 2),
            "peak_rss_mb": round(max(own, peak[0]), 1), "rows": rows, "plan": plan}


def spine_of(data: Path, rows: int) -> str:
    """The bench spine repeated (with later label times) up to `rows` rows, as a Parquet file beside it."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    base = pq.read_table(data / "spine.parquet")
    if rows <= base.num_rows:
        return str(data / "spine.parquet")
    path = data / f"spine_{rows}.parquet"
    if not path.exists():
        parts, made, shift = [], 0, 0
        while made < rows:
            part = base.slice(0, min(base.num_rows, rows - made))
            label = pc.add(part.column("label_time"), pa.scalar(timedelta(minutes=shift), pa.duration("us")))
            parts.append(part.set_column(part.schema.get_field_index("label_time"), "label_time", label))
            made, shift = made + part.num_rows, shift + 7
        pq.write_table(pa.concat_tables(parts), path)
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spark-python", required=False, help="the python of a venv with featurehouse[spark]")
    ap.add_argument("--spines", default="1000000", help="spine sizes, comma-separated")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--spine", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.variant:
        print(json.dumps(run_variant(a.variant, a.data, a.spine, a.repeat)))
        return
    if not a.spark_python:
        ap.error("--spark-python is required (a venv with pip install -e '.[spark]')")
    files = bench_data.generate(bench_data.DEFAULT_DIR.parent / "data")
    data = Path(files["spine"]).parent
    results = []
    for size in (int(s) for s in a.spines.split(",")):
        spine = spine_of(data, size)
        for engine, python in (("duckdb", sys.executable), ("spark", a.spark_python)):
            repeat = a.repeat if size <= 1_000_000 else 1
            print(f"{engine}: {size:,} spine rows x{repeat}", file=sys.stderr)
            out = subprocess.run([python, __file__, "--variant", engine, "--data", str(data), "--spine", spine,
                                  "--repeat", str(repeat)], capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"{engine} failed:\n{out.stderr[-3000:]}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["spine_rows"] = size
            results.append(r)
            if r["plan"]:
                if "CartesianProduct" in r["plan"] or "BroadcastNestedLoopJoin" in r["plan"]:
                    raise SystemExit(f"Spark chose a cartesian plan:\n{r['plan']}")
                joins = sorted({line.strip().lstrip("+-:*() ").split(" ")[0] for line in r["plan"].splitlines()
                                if "Join" in line})
                print(f"spark plan ({size:,}): joins {', '.join(joins)}", file=sys.stderr)
                print(r["plan"], file=sys.stderr)
    print(f"\n{'spine rows':>12}{'engine':>8}{'median s':>10}{'vs DuckDB':>11}{'peak RSS MB':>13}{'rows':>12}")
    duck = {r["spine_rows"]: r["median_s"] for r in results if r["engine"] == "duckdb"}
    for r in results:
        print(f"{r['spine_rows']:>12,}{r['engine']:>8}{r['median_s']:>10.2f}{r['median_s'] / duck[r['spine_rows']]:>10.2f}x"
              f"{r['peak_rss_mb']:>13.0f}{r['rows']:>12,}")


if __name__ == "__main__":
    main()
